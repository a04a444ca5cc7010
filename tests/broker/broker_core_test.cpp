// BrokerCore unit tests: no sockets, a manual clock, a recording outbox.
#include <catch2/catch.hpp>

#include <cstring>

#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;

TEST_CASE("credit: a runner never gets more jobs than slots, completions return credit", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 2);
  CHECK(h.outbox.takeOf<msg::Welcome>(r).size() == 1);
  for (uint64_t i = 1; i <= 3; ++i) h.submit("c1", i, "p", "echo", "x" + std::to_string(i));
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 2);
  CHECK(h.core.findPool("p")->queue.size() == 1);
  CHECK(h.core.findRunner("r1")->used == 2);

  h.done(r, jobs[0].jobId, "result-1");
  auto results = h.outbox.take("c1");
  REQUIRE(results.size() == 1);
  auto& res = std::get<msg::Result>(results[0].message);
  CHECK(res.requestId == 1);
  CHECK(results[0].payload == "result-1");
  // The freed slot went to the queued job at once.
  auto next = h.jobsFor(r);
  REQUIRE(next.size() == 1);
  CHECK(h.core.findRunner("r1")->used == 2);
  CHECK(h.core.findPool("p")->queue.size() == 0);
}

TEST_CASE("the payload reaches the runner and results go to the right client", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 4);
  h.submit("alice", 7, "p", "echo", "from-alice");
  h.submit("bob", 7, "p", "echo", "from-bob");
  auto sent = h.outbox.take(r);
  std::vector<std::string> payloads;
  std::vector<JobId> ids;
  for (auto& s : sent)
    if (auto* j = std::get_if<msg::Job>(&s.message)) {
      payloads.push_back(s.payload);
      ids.push_back(j->jobId);
    }
  REQUIRE(payloads == std::vector<std::string>{"from-alice", "from-bob"});
  h.done(r, ids[1], "to-bob");
  h.done(r, ids[0], "to-alice");
  auto a = h.outbox.take("alice");
  auto b = h.outbox.take("bob");
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  CHECK(a[0].payload == "to-alice");
  CHECK(b[0].payload == "to-bob");
}

TEST_CASE("queue order is FIFO", "[broker]") {
  Harness h;
  h.core.declarePool("p", {});
  for (uint64_t i = 1; i <= 5; ++i) h.submit("c", i, "p", "echo", std::to_string(i));
  auto r = h.ready("r1", "p", 1);
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    auto sent = h.outbox.take(r);
    for (auto& s : sent)
      if (auto* j = std::get_if<msg::Job>(&s.message)) {
        order.push_back(s.payload);
        h.done(r, j->jobId);
      }
  }
  CHECK(order == std::vector<std::string>{"1", "2", "3", "4", "5"});
}

TEST_CASE("pack fills the busiest runner, spread balances", "[broker]") {
  SECTION("pack") {
    Harness h;
    auto r1 = h.ready("r1", "p", 3);
    auto r2 = h.ready("r2", "p", 3);
    for (uint64_t i = 1; i <= 4; ++i) h.submit("c", i, "p", "echo");
    auto on1 = h.jobsFor(r1).size();
    auto on2 = h.jobsFor(r2).size();
    // The first runner fills to 3 before the second gets anything.
    CHECK(on1 == 3);
    CHECK(on2 == 1);
  }
  SECTION("spread") {
    BrokerOptions o = Harness::defaults();
    o.placement = Placement::Spread;
    Harness h(o);
    auto r1 = h.ready("r1", "p", 3);
    auto r2 = h.ready("r2", "p", 3);
    for (uint64_t i = 1; i <= 4; ++i) h.submit("c", i, "p", "echo");
    CHECK(h.jobsFor(r1).size() == 2);
    CHECK(h.jobsFor(r2).size() == 2);
  }
}

TEST_CASE("a queued job past its deadline gets timeout and leaves the queue", "[broker]") {
  Harness h;
  h.core.declarePool("p", {});
  h.submit("c", 1, "p", "echo", "", Mode::Call, 500);
  h.advance(Duration(400));
  CHECK(h.outbox.take("c").empty());
  h.advance(Duration(100));
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::Timeout);
  CHECK(errs[0].requestId == 1);
  CHECK(h.core.jobCount() == 0);
  CHECK(h.core.findPool("p")->queue.size() == 0);
  // A runner arriving later gets nothing stale.
  auto r = h.ready("r1", "p", 1);
  CHECK(h.jobsFor(r).empty());
}

