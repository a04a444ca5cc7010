// Runner against a fake broker: a ROUTER on a loopback wildcard port driven by the test thread,
// while Runner::run() runs on another thread: these prove the socket shell (worker/runner.cpp).
// Every wait is bounded (kWait) and waits for an event; nothing sleeps to make time pass. Where a
// runner's timer must fire (liveness, graces, failsafe, heartbeats), it runs on a ManualClock
// that the test moves; the exact timing rules are proven in runner_core_test.cpp.
#include "worker/runner.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <memory>
#include <semaphore>
#include <set>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/codec.h"
#include "common/curve_keys.h"
#include "common/fake_zap.h"
#include "common/log.h"
#include "common/transport.h"
#include "schema/flame.capnp.h"
#include "worker/builtins.h"
#include "worker/typed.h"

using namespace flame;

namespace {

// Upper bound of every wait: generous, only reached when a test fails.
constexpr Duration kWait{5000};

const bool kLogLevelSet = [] {
  const char* level = std::getenv("FLAME_LOG_LEVEL");
  return setLogLevel(level ? level : "warn");
}();

TimePoint realNow() { return SteadyClock().now(); }

struct Received {
  Message message;
  std::optional<std::string> payload;
};

// Plays the broker's side of the runner endpoint; remembers the routing id of the last peer
// that spoke, which is where send() goes.
class FakeBroker {
 public:
  explicit FakeBroker(const std::string& endpoint = "tcp://127.0.0.1:*")
      : router_(bindRetrying(endpoint)), endpoint_(boundEndpoint(router_)) {}
  // A CURVE broker with `keys` (issue 10): its ZAP handler (tests/common/fake_zap.h) is bound
  // first and accepts no runner key until zap()->allow().
  explicit FakeBroker(const CurveKeyPair& keys)
      : zap_(std::make_unique<flame::testing::FakeZap>(ctx_)),
        curve_{keys.secretKey, "runners"},
        router_(bindRouter(ctx_, "tcp://127.0.0.1:*", {}, &curve_)),
        endpoint_(boundEndpoint(router_)) {}

  flame::testing::FakeZap* zap() { return zap_.get(); }
  // The ZAP-authenticated key of the last message received (CURVE), else empty.
  const std::string& lastKey() const { return lastKey_; }

  const std::string& endpoint() const { return endpoint_; }

  // While this broker waits for a message, `clock` moves `step` per slice of at most kSlice:
  // the runner's timers fire as if that much time passed, and only while the test waits.
  void pumpClock(ManualClock& clock, Duration step) {
    pump_ = &clock;
    step_ = step;
  }

  // The next message from a runner within `limit`, or nullopt. Fails the test on bad bytes.
  std::optional<Received> recvWithin(Duration limit) {
    TimePoint until = realNow() + limit;
    for (;;) {
      Frames frames;
      bool truncated = false;
      if (recvFrames(router_, frames, 3, truncated)) {
        REQUIRE_FALSE(truncated);
        REQUIRE(frames.size() >= 2);
        peer_.copy(frames[0]);
        lastKey_ = std::string(peerKey(frames[1]));
        auto decoded = decode(frames[1]);
        INFO(decoded.error);
        REQUIRE(decoded.ok());
        Received r{*decoded.message, std::nullopt};
        if (frames.size() > 2) r.payload = frames[2].to_string();
        return r;
      }
      TimePoint now = realNow();
      if (now >= until) return std::nullopt;
      zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
      Duration slice = until - now;
      if (pump_) {
        slice = std::min(slice, kSlice);
        pump_->advance(step_);
      }
      zmq::poll(&item, 1, std::chrono::milliseconds(slice));
    }
  }

  // The next message of kind T (heartbeats are skipped), with its payload frame if any.
  template <class T>
  std::pair<T, std::optional<std::string>> expect(Duration limit = kWait) {
    TimePoint until = realNow() + limit;
    for (;;) {
      TimePoint now = realNow();
      auto r = recvWithin(now < until ? until - now : Duration(0));
      if (!r) FAIL("no expected message within " << limit.count() << " ms");
      if (std::holds_alternative<msg::Heartbeat>(r->message)) continue;
      INFO("got message kind #" << r->message.index());
      REQUIRE(std::holds_alternative<T>(r->message));
      return {std::get<T>(r->message), r->payload};
    }
  }

  void send(const Message& m, std::optional<std::string> payload = std::nullopt) {
    Frames frames;
    frames.emplace_back().copy(peer_);
    frames.push_back(encodeMessage(m));
    if (payload) frames.emplace_back(payload->data(), payload->size());
    REQUIRE(sendFrames(router_, frames) == SendStatus::Ok);
  }

  void sendRaw(std::vector<std::string> parts) {
    Frames frames;
    frames.emplace_back().copy(peer_);
    for (auto& p : parts) frames.emplace_back(p.data(), p.size());
    REQUIRE(sendFrames(router_, frames) == SendStatus::Ok);
  }

  // Waits for `ready` and answers `welcome`.
  msg::Ready registerRunner(uint32_t heartbeatMs = 1000, uint32_t liveness = 10, uint64_t instance = 0,
                            uint64_t maxPayloadBytes = 0) {
    auto [ready, payload] = expect<msg::Ready>();
    send(msg::Welcome{heartbeatMs, liveness, instance, maxPayloadBytes});
    return ready;
  }

  void sendJob(uint64_t jobId, std::string function, std::string payload = {},
               uint32_t budgetMs = kInfiniteMs, Mode mode = Mode::Call) {
    send(msg::Job{jobId, std::move(function), mode, budgetMs}, std::move(payload));
  }

  msg::JobDone expectDone(uint64_t jobId, std::optional<std::string>* payload = nullptr) {
    auto [done, p] = expect<msg::JobDone>();
    CHECK(done.jobId == jobId);
    if (payload) *payload = p;
    return done;
  }

 private:
  // Rebinding the port a closed socket used can fail for a moment while libzmq releases it.
  zmq::socket_t bindRetrying(const std::string& endpoint) {
    TimePoint until = realNow() + kWait;
    for (;;) {
      try {
        return bindRouter(ctx_, endpoint);
      } catch (const zmq::error_t& e) {
        if (e.num() != EADDRINUSE || realNow() >= until) throw;
        std::this_thread::yield();
      }
    }
  }

