// Single measurements: each starts what it needs (echo server, in-process broker, runners,
// clients), runs one load, tears everything down and returns one Row.
#pragma once

#include <string>

#include "bench/harness.h"
#include "bench/load.h"
#include "bench/report.h"
#include "bench/settings.h"

namespace flame::bench {

struct Shape {
  std::string mode = "pipelined";  // sync (window 1) | pipelined
  uint32_t clients = 4;
  uint32_t runners = 4;
  uint32_t window = 1000;
  size_t payload = 64;
  Transport transport = Transport::Tcp;
  uint32_t slotsPerRunner = 0;     // 0: the total window spread over the runners
  // CURVE on every connection (issue 10): fresh keys per measurement (BenchKeys), the server
  // (echo or broker) with a KeyRing and a ZAP handler, every client and runner a CURVE client.
  // Ceiling and broker measurements only (not the relay or the library path).
  bool curve = false;
  // The broker serves /metrics and is scraped every 100 ms (BrokerThread, issue 11).
  bool metrics = false;
};

// Bare DEALER->ROUTER echo (EchoServer) with the lean load generator.
Row measureCeiling(const Shape& shape, const Settings& settings, Progress& progress);

// The zero-logic relay reference (relay.h): same clients, echo runners, no broker logic.
Row measureRelay(const Shape& shape, const Settings& settings, Progress& progress);

// In-process broker + RunnerFarm (lean protocol runners, one thread) + lean clients.
// kind Call or Cast. Runner slots (unless shape.slotsPerRunner says otherwise): the total
// window spread over the runners, so the pool's credit never limits the window and every runner
// is busy (fan-out with 1000 in flight and 1000 runners: 1 slot each).
Row measureBroker(const std::string& scenario, LoadKind kind, const Shape& shape, const Settings& settings,
                  Progress& progress);

// Which halves of a library measurement are flame's library (the rest are the lean protocol
// peers of measureBroker): both = "library", client only = "library-client" (flame::Client +
// lean runners), runner only = "library-runner" (lean clients + flame::Runner). With
// `inlineHandlers`, the runners register their function with Runner::handleInline (it runs on
// the runner's I/O thread, no hand-off to a handler thread): "library-inline".
struct LibraryMix {
  bool client = true;
  bool runner = true;
  bool inlineHandlers = false;
};

// In-process broker + flame::Runner threads + flame::Client objects (the library path):
// pipelined through Client::callAsync callbacks, sync through blocking Client::call on one
// thread per client. See library_measure.cpp.
Row measureLibrary(const Shape& shape, const Settings& settings, Progress& progress, LibraryMix mix = {});

// Lean runners' slots for a shape (the total window spread over the runners, unless
// shape.slotsPerRunner says otherwise).
uint32_t leanSlotsPerRunner(const Shape& shape);

// "call pipelined c4 r4 64B tcp w1000", "call pipelined c4 r4 64B tcp curve w1000"
std::string label(const std::string& scenario, const Shape& shape);

// Plan for one throughput measurement (warmup, duration; smoke shortens both).
LoadPlan planFor(const Settings& settings);

}  // namespace flame::bench