TEST_CASE("a running job past its deadline: timeout to the client, cancel to the runner, slot kept until done",
          "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo", "", Mode::Call, 1000);
  h.submit("c", 2, "p", "echo", "", Mode::Call, 60000);
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].budgetMs == 1000);
  h.advance(Duration(1000));
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::Timeout);
  auto cancels = h.outbox.takeOf<msg::CancelJob>(r);
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].jobId == jobs[0].jobId);
  CHECK(h.core.findRunner("r1")->used == 1);  // still busy until the runner says so
  CHECK(h.jobsFor(r).empty());
  h.done(r, jobs[0].jobId, "", ErrorCode::Cancelled, "stopped");
  CHECK(h.outbox.take("c").empty());  // answered once, not twice
  auto next = h.jobsFor(r);
  REQUIRE(next.size() == 1);  // the slot is free again and went to job 2
}

TEST_CASE("a silent runner is declared lost, its jobs fail with runner_lost, idempotent ones are retried",
          "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 2);
  h.submit("c", 1, "p", "echo", "plain");
  h.submit("c", 2, "p", "echo", "retry-me", Mode::Call, 0, false, true, 1);
  REQUIRE(h.jobsFor(r1).size() == 2);
  auto r2 = h.ready("r2", "p", 1);
  // r2 keeps heartbeating, r1 goes silent.
  for (int i = 0; i < 40; ++i) {
    h.heartbeat(r2);
    h.advance(Duration(100));
  }
  CHECK(h.core.findRunner("r1") == nullptr);
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].requestId == 1);
  CHECK(errs[0].code == ErrorCode::RunnerLost);
  // The idempotent job went to r2 with its payload intact.
  CHECK(h.jobPayloadsFor(r2) == std::vector<std::string>{"retry-me"});
}

TEST_CASE("liveness: runner_lost arrives within interval x liveness", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo");
  h.advance(Duration(2900));
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  h.advance(Duration(1200));
  CHECK(h.outbox.takeOf<msg::Error>("c").size() == 1);
}

TEST_CASE("the broker heartbeats every runner every interval", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.outbox.take(r);
  h.heartbeat(r);
  h.advance(Duration(1000));
  CHECK(h.outbox.takeOf<msg::Heartbeat>(r).size() == 1);
}

TEST_CASE("a client that goes silent has its linked work cancelled, unlinked work kept", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 2);
  h.submit("gone", 1, "p", "echo", "", Mode::Call, 60000, true);   // linked, running
  h.submit("gone", 2, "p", "echo", "", Mode::Call, 60000, false);  // unlinked, running
  h.submit("gone", 3, "p", "echo", "", Mode::Call, 60000, true);   // linked, queued
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 2);
  for (int i = 0; i < 40; ++i) {
    h.heartbeat(r);
    h.advance(Duration(100));
  }
  auto cancels = h.outbox.takeOf<msg::CancelJob>(r);
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].jobId == jobs[0].jobId);
  CHECK(h.core.findPool("p")->queue.size() == 0);  // the linked queued job is gone
  // The unlinked job still completes and is answered.
  h.done(r, jobs[1].jobId, "ok");
  auto res = h.outbox.takeOf<msg::Result>("gone");
  REQUIRE(res.size() == 1);
  CHECK(res[0].requestId == 2);
  // A client that keeps heartbeating keeps its linked work.
  h.submit("alive", 1, "p", "echo", "", Mode::Call, 60000, true);
  for (int i = 0; i < 40; ++i) {
    h.heartbeat(r);
    h.core.onClient("alive", msg::Heartbeat{}, {});
    h.advance(Duration(100));
  }
  CHECK(h.outbox.takeOf<msg::CancelJob>(r).empty());
}

