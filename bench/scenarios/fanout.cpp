// fan-out: jobs/s as the pool grows from 1 to 1000 runners, with the same jobs in flight
// (settings.fanoutInFlight, over 4 clients) whatever the pool size. Two variants:
// - "spread": the in-flight jobs are spread over every runner's slots (at 1000 runners, 1 slot
//   each), so every runner works and every job crosses its own connection: routing cost plus
//   ZeroMQ's per-connection cost (no batching), all on this one machine;
// - "index": every runner could take the whole window; pack placement keeps the work on the
//   busiest runner, so the I/O pattern is that of 1 runner and only the size of the broker's
//   runner index grows: routing cost alone (a dispatch that scanned the runners would show here).
// Next to each pool size, the ceiling with as many connections (an echo with max(4, runners)
// DEALERs sharing the same in-flight jobs) shows what the connection count alone costs.
#include "bench/measure.h"
#include "bench/scenarios/scenarios.h"

namespace flame::bench {

namespace {
void relative(Row& row, const Row& ceiling, std::optional<double> base) {
  if (row.jobsPerS && ceiling.jobsPerS && *ceiling.jobsPerS > 0) row.ratioToCeiling = *row.jobsPerS / *ceiling.jobsPerS;
  if (base && *base > 0 && row.jobsPerS) row.extra["vs_1_runner"] = std::round(*row.jobsPerS / *base * 1000) / 1000;
}
}  // namespace

Shape fanoutCeilingShape(const Settings& settings, uint32_t runners) {
  uint32_t conns = std::max<uint32_t>(4, runners);
  return Shape{"pipelined", conns, 0, std::max<uint32_t>(1, settings.fanoutInFlight / conns), 64, Transport::Tcp};
}

Shape fanoutShape(const Settings& settings, uint32_t runners, bool index) {
  const uint32_t window = std::max<uint32_t>(1, settings.fanoutInFlight / 4);
  Shape s{index ? "index" : "spread", 4, runners, window, 64, Transport::Tcp};
  if (index) s.slotsPerRunner = 4 * window;
  return s;
}

Rows runFanout(const Settings& settings, Progress& progress) {
  Rows rows;
  std::optional<double> base;
  for (uint32_t runners : settings.fanoutRunners) {
    Row ceiling = measureCeiling(fanoutCeilingShape(settings, runners), settings, progress);
    rows.push_back(ceiling);
    Row spread = measureBroker("fanout", LoadKind::Call, fanoutShape(settings, runners, false), settings, progress);
    if (!base) base = spread.jobsPerS;
    relative(spread, ceiling, base);
    rows.push_back(spread);
    if (runners > 1) {
      Row index = measureBroker("fanout", LoadKind::Call, fanoutShape(settings, runners, true), settings, progress);
      relative(index, rows[0], base);  // same I/O as 1 runner: compare with the 4-connection ceiling
      rows.push_back(index);
    }
  }
  return rows;
}

}  // namespace flame::bench
