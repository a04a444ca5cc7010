// Scaler unit tests: BrokerCore + Scaler with a manual clock, a recording outbox and the
// in-memory FakeBackend (backend calls run inline). No sockets, no processes, no sleeps.
#include <catch2/catch.hpp>

#include "broker/boot_token.h"
#include "broker/scaler.h"
#include "tests/backends/fake_backend.h"
#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;
using flame::testing::FakeBackend;

namespace {

struct ScalerHarness : Harness {
  explicit ScalerHarness(PoolLimits limits, PoolSettings settings = {}) : scaler(core, clock, "broker-1", "tcp://b:1") {
    core.setListener(&scaler);
    PoolConfig pc;
    pc.name = "p";
    pc.backend = "fake";
    pc.limits = limits;
    pc.settings = settings;
    auto b = std::make_unique<FakeBackend>();
    backend = b.get();
    scaler.addPool(pc, std::move(b), std::make_unique<InlineBackendExecutor>());
  }
  ~ScalerHarness() { core.setListener(nullptr); }
  // Two ticks: one decides and posts backend work, the next applies its results.
  void tick() {
    core.tick();
    scaler.tick();
    scaler.tick();
  }
  // The runner of boot `i` connects with its token; returns its connection id.
  std::string connect(size_t i, const std::string& token = "") {
    auto spec = backend->boots().at(i);
    std::string conn = "conn-" + spec.runnerId;
    core.onRunner(conn,
                  msg::Ready{spec.runnerId, spec.pool, static_cast<uint32_t>(std::stoul(spec.env.at(kEnvConcurrency))),
                             {"echo"}, token.empty() ? spec.env.at(kEnvBootToken) : token, 0, 0, "h"},
                  {});
    return conn;
  }
  // Time passes in steps while the listed runners heartbeat and the loop runs.
  void pass(Duration d, const std::vector<std::string>& alive = {}, Duration step = Duration(100)) {
    for (Duration t{0}; t < d; t += step) {
      for (auto& c : alive) heartbeat(c);
      clock.advance(step);
      tick();
    }
  }
  Scaler scaler;
  FakeBackend* backend = nullptr;
};

PoolLimits limits(uint32_t min, uint32_t max, uint32_t conc) {
  PoolLimits l;
  l.min = min;
  l.max = max;
  l.maxConcurrency = conc;
  l.idleShutdownAfter = Duration(5000);
  l.bootTimeout = Duration(10000);
  l.shutdownTimeout = Duration(2000);
  return l;
}

}  // namespace

TEST_CASE("a burst grows the pool to max, several boots in flight, and no further", "[scaler]") {
  ScalerHarness h(limits(0, 3, 2));
  h.tick();
  CHECK(h.backend->bootCount() == 0);  // min 0: nothing without demand
  for (uint64_t i = 1; i <= 10; ++i) h.submit("c", i, "p", "echo", "", Mode::Call, 60000);
  h.tick();
  CHECK(h.backend->bootCount() == 3);  // all three at once, none connected yet
  auto spec = h.backend->boots()[0];
  CHECK(spec.env.at(kEnvBroker) == "tcp://b:1");
  CHECK(spec.env.at(kEnvPool) == "p");
  CHECK(spec.env.at(kEnvRunnerId) == spec.runnerId);
  CHECK(spec.env.at(kEnvBootToken).size() >= 16);
  CHECK(spec.brokerId == "broker-1");
  auto st = h.core.status(0);
  CHECK(st.pools[0].booting == 3);
  std::vector<std::string> conns;
  for (size_t i = 0; i < 3; ++i) conns.push_back(h.connect(i));
  h.tick();
  CHECK(h.backend->bootCount() == 3);
  size_t dispatched = 0;
  for (auto& c : conns) dispatched += h.jobsFor(c).size();
  CHECK(dispatched == 6);
  CHECK(h.core.findPool("p")->queue.size() == 4);
  h.pass(Duration(3000), conns);
  CHECK(h.backend->bootCount() == 3);  // at max: the rest queue
}