TEST_CASE("submit errors: unknown pool, unknown function, bad names, payload too large, duplicate id, queue full",
          "[broker]") {
  BrokerOptions o = Harness::defaults();
  o.maxPayloadBytes = 10;
  Harness h(o);
  auto r = h.ready("r1", "p", 1, {"echo"});
  auto errorFor = [&](auto&& submit) {
    submit();
    auto errs = h.outbox.takeOf<msg::Error>("c");
    REQUIRE(errs.size() == 1);
    return errs[0];
  };
  CHECK(errorFor([&] { h.submit("c", 1, "nope", "echo"); }).code == ErrorCode::UnknownPool);
  CHECK(errorFor([&] { h.submit("c", 2, "p", "nope"); }).code == ErrorCode::UnknownFunction);
  CHECK(errorFor([&] { h.submit("c", 3, "", "echo"); }).code == ErrorCode::BadRequest);
  CHECK(errorFor([&] { h.submit("c", 4, "p", ""); }).code == ErrorCode::BadRequest);
  auto big = errorFor([&] { h.submit("c", 5, "p", "echo", "01234567890"); });
  CHECK(big.code == ErrorCode::PayloadTooLarge);
  CHECK(big.requestId == 5);
  h.submit("c", 6, "p", "echo");
  CHECK(errorFor([&] { h.submit("c", 6, "p", "echo"); }).code == ErrorCode::BadRequest);
  h.core.declarePool("small", PoolSettings{Placement::Pack, Duration(30000), 2});
  h.submit("c", 10, "small", "echo");
  h.submit("c", 11, "small", "echo");
  auto full = errorFor([&] { h.submit("c", 12, "small", "echo"); });
  CHECK(full.code == ErrorCode::QueueFull);
  CHECK(h.core.findPool("small")->queue.size() == 2);
}

TEST_CASE("cast is accepted at once and runs, its failure is counted", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1, {"fail"});
  h.submit("c", 1, "p", "fail", "boom", Mode::Cast);
  auto acc = h.outbox.takeOf<msg::Accepted>("c");
  REQUIRE(acc.size() == 1);
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  CHECK(acc[0].jobId == jobs[0].jobId);
  h.done(r, jobs[0].jobId, "", ErrorCode::HandlerError, "boom");
  CHECK(h.outbox.take("c").empty());
  CHECK(h.core.findPool("p")->counters.failed == 1);
}

TEST_CASE("place: a child holds its slot until stopped, stop answers when it ended", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1, {"echo", "serve"});
  h.submit("c", 1, "p", "serve", "", Mode::Place, 0, true);
  auto placed = h.outbox.takeOf<msg::Placed>("c");
  REQUIRE(placed.size() == 1);
  CHECK(placed[0].runnerId == "r1");
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  CHECK(jobs[0].mode == Mode::Place);
  CHECK(jobs[0].budgetMs == kInfiniteMs);
  // The child holds the only slot: a call waits.
  h.submit("c", 2, "p", "echo", "", Mode::Call, kInfiniteMs);
  CHECK(h.jobsFor(r).empty());
  for (int i = 0; i < 120; ++i) {  // a minute passes: the child has no deadline
    h.heartbeat(r);
    h.core.onClient("c", msg::Heartbeat{}, {});  // the linked placer stays alive
    h.advance(Duration(500));
  }
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  CHECK(h.outbox.takeOf<msg::CancelJob>(r).empty());
  h.core.onClient("other", msg::StopChild{placed[0].childId}, {});
  CHECK(h.outbox.takeOf<msg::CancelJob>(r).size() == 1);
  CHECK(h.outbox.takeOf<msg::Stopped>("other").empty());
  h.done(r, placed[0].childId, "", ErrorCode::Cancelled, "stopped");
  CHECK(h.outbox.takeOf<msg::Stopped>("other").size() == 1);
  auto exited = h.outbox.takeOf<msg::ChildExited>("c");
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].code == ErrorCode::Cancelled);
  // Stopping again: not found.
  h.core.onClient("other", msg::StopChild{placed[0].childId}, {});
  auto errs = h.outbox.takeOf<msg::Error>("other");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::NotFound);
}

TEST_CASE("cancel by the client: queued job dropped, running job cancelled on its runner", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo");
  h.submit("c", 2, "p", "echo");
  auto jobs = h.jobsFor(r);
  h.core.onClient("c", msg::Cancel{2}, {});
  auto e2 = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(e2.size() == 1);
  CHECK(e2[0].code == ErrorCode::Cancelled);
  CHECK(h.core.findPool("p")->queue.size() == 0);
  h.core.onClient("c", msg::Cancel{1}, {});
  CHECK(h.outbox.takeOf<msg::CancelJob>(r).size() == 1);
  CHECK(h.outbox.takeOf<msg::Error>("c").size() == 1);
  h.core.onClient("c", msg::Cancel{99}, {});
  auto nf = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(nf.size() == 1);
  CHECK(nf[0].code == ErrorCode::NotFound);
}