  static constexpr Duration kSlice{5};
  zmq::context_t ctx_;
  std::unique_ptr<flame::testing::FakeZap> zap_;  // bound before a CURVE router
  CurveServer curve_;
  std::string lastKey_;
  zmq::socket_t router_;
  std::string endpoint_;
  zmq::message_t peer_;
  ManualClock* pump_ = nullptr;
  Duration step_{0};
};

// Runs a Runner on its own thread; stops it (bounded by the runner's own graces) if the test
// ends while it still runs.
class RunnerThread {
 public:
  explicit RunnerThread(Runner& runner)
      : runner_(runner),
        future_(std::async(std::launch::async, [&runner] { return runner.run(); })) {}
  ~RunnerThread() {
    if (!exit_) {
      runner_.requestStop();
      future_.wait();
    }
  }
  std::optional<RunExit> waitExit(Duration limit = kWait) {
    if (!exit_ && future_.wait_for(limit) == std::future_status::ready) exit_ = future_.get();
    return exit_;
  }
  // waitExit() while `clock` moves `step` per slice of at most 5 ms (the runner's timers fire).
  std::optional<RunExit> waitExitPumping(ManualClock& clock, Duration step, Duration limit = kWait) {
    TimePoint until = realNow() + limit;
    while (!waitExit(Duration(5)) && realNow() < until) clock.advance(step);
    return exit_;
  }

 private:
  Runner& runner_;
  std::future<RunExit> future_;
  std::optional<RunExit> exit_;
};

// Lets a test hold handlers inside their call and see how many arrived.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  // Handler side: counts the arrival, then waits until open (or stop, or the bound).
  bool pass(const JobContext& job) {
    std::unique_lock lock(mutex_);
    ++arrived_;
    cv_.notify_all();
    return cv_.wait_for(lock, job.stopToken(), kWait, [&] { return open_; });
  }
  bool waitArrived(int n, Duration limit = kWait) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, limit, [&] { return arrived_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable_any cv_;
  int arrived_ = 0;
  bool open_ = false;
};

RunnerOptions testOptions(const FakeBroker& broker) {
  RunnerOptions o;
  o.broker = broker.endpoint();
  o.pool = "test";
  o.runnerId = "r-test";
  o.reconnectMin = Duration(20);
  o.reconnectMax = Duration(200);
  return o;
}

}  // namespace

TEST_CASE("ready announces id, pool, slots, functions and token, heartbeats follow welcome",
          "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.concurrency = 3;
  options.token = "tok-1";
  options.clock = &clock;
  Runner runner(options);
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);

  auto ready = broker.registerRunner(50, 10);
  CHECK(ready.runnerId == "r-test");
  CHECK(ready.pool == "test");
  CHECK(ready.slots == 3);
  CHECK(ready.functions == std::vector<std::string>{"echo", "fail", "sleep"});
  CHECK(ready.token == "tok-1");
  CHECK(ready.busy == 0);
  CHECK(ready.pid == static_cast<uint32_t>(::getpid()));
  CHECK_FALSE(ready.host.empty());

  // The welcome's interval (50 ms) is adopted: the runner's loop wakes for its heartbeats.
  TimePoint welcomed = clock.now();
  broker.pumpClock(clock, Duration(10));
  auto hb = broker.recvWithin(kWait);
  REQUIRE(hb);
  REQUIRE(std::holds_alternative<msg::Heartbeat>(hb->message));
  CHECK(std::get<msg::Heartbeat>(hb->message).intervalMs == 50);
  CHECK(clock.now() - welcomed >= Duration(50));

  runner.requestStop();
  auto [leaving, p] = broker.expect<msg::Leaving>();
  CHECK(leaving.exiting);
  CHECK(thread.waitExit() == RunExit::Stopped);
}

TEST_CASE("a generated runner id names pool, host and pid", "[runner]") {
  RunnerOptions o;
  o.pool = "thumbs";
  Runner runner(o);
  CHECK(runner.runnerId().rfind("thumbs-", 0) == 0);
  CHECK(runner.runnerId().find("-" + std::to_string(::getpid()) + "-") != std::string::npos);
  RunnerOptions noPool;
  noPool.pool = "";
  CHECK_THROWS_AS(Runner(noPool), std::invalid_argument);
  CHECK_THROWS_AS(runner.handle("", [](JobContext&) { return ok(); }), std::invalid_argument);
  RunnerOptions bad;
  bad.broker = "nonsense";
  CHECK_THROWS_AS(Runner(bad), std::invalid_argument);
}

TEST_CASE("options come from the FLAME_* environment", "[runner]") {
  setenv("FLAME_BROKER", "tcp://127.0.0.2:7000", 1);
  setenv("FLAME_POOL", "thumbs", 1);
  setenv("FLAME_RUNNER_ID", "thumbs-1", 1);
  setenv("FLAME_BOOT_TOKEN", "secret", 1);
  setenv("FLAME_MAX_CONCURRENCY", "4", 1);
  auto o = RunnerOptions::fromEnvironment();
  CHECK(o.broker == "tcp://127.0.0.2:7000");
  CHECK(o.pool == "thumbs");
  CHECK(o.runnerId == "thumbs-1");
  CHECK(o.token == "secret");
  CHECK(o.concurrency == 4);
  setenv("FLAME_MAX_CONCURRENCY", "0", 1);
  CHECK_THROWS_AS(RunnerOptions::fromEnvironment(), std::invalid_argument);
  for (const char* name : {"FLAME_BROKER", "FLAME_POOL", "FLAME_RUNNER_ID", "FLAME_BOOT_TOKEN",
                           "FLAME_MAX_CONCURRENCY"})
    unsetenv(name);
  CHECK(RunnerOptions::fromEnvironment().pool == "default");
}

