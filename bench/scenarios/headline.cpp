// headline: the four target figures of issue 4 in one run, each broker figure measured right
// after its ceiling (4 clients, 4 runners, 64 B, tcp), plus memory, and the library path
// (flame::Client + flame::Runner) next to the lean call path, pipelined and sync (issue 9), and
// what CURVE costs on the ceiling and call rows (issue 10, scenarios/curve.cpp).
#include <cstdio>

#include "bench/measure.h"
#include "bench/scenarios/scenarios.h"

namespace flame::bench {

namespace {
constexpr double kPipelinedRatio = 0.45;
constexpr double kSyncP50Factor = 2.5;
constexpr double kFanoutRatio = 0.8;
constexpr double kBytesPerJob = 512;
constexpr double kLibraryRatio = 0.8;       // issue 9: library pipelined >= 0.8 x call
constexpr double kLibrarySyncFactor = 1.2;  // issue 9: library sync p50 <= 1.2 x call sync p50

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

void mark(Row& row, const TargetCheck& t) {
  row.extra["target"] = t.name;
  row.extra["pass"] = t.pass;
}

// Runs `measure` settings.repeat times and keeps the run with the median jobs/s.
template <class F>
Row median(const Settings& settings, F&& measure) {
  std::vector<Row> runs;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, settings.repeat); ++i) runs.push_back(measure());
  std::sort(runs.begin(), runs.end(), [](const Row& a, const Row& b) { return a.jobsPerS < b.jobsPerS; });
  Row r = runs[runs.size() / 2];
  if (runs.size() > 1) r.extra["median_of"] = runs.size();
  return r;
}
// A reference and a measurement taken back to back, settings.repeat times; the pair whose
// `ratio(measured, reference)` is the median is kept. Pairing keeps each ratio within one
// stretch of machine load (a block of references then a block of measurements does not).
struct Pair {
  Row reference, measured;
  double ratio = 0;
};
template <class Ref, class Meas, class Ratio>
Pair pairedMedian(const Settings& settings, Ref&& reference, Meas&& measure, Ratio&& ratio) {
  std::vector<Pair> pairs;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, settings.repeat); ++i) {
    Pair p;
    p.reference = reference();
    p.measured = measure();
    p.ratio = ratio(p.measured, p.reference);
    pairs.push_back(std::move(p));
  }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.ratio < b.ratio; });
  Pair p = pairs[pairs.size() / 2];
  if (pairs.size() > 1) {
    p.reference.extra["median_pair_of"] = pairs.size();
    p.measured.extra["median_pair_of"] = pairs.size();
    nlohmann::ordered_json all = nlohmann::ordered_json::array();
    for (auto& q : pairs) all.push_back(std::round(q.ratio * 1000) / 1000);
    p.measured.extra["pair_ratios"] = all;
  }
  return p;
}

double jobsRatio(const Row& a, const Row& b) {
  return b.jobsPerS.value_or(0) > 0 ? a.jobsPerS.value_or(0) / *b.jobsPerS : 0.0;
}
double p50Ratio(const Row& a, const Row& b) { return b.p50Us.value_or(0) > 0 ? a.p50Us.value_or(0) / *b.p50Us : 0.0; }
}  // namespace