TEST_CASE("boots cover only the slots that are missing, counting booting slots", "[scaler]") {
  ScalerHarness h(limits(0, 10, 2));
  for (uint64_t i = 1; i <= 3; ++i) h.submit("c", i, "p", "echo", "", Mode::Call, 60000);
  h.tick();
  CHECK(h.backend->bootCount() == 2);  // ceil(3 / 2)
  h.tick();
  CHECK(h.backend->bootCount() == 2);  // booting slots already cover the queue
  h.submit("c", 4, "p", "echo", "", Mode::Call, 60000);
  h.submit("c", 5, "p", "echo", "", Mode::Call, 60000);
  h.tick();
  CHECK(h.backend->bootCount() == 3);
}

TEST_CASE("idle runners are drained and stopped, a busy runner never is", "[scaler]") {
  ScalerHarness h(limits(0, 2, 1));
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.submit("c", 2, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  auto a = h.connect(0);
  auto b = h.connect(1);
  auto ja = h.jobsFor(a), jb = h.jobsFor(b);
  REQUIRE(ja.size() == 1);
  REQUIRE(jb.size() == 1);
  h.done(a, ja[0].jobId);  // a is idle from now on, b stays busy
  h.pass(Duration(4900), {a, b});
  CHECK(h.outbox.takeOf<msg::Drain>(a).empty());
  h.pass(Duration(200), {a, b});
  CHECK(h.outbox.takeOf<msg::Drain>(a).size() == 1);
  h.pass(Duration(20000), {a, b});
  CHECK(h.outbox.takeOf<msg::Drain>(b).empty());  // busy for 20 s: untouched
  // a leaves; its machine is stopped through the backend.
  h.core.onRunner(a, msg::Leaving{"drained", true}, {});
  h.tick();
  REQUIRE(h.backend->stopCount() == 1);
  CHECK(h.backend->stops()[0].runnerId == h.backend->boots()[0].runnerId);
  CHECK(h.backend->alive().size() == 1);
}

TEST_CASE("a drained runner that does not leave is stopped after shutdown_timeout", "[scaler]") {
  ScalerHarness h(limits(0, 1, 1));
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  auto a = h.connect(0);
  h.done(a, h.jobsFor(a).at(0).jobId);
  h.pass(Duration(5100), {a});
  CHECK(h.outbox.takeOf<msg::Drain>(a).size() == 1);
  CHECK(h.backend->stopCount() == 0);
  h.pass(Duration(2100), {a});
  CHECK(h.backend->stopCount() == 1);
}

TEST_CASE("min runners are booted at start and replaced when they die", "[scaler]") {
  ScalerHarness h(limits(2, 4, 1));
  h.tick();
  CHECK(h.backend->bootCount() == 2);
  auto a = h.connect(0);
  auto b = h.connect(1);
  h.pass(Duration(30000), {a, b});
  CHECK(h.backend->bootCount() == 2);  // idle, but min: kept (min_idle_shutdown_after = infinity)
  CHECK(h.outbox.takeOf<msg::Drain>(a).empty());
  // b dies (stops heartbeating): its machine is stopped and a replacement booted.
  h.pass(Duration(4000), {a});
  CHECK(h.core.findRunner(h.backend->boots()[1].runnerId) == nullptr);
  CHECK(h.backend->stopCount() == 1);
  CHECK(h.backend->bootCount() == 3);
}

TEST_CASE("a finite min_idle_shutdown_after lets an idle pool shrink below min until work comes back",
          "[scaler]") {
  PoolLimits l = limits(2, 4, 1);
  l.minIdleShutdownAfter = Duration(3000);
  ScalerHarness h(l);
  h.tick();
  REQUIRE(h.backend->bootCount() == 2);
  auto a = h.connect(0);
  auto b = h.connect(1);
  h.pass(Duration(3500), {a, b});
  CHECK(h.outbox.takeOf<msg::Drain>(a).size() == 1);
  CHECK(h.outbox.takeOf<msg::Drain>(b).size() == 1);
  h.core.onRunner(a, msg::Leaving{"drained", true}, {});
  h.core.onRunner(b, msg::Leaving{"drained", true}, {});
  // Idle for a minute: no replacement boots (the old code booted two every 3 s).
  h.pass(Duration(60000));
  CHECK(h.backend->bootCount() == 2);
  // A job: back up to min.
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.backend->bootCount() == 4);
}

