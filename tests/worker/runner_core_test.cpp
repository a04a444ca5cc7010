// RunnerCore on a ManualClock with recording effects: no sockets, no threads, no sleeps. Every
// timed rule (liveness, backoff, failsafe, drain and cancel graces, deadlines, heartbeats) is
// checked at its exact instant: one millisecond before, nothing; at it, the effect.
#include "worker/runner_core.h"

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/codec.h"
#include "common/log.h"

using namespace flame;

namespace {

const bool kLogLevelSet = [] {
  const char* level = std::getenv("FLAME_LOG_LEVEL");
  return setLogLevel(level ? level : "off");
}();

struct SentMessage {
  Message message;
  std::optional<std::string> payload;
};

// Plays the shell: a connection that is up or not, a send queue that may be full, jobs that
// "start" (recorded) and finish when the test says so.
class FakeEffects final : public RunnerEffects {
 public:
  void connect() override {
    ++connects;
    open = true;
    up = false;  // a new connection is not up until the test says so
  }
  void disconnect() override {
    ++disconnects;
    open = false;
    up = false;
  }
  SendStatus send(zmq::message_t& header, zmq::message_t* payload) override {
    REQUIRE(open);
    if (!up || full) return SendStatus::WouldBlock;
    auto decoded = decode(header);
    INFO(decoded.error);
    REQUIRE(decoded.ok());
    SentMessage m{*decoded.message, std::nullopt};
    if (payload) m.payload = payload->to_string();
    sent.push_back(std::move(m));
    return SendStatus::Ok;
  }
  std::string startJob(std::shared_ptr<RunningJob> job, const std::string& function) override {
    if (!startFailure.empty()) return startFailure;
    started.push_back({job, function});
    return {};
  }
  void cancelJob(RunningJob& job) override {
    job.stop.request_stop();
    cancelled.push_back(job.jobId);
  }
  size_t finish(RunExit exit) override {
    REQUIRE_FALSE(finished);
    finished = exit;
    open = false;
    return 0;
  }