Rows runHeadline(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets) {
  Rows rows;
  const Shape pipelined{"pipelined", 4, 4, settings.window, 64, Transport::Tcp};
  const Shape sync{"sync", 4, 4, 1, 64, Transport::Tcp};

  Pair pipe = pairedMedian(
      settings, [&] { return measureCeiling(pipelined, settings, progress); },
      [&] { return measureBroker("call", LoadKind::Call, pipelined, settings, progress); }, jobsRatio);
  Row ceilP = pipe.reference, callP = pipe.measured;
  // The zero-logic relay the issue quotes (about 0.5 x here): how close flame's broker gets to
  // the cheapest possible broker with one extra hop, in the same run. Informational.
  Row relayP = median(settings, [&] { return measureRelay(pipelined, settings, progress); });
  // The library path next to the lean protocol path, paired like the targets above.
  Pair libPipe = pairedMedian(
      settings, [&] { return measureBroker("call", LoadKind::Call, pipelined, settings, progress); },
      [&] { return measureLibrary(pipelined, settings, progress); }, jobsRatio);
  Row lib = libPipe.measured;
  setLibraryRatios(lib, libPipe.reference);
  lib.extra["jobs_over_call"] = std::round(libPipe.ratio * 1000) / 1000;
  TargetCheck t5{"library pipelined >= 0.8 x call",
                 fmt("%.3f x (%.0f vs %.0f jobs/s)", libPipe.ratio, lib.jobsPerS.value_or(0),
                     libPipe.reference.jobsPerS.value_or(0)),
                 libPipe.ratio >= kLibraryRatio};
  mark(lib, t5);
  // The same with handlers registered by Runner::handleInline (no hand-off to a handler thread
  // in the runner): what a cheap, non-blocking function gets.
  Pair libInline = pairedMedian(
      settings, [&] { return measureBroker("call", LoadKind::Call, pipelined, settings, progress); },
      [&] { return measureLibrary(pipelined, settings, progress, LibraryMix{true, true, true}); }, jobsRatio);
  Row libI = libInline.measured;
  setLibraryRatios(libI, libInline.reference);
  libI.extra["jobs_over_call"] = std::round(libInline.ratio * 1000) / 1000;
  TargetCheck t5i{"library (inline handlers) pipelined >= 0.8 x call",
                  fmt("%.3f x (%.0f vs %.0f jobs/s)", libInline.ratio, libI.jobsPerS.value_or(0),
                      libInline.reference.jobsPerS.value_or(0)),
                  libInline.ratio >= kLibraryRatio};
  mark(libI, t5i);
  double ratioP = pipe.ratio;
  callP.ratioToCeiling = ratioP;
  if (ceilP.jobsPerS.value_or(0) > 0) relayP.ratioToCeiling = relayP.jobsPerS.value_or(0) / *ceilP.jobsPerS;
  if (relayP.jobsPerS.value_or(0) > 0)
    callP.extra["vs_relay"] = std::round(callP.jobsPerS.value_or(0) / *relayP.jobsPerS * 1000) / 1000;
  if (ceilP.jobsPerS.value_or(0) > 0) lib.ratioToCeiling = lib.jobsPerS.value_or(0) / *ceilP.jobsPerS;
  TargetCheck t1{"pipelined call >= 0.45 x ceiling",
                 fmt("%.3f x (%.0f vs %.0f jobs/s)", ratioP, callP.jobsPerS.value_or(0), ceilP.jobsPerS.value_or(0)),
                 ratioP >= kPipelinedRatio};
  mark(callP, t1);

  Pair syn = pairedMedian(
      settings, [&] { return measureCeiling(sync, settings, progress); },
      [&] { return measureBroker("call", LoadKind::Call, sync, settings, progress); }, p50Ratio);
  Row ceilS = syn.reference, callS = syn.measured;
  callS.ratioToCeiling = jobsRatio(callS, ceilS);
  double p50Factor = syn.ratio;
  callS.extra["p50_over_ceiling_p50"] = std::round(p50Factor * 100) / 100;
  TargetCheck t2{"sync call p50 <= 2.5 x ceiling p50",
                 fmt("%.2f x (%.0f vs %.0f us)", p50Factor, callS.p50Us.value_or(0), ceilS.p50Us.value_or(0)),
                 p50Factor > 0 && p50Factor <= kSyncP50Factor};
  mark(callS, t2);

  Pair libSync = pairedMedian(
      settings, [&] { return measureBroker("call", LoadKind::Call, sync, settings, progress); },
      [&] { return measureLibrary(sync, settings, progress); }, p50Ratio);
  Row libS = libSync.measured;
  libS.ratioToCeiling = jobsRatio(libS, ceilS);
  setLibraryRatios(libS, libSync.reference);
  libS.extra["p50_over_call_p50"] = std::round(libSync.ratio * 100) / 100;
  TargetCheck t6{"library sync p50 <= 1.2 x call sync p50",
                 fmt("%.2f x (%.0f vs %.0f us)", libSync.ratio, libS.p50Us.value_or(0),
                     libSync.reference.p50Us.value_or(0)),
                 libSync.ratio > 0 && libSync.ratio <= kLibrarySyncFactor};
  mark(libS, t6);

  // Fan-out. The target is about routing cost ("dispatch must not scan all runners"), so it is
  // judged on the "index" variant: the same I/O as 1 runner, only the broker's runner index
  // grows to 1000. The "spread" variant (every runner busy, 1 slot each) is reported next to a
  // ceiling with as many connections: on one 2-core machine hosting all 1000 runners it measures
  // ZeroMQ's per-connection cost, which no broker design can avoid (see fanout.cpp, README).
  const uint32_t fanMax = settings.fanoutRunners.back();
  Row ceilF = median(settings, [&] { return measureCeiling(fanoutCeilingShape(settings, 1), settings, progress); });
  // The target pair: 1 runner, then the index variant at fanMax runners, back to back.
  Pair fan = pairedMedian(
      settings,
      [&] { return measureBroker("fanout", LoadKind::Call, fanoutShape(settings, 1, false), settings, progress); },
      [&] { return measureBroker("fanout", LoadKind::Call, fanoutShape(settings, fanMax, true), settings, progress); },
      jobsRatio);
  Row fan1 = fan.reference, fanIdx = fan.measured;
  Row ceilFN = median(settings, [&] { return measureCeiling(fanoutCeilingShape(settings, fanMax), settings, progress); });
  Row fanN = median(settings, [&] {
    return measureBroker("fanout", LoadKind::Call, fanoutShape(settings, fanMax, false), settings, progress);
  });
  auto ratio = jobsRatio;
  fan1.ratioToCeiling = ratio(fan1, ceilF);
  fanN.ratioToCeiling = ratio(fanN, ceilFN);
  fanIdx.ratioToCeiling = ratio(fanIdx, ceilF);
  double fanRatio = ratio(fanN, fan1);
  fanN.extra["vs_1_runner"] = std::round(fanRatio * 1000) / 1000;
  fanIdx.extra["vs_1_runner"] = std::round(ratio(fanIdx, fan1) * 1000) / 1000;
  ceilFN.extra["vs_4_connections"] = std::round(ratio(ceilFN, ceilF) * 1000) / 1000;
  double idxRatio = fan.ratio;
  TargetCheck t3{"fan-out " + std::to_string(fanMax) + " runners >= 0.8 x 1 runner (routing: index variant)",
                 fmt("%.3f x (%.0f vs %.0f jobs/s)", idxRatio, fanIdx.jobsPerS.value_or(0),
                     fan1.jobsPerS.value_or(0)) +
                     fmt("; spread variant %.3f x, %.2f x its own ", fanRatio, fanN.ratioToCeiling.value_or(0)) +
                     std::to_string(fanMax) + "-connection ceiling",
                 idxRatio >= kFanoutRatio};
  mark(fanIdx, t3);

  Settings mem = settings;
  mem.memoryQueued = {0, settings.memoryQueued.back()};
  Rows memRows = runMemory(mem, progress);
  Row& memRow = memRows.back();
  double perJob = memRow.extra.value("bytes_per_job_beyond_payload", 0.0);
  TargetCheck t4{"memory <= 512 B per queued job beyond payload",
                 fmt("%.0f B/job beyond the 64 B payload (%.0f queued)", perJob, memRow.extra.value("queued", 0.0)),
                 perJob <= kBytesPerJob};
  mark(memRow, t4);

  if (ceilP.jobsPerS.value_or(0) > 0) libI.ratioToCeiling = libI.jobsPerS.value_or(0) / *ceilP.jobsPerS;
  rows = {ceilP, relayP, callP, lib, libI, ceilS, callS, libS, ceilF, fan1, ceilFN, fanN, fanIdx};
  rows.insert(rows.end(), memRows.begin(), memRows.end());
  targets = {t1, t2, t3, t4, t5, t5i, t6};
  // Issue 10: the ceiling and call rows again, plaintext and with CURVE, back to back.
  Rows curveRows = runCurve(settings, progress, targets);
  rows.insert(rows.end(), curveRows.begin(), curveRows.end());
  return rows;
}

}  // namespace flame::bench
