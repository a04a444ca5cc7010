// BrokerCore under the faults of issue #8: broker restarts that reuse job ids, impostor runners,
// runners that stall past liveness, clients that go silent, a broker that was frozen, and a
// clean shutdown. No sockets: a manual clock and a recording outbox.
#include <catch2/catch.hpp>

#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;

namespace {
// A broker run other than the harness's: what a runner remembers from before a restart.
constexpr uint64_t kPreviousRun = 0x5EED5EED5EED5EEDull;

uint32_t slotsUsed(Harness& h, const std::string& runnerId) { return h.core.findRunner(runnerId)->used; }

msg::Ready readyOf(const std::string& id, uint32_t slots, std::vector<msg::HeldJob> held) {
  msg::Ready r{id, "p", slots, {"echo"}, Harness::token(id), static_cast<uint32_t>(held.size()), 0, "host"};
  r.held = std::move(held);
  return r;
}
}  // namespace

TEST_CASE("a restarted broker's job never takes a result of the same id from the previous run", "[broker][reliability]") {
  // Job ids start from the same value in every broker run: learn the first one.
  JobId first;
  {
    Harness probe;
    auto r = probe.ready("r0", "p", 1);
    probe.submit("c", 1, "p", "echo");
    first = probe.jobsFor(r).at(0).jobId;
  }
  Harness h;
  // The runner still runs job `first` of the previous broker run.
  h.core.onRunner("conn-r1", readyOf("r1", 2, {{first, kPreviousRun}}), {});
  REQUIRE(h.outbox.takeOf<msg::Welcome>("conn-r1").at(0).instance == h.core.instance());
  CHECK(slotsUsed(h, "r1") == 1);
  h.submit("new-caller", 1, "p", "echo", "hello");
  auto jobs = h.jobsFor("conn-r1");
  REQUIRE(jobs.size() == 1);
  REQUIRE(jobs[0].jobId == first);  // the same id, from another run
  // The old job's result arrives first: it must not answer the new caller...
  h.core.onRunner("conn-r1", msg::JobDone{first, ErrorCode::None, "", kPreviousRun}, zmq::message_t("old", 3));
  CHECK(h.outbox.take("new-caller").empty());
  CHECK(slotsUsed(h, "r1") == 1);  // ...and gives its slot back
  h.core.onRunner("conn-r1", msg::JobDone{first, ErrorCode::None, "", h.core.instance()}, zmq::message_t("hello", 5));
  auto answers = h.outbox.take("new-caller");
  REQUIRE(answers.size() == 1);
  CHECK(answers[0].payload == "hello");
  CHECK(slotsUsed(h, "r1") == 0);
}

TEST_CASE("a ready for a known runner id must carry the token of the first one", "[broker][reliability]") {
  Harness h;
  auto real = h.ready("r1", "p", 1);
  for (std::string token : {"", "guess", "secret-of-r2"}) {
    h.core.onRunner("impostor", msg::Ready{"r1", "p", 1, {"echo"}, token, 0, 0, "evil"}, {});
    auto errs = h.outbox.takeOf<msg::Error>("impostor");
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].code == ErrorCode::Unauthorized);
    CHECK(h.outbox.takeOf<msg::Welcome>("impostor").empty());
  }
  // The connection was not taken over: jobs still go to the real runner.
  h.submit("c", 1, "p", "echo", "private");
  CHECK(h.jobPayloadsFor(real) == std::vector<std::string>{"private"});
  CHECK(h.jobPayloadsFor("impostor").empty());
  // The real runner reconnecting with its token is welcome.
  h.core.onRunner("real-again", msg::Ready{"r1", "p", 1, {"echo"}, Harness::token("r1"), 1, 0, "host"}, {});
  CHECK(h.outbox.takeOf<msg::Welcome>("real-again").size() == 1);
}

TEST_CASE("a runner registered without a token cannot be taken over while its connection lives", "[broker][reliability]") {
  Harness h;
  h.core.onRunner("old", msg::Ready{"legacy", "p", 1, {"echo"}, "", 0, 0, "h"}, {});
  REQUIRE(h.outbox.takeOf<msg::Welcome>("old").size() == 1);
  h.core.onRunner("impostor", msg::Ready{"legacy", "p", 1, {"echo"}, "", 0, 0, "evil"}, {});
  CHECK(h.outbox.takeOf<msg::Error>("impostor").at(0).code == ErrorCode::Unauthorized);
  // Once the old connection has been silent for a heartbeat interval, a reconnect is accepted.
  h.advance(Duration(1000));
  h.core.onRunner("new", msg::Ready{"legacy", "p", 1, {"echo"}, "", 0, 0, "h"}, {});
  CHECK(h.outbox.takeOf<msg::Welcome>("new").size() == 1);
}

