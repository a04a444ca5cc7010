// curve: what CURVE costs (issue 10, item 7). The headline's rows — the ceiling and the call,
// pipelined and sync (4 clients, 4 runners, 64 B, tcp) — plaintext and with CURVE on every
// connection, measured back to back in the same run.
//
// One repetition is four measurements in this order: ceiling, call, call with CURVE, ceiling
// with CURVE, so each ratio below compares two measurements taken next to each other (the two
// calls; each call and its own ceiling). With --repeat N every ratio is computed within each
// repetition and the median of the N is judged (as headline.cpp's pairedMedian does); the rows
// printed are those of the repetition whose judged ratio is the median.
//
// Targets:
// - pipelined call with CURVE >= 0.6 x pipelined call without (jobs/s);
// - the CURVE ceiling ratio no worse than the plaintext one. Compared within each repetition as
//   r = (call/ceiling with CURVE) / (call/ceiling plaintext), jobs/s when pipelined, and for sync
//   the same on the p50 factor (call p50 / ceiling p50). "No worse" allows for noise: r is a
//   ratio of two back-to-back pair ratios, each of which spreads about +-5 % pipelined and +-10 %
//   sync on this 2-core machine (bench/README.md: pipelined pairs 0.466-0.515, sync p50 pairs
//   2.04-2.48), so r spreads about twice that: pipelined r >= 0.9, sync r <= 1.2.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "bench/measure.h"
#include "bench/scenarios/scenarios.h"

namespace flame::bench {

namespace {
constexpr double kCurveCallRatio = 0.6;  // issue 10: pipelined call with CURVE >= 0.6 x without
constexpr double kPipelinedNoise = 0.10;  // see the top of this file
constexpr double kSyncNoise = 0.20;

struct Quad {
  Row ceiling, call, callCurve, ceilingCurve;
};

Quad measureQuad(const Shape& plain, const Settings& settings, Progress& progress) {
  Shape curve = plain;
  curve.curve = true;
  Quad q;
  q.ceiling = measureCeiling(plain, settings, progress);
  q.call = measureBroker("call", LoadKind::Call, plain, settings, progress);
  q.callCurve = measureBroker("call", LoadKind::Call, curve, settings, progress);
  q.ceilingCurve = measureCeiling(curve, settings, progress);
  return q;
}

// CPU microseconds per completed job, all of flame-bench's threads (every role and its ZeroMQ
// I/O threads) over the measured interval: what one job costs the machine, which other
// processes on the cores change much less than they change jobs/s.
double cpuPerJob(const Row& r) {
  double cores = r.extra.value("cores_used", 0.0), rate = r.jobsPerS.value_or(0);
  return rate > 0 ? cores / rate * 1e6 : 0.0;
}
// a's capacity over b's: b's CPU per job over a's (1 = as cheap, 0.5 = twice the CPU per job).
double capacity(const Row& a, const Row& b) { return cpuPerJob(a) > 0 ? cpuPerJob(b) / cpuPerJob(a) : 0.0; }

double jobs(const Row& a, const Row& b) { return b.jobsPerS.value_or(0) > 0 ? a.jobsPerS.value_or(0) / *b.jobsPerS : 0.0; }
double p50(const Row& a, const Row& b) { return b.p50Us.value_or(0) > 0 ? a.p50Us.value_or(0) / *b.p50Us : 0.0; }
double round3(double v) { return std::round(v * 1000) / 1000; }

// One ratio over the repetitions: every value, and the index of the median one.
struct Series {
  std::vector<double> values;
  size_t medianIndex() const {
    std::vector<size_t> order(values.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
    return order[order.size() / 2];
  }
  double median() const { return values.empty() ? 0.0 : values[medianIndex()]; }
  nlohmann::ordered_json json() const {
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (double v : values) all.push_back(round3(v));
    return all;
  }
  std::string list() const {
    std::string s;
    for (double v : values) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.3f", s.empty() ? "" : "/", v);
      s += buf;
    }
    return s;
  }
};

std::string fmt(const char* f, double a, double b = 0, double c = 0, double d = 0) {
  char buf[200];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

void mark(Row& row, const TargetCheck& t) {
  row.extra["target"] = t.name;
  row.extra["pass"] = t.pass;
}

std::vector<Quad> repeated(const Shape& shape, const Settings& settings, Progress& progress) {
  std::vector<Quad> quads;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, settings.repeat); ++i)
    quads.push_back(measureQuad(shape, settings, progress));
  return quads;
}
}  // namespace