TEST_CASE("echo round trip carries the payload frame both ways", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.registerRunner();

  std::string binary("hello\0world\xff", 12);
  broker.sendJob(1, "echo", binary);
  std::optional<std::string> result;
  auto done = broker.expectDone(1, &result);
  CHECK(done.code == ErrorCode::None);
  REQUIRE(result);
  CHECK(*result == binary);

  broker.sendJob(2, "sleep", "20");
  done = broker.expectDone(2, &result);
  CHECK(done.code == ErrorCode::None);
  CHECK(result == std::optional<std::string>("slept 20"));
}

TEST_CASE("an inline handler runs on the runner's own thread, others on handler threads", "[runner]") {
  FakeBroker broker;
  RunnerOptions o = testOptions(broker);
  o.concurrency = 2;
  Runner runner(o);
  std::mutex mutex;
  std::thread::id inlineThread, pooledThread;
  runner.handleInline("here", [&](JobContext& job) {
    std::lock_guard lock(mutex);
    inlineThread = std::this_thread::get_id();
    return HandlerResult(std::string("inline:") + std::string(job.payload()));
  });
  runner.handle("there", [&](JobContext&) {
    std::lock_guard lock(mutex);
    pooledThread = std::this_thread::get_id();
    return HandlerResult("pooled");
  });
  CHECK_THROWS_AS(runner.handleInline("", [](JobContext&) { return HandlerResult(); }), std::invalid_argument);
  std::promise<std::thread::id> runThread;
  auto loop = std::async(std::launch::async, [&] {
    runThread.set_value(std::this_thread::get_id());
    return runner.run();
  });
  auto ready = broker.registerRunner();
  CHECK(std::count(ready.functions.begin(), ready.functions.end(), "here") == 1);
  broker.sendJob(1, "here", "x");
  std::optional<std::string> result;
  auto done = broker.expectDone(1, &result);
  CHECK(done.code == ErrorCode::None);
  CHECK(result == std::optional<std::string>("inline:x"));
  broker.sendJob(2, "there", "y");
  done = broker.expectDone(2, &result);
  CHECK(result == std::optional<std::string>("pooled"));
  runner.requestStop();
  REQUIRE(loop.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto loopThread = runThread.get_future().get();
  std::lock_guard lock(mutex);
  CHECK(inlineThread == loopThread);
  CHECK(pooledThread != loopThread);
}

TEST_CASE("handler errors, exceptions and unknown functions are reported", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  runner.handle("throws", [](JobContext&) -> HandlerResult { throw std::runtime_error("boom"); });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(1, "fail", "it broke");
  auto done = broker.expectDone(1);
  CHECK(done.code == ErrorCode::HandlerError);
  CHECK(done.message == "it broke");

  broker.sendJob(2, "throws");
  done = broker.expectDone(2);
  CHECK(done.code == ErrorCode::HandlerError);
  CHECK(done.message == "handler threw: boom");

  broker.sendJob(3, "sleep", "soon");
  done = broker.expectDone(3);
  CHECK(done.code == ErrorCode::HandlerError);
  CHECK(done.message.find("decimal milliseconds") != std::string::npos);

  broker.sendJob(4, "nope");
  done = broker.expectDone(4);
  CHECK(done.code == ErrorCode::UnknownFunction);
  CHECK(done.message.find("nope") != std::string::npos);
}

TEST_CASE("N slots run N jobs at the same time, a job beyond them is refused", "[runner]") {
  FakeBroker broker;
  auto options = testOptions(broker);
  options.concurrency = 3;
  Runner runner(options);
  std::mutex mutex;
  std::condition_variable cv;
  int started = 0;
  Gate gate;
  runner.handle("together", [&](JobContext& job) -> HandlerResult {
    std::unique_lock lock(mutex);
    ++started;
    cv.notify_all();
    // Returns only when all three run at once.
    if (!cv.wait_for(lock, kWait, [&] { return started >= 3; })) return fail("alone");
    return "together";
  });
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "held" : "timeout";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  for (uint64_t id = 1; id <= 3; ++id) broker.sendJob(id, "together");
  for (int i = 0; i < 3; ++i) {
    auto [done, payload] = broker.expect<msg::JobDone>();
    CHECK(done.code == ErrorCode::None);
    CHECK(payload == std::optional<std::string>("together"));
  }

  for (uint64_t id = 10; id < 13; ++id) broker.sendJob(id, "hold");
  REQUIRE(gate.waitArrived(3));
  broker.sendJob(13, "hold");
  auto refused = broker.expectDone(13);
  CHECK(refused.code == ErrorCode::Internal);
  CHECK(refused.message == "no free slot");
  gate.open();
  for (int i = 0; i < 3; ++i) CHECK(broker.expect<msg::JobDone>().first.code == ErrorCode::None);
}

TEST_CASE("jobs run on long-lived handler threads, not a thread per job", "[runner]") {
  FakeBroker broker;
  auto options = testOptions(broker);
  options.concurrency = 2;
  Runner runner(options);
  std::mutex mutex;
  std::set<std::thread::id> threads;  // every thread that ran a job
  auto seen = [&] {
    std::lock_guard lock(mutex);
    threads.insert(std::this_thread::get_id());
  };
  // How many jobs the calling thread has run: 1 every time if each job had a fresh thread.
  runner.handle("count", [&](JobContext&) -> HandlerResult {
    seen();
    thread_local int jobsOnThisThread = 0;
    return std::to_string(++jobsOnThisThread);
  });
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    seen();
    return gate.pass(job) ? "held" : "timeout";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  // One at a time: one thread serves them all.
  for (uint64_t id = 1; id <= 5; ++id) {
    broker.sendJob(id, "count");
    std::optional<std::string> result;
    CHECK(broker.expectDone(id, &result).code == ErrorCode::None);
    CHECK(result == std::optional<std::string>(std::to_string(id)));
  }
  // Both slots busy at once: a second thread, then both reused.
  for (uint64_t id = 10; id < 12; ++id) broker.sendJob(id, "hold");
  REQUIRE(gate.waitArrived(2));
  gate.open();
  for (int i = 0; i < 2; ++i) CHECK(broker.expect<msg::JobDone>().first.code == ErrorCode::None);
  int total = 0;
  for (uint64_t id = 20; id < 24; ++id) {
    broker.sendJob(id, "count");
    std::optional<std::string> result;
    CHECK(broker.expectDone(id, &result).code == ErrorCode::None);
    REQUIRE(result);
    total = std::max(total, std::stoi(*result));
  }
  CHECK(total >= 2);  // four jobs on two reused threads: one of them counted at least two
  {
    std::lock_guard lock(mutex);
    CHECK(threads.size() == 2);  // eleven jobs, two slots: two threads, never more
  }
  runner.requestStop();
  CHECK(thread.waitExit() == RunExit::Stopped);
  CHECK(runner.strandedHandlers() == 0);  // idle handler threads are joined, not abandoned
}

TEST_CASE("cancelJob fires the handler's stop token and the job ends cancelled", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  Gate gate;
  std::atomic<bool> sawStop{false};
  runner.handle("wait", [&](JobContext& job) -> HandlerResult {
    gate.pass(job);  // returns when the stop token fires
    sawStop = job.stopRequested();
    return "finished anyway";  // ignored: the job was cancelled
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(5, "wait", "", kInfiniteMs, Mode::Place);
  REQUIRE(gate.waitArrived(1));
  broker.send(msg::CancelJob{5});
  std::optional<std::string> payload;
  auto done = broker.expectDone(5, &payload);
  CHECK(done.code == ErrorCode::Cancelled);
  CHECK_FALSE(payload);
  CHECK(sawStop);
  // A cancel for a job that is not running is harmless.
  broker.send(msg::CancelJob{99});
  broker.sendJob(6, "wait");
  REQUIRE(gate.waitArrived(2));
  gate.open();
  CHECK(broker.expectDone(6).code == ErrorCode::None);
}

TEST_CASE("the job's budget is enforced on the runner's clock", "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.clock = &clock;
  Runner runner(options);
  std::atomic<int64_t> deadlineLeftMs{-1};
  runner.handle("slow", [&](JobContext& job) -> HandlerResult {
    deadlineLeftMs = (job.deadline() - clock.now()).count();
    job.sleepFor(kWait);  // returns early when the stop token fires
    return "too late";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  TimePoint sent = clock.now();
  broker.sendJob(7, "slow", "", 200);
  broker.pumpClock(clock, Duration(20));
  auto done = broker.expectDone(7);
  CHECK(done.code == ErrorCode::Timeout);
  CHECK(clock.now() - sent >= Duration(200));
  CHECK(deadlineLeftMs > 0);
  CHECK(deadlineLeftMs <= 200);

  broker.sendJob(8, "slow", "", 0);
  CHECK(broker.expectDone(8).code == ErrorCode::Timeout);
}

TEST_CASE("deadlines follow the injected clock", "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.clock = &clock;
  Runner runner(options);
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "done" : "stopped";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(9, "hold", "", 1000);
  REQUIRE(gate.waitArrived(1));
  clock.advance(Duration(1001));
  // The runner sleeps until its next timer in real time; any message wakes it to see the clock.
  broker.send(msg::Heartbeat{0, 1000});
  CHECK(broker.expectDone(9).code == ErrorCode::Timeout);
}

TEST_CASE("a handler that ignores cancellation retires its runner", "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.cancelGrace = Duration(200);
  options.drainGrace = Duration(1000);
  options.clock = &clock;
  Runner runner(options);
  // Shared with a thread that outlives the test: owned jointly, not by the test's stack.
  // Held until the test ends; the handler blocks on it and never looks at its stop token.
  auto release = std::make_shared<std::binary_semaphore>(0);
  auto arrived = std::make_shared<std::atomic<bool>>(false);
  runner.handle("stubborn", [release, arrived](JobContext&) -> HandlerResult {
    *arrived = true;
    release->acquire();
    return "ignored you";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(7, "stubborn");
  TimePoint until = realNow() + kWait;
  while (!*arrived && realNow() < until) std::this_thread::yield();
  REQUIRE(*arrived);
  broker.send(msg::CancelJob{7});
  TimePoint cancelled = clock.now();
  broker.pumpClock(clock, Duration(20));
  auto [first, p1] = broker.expect<msg::Leaving>();
  CHECK_FALSE(first.exiting);
  CHECK(first.reason == "retired: job 7 ignored cancellation");
  CHECK(clock.now() - cancelled >= Duration(200));
  auto [last, p2] = broker.expect<msg::Leaving>();
  CHECK(last.exiting);
  CHECK(thread.waitExit() == RunExit::Retired);
  CHECK(runner.strandedHandlers() == 1);
  release->release();
}

TEST_CASE("a retired runner abandons only the handler thread stuck in its handler", "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.concurrency = 2;
  options.cancelGrace = Duration(200);
  options.drainGrace = Duration(1000);
  options.clock = &clock;
  Runner runner(options);
  // Held until the test ends; the handler blocks on it and never looks at its stop token.
  auto release = std::make_shared<std::binary_semaphore>(0);
  auto arrived = std::make_shared<std::atomic<bool>>(false);
  runner.handle("stubborn", [release, arrived](JobContext&) -> HandlerResult {
    *arrived = true;
    release->acquire();
    return "ignored you";
  });
  Gate gate;
  runner.handle("hold", [&gate](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "held" : "timeout";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  // Start both handler threads, then let them go idle.
  broker.sendJob(1, "hold");
  broker.sendJob(2, "hold");
  REQUIRE(gate.waitArrived(2));
  gate.open();
  for (int i = 0; i < 2; ++i) CHECK(broker.expect<msg::JobDone>().first.code == ErrorCode::None);

  broker.sendJob(3, "stubborn");
  TimePoint until = realNow() + kWait;
  while (!*arrived && realNow() < until) std::this_thread::yield();
  REQUIRE(*arrived);
  broker.send(msg::CancelJob{3});
  broker.pumpClock(clock, Duration(20));
  auto [first, p1] = broker.expect<msg::Leaving>();
  CHECK_FALSE(first.exiting);
  CHECK(first.reason == "retired: job 3 ignored cancellation");
  CHECK(broker.expect<msg::Leaving>().first.exiting);
  CHECK(thread.waitExit() == RunExit::Retired);
  CHECK(runner.strandedHandlers() == 1);  // the idle thread was joined
  release->release();
}

TEST_CASE("error unknownPeer makes the runner send ready again", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.send(msg::Error{0, ErrorCode::UnknownPeer, "who are you", 0});
  auto ready = broker.registerRunner();
  CHECK(ready.runnerId == "r-test");
  broker.sendJob(1, "echo", "still here");
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("still here"));
}

TEST_CASE("error unauthorized ends the runner", "[runner]") {
  FakeBroker broker;
  auto options = testOptions(broker);
  options.token = "wrong";
  Runner runner(options);
  RunnerThread thread(runner);
  broker.expect<msg::Ready>();
  broker.send(msg::Error{0, ErrorCode::Unauthorized, "bad token", 0});
  CHECK(thread.waitExit() == RunExit::Unauthorized);
}

TEST_CASE("drain from the broker waits for in-flight work, refuses new work, then leaves",
          "[runner]") {
  FakeBroker broker;
  auto options = testOptions(broker);
  options.concurrency = 2;
  Runner runner(options);
  registerBuiltinFunctions(runner, false);
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "done" : "stopped";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(1, "hold");
  REQUIRE(gate.waitArrived(1));
  broker.send(msg::Drain{5000});
  auto [draining, p1] = broker.expect<msg::Leaving>();
  CHECK_FALSE(draining.exiting);
  broker.sendJob(2, "echo", "x");
  CHECK(broker.expectDone(2).code == ErrorCode::ShuttingDown);
  CHECK_FALSE(thread.waitExit(Duration(0)));

  gate.open();
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("done"));
  auto [gone, p2] = broker.expect<msg::Leaving>();
  CHECK(gone.exiting);
  CHECK(thread.waitExit() == RunExit::Drained);
  CHECK(runner.strandedHandlers() == 0);
}

TEST_CASE("requestDrain cancels what is still running when the grace ends", "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.drainGrace = Duration(200);
  options.clock = &clock;
  Runner runner(options);
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "done" : "stopped";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(3, "hold");
  REQUIRE(gate.waitArrived(1));
  runner.requestDrain();
  CHECK_FALSE(broker.expect<msg::Leaving>().first.exiting);
  TimePoint drained = clock.now();
  broker.pumpClock(clock, Duration(20));
  CHECK(broker.expectDone(3).code == ErrorCode::Cancelled);
  CHECK(clock.now() - drained >= Duration(200));
  CHECK(broker.expect<msg::Leaving>().first.exiting);
  CHECK(thread.waitExit() == RunExit::Drained);
}

TEST_CASE("requestStop cancels running jobs at once and leaves", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "done" : "stopped";
  });
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendJob(4, "hold");
  REQUIRE(gate.waitArrived(1));
  runner.requestStop();
  CHECK(broker.expectDone(4).code == ErrorCode::Cancelled);
  CHECK(broker.expect<msg::Leaving>().first.exiting);
  CHECK(thread.waitExit() == RunExit::Stopped);
}

TEST_CASE("failsafe: a broker that never answers ends the runner", "[runner]") {
  FakeBroker broker;  // listens, never welcomes
  ManualClock clock;
  auto options = testOptions(broker);
  options.heartbeatInterval = Duration(100);
  options.failsafeAfter = Duration(500);
  options.clock = &clock;
  Runner runner(options);
  TimePoint started = clock.now();
  RunnerThread thread(runner);
  broker.expect<msg::Ready>();
  CHECK_FALSE(thread.waitExit(Duration(0)));
  auto exit = thread.waitExitPumping(clock, Duration(20));
  CHECK(exit == RunExit::FailsafeExpired);
  CHECK(clock.now() - started >= Duration(500));
}

TEST_CASE("failsafe: a broker that goes silent after welcome ends the runner", "[runner]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);
  options.failsafeAfter = Duration(500);
  options.clock = &clock;
  Runner runner(options);
  Gate gate;
  std::atomic<bool> sawStop{false};
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    gate.pass(job);
    sawStop = job.stopRequested();
    return "x";
  });
  RunnerThread thread(runner);
  broker.registerRunner(100, 3);
  broker.sendJob(1, "hold");
  REQUIRE(gate.waitArrived(1));
  TimePoint lastSpoke = clock.now();
  auto exit = thread.waitExitPumping(clock, Duration(20));
  CHECK(exit == RunExit::FailsafeExpired);
  CHECK(clock.now() - lastSpoke >= Duration(500));
  CHECK(sawStop);  // the running job was cancelled
}

TEST_CASE("after losing the broker the runner reconnects and re-registers with its busy count",
          "[runner]") {
  auto broker = std::make_unique<FakeBroker>();
  const std::string endpoint = broker->endpoint();
  ManualClock clock;
  auto options = testOptions(*broker);
  options.failsafeAfter = Duration(100'000);
  options.clock = &clock;
  Runner runner(options);
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "done" : "stopped";
  });
  RunnerThread thread(runner);
  broker->registerRunner(100, 3);
  broker->sendJob(1, "hold");
  REQUIRE(gate.waitArrived(1));

  broker.reset();                                   // the broker goes away...
  broker = std::make_unique<FakeBroker>(endpoint);  // ...and comes back on the same endpoint
  // The runner finds it silent (liveness 100 ms x 3) and registers on a fresh connection.
  broker->pumpClock(clock, Duration(20));
  auto ready = broker->registerRunner(100, 3);
  CHECK(ready.runnerId == "r-test");
  CHECK(ready.busy == 1);

  gate.open();
  std::optional<std::string> payload;
  CHECK(broker->expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("done"));
  CHECK_FALSE(thread.waitExit(Duration(0)));
}

TEST_CASE("results are held until the broker has welcomed the runner", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.expect<msg::Ready>();
  broker.sendJob(1, "echo", "early");  // before welcome: the result waits (runner_core_test.cpp)
  broker.send(msg::Welcome{1000, 10});
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("early"));
}

TEST_CASE("bad frames from the broker are ignored", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.registerRunner();

  broker.sendRaw({"not capnp"});
  broker.sendRaw({std::string(16, '\xff')});
  broker.sendRaw({""});
  broker.send(msg::Submit{});  // a client message on the runner socket
  broker.sendJob(1, "echo", "ok");
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("ok"));
  CHECK_FALSE(thread.waitExit(Duration(0)));
}

