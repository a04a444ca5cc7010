// LoadGenerator: lean protocol-level clients. Each client is a DEALER that sends
// [""][submit header][payload] (common/codec.h encode) and matches replies by requestId
// (codec decode), keeping exactly `window` requests in flight. One thread (the caller of run())
// drives all clients through a SocketSet, so the load costs one core at most.
//
// The same generator drives the ceiling: kind Echo sends the identical frames to a bare ROUTER
// echo and decodes the echoed submit, so client-side work is the same in both measurements and
// their ratio isolates what the broker path adds.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "bench/cpu.h"
#include "bench/histogram.h"
#include "common/clock.h"
#include "common/messages.h"
#include "common/transport.h"

namespace flame::bench {

enum class LoadKind {
  Call,  // mode call; the reply is result (or error)
  Cast,  // mode cast; the reply is accepted (or error): latency is time to acceptance
  Echo,  // against EchoServer; the reply is the echoed submit
};

struct LoadOptions {
  std::string endpoint;         // broker client endpoint, or the echo server
  LoadKind kind = LoadKind::Call;
  uint32_t clients = 1;
  uint32_t window = 1;          // requests in flight per client (1 = synchronous)
  size_t payload = 64;          // bytes per request payload frame
  std::string pool = "bench";
  std::string function = "noop";
  uint32_t timeoutMs = 30'000;  // job budget (kInfiniteMs = none)
  // Linked requests oblige the client to heartbeat (it does, every heartbeatInterval).
  bool link = true;
  Duration heartbeatInterval{1000};
  uint64_t maxJobs = 0;         // stop issuing after this many requests in total (0 = no limit)
  // CURVE (issue 10): every client connects as a CURVE client with these keys (the server's
  // public key and the clients' pair, which the server's KeyRing lists). None: plaintext.
  std::optional<CurveClient> curve;
};

struct LoadPlan {
  Duration warmup{200};         // replies before warmup ends are not counted
  Duration measure{2000};       // the measured interval (kInfinite: until maxJobs are answered)
  Duration drainBound{10'000};  // after measuring, how long outstanding replies may take
  Duration connectBound{10'000};
  // Called about every 500 ms on the run() thread with the replies so far (progress lines).
  std::function<void(uint64_t replies)> onProgress;
};

struct LoadStats {
  uint64_t completed = 0;  // successful replies received inside the measured interval
  uint64_t errors = 0;     // error replies (any time)
  uint64_t replies = 0;    // all replies, any time
  uint64_t sent = 0;
  double seconds = 0;      // length of the measured interval
  bool drained = true;     // every request was answered before drainBound
  Histogram latency;       // per-request round trip (ns), measured interval only
  RoleCpu cpu;             // CPU per role burned during the measured interval (see cpu.h)
  double jobsPerSecond() const { return seconds > 0 ? static_cast<double>(completed) / seconds : 0; }
};

class LoadGenerator {
 public:
  explicit LoadGenerator(LoadOptions options);
  // Connects, checks every client can reach the peer (a heartbeat round trip), then runs the
  // plan on the calling thread and returns. Throws std::runtime_error if the peer cannot be
  // reached within connectBound.
  LoadStats run(const LoadPlan& plan);

 private:
  LoadOptions options_;
};

}  // namespace flame::bench
