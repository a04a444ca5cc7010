// The scenarios of issue 4. Each runs its measurements in order, returns their rows, and
// reports progress; none prints results (main does).
#pragma once

#include <vector>

#include "bench/report.h"
#include "bench/settings.h"

namespace flame::bench {

using Rows = std::vector<Row>;

// Bare DEALER->ROUTER echo for every transport x payload x clients x {sync, pipelined}.
Rows runCeiling(const Settings& settings, Progress& progress);
// call through the broker, sync and pipelined, over the whole matrix, each group next to the
// ceiling of the same transport, payload, clients and window (ratio_to_ceiling).
Rows runCall(const Settings& settings, Progress& progress);
// The zero-logic relay reference over the same matrix, next to the same ceilings.
Rows runRelay(const Settings& settings, Progress& progress);
// The broker's logic alone (BrokerCore, no sockets): nanoseconds per job.
Rows runCore(const Settings& settings, Progress& progress);
// cast: accepted/s (the client's view) and completed/s (counted on the runners).
Rows runCast(const Settings& settings, Progress& progress);
// Routing cost as the pool grows; the same number of jobs in flight whatever the pool size.
Rows runFanout(const Settings& settings, Progress& progress);
// flame::Client + flame::Runner (and the two mixed variants), sync and pipelined, next to the
// lean protocol row of the same shape.
Rows runLibrary(const Settings& settings, Progress& progress);
// Adds jobs_over_call and p50_over_call_p50 (the library path over the lean protocol path).
void setLibraryRatios(Row& library, const Row& call);
// A burst on a `process` pool with min 0, through a real flame-broker process.
Rows runElastic(const Settings& settings, Progress& progress);
// flame-broker's RSS with queued jobs.
Rows runMemory(const Settings& settings, Progress& progress);
// What CURVE costs (issue 10): the ceiling and the call, pipelined and sync, plaintext and with
// CURVE on every connection, back to back; appends its PASS/MISS to `targets` (curve.cpp).
Rows runCurve(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets);
// What /metrics costs (issue 11): the pipelined call with metrics on (scraped every 100 ms) and
// off, back to back; appends its PASS/MISS to `targets` (metrics.cpp).
Rows runMetrics(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets);
// The target figures in one go; fills `targets` with PASS/MISS.
Rows runHeadline(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets);

// Fan-out shapes (fanout.cpp): the ceiling with max(4, runners) connections, and the broker
// measurement in the "spread" or "index" variant.
struct Shape;
Shape fanoutCeilingShape(const Settings& settings, uint32_t runners);
Shape fanoutShape(const Settings& settings, uint32_t runners, bool index);

// How many measurements a scenario will make (for the progress counter).
size_t plannedMeasurements(const std::string& scenario, const Settings& settings);

}  // namespace flame::bench