TEST_CASE("typed handlers read and write Cap'n Proto messages", "[runner]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  runner.handle("double",
                typed<wire::Heartbeat, wire::Heartbeat>(
                    [](wire::Heartbeat::Reader in, wire::Heartbeat::Builder out, JobContext&) {
                      out.setSentMs(in.getSentMs() * 2);
                      out.setIntervalMs(in.getIntervalMs() + 1);
                    }));
  RunnerThread thread(runner);
  broker.registerRunner();

  capnp::MallocMessageBuilder arg;
  auto hb = arg.initRoot<wire::Heartbeat>();
  hb.setSentMs(21);
  hb.setIntervalMs(9);
  broker.sendJob(1, "double", messageBytes(arg));
  std::optional<std::string> payload;
  REQUIRE(broker.expectDone(1, &payload).code == ErrorCode::None);
  REQUIRE(payload);
  REQUIRE(payload->size() % 8 == 0);
  auto words = kj::heapArray<capnp::word>(payload->size() / 8);
  memcpy(words.begin(), payload->data(), payload->size());
  capnp::FlatArrayMessageReader reader(words);
  CHECK(reader.getRoot<wire::Heartbeat>().getSentMs() == 42);
  CHECK(reader.getRoot<wire::Heartbeat>().getIntervalMs() == 10);

  broker.sendJob(2, "double", "abc");
  auto done = broker.expectDone(2);
  CHECK(done.code == ErrorCode::HandlerError);
  CHECK(done.message.rfind("bad payload: ", 0) == 0);

  broker.sendJob(3, "double", std::string(8, '\xff'));  // a segment table promising too much
  done = broker.expectDone(3);
  CHECK(done.code == ErrorCode::HandlerError);
  CHECK(done.message.rfind("bad payload: ", 0) == 0);
}