TEST_CASE("a runner that stalled past liveness gets its still-running retries back, not again", "[broker][reliability]") {
  Harness h;
  auto r = h.ready("r1", "p", 4);
  h.submit("c", 1, "p", "echo", "a", Mode::Call, 60000, false, true, 1);
  h.submit("c", 2, "p", "echo", "b", Mode::Call, 60000, false, true, 1);
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 2);
  h.advance(Duration(4100));  // SIGSTOP: silent past interval x liveness
  REQUIRE(h.core.findRunner("r1") == nullptr);
  CHECK(h.core.findPool("p")->queue.size() == 2);  // retried: waiting for a runner
  // SIGCONT: it re-registers, still running both.
  h.core.onRunner("conn-r1-2", readyOf("r1", 4, {{jobs[0].jobId, h.core.instance()}, {jobs[1].jobId, h.core.instance()}}), {});
  CHECK(h.jobsFor("conn-r1-2").empty());  // nothing sent twice
  CHECK(h.core.findPool("p")->queue.size() == 0);
  CHECK(slotsUsed(h, "r1") == 2);
  h.core.onRunner("conn-r1-2", msg::JobDone{jobs[0].jobId, ErrorCode::None, "", h.core.instance()}, zmq::message_t("A", 1));
  h.core.onRunner("conn-r1-2", msg::JobDone{jobs[1].jobId, ErrorCode::None, "", h.core.instance()}, zmq::message_t("B", 1));
  auto results = h.outbox.takeOf<msg::Result>("c");
  CHECK(results.size() == 2);
  CHECK(slotsUsed(h, "r1") == 0);  // no slot leaked
  h.submit("c", 3, "p", "echo");
  CHECK(h.jobsFor("conn-r1-2").size() == 1);
}

TEST_CASE("a reconnecting runner's held list settles jobs whose dispatch was lost", "[broker][reliability]") {
  Harness h;
  auto r = h.ready("r1", "p", 2);
  h.submit("c", 1, "p", "echo");
  h.submit("c", 2, "p", "echo");
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 2);
  // It reconnects holding only the first: the second never reached it (or its result was lost).
  h.core.onRunner("conn-r1-2", readyOf("r1", 2, {{jobs[0].jobId, h.core.instance()}}), {});
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].requestId == 2);
  CHECK(errs[0].code == ErrorCode::RunnerLost);
  CHECK(slotsUsed(h, "r1") == 1);
  // With more busy than the broker knows, the extra slots are held until their jobDone.
  h.core.onRunner("conn-r1-3",
                  readyOf("r1", 2, {{jobs[0].jobId, h.core.instance()}, {77, kPreviousRun}}), {});
  CHECK(slotsUsed(h, "r1") == 2);
  h.core.onRunner("conn-r1-3", msg::JobDone{77, ErrorCode::None, "", kPreviousRun}, {});
  CHECK(slotsUsed(h, "r1") == 1);
}

TEST_CASE("an idempotent call without an explicit retry count is retried once", "[broker][reliability]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo", "x", Mode::Call, 60000, false, /*idempotent=*/true, /*retries=*/0);
  REQUIRE(h.jobsFor(r1).size() == 1);
  h.core.onRunner(r1, msg::Leaving{"crashed", true}, {});
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  auto r2 = h.ready("r2", "p", 1);
  REQUIRE(h.jobsFor(r2).size() == 1);
  h.core.onRunner(r2, msg::Leaving{"crashed too", true}, {});
  CHECK(h.outbox.takeOf<msg::Error>("c").at(0).code == ErrorCode::RunnerLost);  // one retry only
}

TEST_CASE("a client that goes silent gets cancelled answers for its linked work", "[broker][reliability]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.submit("gone", 1, "p", "echo", "", Mode::Call, 60000, true);  // linked, running
  h.submit("gone", 2, "p", "echo", "", Mode::Call, 60000, true);  // linked, queued
  REQUIRE(h.jobsFor(r).size() == 1);
  for (int i = 0; i < 40; ++i) {
    h.heartbeat(r);
    h.advance(Duration(100));
  }
  auto errs = h.outbox.takeOf<msg::Error>("gone");
  REQUIRE(errs.size() == 2);
  for (auto& e : errs) CHECK(e.code == ErrorCode::Cancelled);
}