TEST_CASE("single_use runners take one job, then are drained", "[scaler]") {
  PoolLimits l = limits(0, 1, 2);
  l.singleUse = true;
  ScalerHarness h(l);
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.submit("c", 2, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  auto a = h.connect(0);
  auto jobs = h.jobsFor(a);
  REQUIRE(jobs.size() == 1);  // two slots, but single use
  h.done(a, jobs[0].jobId);
  CHECK(h.outbox.takeOf<msg::Drain>(a).size() == 1);
  CHECK(h.jobsFor(a).empty());
}

TEST_CASE("single_use runners with several slots each count as one slot of demand", "[scaler]") {
  // 8 jobs, 4 slots per runner: each single-use runner takes one job, so 8 runners, in one round.
  PoolLimits l = limits(0, 20, 4);
  l.singleUse = true;
  ScalerHarness h(l);
  for (uint64_t i = 1; i <= 8; ++i) h.submit("c", i, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.backend->bootCount() == 8);
  // Connected and not yet used, a single-use runner's free slots count once: 8 runners for 8 jobs,
  // no more booted when they connect.
  std::vector<std::string> conns;
  for (size_t i = 0; i < 8; ++i) conns.push_back(h.connect(i));
  h.tick();
  CHECK(h.backend->bootCount() == 8);
  size_t dispatched = 0;
  for (auto& c : conns) dispatched += h.jobsFor(c).size();
  CHECK(dispatched == 8);
}

TEST_CASE("an idle single-use runner is one free slot, whatever its max_concurrency", "[scaler]") {
  PoolLimits l = limits(0, 20, 4);
  l.singleUse = true;
  l.warmSlots = 2;
  ScalerHarness h(l);
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.backend->bootCount() == 3);  // one for the job, two warm
  std::vector<std::string> conns;
  for (size_t i = 0; i < 3; ++i) conns.push_back(h.connect(i));
  h.tick();
  CHECK(h.core.view(*h.core.findPool("p")).freeSlots == 2);  // not 8: each takes one job
  h.submit("c", 2, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.core.view(*h.core.findPool("p")).freeSlots == 1);
  CHECK(h.backend->bootCount() == 4);  // the warm slot it used is replaced
}

TEST_CASE("a boot whose runner never connects is stopped at boot_timeout and backs off", "[scaler]") {
  ScalerHarness h(limits(0, 1, 1));
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  REQUIRE(h.backend->bootCount() == 1);
  h.pass(Duration(9900));
  CHECK(h.backend->stopCount() == 0);
  h.pass(Duration(200));
  CHECK(h.backend->stopCount() == 1);
  auto status = h.core.status(1);
  REQUIRE(status.pools.size() == 1);
  CHECK(status.pools[0].bootFailures == 1);
  CHECK(status.pools[0].boots == 1);
  // The next boot comes only after the backoff (500 ms after the first failure).
  CHECK(h.backend->bootCount() == 1);
  h.pass(Duration(600));
  CHECK(h.backend->bootCount() == 2);
  // A runner presenting the timed-out boot's token is refused.
  h.connect(0);
  auto errs = h.outbox.takeOf<msg::Error>("conn-" + h.backend->boots()[0].runnerId);
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::Unauthorized);
}

TEST_CASE("boot failures back off exponentially, then waiting jobs fail with boot_failed", "[scaler]") {
  ScalerHarness h(limits(0, 3, 1));
  h.backend->failAllBoots(true, "quota exceeded");
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.backend->bootCount() == 1);
  h.pass(Duration(400));
  CHECK(h.backend->bootCount() == 1);  // backing off 500 ms
  h.pass(Duration(200));
  CHECK(h.backend->bootCount() == 2);  // then 1 s
  h.pass(Duration(800));
  CHECK(h.backend->bootCount() == 2);
  h.pass(Duration(200));
  CHECK(h.backend->bootCount() == 3);  // third failure: the caller hears about it
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::BootFailed);
  CHECK(errs[0].message.find("quota exceeded") != std::string::npos);
  CHECK(h.core.findPool("p")->queue.size() == 0);
  // A job arriving now waits for the next probe boot (2 s backoff) instead of failing at once;
  // once boots work again, it runs.
  h.backend->clearFailures();
  h.submit("c", 2, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.pass(Duration(1000));
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  CHECK(h.backend->bootCount() == 3);
  h.pass(Duration(1100));
  REQUIRE(h.backend->bootCount() == 4);
  auto conn = h.connect(h.backend->bootCount() - 1);
  CHECK(h.jobsFor(conn).size() == 1);
}