TEST_CASE("runner registration: unknown connections are asked for ready, reconnects keep jobs", "[broker]") {
  Harness h;
  h.core.onRunner("stranger", msg::Heartbeat{}, {});
  auto errs = h.outbox.takeOf<msg::Error>("stranger");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::UnknownPeer);

  auto r = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo");
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  // Same runner id from a new connection: it keeps its job and its result still arrives.
  h.core.onRunner("new-conn", msg::Ready{"r1", "p", 1, {"echo"}, Harness::token("r1"), 1, 0, ""}, {});
  CHECK(h.outbox.takeOf<msg::Welcome>("new-conn").size() == 1);
  h.done("new-conn", jobs[0].jobId, "late");
  auto res = h.outbox.take("c");
  REQUIRE(res.size() == 1);
  CHECK(res[0].payload == "late");

  h.core.onRunner("bad", msg::Ready{"", "p", 1, {}, "", 0, 0, ""}, {});
  CHECK(h.outbox.takeOf<msg::Error>("bad").at(0).code == ErrorCode::BadRequest);
  h.core.onRunner("bad", msg::Ready{"r9", "p", 0, {}, "", 0, 0, ""}, {});
  CHECK(h.outbox.takeOf<msg::Error>("bad").at(0).code == ErrorCode::BadRequest);
}

TEST_CASE("a re-registering runner's busy slots come back as it finishes them", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 2, {"echo"}, 2);  // a new broker: the runner still runs 2 old jobs
  h.submit("c", 1, "p", "echo");
  CHECK(h.jobsFor(r).empty());
  h.done(r, 12345);  // one of the old jobs ends
  CHECK(h.jobsFor(r).size() == 1);
}

TEST_CASE("leaving: draining takes no new work, exiting fails what is left at once", "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 2);
  h.submit("c", 1, "p", "echo");
  REQUIRE(h.jobsFor(r1).size() == 1);
  h.core.onRunner(r1, msg::Leaving{"retiring", false}, {});
  h.submit("c", 2, "p", "echo");
  CHECK(h.jobsFor(r1).empty());
  CHECK(h.core.findPool("p")->queue.size() == 1);
  h.core.onRunner(r1, msg::Leaving{"retired", true}, {});
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::RunnerLost);
  CHECK(errs[0].message.find("retired") != std::string::npos);
  CHECK(h.core.findRunner("r1") == nullptr);
}

TEST_CASE("a runner whose connection is gone at dispatch is dropped and the job goes elsewhere", "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  auto r2 = h.ready("r2", "p", 1);
  h.outbox.unreachable.insert(r1);
  h.submit("c", 1, "p", "echo", "payload");
  CHECK(h.core.findRunner("r1") == nullptr);
  CHECK(h.jobPayloadsFor(r2) == std::vector<std::string>{"payload"});
}

TEST_CASE("jobs found undelivered after dispatch go back to the queue in order, delivered ones are lost",
          "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 3);
  h.submit("c", 1, "p", "echo", "delivered");
  h.submit("c", 2, "p", "echo", "first");
  h.submit("c", 3, "p", "echo", "second");
  auto jobs = h.jobsFor(r1);
  REQUIRE(jobs.size() == 3);
  // The socket loop found r1's connection gone when it flushed the last two dispatches.
  h.core.onUndeliverable(r1, {jobs[1].jobId, jobs[2].jobId}, "its connection is gone");
  CHECK(h.core.findRunner("r1") == nullptr);
  auto errs = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errs.size() == 1);  // only the job that did reach r1 (and is not idempotent)
  CHECK(errs[0].requestId == 1);
  CHECK(errs[0].code == ErrorCode::RunnerLost);
  CHECK(h.core.findPool("p")->queue.size() == 2);
  // The next runner gets them in their original order, payloads intact; no retry was used up.
  auto r2 = h.ready("r2", "p", 2);
  CHECK(h.jobPayloadsFor(r2) == std::vector<std::string>{"first", "second"});
  // A report about a connection no runner uses any more changes nothing.
  h.core.onUndeliverable(r1, {jobs[1].jobId}, "again");
  CHECK(h.core.findRunner("r2")->used == 2);
}