Rows runCurve(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets) {
  const Shape pipelined{"pipelined", 4, 4, settings.window, 64, Transport::Tcp};
  const Shape sync{"sync", 4, 4, 1, 64, Transport::Tcp};
  Rows rows;

  // Pipelined: jobs/s.
  {
    std::vector<Quad> quads = repeated(pipelined, settings, progress);
    Series cost, plainRatio, curveRatio, relative, ceilingCost, cpuCost, cpuRelative;
    for (auto& q : quads) {
      cpuCost.values.push_back(capacity(q.callCurve, q.call));
      cpuRelative.values.push_back(capacity(q.callCurve, q.ceilingCurve) /
                                   std::max(capacity(q.call, q.ceiling), 1e-9));
      cost.values.push_back(jobs(q.callCurve, q.call));
      plainRatio.values.push_back(jobs(q.call, q.ceiling));
      curveRatio.values.push_back(jobs(q.callCurve, q.ceilingCurve));
      relative.values.push_back(curveRatio.values.back() / std::max(plainRatio.values.back(), 1e-9));
      ceilingCost.values.push_back(jobs(q.ceilingCurve, q.ceiling));
    }
    Quad q = quads[cost.medianIndex()];
    q.call.ratioToCeiling = jobs(q.call, q.ceiling);
    q.callCurve.ratioToCeiling = jobs(q.callCurve, q.ceilingCurve);
    q.callCurve.extra["over_plaintext"] = round3(jobs(q.callCurve, q.call));
    q.ceilingCurve.extra["over_plaintext"] = round3(jobs(q.ceilingCurve, q.ceiling));
    if (quads.size() > 1) {
      q.call.extra["pair_ratios"] = plainRatio.json();
      q.callCurve.extra["pair_ratios"] = curveRatio.json();
      q.callCurve.extra["over_plaintext_runs"] = cost.json();
      q.ceilingCurve.extra["over_plaintext_runs"] = ceilingCost.json();
      for (Row* r : {&q.ceiling, &q.call, &q.callCurve, &q.ceilingCurve}) r->extra["median_of"] = quads.size();
    }
    q.callCurve.extra["ratio_over_plaintext_ratio"] = round3(relative.median());
    for (Row* r : {&q.ceiling, &q.call, &q.callCurve, &q.ceilingCurve})
      r->extra["cpu_us_per_job"] = std::round(cpuPerJob(*r) * 10) / 10;
    q.callCurve.extra["cpu_capacity_over_plaintext"] = round3(cpuCost.median());

    TargetCheck cost6{"curve: pipelined call >= 0.6 x plaintext call",
                      fmt("%.3f x (%.0f vs %.0f jobs/s)", cost.median(), q.callCurve.jobsPerS.value_or(0),
                          q.call.jobsPerS.value_or(0)) +
                          (quads.size() > 1 ? "; runs " + cost.list() : "") +
                          fmt("; by CPU per job %.3f x (%.1f vs %.1f us)", cpuCost.median(), cpuPerJob(q.call),
                              cpuPerJob(q.callCurve)),
                      cost.median() >= kCurveCallRatio};
    mark(q.callCurve, cost6);
    TargetCheck ratio{"curve: pipelined call/ceiling >= 0.9 x plaintext's",
                      fmt("%.3f x: %.3f with CURVE, %.3f plaintext (medians)", relative.median(), curveRatio.median(),
                          plainRatio.median()) +
                          (quads.size() > 1 ? "; runs " + relative.list() : "") +
                          fmt("; by CPU per job %.3f x", cpuRelative.median()),
                      relative.median() >= 1.0 - kPipelinedNoise};
    q.callCurve.extra["target_2"] = ratio.name;
    q.callCurve.extra["pass_2"] = ratio.pass;
    targets.push_back(cost6);
    targets.push_back(ratio);
    rows.insert(rows.end(), {q.ceiling, q.call, q.ceilingCurve, q.callCurve});
  }

  // Sync: the p50 factor (call p50 over its ceiling's p50), as the headline's sync target.
  {
    std::vector<Quad> quads = repeated(sync, settings, progress);
    Series plainFactor, curveFactor, relative, callCost, ceilingCost;
    for (auto& q : quads) {
      plainFactor.values.push_back(p50(q.call, q.ceiling));
      curveFactor.values.push_back(p50(q.callCurve, q.ceilingCurve));
      relative.values.push_back(curveFactor.values.back() / std::max(plainFactor.values.back(), 1e-9));
      callCost.values.push_back(p50(q.callCurve, q.call));
      ceilingCost.values.push_back(p50(q.ceilingCurve, q.ceiling));
    }
    Quad q = quads[relative.medianIndex()];
    q.call.ratioToCeiling = jobs(q.call, q.ceiling);
    q.callCurve.ratioToCeiling = jobs(q.callCurve, q.ceilingCurve);
    q.call.extra["p50_over_ceiling_p50"] = std::round(p50(q.call, q.ceiling) * 100) / 100;
    q.callCurve.extra["p50_over_ceiling_p50"] = std::round(p50(q.callCurve, q.ceilingCurve) * 100) / 100;
    q.callCurve.extra["p50_over_plaintext_p50"] = std::round(p50(q.callCurve, q.call) * 100) / 100;
    q.ceilingCurve.extra["p50_over_plaintext_p50"] = std::round(p50(q.ceilingCurve, q.ceiling) * 100) / 100;
    if (quads.size() > 1) {
      q.call.extra["pair_ratios"] = plainFactor.json();
      q.callCurve.extra["pair_ratios"] = curveFactor.json();
      q.callCurve.extra["p50_over_plaintext_runs"] = callCost.json();
      q.ceilingCurve.extra["p50_over_plaintext_runs"] = ceilingCost.json();
      for (Row* r : {&q.ceiling, &q.call, &q.callCurve, &q.ceilingCurve}) r->extra["median_of"] = quads.size();
    }
    TargetCheck factor{"curve: sync call p50/ceiling p50 <= 1.2 x plaintext's",
                       fmt("%.3f x: %.2f with CURVE, %.2f plaintext (medians)", relative.median(), curveFactor.median(),
                           plainFactor.median()) +
                           fmt("; CURVE call p50 %.2f x plaintext's", callCost.median()) +
                           (quads.size() > 1 ? "; runs " + relative.list() : ""),
                       relative.median() > 0 && relative.median() <= 1.0 + kSyncNoise};
    mark(q.callCurve, factor);
    targets.push_back(factor);
    rows.insert(rows.end(), {q.ceiling, q.call, q.ceilingCurve, q.callCurve});
  }
  return rows;
}

}  // namespace flame::bench