TEST_CASE("JobContext::sleepFor returns early on stop", "[runner]") {
  std::stop_source stop;
  JobContext job(1, Mode::Call, "p", stop.get_token(), TimePoint::max());
  CHECK(job.sleepFor(Duration(1)));
  std::thread stopper([&] { stop.request_stop(); });
  CHECK_FALSE(job.sleepFor(kInfinite));
  stopper.join();
  CHECK(job.stopRequested());
  CHECK(job.payload() == "p");
}

TEST_CASE("a restarted broker's job that reuses an old id runs, each result names its broker run",
          "[runner][reliability]") {
  auto broker = std::make_unique<FakeBroker>();
  const std::string endpoint = broker->endpoint();
  ManualClock clock;
  auto options = testOptions(*broker);
  options.concurrency = 2;
  options.failsafeAfter = Duration(100'000);
  options.clock = &clock;
  Runner runner(options);
  registerBuiltinFunctions(runner, false);
  Gate gate;
  runner.handle("hold", [&](JobContext& job) -> HandlerResult {
    return gate.pass(job) ? "old result" : "stopped";
  });
  RunnerThread thread(runner);
  auto first = broker->registerRunner(100, 3, /*instance=*/11);
  // A static runner proves its identity with a random secret of its own.
  CHECK(first.token.size() >= 16);
  broker->sendJob(1, "hold");
  REQUIRE(gate.waitArrived(1));

  broker.reset();                                   // the broker restarts...
  broker = std::make_unique<FakeBroker>(endpoint);  // ...and forgot everything
  broker->pumpClock(clock, Duration(20));
  auto again = broker->registerRunner(100, 3, /*instance=*/22);
  CHECK(again.token == first.token);
  CHECK(again.busy == 1);
  CHECK(again.held == std::vector<msg::HeldJob>{{1, 11}});

  // The new run's first job has id 1 too: it is another job, and runs.
  broker->sendJob(1, "echo", "new result");
  std::optional<std::string> payload;
  auto done = broker->expectDone(1, &payload);
  CHECK(done.instance == 22);
  CHECK(payload == std::optional<std::string>("new result"));

  gate.open();
  done = broker->expectDone(1, &payload);
  CHECK(done.instance == 11);  // the broker can tell it from the new job 1
  CHECK(payload == std::optional<std::string>("old result"));
}

TEST_CASE("a result over the broker's payload limit is reported payload_too_large, not sent",
          "[runner][reliability]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.registerRunner(1000, 10, 5, /*maxPayloadBytes=*/10);
  broker.sendJob(1, "echo", "0123456789A");
  std::optional<std::string> payload;
  auto done = broker.expectDone(1, &payload);
  CHECK(done.code == ErrorCode::PayloadTooLarge);
  CHECK(done.message.find("11 bytes") != std::string::npos);
  CHECK_FALSE(payload);
  broker.sendJob(2, "echo", "0123456789");
  CHECK(broker.expectDone(2, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("0123456789"));
}

TEST_CASE("a handler's error text that is not UTF-8 is repaired, so the broker accepts it",
          "[runner][reliability]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  runner.handle("bad", [](JobContext&) { return fail("bad \xff bytes"); });
  CHECK_THROWS_AS(runner.handle("no\xffname", [](JobContext&) { return ok(); }), std::invalid_argument);
  RunnerThread thread(runner);
  broker.registerRunner();
  broker.sendJob(1, "bad");
  auto done = broker.expectDone(1);  // expectDone fails the test if the bytes do not decode
  CHECK(done.code == ErrorCode::HandlerError);
  CHECK(done.message == "bad \xEF\xBF\xBD bytes");
}

TEST_CASE("several unknownPeer answers in a row make one ready, not one each", "[runner][reliability]") {
  FakeBroker broker;
  Runner runner(testOptions(broker));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.registerRunner();
  // A broker that lost the connection answers every message sent before our ready unknownPeer.
  for (int i = 0; i < 4; ++i) broker.send(msg::Error{0, ErrorCode::UnknownPeer, "who are you", 0});
  broker.registerRunner();
  broker.sendJob(1, "echo", "once");
  // A second ready would arrive here instead of the result (expect<> fails on another kind).
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("once"));
}

TEST_CASE("a static runner refused because its id is still registered retries instead of exiting",
          "[runner][reliability]") {
  FakeBroker broker;
  ManualClock clock;
  auto options = testOptions(broker);  // no boot token: a static runner with a fixed id
  options.clock = &clock;
  Runner runner(options);
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);
  broker.expect<msg::Ready>();
  broker.send(msg::Error{0, ErrorCode::Unauthorized, "runner id 'r-test' is registered with another token", 0});
  CHECK_FALSE(thread.waitExit(Duration(0)));
  broker.pumpClock(clock, Duration(5));  // the retry waits for the backoff (20 ms)
  broker.registerRunner();  // the old registration is gone: it comes again and is welcome
  broker.sendJob(1, "echo", "back");
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::optional<std::string>("back"));
}

