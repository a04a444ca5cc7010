// ceiling, call, cast and library: request/reply throughput and latency over the matrix of
// transports, payloads, clients, runners and windows.
#include "bench/measure.h"
#include "bench/scenarios/scenarios.h"

namespace flame::bench {

namespace {
struct ModeSpec {
  const char* name;
  uint32_t window;
};
std::vector<ModeSpec> modes(const Settings& s) {
  std::vector<ModeSpec> out;
  for (auto& m : s.modes) out.push_back(m == "sync" ? ModeSpec{"sync", 1} : ModeSpec{"pipelined", s.window});
  return out;
}

void setRatio(Row& row, const Row& ceiling) {
  if (row.jobsPerS && ceiling.jobsPerS && *ceiling.jobsPerS > 0) row.ratioToCeiling = *row.jobsPerS / *ceiling.jobsPerS;
  if (row.p50Us && ceiling.p50Us && *ceiling.p50Us > 0) row.extra["p50_over_ceiling_p50"] = std::round(*row.p50Us / *ceiling.p50Us * 100) / 100;
}
}  // namespace

Rows runCeiling(const Settings& settings, Progress& progress) {
  Rows rows;
  for (Transport t : settings.transports)
    for (size_t payload : settings.payloads)
      for (uint32_t clients : settings.clients)
        for (auto m : modes(settings))
          rows.push_back(measureCeiling(Shape{m.name, clients, 0, m.window, payload, t}, settings, progress));
  return rows;
}

// The call matrix (transport x payload x clients x mode), each group's ceiling first, then
// `measure` for every runner count, with its ratio to that ceiling.
template <class Measure>
Rows runMatrix(const Settings& settings, Progress& progress, Measure&& measure) {
  Rows rows;
  for (Transport t : settings.transports)
    for (size_t payload : settings.payloads)
      for (uint32_t clients : settings.clients)
        for (auto m : modes(settings)) {
          Row ceiling = measureCeiling(Shape{m.name, clients, 0, m.window, payload, t}, settings, progress);
          rows.push_back(ceiling);
          for (uint32_t runners : settings.runners) {
            Row row = measure(Shape{m.name, clients, runners, m.window, payload, t});
            setRatio(row, ceiling);
            rows.push_back(row);
          }
        }
  return rows;
}

Rows runCall(const Settings& settings, Progress& progress) {
  return runMatrix(settings, progress, [&](const Shape& shape) {
    return measureBroker("call", LoadKind::Call, shape, settings, progress);
  });
}

Rows runRelay(const Settings& settings, Progress& progress) {
  return runMatrix(settings, progress, [&](const Shape& shape) { return measureRelay(shape, settings, progress); });
}

Rows runCast(const Settings& settings, Progress& progress) {
  Rows rows;
  uint32_t clients = settings.clients.back(), runners = settings.runners.back();
  for (Transport t : settings.transports) {
    Row ceiling = measureCeiling(Shape{"pipelined", clients, 0, settings.window, 64, t}, settings, progress);
    rows.push_back(ceiling);
    Row row = measureBroker("cast", LoadKind::Cast, Shape{"pipelined", clients, runners, settings.window, 64, t},
                            settings, progress);
    setRatio(row, ceiling);
    row.extra.erase("p50_over_ceiling_p50");
    rows.push_back(row);
  }
  return rows;
}

// For each mode: the ceiling, the lean call row, the library row and the two mixed rows (which
// half costs what), each library row with its ratios to the lean call row of the same run.
Rows runLibrary(const Settings& settings, Progress& progress) {
  Rows rows;
  uint32_t clients = settings.clients.back(), runners = settings.runners.back();
  for (auto m : modes(settings)) {
    Shape shape{m.name, clients, runners, m.window, 64, Transport::Tcp};
    Row ceiling = measureCeiling(shape, settings, progress);
    rows.push_back(ceiling);
    Row lean = measureBroker("call", LoadKind::Call, shape, settings, progress);
    setRatio(lean, ceiling);
    rows.push_back(lean);
    for (LibraryMix mix : {LibraryMix{true, true}, LibraryMix{true, true, true}, LibraryMix{true, false},
                           LibraryMix{false, true}}) {
      Row lib = measureLibrary(shape, settings, progress, mix);
      setRatio(lib, ceiling);
      setLibraryRatios(lib, lean);
      rows.push_back(lib);
    }
  }
  return rows;
}

void setLibraryRatios(Row& lib, const Row& call) {
  if (lib.jobsPerS && call.jobsPerS && *call.jobsPerS > 0)
    lib.extra["jobs_over_call"] = std::round(*lib.jobsPerS / *call.jobsPerS * 1000) / 1000;
  if (lib.p50Us && call.p50Us && *call.p50Us > 0)
    lib.extra["p50_over_call_p50"] = std::round(*lib.p50Us / *call.p50Us * 100) / 100;
}

size_t plannedMeasurements(const std::string& scenario, const Settings& s) {
  size_t matrix = s.transports.size() * s.payloads.size() * s.clients.size() * s.modes.size();
  if (scenario == "ceiling") return matrix;
  if (scenario == "call" || scenario == "relay") return matrix * (1 + s.runners.size());
  if (scenario == "cast") return s.transports.size() * 2;
  if (scenario == "core") return 1;
  if (scenario == "fanout") return 3 * s.fanoutRunners.size() - 1;
  if (scenario == "library") return 6 * s.modes.size();
  if (scenario == "elastic") return 1;
  if (scenario == "memory") return s.memoryQueued.size();
  if (scenario == "curve") return 8 * s.repeat;
  if (scenario == "metrics") return 2 * s.repeat;
  if (scenario == "headline") return 16 * s.repeat + 1 + 2 + plannedMeasurements("curve", s);
  if (scenario == "all") {
    size_t n = 0;
    for (auto* sc : {"core", "call", "relay", "cast", "fanout", "library", "elastic", "memory", "curve"})
      n += plannedMeasurements(sc, s);
    return n;
  }
  return 0;
}

}  // namespace flame::bench