  // Messages of kind T sent so far (removed from `sent`); other kinds stay.
  template <class T>
  std::vector<T> take() {
    std::vector<T> out;
    for (auto it = sent.begin(); it != sent.end();) {
      if (std::holds_alternative<T>(it->message)) {
        out.push_back(std::get<T>(it->message));
        it = sent.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }
  // The one message sent, which must be a T; fails otherwise.
  template <class T>
  T only() {
    INFO("sent " << sent.size() << " messages");
    REQUIRE(sent.size() == 1);
    INFO("kind #" << sent[0].message.index());
    REQUIRE(std::holds_alternative<T>(sent[0].message));
    T m = std::get<T>(sent[0].message);
    sent.clear();
    return m;
  }
  std::shared_ptr<RunningJob> job(uint64_t id, uint64_t instance = 0) const {
    for (auto& s : started)
      if (s.job->jobId == id && s.job->instance == instance) return s.job;
    FAIL("job " << id << " of instance " << instance << " was not started");
    return nullptr;
  }

  struct Started {
    std::shared_ptr<RunningJob> job;
    std::string function;
  };
  bool open = false, up = false, full = false;
  int connects = 0, disconnects = 0;
  std::vector<SentMessage> sent;
  std::vector<Started> started;
  std::vector<uint64_t> cancelled;
  std::string startFailure;
  std::optional<RunExit> finished;
};

RunnerOptions coreOptions() {
  RunnerOptions o;
  o.pool = "test";
  o.concurrency = 2;
  o.heartbeatInterval = Duration(1000);
  o.liveness = 3;
  o.failsafeAfter = Duration(30000);
  o.drainGrace = Duration(10000);
  o.cancelGrace = Duration(5000);
  o.reconnectMin = Duration(100);
  o.reconnectMax = Duration(1600);
  o.reconnectSeed = 42;
  return o;
}

// A core, its clock and effects, and the broker's side of the conversation.
struct Harness {
  explicit Harness(RunnerOptions o = coreOptions(), std::string token = "")
      : options(withToken(std::move(o), token)),
        core(options, RunnerIdentity{"r-1", token.empty() ? "secret-of-r-1-xyz" : token, "host", 77}, clock, fx) {
    core.addFunction("echo");
    core.addFunction("hold");
  }
  static RunnerOptions withToken(RunnerOptions o, const std::string& token) {
    o.token = token;
    return o;
  }

  // Starts, lets the connection come up, and returns the ready it sent.
  msg::Ready startAndConnect() {
    core.start();
    core.tick();
    return connectionUp();
  }
  // The current connection comes up: the pending ready goes out.
  msg::Ready connectionUp() {
    REQUIRE(fx.open);
    REQUIRE(core.wantsWritable());
    fx.up = true;
    core.onWritable();
    core.tick();
    return fx.only<msg::Ready>();
  }
  void fromBroker(Message m, std::string payload = {}) {
    core.onMessage(std::move(m), zmq::message_t(payload.data(), payload.size()));
    core.tick();
  }
  void welcome(uint64_t instance = 7, uint32_t intervalMs = 1000, uint32_t liveness = 3, uint64_t maxPayload = 0) {
    fromBroker(msg::Welcome{intervalMs, liveness, instance, maxPayload});
  }
  void job(uint64_t id, std::string function = "hold", std::string payload = {}, uint32_t budgetMs = kInfiniteMs) {
    fromBroker(msg::Job{id, std::move(function), Mode::Call, budgetMs}, std::move(payload));
  }
  void done(uint64_t id, HandlerResult result, uint64_t instance = 7) {
    core.onJobDone(JobOutcome{id, std::move(result), instance});
    core.tick();
  }
  // Moves the clock to `t` and ticks, as the shell's timer would.
  void advance(Duration d) {
    clock.advance(d);
    core.tick();
  }
  void advanceTo(TimePoint t) {
    REQUIRE(t >= clock.now());
    advance(t - clock.now());
  }

  ManualClock clock;
  FakeEffects fx;
  RunnerOptions options;
  RunnerCore core;
};

}  // namespace

TEST_CASE("core: ready waits for the connection, welcome sets the heartbeat, heartbeats every interval",
          "[runner][core]") {
  Harness h;
  h.core.start();
  CHECK(h.fx.connects == 1);
  CHECK(h.fx.sent.empty());  // the connection is not up: ready is pending
  CHECK(h.core.wantsWritable());
  CHECK(h.core.link() == RunnerCore::Link::Connecting);

  auto ready = h.connectionUp();
  CHECK(ready.runnerId == "r-1");
  CHECK(ready.pool == "test");
  CHECK(ready.slots == 2);
  CHECK(ready.functions == std::vector<std::string>{"echo", "hold"});
  CHECK(ready.token == "secret-of-r-1-xyz");
  CHECK(ready.busy == 0);
  CHECK(ready.held.empty());
  CHECK(ready.pid == 77);
  CHECK_FALSE(h.core.wantsWritable());

  // Nothing but ready before welcome, however long it takes (within liveness).
  h.advance(Duration(2999));
  CHECK(h.fx.sent.empty());

  h.welcome(7, /*intervalMs=*/250, /*liveness=*/4);
  CHECK(h.core.link() == RunnerCore::Link::Registered);
  TimePoint welcomed = h.clock.now();
  CHECK(h.core.nextWakeup() == welcomed + Duration(250));
  h.advance(Duration(249));
  CHECK(h.fx.sent.empty());
  h.advance(Duration(1));
  auto hb = h.fx.only<msg::Heartbeat>();
  CHECK(hb.intervalMs == 250);
  // The broker's rule is adopted: silent for 250 x 4 from its last message = dead.
  h.advance(Duration(250));
  h.advance(Duration(250));
  CHECK(h.fx.take<msg::Heartbeat>().size() == 2);  // at 500 and 750
  h.advanceTo(welcomed + Duration(999));
  CHECK(h.core.link() == RunnerCore::Link::Registered);
  h.advance(Duration(1));
  CHECK(h.core.link() == RunnerCore::Link::Down);
}

TEST_CASE("core: silence for interval x liveness drops the connection at that instant, then a fresh one "
          "follows the backoff",
          "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  TimePoint lastHeard = h.clock.now();
  h.advanceTo(lastHeard + Duration(2999));
  CHECK(h.fx.disconnects == 0);
  h.fx.take<msg::Heartbeat>();
  h.advance(Duration(1));  // lastHeard + 1000 x 3
  CHECK(h.fx.disconnects == 1);
  CHECK(h.core.link() == RunnerCore::Link::Down);
  Duration delay = h.core.lastBackoff();
  // Jitter only shortens: within [min x 0.75, min], never below min's floor.
  CHECK(delay <= Duration(100));
  CHECK(delay >= Duration(75));
  CHECK(h.core.nextWakeup() == h.clock.now() + delay);
  h.advance(delay - Duration(1));
  CHECK(h.fx.connects == 1);
  h.advance(Duration(1));
  CHECK(h.fx.connects == 2);
  CHECK(h.core.link() == RunnerCore::Link::Connecting);
  h.connectionUp();
}

TEST_CASE("core: each silent connection doubles the backoff up to max, any message resets it",
          "[runner][core]") {
  Harness h;
  h.startAndConnect();
  std::vector<Duration> delays;
  for (int i = 0; i < 7; ++i) {
    // No answer on this connection: dead one liveness window after it opened.
    TimePoint opened = h.clock.now();
    h.advanceTo(opened + Duration(3000));
    REQUIRE(h.core.link() == RunnerCore::Link::Down);
    delays.push_back(h.core.lastBackoff());
    h.advance(h.core.lastBackoff());
    REQUIRE(h.core.link() == RunnerCore::Link::Connecting);
    h.connectionUp();
  }
  // Bases 100, 200, 400, 800, 1600, 1600, 1600 (max), each cut by at most a quarter.
  const Duration bases[] = {Duration(100), Duration(200), Duration(400), Duration(800),
                            Duration(1600), Duration(1600), Duration(1600)};
  for (size_t i = 0; i < delays.size(); ++i) {
    INFO("attempt " << i);
    CHECK(delays[i] <= bases[i]);
    CHECK(delays[i] >= std::max(Duration(100), bases[i] * 3 / 4));
  }
  // A sign of life (even an unreadable message) resets it.
  h.core.onUndecodable("garbage");
  TimePoint heard = h.clock.now();
  h.advanceTo(heard + Duration(3000));
  REQUIRE(h.core.link() == RunnerCore::Link::Down);
  CHECK(h.core.lastBackoff() <= Duration(100));

  // The same seed draws the same delays: jitter is reproducible in tests.
  Harness again;
  again.startAndConnect();
  for (size_t i = 0; i < 3; ++i) {
    again.advance(Duration(3000));
    CHECK(again.core.lastBackoff() == delays[i]);
    again.advance(again.core.lastBackoff());
    again.connectionUp();
  }
}

TEST_CASE("core: failsafe ends a runner whose broker never answered, at failsafeAfter exactly",
          "[runner][core]") {
  auto o = coreOptions();
  o.failsafeAfter = Duration(5000);
  Harness h(o);
  TimePoint started = h.clock.now();
  h.startAndConnect();
  // Connections come and go with the backoff; the failsafe counts from the start regardless.
  while (h.clock.now() < started + Duration(4999)) {
    TimePoint next = std::min(h.core.nextWakeup(), started + Duration(4999));
    h.advanceTo(next);
    if (h.core.wantsWritable()) h.connectionUp();
  }
  CHECK_FALSE(h.fx.finished);
  CHECK(h.fx.connects > 1);
  h.advanceTo(started + Duration(5000));
  CHECK(h.fx.finished == RunExit::FailsafeExpired);
  CHECK(h.core.finished());
  CHECK(h.core.nextWakeup() == TimePoint::max());
}

TEST_CASE("core: failsafe after welcome cancels the running job, says nothing more, and ends when it returns",
          "[runner][core]") {
  auto o = coreOptions();
  o.failsafeAfter = Duration(8000);
  Harness h(o);
  h.startAndConnect();
  h.welcome();
  h.job(1);
  TimePoint lastHeard = h.clock.now();
  // Reconnects come and go (nothing answers), until the failsafe.
  while (!h.fx.finished && !h.fx.cancelled.size()) {
    h.advanceTo(h.core.nextWakeup());
    h.fx.sent.clear();
    if (h.core.wantsWritable()) h.connectionUp();
  }
  CHECK(h.clock.now() == lastHeard + Duration(8000));
  CHECK(h.fx.cancelled == std::vector<uint64_t>{1});
  CHECK(h.fx.job(1, 7)->stop.stop_requested());
  CHECK_FALSE(h.fx.finished);  // waits for the job (within its cancel grace)
  CHECK_FALSE(h.fx.open);
  h.fx.sent.clear();
  h.done(1, "too late");
  CHECK(h.fx.finished == RunExit::FailsafeExpired);
  CHECK(h.fx.sent.empty());
}

TEST_CASE("core: drain refuses new work, waits for running jobs, then leaves", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  h.job(1);
  h.fromBroker(msg::Drain{2000});
  auto leaving = h.fx.only<msg::Leaving>();
  CHECK_FALSE(leaving.exiting);
  CHECK(leaving.reason == "drain requested by the broker");
  h.job(2, "echo");
  auto refused = h.fx.only<msg::JobDone>();
  CHECK(refused.jobId == 2);
  CHECK(refused.code == ErrorCode::ShuttingDown);
  CHECK(refused.instance == 7);
  h.advance(Duration(1999));
  h.fx.take<msg::Heartbeat>();
  CHECK_FALSE(h.fx.finished);
  CHECK(h.fx.cancelled.empty());
  h.done(1, "finished");
  REQUIRE(h.fx.sent.size() == 2);
  auto done = std::get<msg::JobDone>(h.fx.sent[0].message);
  CHECK(done.jobId == 1);
  CHECK(done.code == ErrorCode::None);
  CHECK(h.fx.sent[0].payload == std::optional<std::string>("finished"));
  CHECK(std::get<msg::Leaving>(h.fx.sent[1].message).exiting);
  CHECK(h.fx.finished == RunExit::Drained);
}

TEST_CASE("core: requestDrain cancels what still runs when drainGrace ends", "[runner][core]") {
  auto o = coreOptions();
  o.drainGrace = Duration(2000);
  Harness h(o);
  h.startAndConnect();
  h.welcome();
  h.job(3);
  h.core.requestDrain();
  h.core.tick();
  CHECK_FALSE(h.fx.only<msg::Leaving>().exiting);
  TimePoint drained = h.clock.now();
  h.advanceTo(drained + Duration(1999));
  h.fx.take<msg::Heartbeat>();
  CHECK(h.fx.cancelled.empty());
  h.advance(Duration(1));
  CHECK(h.fx.cancelled == std::vector<uint64_t>{3});
  CHECK_FALSE(h.fx.finished);
  h.done(3, "done anyway");  // the job ends cancelled, whatever the handler returned
  auto done = h.fx.take<msg::JobDone>();
  REQUIRE(done.size() == 1);
  CHECK(done[0].code == ErrorCode::Cancelled);
  CHECK(h.fx.take<msg::Leaving>().at(0).exiting);
  CHECK(h.fx.finished == RunExit::Drained);
}

TEST_CASE("core: a handler that ignores cancellation past cancelGrace retires the runner",
          "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome(7, 1000, /*liveness=*/100);
  h.job(7);
  h.fromBroker(msg::CancelJob{7});
  CHECK(h.fx.cancelled == std::vector<uint64_t>{7});
  TimePoint cancelled = h.clock.now();
  h.advanceTo(cancelled + Duration(4999));
  h.fx.take<msg::Heartbeat>();
  CHECK(h.fx.sent.empty());
  h.advance(Duration(1));
  // Retire: leaving (draining), and since the only job left is stuck, leaving (exiting) at once.
  auto leavings = h.fx.take<msg::Leaving>();
  REQUIRE(leavings.size() == 2);
  CHECK_FALSE(leavings[0].exiting);
  CHECK(leavings[0].reason == "retired: job 7 ignored cancellation");
  CHECK(leavings[1].exiting);
  CHECK(h.fx.finished == RunExit::Retired);
  // A late outcome of an abandoned job is ignored.
  h.done(7, "ignored you");
  CHECK(h.fx.sent.empty());
}

TEST_CASE("core: a retiring runner lets its other jobs finish first", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome(7, 1000, /*liveness=*/100);
  h.job(1);
  h.job(2);
  h.fromBroker(msg::CancelJob{1});
  h.advance(Duration(5000));
  h.fx.take<msg::Heartbeat>();
  CHECK_FALSE(h.fx.only<msg::Leaving>().exiting);
  CHECK_FALSE(h.fx.finished);  // job 2 still runs (within the drain grace)
  h.done(2, "two");
  CHECK(h.fx.take<msg::JobDone>().at(0).jobId == 2);
  CHECK(h.fx.take<msg::Leaving>().at(0).exiting);
  CHECK(h.fx.finished == RunExit::Retired);
}

TEST_CASE("core: requestStop cancels running jobs and ends when they return", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  h.job(4);
  h.core.requestStop();
  h.core.tick();
  CHECK(h.fx.cancelled == std::vector<uint64_t>{4});
  CHECK_FALSE(h.fx.finished);
  h.done(4, "x");
  CHECK(h.fx.take<msg::JobDone>().at(0).code == ErrorCode::Cancelled);
  CHECK(h.fx.take<msg::Leaving>().at(0).exiting);
  CHECK(h.fx.finished == RunExit::Stopped);
}

TEST_CASE("core: a job's budget runs out on the runner's clock, its outcome is timeout", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  h.job(9, "hold", "", /*budgetMs=*/1000);
  CHECK(h.fx.job(9, 7)->deadline == h.clock.now() + Duration(1000));
  h.advance(Duration(999));
  CHECK(h.fx.cancelled.empty());
  h.advance(Duration(1));
  CHECK(h.fx.cancelled == std::vector<uint64_t>{9});
  h.fx.take<msg::Heartbeat>();
  h.done(9, "late");
  auto done = h.fx.only<msg::JobDone>();
  CHECK(done.code == ErrorCode::Timeout);
  CHECK(done.message == "deadline exceeded");
  // No budget at all: refused without running.
  h.job(10, "hold", "", 0);
  CHECK(h.fx.only<msg::JobDone>().code == ErrorCode::Timeout);
}

TEST_CASE("core: jobs beyond the slots, unknown functions and duplicates", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  h.job(1);
  h.job(2);
  h.job(3);
  auto refused = h.fx.only<msg::JobDone>();
  CHECK(refused.jobId == 3);
  CHECK(refused.code == ErrorCode::Internal);
  CHECK(refused.message == "no free slot");
  h.job(2);  // a duplicate of a running job: answering it would return a slot still in use
  CHECK(h.fx.sent.empty());
  CHECK(h.fx.started.size() == 2);
  h.done(1, "one");
  h.job(4, "nope");
  auto unknown = h.fx.take<msg::JobDone>();
  REQUIRE(unknown.size() == 2);
  CHECK(unknown[1].code == ErrorCode::UnknownFunction);
  CHECK(unknown[1].message.find("nope") != std::string::npos);
  // A shell that cannot start a thread: internal.
  h.fx.startFailure = "no threads";
  h.job(5);
  auto failed = h.fx.only<msg::JobDone>();
  CHECK(failed.code == ErrorCode::Internal);
  CHECK(failed.message == "no threads");
}

TEST_CASE("core: handler errors are repaired to UTF-8, results over the broker's limit are payload_too_large",
          "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome(7, 1000, 3, /*maxPayload=*/10);
  h.job(1, "echo", "payload");
  CHECK(h.fx.job(1, 7)->payload.to_string() == "payload");  // the frame itself, not a copy
  h.done(1, fail("bad \xff bytes"));
  auto error = h.fx.only<msg::JobDone>();
  CHECK(error.code == ErrorCode::HandlerError);
  CHECK(error.message == "bad \xEF\xBF\xBD bytes");
  h.job(2, "echo");
  h.done(2, "0123456789A");
  auto big = h.fx.sent.at(0);
  CHECK(std::get<msg::JobDone>(big.message).code == ErrorCode::PayloadTooLarge);
  CHECK(std::get<msg::JobDone>(big.message).message.find("11 bytes") != std::string::npos);
  CHECK_FALSE(big.payload);
  h.fx.sent.clear();
  h.job(3, "echo");
  h.done(3, "0123456789");
  CHECK(h.fx.sent.at(0).payload == std::optional<std::string>("0123456789"));
}

TEST_CASE("core: results wait for welcome, after a reconnect ready holds running jobs and undelivered results",
          "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.job(1, "echo");  // before welcome: instance unknown (0)
  h.done(1, "early", 0);
  CHECK(h.fx.sent.empty());
  CHECK(h.core.queuedResults() == 1);
  h.welcome(11);
  auto early = h.fx.only<msg::JobDone>();
  CHECK(early.jobId == 1);
  CHECK(early.instance == 0);

  h.job(2);
  h.job(3);
  h.done(3, "three", 11);
  h.fx.sent.clear();
  // The broker goes silent: the connection is dropped; a result finished meanwhile waits.
  h.advance(Duration(3000));
  REQUIRE(h.core.link() == RunnerCore::Link::Down);
  h.fx.sent.clear();
  h.advance(h.core.lastBackoff());
  h.core.onJobDone(JobOutcome{2, HandlerResult("two"), 11});
  h.core.tick();
  auto ready = h.connectionUp();
  CHECK(ready.busy == 1);
  CHECK(ready.held == std::vector<msg::HeldJob>{{2, 11}});
  h.welcome(11);
  auto delivered = h.fx.only<msg::JobDone>();
  CHECK(delivered.jobId == 2);
  CHECK(delivered.instance == 11);
}

TEST_CASE("core: a restarted broker's job with an old id is another job, cancels and results name their run",
          "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome(11);
  h.job(1);
  // The broker restarts: our heartbeats meet unknownPeer, one ready goes out, the new run welcomes.
  h.fromBroker(msg::Error{0, ErrorCode::UnknownPeer, "who are you", 0});
  auto ready = h.fx.only<msg::Ready>();
  CHECK(ready.held == std::vector<msg::HeldJob>{{1, 11}});
  h.welcome(22);
  CHECK(h.core.brokerInstance() == 22);
  h.job(1);
  REQUIRE(h.fx.started.size() == 2);
  CHECK(h.fx.started[1].job->instance == 22);
  // cancelJob 1 from the new run cancels the new run's job 1 only.
  h.fromBroker(msg::CancelJob{1});
  CHECK(h.fx.job(1, 22)->stop.stop_requested());
  CHECK_FALSE(h.fx.job(1, 11)->stop.stop_requested());
  h.done(1, "old", 11);
  h.done(1, "new", 22);
  auto dones = h.fx.take<msg::JobDone>();
  REQUIRE(dones.size() == 2);
  CHECK(dones[0].instance == 11);
  CHECK(dones[0].code == ErrorCode::None);
  CHECK(dones[1].instance == 22);
  CHECK(dones[1].code == ErrorCode::Cancelled);
}

TEST_CASE("core: a burst of unknownPeer answers makes one ready", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  for (int i = 0; i < 4; ++i) h.fromBroker(msg::Error{0, ErrorCode::UnknownPeer, "who are you", 0});
  CHECK(h.fx.take<msg::Ready>().size() == 1);
  CHECK(h.core.link() == RunnerCore::Link::Connecting);
  // No heartbeats until the broker welcomes us again.
  h.advance(Duration(2000));
  CHECK(h.fx.sent.empty());
  h.welcome();
  h.advance(Duration(1000));
  CHECK(h.fx.take<msg::Heartbeat>().size() == 1);
}

TEST_CASE("core: a booted runner whose token is refused ends at once, saying nothing more", "[runner][core]") {
  Harness h(coreOptions(), "boot-token-1");
  auto ready = h.startAndConnect();
  CHECK(ready.token == "boot-token-1");
  h.fromBroker(msg::Error{0, ErrorCode::Unauthorized, "bad token", 0});
  CHECK(h.fx.finished == RunExit::Unauthorized);
  CHECK(h.fx.disconnects == 1);
  CHECK(h.fx.sent.empty());
}

TEST_CASE("core: a static runner refused while its id is held retries with a growing backoff", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  std::vector<Duration> delays;
  for (int i = 0; i < 3; ++i) {
    h.fromBroker(msg::Error{0, ErrorCode::Unauthorized, "runner id 'r-1' is registered with another token", 0});
    REQUIRE(h.core.link() == RunnerCore::Link::Down);
    CHECK_FALSE(h.fx.finished);
    delays.push_back(h.core.lastBackoff());
    h.advance(h.core.lastBackoff() - Duration(1));
    CHECK(h.core.link() == RunnerCore::Link::Down);
    h.advance(Duration(1));
    h.connectionUp();
  }
  CHECK(delays[0] <= Duration(100));
  CHECK(delays[1] > Duration(100));  // a refusal is not a success: the backoff grows
  CHECK(delays[2] > Duration(200));
  h.welcome();
  h.job(1, "echo");
  CHECK(h.fx.started.size() == 1);
}

TEST_CASE("core: a result that finds the send queue full waits, then goes out when it can", "[runner][core]") {
  Harness h;
  h.startAndConnect();
  h.welcome();
  h.job(1);
  h.job(2);
  h.fx.full = true;
  h.done(1, "one");
  h.done(2, "two");
  CHECK(h.core.queuedResults() == 2);
  CHECK(h.core.wantsWritable());
  h.fx.full = false;
  h.core.onWritable();
  auto dones = h.fx.take<msg::JobDone>();
  REQUIRE(dones.size() == 2);
  CHECK(dones[0].jobId == 1);  // in order
  CHECK(dones[1].jobId == 2);
  CHECK_FALSE(h.core.wantsWritable());
}

TEST_CASE("core: nextWakeup is the earliest deadline it keeps", "[runner][core]") {
  Harness h;
  CHECK(h.core.nextWakeup() == TimePoint::max());  // not started
  TimePoint t0 = h.clock.now();
  h.startAndConnect();
  CHECK(h.core.nextWakeup() == t0 + Duration(3000));  // the connection's liveness
  h.welcome();
  CHECK(h.core.nextWakeup() == t0 + Duration(1000));  // the first heartbeat
  h.job(1, "hold", "", 400);
  CHECK(h.core.nextWakeup() == t0 + Duration(400));  // the job's deadline
  h.advance(Duration(400));
  CHECK(h.core.nextWakeup() == t0 + Duration(1000));  // the heartbeat again (cancel grace is 5 s)
}

TEST_CASE("core: options are checked", "[runner][core]") {
  ManualClock clock;
  FakeEffects fx;
  auto bad = [&](auto change) {
    auto o = coreOptions();
    change(o);
    return [o, &clock, &fx] { RunnerCore core(o, RunnerIdentity{"r", "s", "h", 1}, clock, fx); };
  };
  CHECK_THROWS_AS(bad([](RunnerOptions& o) { o.pool = ""; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](RunnerOptions& o) { o.concurrency = 0; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](RunnerOptions& o) { o.liveness = 0; })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](RunnerOptions& o) { o.reconnectMax = Duration(1); })(), std::invalid_argument);
  CHECK_THROWS_AS(bad([](RunnerOptions& o) { o.cancelGrace = Duration(-1); })(), std::invalid_argument);
}