TEST_CASE("an undelivered job that was cancelled meanwhile is dropped, not requeued", "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo");
  auto jobs = h.jobsFor(r1);
  REQUIRE(jobs.size() == 1);
  h.core.onClient("c", msg::Cancel{1}, {});
  h.core.onUndeliverable(r1, {jobs[0].jobId}, "its connection is gone");
  CHECK(h.core.findPool("p")->queue.size() == 0);
  CHECK(h.core.jobCount() == 0);
}

TEST_CASE("a waiting job's payload gets its own buffer, releasing the received one", "[broker]") {
  // With zero-copy receive a small payload is a slice of a shared 8 KiB receive buffer: a job
  // that waits must not keep that buffer alive.
  Harness h;
  h.core.declarePool("p", {});
  static int released = 0;
  released = 0;
  auto* buffer = new char[64]();
  std::memcpy(buffer, "queued payload", 14);
  zmq::message_t payload(buffer, 14, [](void* data, void*) {
    delete[] static_cast<char*>(data);
    ++released;
  });
  msg::Submit s;
  s.requestId = 1;
  s.pool = "p";
  s.function = "echo";
  h.core.onClient("c", s, std::move(payload));
  CHECK(released == 1);
  CHECK(h.core.findPool("p")->queue.size() == 1);
  auto r = h.ready("r1", "p", 1);
  CHECK(h.jobPayloadsFor(r) == std::vector<std::string>{"queued payload"});
}

TEST_CASE("status shows pools, queue depth, slots and runners", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 3);
  h.submit("c", 1, "p", "echo");
  h.core.declarePool("empty", {});
  h.submit("c", 2, "empty", "echo");
  auto st = h.core.status(5);
  CHECK(st.requestId == 5);
  REQUIRE(st.pools.size() == 2);
  CHECK(st.pools[0].name == "empty");
  CHECK(st.pools[0].queued == 1);
  CHECK(st.pools[1].slotsUsed == 1);
  CHECK(st.pools[1].slotsTotal == 3);
  REQUIRE(st.pools[1].runners.size() == 1);
  CHECK(st.pools[1].runners[0].state == "ready");
}

TEST_CASE("the deadline heap does not grow with finished jobs", "[broker]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  for (uint64_t i = 1; i <= 20000; ++i) {
    h.submit("c", i, "p", "echo", "", Mode::Call, 60000);
    auto jobs = h.jobsFor(r);
    REQUIRE(jobs.size() == 1);
    h.done(r, jobs[0].jobId);
    h.outbox.sent.clear();
    if (i % 1000 == 0) h.core.tick();
  }
  CHECK(h.core.jobCount() == 0);
  CHECK(h.core.nextWakeup() <= h.clock.now() + Duration(1000));
}

TEST_CASE("a job refused by a leaving runner goes to another runner with its payload", "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  h.submit("c", 1, "p", "echo", "keep-me");
  auto jobs = h.jobsFor(r1);
  REQUIRE(jobs.size() == 1);
  h.done(r1, jobs[0].jobId, "", ErrorCode::ShuttingDown, "draining");
  CHECK(h.outbox.take("c").empty());  // not a failure
  CHECK(h.core.findRunner("r1")->phase == RunnerPhase::Draining);
  auto r2 = h.ready("r2", "p", 1);
  CHECK(h.jobPayloadsFor(r2) == std::vector<std::string>{"keep-me"});
}

TEST_CASE("a child stopped while its dispatch was undelivered is answered, not placed again", "[broker]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  h.submit("placer", 1, "p", "echo", "", Mode::Place);
  auto jobs = h.jobsFor(r1);
  REQUIRE(jobs.size() == 1);
  h.outbox.take("placer");  // its `placed` went into the same (undelivered) burst
  h.core.onClient("stopper", msg::StopChild{jobs[0].jobId}, {});
  h.core.onUndeliverable(r1, {jobs[0].jobId}, "its connection is gone");
  auto errs = h.outbox.takeOf<msg::Error>("placer");
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].requestId == 1);
  CHECK(errs[0].code == ErrorCode::Cancelled);
  CHECK(h.outbox.takeOf<msg::Stopped>("stopper").size() == 1);
  CHECK(h.core.jobCount() == 0);
  CHECK(h.core.findPool("p")->queue.size() == 0);
}