TEST_CASE("max_queue rejects with queue_full", "[scaler]") {
  PoolSettings s;
  s.maxQueue = 2;
  ScalerHarness h(limits(0, 1, 1), s);
  h.submit("c", 1, "p", "echo");
  h.submit("c", 2, "p", "echo");
  h.submit("c", 3, "p", "echo");
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].requestId == 3);
  CHECK(errs[0].code == ErrorCode::QueueFull);
}

TEST_CASE("runners that were not booted by the scaler, or bring a wrong token, are refused", "[scaler]") {
  ScalerHarness h(limits(0, 1, 1));
  h.core.onRunner("intruder", msg::Ready{"p-x", "p", 1, {"echo"}, "guess", 0, 0, ""}, {});
  CHECK(h.outbox.takeOf<msg::Error>("intruder").at(0).code == ErrorCode::Unauthorized);
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  auto conn = h.connect(0, "wrong-token");
  CHECK(h.outbox.takeOf<msg::Error>(conn).at(0).code == ErrorCode::Unauthorized);
  CHECK(h.core.findPool("p")->runners.empty());
  h.connect(0);
  CHECK(h.core.findPool("p")->runners.size() == 1);
}

TEST_CASE("warm slots are booted ahead of demand and kept while idle", "[scaler]") {
  PoolLimits l = limits(0, 4, 2);
  l.warmSlots = 2;
  ScalerHarness h(l);
  h.tick();
  REQUIRE(h.backend->bootCount() == 1);
  auto a = h.connect(0);
  h.pass(Duration(20000), {a});
  CHECK(h.outbox.takeOf<msg::Drain>(a).empty());
  CHECK(h.backend->bootCount() == 1);
  // Using one slot leaves 1 free < 2 warm: one more runner.
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.backend->bootCount() == 2);
}

TEST_CASE("pool limits change at runtime", "[scaler]") {
  ScalerHarness h(limits(0, 1, 1));
  for (uint64_t i = 1; i <= 3; ++i) h.submit("c", i, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  CHECK(h.backend->bootCount() == 1);
  h.core.onClient("admin", msg::SetPool{9, "p", -1, 3, -1}, {});
  auto replies = h.outbox.takeOf<msg::StatusReply>("admin");
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].pools.at(0).max == 3);
  h.tick();
  CHECK(h.backend->bootCount() == 3);
  h.core.onClient("admin", msg::SetPool{10, "p", 5, -1, -1}, {});
  CHECK(h.outbox.takeOf<msg::Error>("admin").at(0).code == ErrorCode::BadRequest);  // min > max
  h.core.onClient("admin", msg::SetPool{11, "nope", 1, -1, -1}, {});
  CHECK(h.outbox.takeOf<msg::Error>("admin").at(0).code == ErrorCode::UnknownPool);
}

TEST_CASE("the orphan sweep stops machines of this broker that no runner owns", "[scaler]") {
  ScalerHarness h(limits(0, 1, 1));
  h.backend->addMachine(MachineHandle{"old-1", "p-old", "p"}, "broker-1");
  h.backend->addMachine(MachineHandle{"other-1", "q-old", "p"}, "another-broker");
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  auto a = h.connect(0);
  h.scaler.sweepOrphans();
  h.tick();
  CHECK_FALSE(h.backend->isAlive("old-1"));
  CHECK(h.backend->isAlive("other-1"));                     // not ours
  CHECK(h.backend->isAlive(h.backend->alive().at(0).machineId));
  CHECK(h.backend->alive().size() == 2);                    // our live runner was left alone
}