TEST_CASE("a broker frozen past liveness reads before it judges: live runners survive", "[broker][reliability]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo");
  REQUIRE(h.jobsFor(r).size() == 1);
  h.heartbeat(r);
  // The whole process stops for 5 s (longer than interval x liveness); the runner's heartbeats
  // of that time wait in the socket. The first thing the loop does is tick().
  h.clock.advance(Duration(5000));
  h.core.tick();
  CHECK(h.core.findRunner("r1") != nullptr);
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  h.heartbeat(r);  // then it reads them
  // A runner that really is silent is still declared lost, one window later.
  h.advance(Duration(4100));
  CHECK(h.core.findRunner("r1") == nullptr);
  CHECK(h.outbox.takeOf<msg::Error>("c").at(0).code == ErrorCode::RunnerLost);
}

TEST_CASE("clean shutdown: new work refused, queued answered, running work finishes, runners drained", "[broker][reliability]") {
  Harness h;
  auto r = h.ready("r1", "p", 2);
  h.submit("c", 1, "p", "echo", "", Mode::Call, 60000);  // running
  h.submit("placer", 2, "p", "echo", "", Mode::Place, 0, true);  // a linked child, running
  h.submit("c", 3, "p", "echo", "", Mode::Call, 60000);  // queued
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 2);
  h.outbox.sent.clear();
  h.core.beginShutdown();
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].requestId == 3);
  CHECK(errs[0].code == ErrorCode::ShuttingDown);
  auto exited = h.outbox.takeOf<msg::ChildExited>("placer");
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].code == ErrorCode::ShuttingDown);
  CHECK(h.outbox.takeOf<msg::CancelJob>(r).size() == 1);
  CHECK(h.outbox.takeOf<msg::Drain>(r).size() == 1);
  h.submit("late", 1, "p", "echo");
  CHECK(h.outbox.takeOf<msg::Error>("late").at(0).code == ErrorCode::ShuttingDown);
  CHECK_FALSE(h.core.shutdownComplete());
  h.done(r, jobs[0].jobId, "finished in time");
  CHECK(h.outbox.take("c").at(0).payload == "finished in time");
  h.done(r, jobs[1].jobId, "", ErrorCode::Cancelled, "stopped");
  CHECK(h.core.shutdownComplete());
}

TEST_CASE("clean shutdown: what is still running at the end of the grace is answered shutting_down", "[broker][reliability]") {
  BrokerOptions o = Harness::defaults();
  o.shutdownGrace = Duration(2000);
  o.keepRunnersOnShutdown = true;
  Harness h(o);
  auto r = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo", "", Mode::Call, 60000);
  REQUIRE(h.jobsFor(r).size() == 1);
  h.core.beginShutdown();
  CHECK(h.outbox.takeOf<msg::Drain>(r).empty());  // kept for a successor
  for (int i = 0; i < 19; ++i) {
    h.heartbeat(r);
    h.advance(Duration(100));
  }
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  h.heartbeat(r);
  h.advance(Duration(200));
  CHECK(h.outbox.takeOf<msg::Error>("c").at(0).code == ErrorCode::ShuttingDown);
  CHECK(h.core.shutdownComplete());
}

TEST_CASE("a repeated ready on the same connection does not lose the jobs sent after it was written",
          "[broker][reliability]") {
  Harness h;
  auto r = h.ready("r1", "p", 3);
  h.submit("c", 1, "p", "echo");
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  // The runner wrote two readies before it saw any job (ZeroMQ reconnected under it and the
  // broker answered each earlier message unknownPeer); the second arrives now, listing nothing.
  h.core.onRunner(r, readyOf("r1", 3, {}), {});
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  CHECK(slotsUsed(h, "r1") == 1);
  h.submit("c", 2, "p", "echo");
  h.submit("c", 3, "p", "echo");
  h.submit("c", 4, "p", "echo");
  CHECK(h.jobsFor(r).size() == 2);  // never more than its 3 slots
  h.done(r, jobs[0].jobId, "one");
  CHECK(h.outbox.takeOf<msg::Result>("c").size() == 1);
}

TEST_CASE("a runner holding more jobs than slots never counts more than its slots", "[broker][reliability]") {
  Harness h;
  // Results waiting to be sent can make a runner hold more than it runs.
  h.core.onRunner("conn-r1", readyOf("r1", 2, {{1, kPreviousRun}, {2, kPreviousRun}, {3, kPreviousRun}}), {});
  CHECK(slotsUsed(h, "r1") == 2);
  h.submit("c", 1, "p", "echo");
  CHECK(h.jobsFor("conn-r1").empty());
  for (JobId id : {1, 2, 3}) h.core.onRunner("conn-r1", msg::JobDone{id, ErrorCode::None, "", kPreviousRun}, {});
  CHECK(h.jobsFor("conn-r1").size() == 1);  // the waiting job went out once slots came back
  CHECK(slotsUsed(h, "r1") == 1);
}