TEST_CASE("a runner on a shared ZeroMQ context serves, and leaves the context open when it ends",
          "[runner]") {
  FakeBroker broker;
  zmq::context_t shared;
  RunnerOptions o = testOptions(broker);
  o.context = &shared;
  {
    Runner runner(o);
    registerBuiltinFunctions(runner, false);
    RunnerThread thread(runner);
    broker.registerRunner();
    broker.sendJob(1, "echo", "shared");
    std::optional<std::string> result;
    CHECK(broker.expectDone(1, &result).code == ErrorCode::None);
    CHECK(result == std::optional<std::string>("shared"));
    runner.requestStop();
    CHECK(thread.waitExit() == RunExit::Stopped);
  }
  // Still open: another socket can be made on it.
  zmq::socket_t after(shared, zmq::socket_type::dealer);
  CHECK(after.handle() != nullptr);
}

// ---- CURVE (issue 10, item 3) ----

namespace {

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  ~ScopedEnv() {
    for (const auto& [name, old] : saved_) {
      if (old)
        setenv(name.c_str(), old->c_str(), 1);
      else
        unsetenv(name.c_str());
    }
  }
  void set(const std::string& name, const std::string& value) {
    remember(name);
    setenv(name.c_str(), value.c_str(), 1);
  }
  void unset(const std::string& name) {
    remember(name);
    unsetenv(name.c_str());
  }