TEST_CASE("a job for a function no free runner serves waits while later jobs for a served one run",
          "[broker][dispatch]") {
  Harness h;
  // gpu serves "render" only and is busy; cpu serves "echo" only and is free.
  auto gpu = h.ready("gpu", "p", 1, {"render"});
  auto cpu = h.ready("cpu", "p", 2, {"echo"});
  h.submit("c", 1, "p", "render", "first-render");
  REQUIRE(h.jobsFor(gpu).size() == 1);
  h.submit("c", 2, "p", "render", "second-render");  // waits: the only render runner is busy
  h.submit("c", 3, "p", "echo", "e1");               // behind it in arrival order
  h.submit("c", 4, "p", "echo", "e2");
  auto echoes = h.jobsFor(cpu);
  REQUIRE(echoes.size() == 2);
  CHECK(h.core.findPool("p")->queue.size() == 1);
  for (auto& job : echoes) h.done(cpu, job.jobId, "ok");
  CHECK(h.outbox.takeOf<msg::Result>("c").size() == 2);  // requests 3 and 4 answered
  CHECK(h.jobsFor(gpu).empty());                         // the render job still waits its turn
  h.submit("c", 5, "p", "render", "third-render");
  // The gpu runner frees up: the older render job goes first, in FIFO order per function.
  auto firstJob = h.core.findRunner("gpu")->jobs.front();
  h.done(gpu, firstJob, "done");
  auto next = h.jobPayloadsFor(gpu);
  REQUIRE(next.size() == 1);
  CHECK(next[0] == "second-render");
}

TEST_CASE("dispatch across functions keeps arrival order when a runner serves both", "[broker][dispatch]") {
  Harness h;
  h.submit("c", 1, "p2", "a", "1");  // no pool yet: unknown pool
  CHECK(h.outbox.takeOf<msg::Error>("c").size() == 1);
  h.core.declarePool("p2", PoolSettings{});
  h.submit("c", 2, "p2", "a", "a1");
  h.submit("c", 3, "p2", "b", "b1");
  h.submit("c", 4, "p2", "a", "a2");
  auto r = h.ready("r", "p2", 1, {"a", "b"});
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    auto sent = h.outbox.take(r);
    for (auto& s : sent)
      if (auto* job = std::get_if<msg::Job>(&s.message)) {
        order.push_back(s.payload);
        h.done(r, job->jobId, "");
      }
  }
  CHECK(order == std::vector<std::string>{"a1", "b1", "a2"});
}

TEST_CASE("a cast has no deadline unless its pool sets cast_timeout, a call keeps the pool's timeout",
          "[broker][deadlines]") {
  Harness h;
  h.core.declarePool("p", {});  // timeout 30 s
  PoolSettings bounded;
  bounded.castTimeout = Duration(5000);
  h.core.declarePool("q", bounded);
  h.submit("c", 1, "p", "echo", "", Mode::Cast);
  h.submit("c", 2, "p", "echo", "", Mode::Call);
  h.submit("c", 3, "q", "echo", "", Mode::Cast);
  h.advance(Duration(6000));
  CHECK(h.core.findPool("q")->queue.size() == 0);  // cast_timeout 5 s
  h.advance(Duration(60000));
  CHECK(h.core.findPool("p")->queue.size() == 1);  // the cast still waits; the call timed out
  bool callTimedOut = false;
  for (auto& e : h.outbox.takeOf<msg::Error>("c")) callTimedOut |= e.requestId == 2 && e.code == ErrorCode::Timeout;
  CHECK(callTimedOut);
}

