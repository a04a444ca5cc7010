// scale (issue 9, item 9): one broker at 10,000 registered runners and 100,000 client sessions.
//
// The peers are simulated in-process: a BrokerCore is fed real encoded messages through the
// same decode boundary BrokerServer uses (broker/inbound.h), with a ManualClock advanced by hand
// and an Outbox that counts and discards. No sockets and no file descriptors, so the counts are
// not bounded by the machine's descriptor limit. What it measures:
//   - heap growth per idle runner and per idle client session (glibc mallinfo2().uordblks,
//     which counts every chunk in use with its header; the process's RSS delta beside it);
//   - dispatch throughput (submit -> job -> jobDone -> result) at 10 runners and at the full
//     count, same jobs, same slots per runner, same jobs in flight, back to back;
//   - the CPU of one simulated second of heartbeats from every runner and session, with the
//     tick() that sweeps them;
//   - and, as a cross-check with real connections (1,000 over tcp loopback, within the
//     descriptor limit), a flame-broker process's RSS per connected runner and client.
// The targets of issue 9 are checked and returned in `targets`.
#pragma once

#include <vector>

#include "bench/report.h"
#include "bench/settings.h"

namespace flame::bench {

std::vector<Row> runScale(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets);

// How many rows (progress steps) runScale makes.
size_t scaleMeasurements(const Settings& settings);

}  // namespace flame::bench
