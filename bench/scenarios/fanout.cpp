// fan-out: jobs/s as the pool grows from 1 to 1000 runners, with the same jobs in flight
// (settings.fanoutInFlight, spread over 4 clients) whatever the pool size, so only the cost of
// routing among more runners changes. At 1000 runners every runner has 1 slot.
#include "bench/measure.h"
#include "bench/scenarios/scenarios.h"

namespace flame::bench {

Rows runFanout(const Settings& settings, Progress& progress) {
  Rows rows;
  const uint32_t clients = 4;
  const uint32_t window = std::max<uint32_t>(1, settings.fanoutInFlight / clients);
  Row ceiling = measureCeiling(Shape{"pipelined", clients, 0, window, 64, Transport::Tcp}, settings, progress);
  rows.push_back(ceiling);
  std::optional<double> base;
  for (uint32_t runners : settings.fanoutRunners) {
    Row row = measureBroker("fanout", LoadKind::Call, Shape{"pipelined", clients, runners, window, 64, Transport::Tcp},
                            settings, progress);
    if (row.jobsPerS && ceiling.jobsPerS && *ceiling.jobsPerS > 0) row.ratioToCeiling = *row.jobsPerS / *ceiling.jobsPerS;
    if (!base) base = row.jobsPerS;
    if (base && *base > 0 && row.jobsPerS)
      row.extra["vs_first_pool_size"] = std::round(*row.jobsPerS / *base * 1000) / 1000;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace flame::bench