TEST_CASE("a restarted broker re-adopts the runners its predecessor booted, the sweep stops only the rest",
          "[scaler][reliability]") {
  const std::string secret = "0123456789abcdef0123456789abcdef";
  ScalerHarness h(limits(0, 2, 1));
  // What the previous run of broker-1 left behind: two machines, one of whose runners comes back.
  h.backend->addMachine(MachineHandle{"old-1", "p-back", "p"}, "broker-1");
  h.backend->addMachine(MachineHandle{"old-2", "p-gone", "p"}, "broker-1");
  h.scaler.setTokenSecret(secret, h.clock.now() + Duration(15000));
  auto tokenOf = [&](const std::string& runnerId) { return deriveBootToken(secret, "broker-1", "p", runnerId); };

  // Wrong tokens, or a token for another pool, are refused as before.
  h.core.onRunner("evil", msg::Ready{"p-back", "p", 1, {"echo"}, "guess", 0, 0, "h"}, {});
  CHECK(h.outbox.takeOf<msg::Error>("evil").at(0).code == ErrorCode::Unauthorized);
  h.core.onRunner("evil", msg::Ready{"p-back", "p", 1, {"echo"}, deriveBootToken(secret, "broker-1", "q", "p-back"), 0, 0, "h"}, {});
  CHECK(h.outbox.takeOf<msg::Error>("evil").at(0).code == ErrorCode::Unauthorized);

  // The runner of old-1 reconnects with the token the previous run derived: it keeps its machine.
  h.core.onRunner("back", msg::Ready{"p-back", "p", 1, {"echo"}, tokenOf("p-back"), 0, 0, "h"}, {});
  REQUIRE(h.outbox.takeOf<msg::Welcome>("back").size() == 1);
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  auto jobs = h.jobsFor("back");
  REQUIRE(jobs.size() == 1);
  h.scaler.sweepOrphans();  // within the window: deferred
  h.tick();
  CHECK(h.backend->isAlive("old-2"));

  h.pass(Duration(15100), {"back"});
  h.scaler.sweepOrphans();
  h.tick();
  CHECK_FALSE(h.backend->isAlive("old-2"));  // never came back: stopped
  CHECK(h.backend->isAlive("old-1"));         // busy adopted runner: left alone
  CHECK(h.backend->bootCount() == 0);

  // After the window, a verified token of a runner this run does not know is refused.
  h.core.onRunner("late", msg::Ready{"p-late", "p", 1, {"echo"}, tokenOf("p-late"), 0, 0, "h"}, {});
  CHECK(h.outbox.takeOf<msg::Error>("late").at(0).code == ErrorCode::Unauthorized);

  // The adopted runner is an ordinary one now: idle-drained, then its machine is stopped.
  h.done("back", jobs[0].jobId, "ok");
  h.pass(Duration(5200), {"back"});
  REQUIRE(h.outbox.takeOf<msg::Drain>("back").size() == 1);
  h.core.onRunner("back", msg::Leaving{"drained", true}, {});
  h.tick();
  CHECK_FALSE(h.backend->isAlive("old-1"));
}

TEST_CASE("while boots fail, only one probe boots at a time", "[scaler][reliability]") {
  ScalerHarness h(limits(0, 2, 1));
  h.backend->failNextBoots(2, true);
  for (uint64_t i = 1; i <= 8; ++i) h.submit("c", i, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  h.tick();
  REQUIRE(h.backend->bootCount() == 2);  // grew for demand; both failed
  // Boots work again, but the probe's runner takes its time to connect: during the backoff and
  // long after it, no second probe starts while the first is still booting.
  h.pass(Duration(9000));
  CHECK(h.backend->bootCount() == 3);
}

TEST_CASE("a boot failure the backend calls permanent fails the waiting jobs at once", "[scaler][reliability]") {
  ScalerHarness h(limits(0, 1, 1));
  h.backend->failNextBoots(1, /*retryable=*/false, "422: image not found");
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  h.tick();
  h.tick();
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);  // not after three failures and their backoff
  CHECK(errs[0].code == ErrorCode::BootFailed);
  CHECK(errs[0].message.find("422: image not found") != std::string::npos);
  CHECK(h.backend->bootCount() == 1);
}