TEST_CASE("split budgets: waiting for a runner does not eat the run budget, and has its own bound",
          "[broker][deadlines]") {
  Harness h;
  h.core.declarePool("p", {});
  auto submit = [&](uint64_t requestId, Mode mode, uint32_t runMs, uint32_t waitMs, bool split = true) {
    msg::Submit s;
    s.requestId = requestId;
    s.mode = mode;
    s.pool = "p";
    s.function = "echo";
    s.timeoutMs = runMs;
    s.waitTimeoutMs = waitMs;
    s.splitBudget = split;
    h.core.onClient("c", s, zmq::message_t());
  };
  auto errorFor = [&](uint64_t requestId) -> std::optional<msg::Error> {
    for (auto& e : h.outbox.takeOf<msg::Error>("c"))
      if (e.requestId == requestId) return e;
    return std::nullopt;
  };

  SECTION("a cold start longer than the run budget: the call still gets its whole budget") {
    submit(1, Mode::Call, 1000, 5000);
    h.advance(Duration(3000));  // the "boot": three times the run budget
    CHECK_FALSE(errorFor(1));
    auto conn = h.ready("r1", "p", 1);
    auto jobs = h.jobsFor(conn);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].budgetMs == 1000);  // counted from now
    h.advance(Duration(900));
    CHECK_FALSE(errorFor(1));
    h.advance(Duration(200));
    auto e = errorFor(1);
    REQUIRE(e);
    CHECK(e->code == ErrorCode::Timeout);
    CHECK(e->message.find("running") != std::string::npos);
  }
  SECTION("no runner within the wait bound: timeout, saying it waited for a runner") {
    submit(2, Mode::Call, 60000, 1000);
    h.advance(Duration(1100));
    auto e = errorFor(2);
    REQUIRE(e);
    CHECK(e->code == ErrorCode::Timeout);
    CHECK(e->message.find("waited 1s for a runner of pool 'p'") != std::string::npos);
  }
  SECTION("an old client's budget still counts from receipt") {
    submit(3, Mode::Call, 1000, 0, false);
    h.advance(Duration(1100));
    auto e = errorFor(3);
    REQUIRE(e);
    CHECK(e->message.find("queued") != std::string::npos);
  }
  SECTION("a place's timeout bounds its placement only: the child then runs until it returns or is stopped") {
    submit(4, Mode::Place, 2000, 0, false);  // an old client: timeoutMs = the placement bound
    h.advance(Duration(1000));
    auto conn = h.ready("r1", "p", 1);
    auto jobs = h.jobsFor(conn);
    REQUIRE(jobs.size() == 1);
    CHECK(jobs[0].budgetMs == kInfiniteMs);
    for (int i = 0; i < 120; ++i) {  // a minute, the runner alive
      h.heartbeat(conn);
      h.advance(Duration(500));
    }
    CHECK(h.outbox.takeOf<msg::CancelJob>(conn).empty());
    CHECK_FALSE(errorFor(4));
    CHECK(h.core.findRunner("r1"));
    CHECK(h.core.findJob(jobs[0].jobId));  // still running
  }
  SECTION("a place that nobody takes within its bound fails timeout") {
    submit(5, Mode::Place, 0, 1500);  // split: no lifetime bound, placement within 1.5 s
    h.advance(Duration(1600));
    auto e = errorFor(5);
    REQUIRE(e);
    CHECK(e->message.find("waited") != std::string::npos);
  }
}

TEST_CASE("an unlinked child's placer hears childExited while it is connected, not after", "[broker][place]") {
  Harness h;
  auto r = h.ready("r1", "p", 2);
  h.submit("c", 1, "p", "echo", "", Mode::Place, 0, false);  // unlinked
  h.submit("c", 2, "p", "echo", "", Mode::Place, 0, false);
  auto placed = h.outbox.takeOf<msg::Placed>("c");
  REQUIRE(placed.size() == 2);
  // It returns while its placer is connected: the placer hears it, linked or not.
  h.done(r, placed[0].childId, "", ErrorCode::HandlerError, "boom");
  auto exited = h.outbox.takeOf<msg::ChildExited>("c");
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].childId == placed[0].childId);
  CHECK(exited[0].code == ErrorCode::HandlerError);
  CHECK(exited[0].message == "boom");
  // The placer goes silent: the unlinked child keeps running, and its end is not sent to a
  // placer that is gone.
  for (int i = 0; i < 10; ++i) {
    h.heartbeat(r);
    h.advance(h.core.options().heartbeatInterval);
    h.core.tick();
  }
  CHECK(h.outbox.takeOf<msg::CancelJob>(r).empty());
  h.done(r, placed[1].childId);
  CHECK(h.outbox.takeOf<msg::ChildExited>("c").empty());
}
