#include "bench/measure.h"

#include <optional>
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
constexpr const char* kLeanCurveParts =
    "as the plaintext call, with CURVE on both hops (client->broker, broker->runner): the broker's "
    "KeyRing + ZapHandler on its loop (as flame-broker with [security]), clients and runners CURVE "
    "clients with listed keys";
constexpr const char* kCeilingCurveParts =
    "as the plaintext ceiling, with the echo ROUTER a CURVE server (its own KeyRing + ZapHandler) "
    "and the lean clients CURVE clients";
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
  if (shape.curve) row.extra["curve"] = true;
  if (shape.metrics) row.extra["metrics"] = true;
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
         " " + transportName(s.transport) + (s.curve ? " curve" : "") +
         (s.metrics ? " metrics" : "") + " w" + std::to_string(s.window);
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
                 const Settings& settings, Progress& progress, const BenchKeys* curve = nullptr) {
  LoadOptions o;
  if (curve) o.curve = curve->clientSide();
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
  row.parts = shape.curve ? kCeilingCurveParts : kCeilingParts;
  std::optional<BenchKeys> keys;
  if (shape.curve) keys = BenchKeys::generate();
  EchoServer echo(shape.transport, keys ? &*keys : nullptr);
  runEchoLoad(row, label("ceiling", s), echo.endpoint(), s, settings, progress, keys ? &*keys : nullptr);
  return row;
}

Row measureRelay(const Shape& shape, const Settings& settings, Progress& progress) {
  if (shape.curve) throw std::invalid_argument("the relay reference has no CURVE variant");
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
  std::optional<BenchKeys> keys;
  if (shape.curve) keys = BenchKeys::generate();
  BrokerThread broker(shape.transport, BrokerOptions{}, true, keys ? &*keys : nullptr, shape.metrics);
  FarmOptions f;
  f.endpoint = broker.runnersEndpoint();
  if (keys) f.curve = keys->runnerSide();
  f.runners = shape.runners;
  f.slotsPerRunner = leanSlotsPerRunner(shape);
  RunnerFarm farm(f);
  if (!farm.waitWelcomed(kSetupBound))
    throw std::runtime_error(what + ": runners were not welcomed within " + std::to_string(kSetupBound.count()) +
                             " ms " + farm.failure());

  LoadOptions o;
  o.endpoint = broker.clientsEndpoint();
  if (keys) o.curve = keys->clientSide();
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
  row.parts = shape.curve ? kLeanCurveParts : kLeanParts;
  progress.finished(what, summary(row));
  return row;
}

}  // namespace flame::bench
