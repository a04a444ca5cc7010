#include "bench/measure.h"

#include <stdexcept>
#include <thread>

#include "bench/echo_server.h"
#include "bench/lean_runners.h"
#include "bench/relay.h"

namespace flame::bench {

namespace {
constexpr const char* kLeanParts =
    "lean protocol clients (DEALERs, codec.h) + lean protocol runners (DEALERs answering job with "
    "jobDone+payload); broker (flame::BrokerServer), runners and clients are in-process threads, "
    "each role with its own ZeroMQ context";
constexpr const char* kCeilingParts =
    "bare ROUTER echo (same socket options and poll loop as the broker) + the same lean clients; "
    "in-process threads, separate ZeroMQ contexts";
constexpr const char* kRelayParts =
    "zero-logic ROUTER-ROUTER relay with credit (frames untouched, no decode) + echo DEALER runners + "
    "the same lean clients; in-process threads, separate ZeroMQ contexts";
constexpr Duration kSetupBound{20'000};

std::string summary(const Row& r) {
  std::string s = humanRate(r.jobsPerS.value_or(0)) + " jobs/s";
  if (r.p50Us) s += ", p50 " + std::to_string(static_cast<int64_t>(*r.p50Us)) + " us";
  if (r.p99Us) s += ", p99 " + std::to_string(static_cast<int64_t>(*r.p99Us)) + " us";
  if (r.errors) s += ", " + std::to_string(r.errors) + " errors";
  return s;
}

Row rowFor(const std::string& scenario, const Shape& shape) {
  Row row;
  row.scenario = scenario;
  row.mode = shape.mode;
  row.clients = shape.clients;
  row.runners = shape.runners;
  row.payload = shape.payload;
  row.transport = transportName(shape.transport);
  row.window = shape.window;
  return row;
}

LoadPlan withProgress(LoadPlan plan, Progress& progress, const std::string& what) {
  if (progress.enabled() && plan.measure + plan.warmup > Duration(3000)) {
    plan.onProgress = [&progress, what](uint64_t replies) {
      progress.live(what + ": " + std::to_string(replies) + " replies");
    };
  }
  return plan;
}
}  // namespace

uint32_t leanSlotsPerRunner(const Shape& s) {
  if (s.slotsPerRunner > 0) return s.slotsPerRunner;
  uint64_t total = static_cast<uint64_t>(s.clients) * s.window;
  return static_cast<uint32_t>(std::max<uint64_t>(1, (total + s.runners - 1) / s.runners));
}

std::string label(const std::string& scenario, const Shape& s) {
  std::string p = s.payload >= 1024 && s.payload % 1024 == 0 ? std::to_string(s.payload / 1024) + "KiB"
                                                              : std::to_string(s.payload) + "B";
  return scenario + " " + s.mode + " c" + std::to_string(s.clients) + " r" + std::to_string(s.runners) + " " + p +
         " " + transportName(s.transport) + " w" + std::to_string(s.window);
}

LoadPlan planFor(const Settings& settings) {
  LoadPlan plan;
  plan.warmup = settings.warmup;
  plan.measure = settings.duration;
  return plan;
}

namespace {
// Lean clients of `shape` sending submits to `endpoint`, where something echoes them back.
void runEchoLoad(Row& row, const std::string& what, const std::string& endpoint, const Shape& shape,
                 const Settings& settings, Progress& progress) {
  LoadOptions o;
  o.endpoint = endpoint;
  o.kind = LoadKind::Echo;
  o.clients = shape.clients;
  o.window = shape.window;
  o.payload = shape.payload;
  LoadGenerator load(o);
  row.setLoad(load.run(withProgress(planFor(settings), progress, what)));
  progress.finished(what, summary(row));
}
}  // namespace

Row measureCeiling(const Shape& shape, const Settings& settings, Progress& progress) {
  Shape s = shape;
  s.runners = 0;
  Row row = rowFor("ceiling", s);
  row.parts = kCeilingParts;
  EchoServer echo(shape.transport);
  runEchoLoad(row, label("ceiling", s), echo.endpoint(), s, settings, progress);
  return row;
}

Row measureRelay(const Shape& shape, const Settings& settings, Progress& progress) {
  Row row = rowFor("relay", shape);
  row.parts = kRelayParts;
  std::string what = label("relay", shape);
  RelayServer relay(shape.transport);
  EchoRunners runners(relay.runnersEndpoint(), shape.runners, leanSlotsPerRunner(shape));
  if (!runners.waitRegistered(kSetupBound))
    throw std::runtime_error(what + ": echo runners did not register within " + std::to_string(kSetupBound.count()) + " ms");
  runEchoLoad(row, what, relay.clientsEndpoint(), shape, settings, progress);
  return row;
}

Row measureBroker(const std::string& scenario, LoadKind kind, const Shape& shape, const Settings& settings,
                  Progress& progress) {
  raiseFileLimit();
  Row row = rowFor(scenario, shape);
  std::string what = label(scenario, shape);
  BrokerThread broker(shape.transport);
  FarmOptions f;
  f.endpoint = broker.runnersEndpoint();
  f.runners = shape.runners;
  f.slotsPerRunner = leanSlotsPerRunner(shape);
  RunnerFarm farm(f);
  if (!farm.waitWelcomed(kSetupBound))
    throw std::runtime_error(what + ": runners were not welcomed within " + std::to_string(kSetupBound.count()) +
                             " ms " + farm.failure());

  LoadOptions o;
  o.endpoint = broker.clientsEndpoint();
  o.kind = kind;
  o.clients = shape.clients;
  o.window = shape.window;
  o.payload = shape.payload;
  LoadGenerator load(o);
  uint64_t farmBefore = farm.completed();
  auto t0 = std::chrono::steady_clock::now();
  LoadStats stats = load.run(withProgress(planFor(settings), progress, what));
  row.setLoad(stats);
  row.extra["slots_per_runner"] = f.slotsPerRunner;
  if (kind == LoadKind::Cast) {
    // Casts are answered at acceptance; completions are counted where they happen, on the runners.
    uint64_t accepted = stats.replies - stats.errors;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (farm.completed() - farmBefore < accepted && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    double all = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t done = farm.completed() - farmBefore;
    row.extra["accepted_per_s"] = std::round(row.jobsPerS.value_or(0));
    row.extra["completed_per_s"] = std::round(static_cast<double>(done) / all);
    row.extra["accepted"] = accepted;
    row.extra["completed_by_runners"] = done;
  }
  if (farm.unexpected() > 0) {
    row.extra["runner_unexpected_msgs"] = farm.unexpected();
    row.extra["runner_first_unexpected"] = farm.firstUnexpected();
  }
  row.parts = kLeanParts;
  progress.finished(what, summary(row));
  return row;
}

}  // namespace flame::bench