TEST_CASE("the scaler asks to be woken exactly at its boot backoff and boot timeout deadlines",
          "[scaler][timers]") {
  ScalerHarness h(limits(0, 1, 1));
  CHECK(h.scaler.nextWakeup() <= h.clock.now());  // a new pool is looked at once
  h.tick();
  CHECK(h.scaler.nextWakeup() > h.clock.now() + Duration(500));  // nothing to do: no busy polling
  h.submit("c", 1, "p", "echo", "", Mode::Call, kInfiniteMs);
  CHECK(h.scaler.nextWakeup() <= h.clock.now());  // demand: at once
  h.tick();
  REQUIRE(h.backend->bootCount() == 1);
  TimePoint bootedAt = h.clock.now();
  // Nothing before the boot timeout (10 s), apart from the reaper's polls.
  TimePoint timeout = bootedAt + Duration(10000);
  h.clock.advance(Duration(9990));
  h.core.tick();
  h.scaler.tick();
  CHECK(h.backend->stopCount() == 0);
  CHECK(h.scaler.nextWakeup() <= timeout);
  h.clock.advance(timeout - h.clock.now());
  h.scaler.tick();
  h.scaler.tick();
  CHECK(h.backend->stopCount() == 1);  // stopped at the deadline, not a housekeeping period later
  // The next boot is due when the 500 ms backoff ends: the scaler says so.
  TimePoint backoffEnds = h.clock.now() + Duration(500);
  CHECK(h.scaler.nextWakeup() == backoffEnds);
  h.clock.advance(Duration(499));
  h.scaler.tick();
  CHECK(h.backend->bootCount() == 1);
  h.clock.advance(Duration(1));
  h.scaler.tick();
  CHECK(h.backend->bootCount() == 2);
}

TEST_CASE("events: a pool grows from 0 and shrinks back, as a subscriber sees it", "[scaler][events]") {
  ScalerHarness h(limits(0, 2, 1));
  h.core.onClient("w", msg::Subscribe{1, "p"}, {});
  h.submit("c", 1, "p", "echo", "", Mode::Call, 60000);
  h.tick();
  REQUIRE(h.backend->bootCount() == 1);
  auto conn = h.connect(0);
  auto job = h.jobsFor(conn);
  REQUIRE(job.size() == 1);
  h.done(conn, job[0].jobId, "ok");
  for (int i = 0; i < 60; ++i) {  // idle_shutdown_after 5 s: drained; the subscriber heartbeats
    h.core.onClient("w", msg::Heartbeat{}, {});
    h.pass(Duration(100), {conn});
  }
  h.core.onRunner(conn, msg::Leaving{"drained", true}, {});
  h.tick();
  // A failing boot and a limit change are events too.
  h.backend->failAllBoots(false, "image not found");
  h.submit("c", 2, "p", "echo", "", Mode::Call, 60000);
  h.tick();
  msg::SetPool set;
  set.requestId = 9;
  set.pool = "p";
  set.max = 5;
  h.core.onClient("admin", set, {});

  auto events = h.outbox.takeOf<msg::Event>("w");
  std::vector<EventKind> seen;
  for (auto& e : events) seen.push_back(e.kind);
  REQUIRE(seen == std::vector<EventKind>{EventKind::RunnerBooting, EventKind::RunnerReady, EventKind::RunnerDraining,
                                         EventKind::RunnerStopped, EventKind::RunnerBooting, EventKind::BootFailed,
                                         EventKind::PoolChanged});
  CHECK(events[0].booting == 1);
  CHECK(events[0].runners == 0);
  CHECK(events[1].booting == 0);
  CHECK(events[1].runners == 1);
  CHECK(events[2].message.find("idle for") != std::string::npos);
  CHECK(events[3].runners == 0);
  CHECK(events[5].message.find("image not found") != std::string::npos);
  CHECK(events[6].message == "min=0 max=5 warm_slots=0");
}