// ---- refused handshakes (issue 10) ----

TEST_CASE("core: a refused handshake ends the runner at once, unauthorized, saying nothing more",
          "[runner][core][curve]") {
  Harness h;
  h.core.start();
  h.core.tick();
  REQUIRE(h.fx.connects == 1);
  TimePoint refusedAt = h.clock.now();
  h.core.onHandshakeRefused("the broker refused this runner's key abcdefgh… (ZAP status 400)");
  h.core.tick();
  CHECK(h.fx.finished == RunExit::Unauthorized);
  CHECK(h.core.exitReason() == RunExit::Unauthorized);
  CHECK(h.fx.disconnects == 1);
  CHECK(h.fx.sent.empty());               // the pending ready was never sent
  CHECK(h.clock.now() == refusedAt);      // no failsafe, no backoff: at once
  CHECK(h.core.nextWakeup() == TimePoint::max());
  h.advance(Duration(60000));
  CHECK(h.fx.connects == 1);              // and no reconnects afterwards
}

TEST_CASE("core: a refusal of a later handshake cancels running jobs and ends unauthorized",
          "[runner][core][curve]") {
  Harness h;
  h.startAndConnect();
  h.core.onHandshakeSucceeded();  // changes nothing: registration is by ready/welcome
  CHECK(h.core.link() == RunnerCore::Link::Connecting);
  h.welcome();
  h.job(1);
  REQUIRE(h.core.runningJobs() == 1);
  h.core.onHandshakeRefused("revoked");
  h.core.tick();
  CHECK(h.fx.cancelled == std::vector<uint64_t>{1});
  CHECK_FALSE(h.fx.finished);  // waits for the job (within its cancel grace)
  h.done(1, "late");
  CHECK(h.fx.finished == RunExit::Unauthorized);
  CHECK(h.fx.take<msg::JobDone>().empty());  // the broker refused us: nothing more is said
}

TEST_CASE("core: a refusal after the runner finished is ignored", "[runner][core][curve]") {
  Harness h;
  h.startAndConnect();
  h.core.requestStop();
  h.core.tick();
  REQUIRE(h.fx.finished == RunExit::Stopped);
  h.core.onHandshakeRefused("late");
  CHECK(h.core.exitReason() == RunExit::Stopped);
}
