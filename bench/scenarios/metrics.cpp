// metrics: what the Prometheus endpoint costs (issue 11, item 1). The pipelined call of the
// headline (4 clients, 4 runners, 64 B, tcp), with the broker serving /metrics and scraped every
// 100 ms (BrokerThread with metrics: ten times a 1 s scrape interval), next to the same call
// without, back to back in the same run. The order alternates between repetitions (off/on, then
// on/off) so that a drift of the machine does not always favour one side; with --repeat N the
// median of the N ratios is judged.
//
// What "off" still pays: the core's counters (broker/metrics.h PoolMetrics) are always kept —
// an increment or a histogram observe where each event happens — so this measures the snapshot
// rendering, the HTTP thread and the scrapes. The counters' own cost shows in `flame-bench core`
// (nanoseconds per job of the core alone).
//
// Target: pipelined call with metrics >= 0.97 x without (jobs/s).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench/measure.h"
#include "bench/scenarios/scenarios.h"

namespace flame::bench {

namespace {
constexpr double kMetricsRatio = 0.97;  // issue 11: metrics cost <= 3 % of pipelined throughput
}  // namespace

Rows runMetrics(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets) {
  const Shape off{"pipelined", 4, 4, settings.window, 64, Transport::Tcp};
  Shape on = off;
  on.metrics = true;
  struct Pair {
    Row off, on;
    double ratio = 0;
  };
  std::vector<Pair> pairs;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, settings.repeat); ++i) {
    Pair p;
    if (i % 2 == 0) {
      p.off = measureBroker("call", LoadKind::Call, off, settings, progress);
      p.on = measureBroker("call", LoadKind::Call, on, settings, progress);
    } else {
      p.on = measureBroker("call", LoadKind::Call, on, settings, progress);
      p.off = measureBroker("call", LoadKind::Call, off, settings, progress);
    }
    double base = p.off.jobsPerS.value_or(0);
    p.ratio = base > 0 ? p.on.jobsPerS.value_or(0) / base : 0;
    pairs.push_back(std::move(p));
  }
  std::vector<size_t> order(pairs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return pairs[a].ratio < pairs[b].ratio; });
  Pair median = pairs[order[order.size() / 2]];
  std::string runs;
  for (auto& p : pairs) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.3f", runs.empty() ? "" : "/", p.ratio);
    runs += buf;
  }
  char measured[200];
  std::snprintf(measured, sizeof measured, "%.3f x (%.0f vs %.0f jobs/s)", median.ratio,
                median.on.jobsPerS.value_or(0), median.off.jobsPerS.value_or(0));
  TargetCheck check{"metrics: pipelined call with /metrics scraped every 100 ms >= 0.97 x without",
                    measured + (pairs.size() > 1 ? "; runs " + runs : ""), median.ratio >= kMetricsRatio};
  median.on.extra["over_no_metrics"] = std::round(median.ratio * 1000) / 1000;
  median.on.extra["target"] = check.name;
  median.on.extra["pass"] = check.pass;
  if (pairs.size() > 1) {
    median.on.extra["median_of"] = pairs.size();
    median.off.extra["median_of"] = pairs.size();
  }
  targets.push_back(check);
  return {median.off, median.on};
}

}  // namespace flame::bench