 private:
  void remember(const std::string& name) {
    for (const auto& s : saved_)
      if (s.first == name) return;
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A folder of its own under the temporary directory, removed at the end.
struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("flame-runner-curve-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

RunnerOptions curveRunnerOptions(const FakeBroker& broker, const CurveKeyPair& server, const CurveKeyPair& own) {
  RunnerOptions o = testOptions(broker);
  o.serverKey = server.publicKey;
  o.secretKey = own.secretKey;
  o.failsafeAfter = Duration(60000);  // an exit within the bound cannot be the failsafe
  return o;
}

}  // namespace

TEST_CASE("curve runner: an allowed key registers and serves, the broker sees that key", "[runner][curve]") {
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  FakeBroker broker(server);
  broker.zap()->allow(own.publicKey);
  Runner runner(curveRunnerOptions(broker, server, own));
  registerBuiltinFunctions(runner, false);
  RunnerThread thread(runner);

  broker.registerRunner();
  CHECK(broker.lastKey() == own.publicKey);
  broker.sendJob(1, "echo", "over curve");
  std::optional<std::string> payload;
  CHECK(broker.expectDone(1, &payload).code == ErrorCode::None);
  CHECK(payload == std::string("over curve"));
}

TEST_CASE("curve runner: a key the broker refuses ends run() at once with Unauthorized", "[runner][curve]") {
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  FakeBroker broker(server);  // allows no key
  Runner runner(curveRunnerOptions(broker, server, own));
  registerBuiltinFunctions(runner, false);
  auto start = realNow();
  RunnerThread thread(runner);
  // Within kWait (5 s), so the handshake and not the 60 s failsafe (it takes milliseconds).
  CHECK(thread.waitExit() == RunExit::Unauthorized);
  CHECK(realNow() - start < kWait);
  CHECK(broker.zap()->requests() >= 1);
  CHECK_FALSE(broker.recvWithin(Duration(20)));  // nothing reached the broker
}

TEST_CASE("curve runner: a plaintext runner of a CURVE broker ends at once with Unauthorized", "[runner][curve]") {
  CurveKeyPair server = generateCurveKeyPair();
  FakeBroker broker(server);
  auto options = testOptions(broker);
  options.failsafeAfter = Duration(60000);
  Runner runner(options);
  registerBuiltinFunctions(runner, false);
  auto start = realNow();
  RunnerThread thread(runner);
  CHECK(thread.waitExit() == RunExit::Unauthorized);  // within kWait: not the 60 s failsafe
  CHECK(realNow() - start < kWait);
}

TEST_CASE("curve runner: one key without the other, or a key that is not Z85, is refused at construction",
          "[runner][curve]") {
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  FakeBroker broker;
  auto options = testOptions(broker);
  options.serverKey = server.publicKey;
  CHECK_THROWS_WITH(Runner(options), Catch::Contains("RunnerOptions: serverKey and secretKey go together"));
  options.serverKey.clear();
  options.secretKey = own.secretKey;
  CHECK_THROWS_WITH(Runner(options), Catch::Contains("only secretKey is set"));
  options.serverKey = server.publicKey;
  options.secretKey = "tooshort";
  CHECK_THROWS_WITH(Runner(options), Catch::Contains("secretKey is not a Z85 secret key"));
}

TEST_CASE("curve runner: FLAME_SERVER_KEY with FLAME_SECRET_KEY or FLAME_KEY_FILE, errors name the variable",
          "[runner][curve]") {
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  TempDir dir;
  writeKeyPair(dir.file("broker"), server);
  writeKeyPair(dir.file("runner"), own);
  ScopedEnv env;
  env.unset("FLAME_SERVER_KEY");
  env.unset("FLAME_KEY_FILE");
  env.unset("FLAME_SECRET_KEY");

  SECTION("none: plaintext") {
    auto o = RunnerOptions::fromEnvironment();
    CHECK(o.serverKey.empty());
    CHECK(o.secretKey.empty());
  }
  SECTION("a booted runner: both keys as values, as the broker's scaler sets them") {
    env.set("FLAME_SERVER_KEY", server.publicKey);
    env.set("FLAME_SECRET_KEY", own.secretKey);
    auto o = RunnerOptions::fromEnvironment();
    CHECK(o.serverKey == server.publicKey);
    CHECK(o.secretKey == own.secretKey);
  }
  SECTION("a static runner: the broker's .pub file and its own key file") {
    env.set("FLAME_SERVER_KEY", dir.file("broker.pub"));
    env.set("FLAME_KEY_FILE", dir.file("runner.key"));
    auto o = RunnerOptions::fromEnvironment();
    CHECK(o.serverKey == server.publicKey);
    CHECK(o.secretKey == own.secretKey);
  }
  SECTION("one key without the other: read (a flag may give the other), refused by the Runner") {
    env.set("FLAME_SECRET_KEY", own.secretKey);
    auto o = RunnerOptions::fromEnvironment();
    CHECK(o.secretKey == own.secretKey);
    CHECK(o.serverKey.empty());
    CHECK_THROWS_WITH(Runner(o), Catch::Contains("only secretKey is set"));
  }
  SECTION("both a key file and a secret key") {
    env.set("FLAME_SERVER_KEY", server.publicKey);
    env.set("FLAME_KEY_FILE", dir.file("runner.key"));
    env.set("FLAME_SECRET_KEY", own.secretKey);
    CHECK_THROWS_WITH(RunnerOptions::fromEnvironment(), Catch::Contains("are both set"));
  }
  SECTION("a server key that is neither a key nor a file") {
    env.set("FLAME_SERVER_KEY", dir.file("missing-broker-key.pub"));
    env.set("FLAME_SECRET_KEY", own.secretKey);
    CHECK_THROWS_WITH(RunnerOptions::fromEnvironment(),
                      Catch::StartsWith("FLAME_SERVER_KEY: " + dir.file("missing-broker-key.pub") + ": neither a Z85 public key"));
  }
  SECTION("a secret key file readable by others") {
    std::filesystem::permissions(dir.file("runner.key"), std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::add);
    env.set("FLAME_SERVER_KEY", server.publicKey);
    env.set("FLAME_KEY_FILE", dir.file("runner.key"));
    CHECK_THROWS_WITH(RunnerOptions::fromEnvironment(),
                      Catch::StartsWith("FLAME_KEY_FILE: " + dir.file("runner.key")) &&
                          Catch::Contains("chmod 600"));
  }
  SECTION("a secret key value that is not Z85") {
    env.set("FLAME_SERVER_KEY", server.publicKey);
    env.set("FLAME_SECRET_KEY", "not-a-key");
    CHECK_THROWS_WITH(RunnerOptions::fromEnvironment(), Catch::StartsWith("FLAME_SECRET_KEY is not a Z85 secret key"));
  }
}

namespace {

// Runs a shell command (its stderr joined to stdout) on another thread: exit code and output.
std::future<std::pair<int, std::string>> runCommand(std::string command) {
  return std::async(std::launch::async, [command = std::move(command)] {
    std::string out;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (pipe == nullptr) return std::make_pair(-1, out);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    int status = pclose(pipe);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  });
}

std::optional<std::string> workerBinary() {
  const char* binDir = std::getenv("FLAME_BIN_DIR");
  if (binDir == nullptr || !std::filesystem::exists(std::filesystem::path(binDir) / "flame-worker")) return std::nullopt;
  return std::string(binDir) + "/flame-worker";
}

}  // namespace

TEST_CASE("flame-worker: --server-key and --key-file register over CURVE, a refused key exits 5 at once",
          "[runner][curve]") {
  auto worker = workerBinary();
  if (!worker) {
    WARN("FLAME_BIN_DIR/flame-worker not found: skipping the binary test");
    return;
  }
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  TempDir dir;
  writeKeyPair(dir.file("broker"), server);
  writeKeyPair(dir.file("runner"), own);
  std::string flags = " --log-level warn --failsafe-after 60s --server-key " + dir.file("broker.pub") +
                      " --key-file " + dir.file("runner.key");

  SECTION("allowed") {
    FakeBroker broker(server);
    broker.zap()->allow(own.publicKey);
    auto run = runCommand(*worker + " --broker " + broker.endpoint() + flags);
    broker.registerRunner();
    CHECK(broker.lastKey() == own.publicKey);
    broker.send(msg::Drain{0});
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto [code, out] = run.get();
    INFO(out);
    CHECK(code == 0);
  }
  SECTION("refused") {
    FakeBroker broker(server);  // allows no key
    auto start = realNow();
    auto run = runCommand(*worker + " --broker " + broker.endpoint() + flags);
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto [code, out] = run.get();
    INFO(out);
    CHECK(code == 5);  // unauthorized
    CHECK(realNow() - start < Duration(10000));  // far from the 60 s failsafe (a process start included)
    CHECK(out.find("refused the handshake") != std::string::npos);
    CHECK(out.find(keyFingerprint(own.publicKey)) != std::string::npos);
  }
  SECTION("a key flag completes a key from the environment; one key alone is bad usage") {
    FakeBroker broker(server);
    broker.zap()->allow(own.publicKey);
    auto run = runCommand("FLAME_SERVER_KEY=" + dir.file("broker.pub") + " " + *worker + " --broker " +
                          broker.endpoint() + " --log-level warn --key-file " + dir.file("runner.key"));
    broker.registerRunner();
    CHECK(broker.lastKey() == own.publicKey);
    broker.send(msg::Drain{0});
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(run.get().first == 0);

    // The endpoint is never dialled: the keys are checked before the runner is built.
    auto alone = runCommand(*worker + " --broker tcp://127.0.0.1:1 --key-file " + dir.file("runner.key"));
    REQUIRE(alone.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto [code, out] = alone.get();
    CHECK(code == 2);
    CHECK(out.find("only the secret key is given") != std::string::npos);
  }
  SECTION("a key file that cannot be read is bad usage, named") {
    // The endpoint is never dialled: the keys are read before the runner is built.
    auto run = runCommand(*worker + " --broker tcp://127.0.0.1:1 --server-key " + dir.file("broker.pub") +
                          " --key-file " + dir.file("missing.key"));
    REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto [code, out] = run.get();
    CHECK(code == 2);
    CHECK(out.find("flame-worker: --key-file: " + dir.file("missing.key") + ": cannot read") != std::string::npos);
  }
}
