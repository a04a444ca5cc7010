// Retries with backoff in BrokerCore (PROTOCOL.md, Retries): which failures retry, when the
// retry runs, what the client and the status see. No sockets, a manual clock.
#include <catch2/catch.hpp>

#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;

namespace {
msg::Submit retrying(uint64_t requestId, uint8_t retries, uint32_t backoffMs = 0, uint32_t backoffMaxMs = 0) {
  msg::Submit s;
  s.requestId = requestId;
  s.pool = "p";
  s.function = "echo";
  s.timeoutMs = 60'000;
  s.splitBudget = true;
  s.retries = retries;
  s.retryHandlerError = true;
  s.retryBackoffMs = backoffMs;
  s.retryBackoffMaxMs = backoffMaxMs;
  return s;
}
void submit(Harness& h, const std::string& client, msg::Submit s, const std::string& payload = "work") {
  h.core.onClient(client, std::move(s), zmq::message_t(payload.data(), payload.size()));
}
}  // namespace

TEST_CASE("retries: a handler error is retried after an exponential, jittered, capped backoff", "[broker][retries]") {
  Harness h;
  auto r = h.ready("r1", "p", 1);
  h.core.onClient("w", msg::Subscribe{1, "p"}, {});
  submit(h, "c", retrying(5, 3, 1000, 3000));
  // Expected bases 1 s, 2 s, 3 s (4 s capped), each jittered down by at most 25 %.
  const std::vector<std::pair<int, int>> windows{{750, 1000}, {1500, 2000}, {2250, 3000}};
  for (size_t attempt = 0; attempt < windows.size(); ++attempt) {
    auto jobs = h.jobsFor(r);
    REQUIRE(jobs.size() == 1);
    h.done(r, jobs[0].jobId, "", ErrorCode::HandlerError, "boom " + std::to_string(attempt));
    CHECK(h.outbox.takeOf<msg::Error>("c").empty());  // not answered: it runs again
    auto events = h.outbox.takeOf<msg::Event>("w");
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == EventKind::JobRetried);
    CHECK(events[0].attempt == attempt + 1);
    CHECK(events[0].message == "handler_error: boom " + std::to_string(attempt));
    auto [lo, hi] = windows[attempt];
    CHECK(events[0].delayMs >= uint32_t(lo));
    CHECK(events[0].delayMs <= uint32_t(hi));
    // Nothing runs before the delay is over, and the retry runs as soon as it is.
    h.heartbeat(r);
    h.core.onClient("w", msg::Heartbeat{}, {});
    h.clock.advance(Duration(events[0].delayMs - 1));
    h.core.tick();
    CHECK(h.outbox.takeOf<msg::Job>(r).empty());
    CHECK(h.core.nextWakeup() <= h.clock.now() + Duration(1));
    h.clock.advance(Duration(1));
    h.core.tick();
    std::vector<Sent> again;
    for (auto& m : h.outbox.take(r))
      if (std::holds_alternative<msg::Job>(m.message)) again.push_back(std::move(m));
    REQUIRE(again.size() == 1);
    CHECK(again[0].payload == "work");  // the same payload every time
    h.outbox.sent.push_front(std::move(again[0]));
  }
  auto last = h.jobsFor(r);
  REQUIRE(last.size() == 1);
  h.done(r, last[0].jobId, "", ErrorCode::HandlerError, "boom 3");
  auto errors = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errors.size() == 1);  // retries used up: the last failure is the answer
  CHECK(errors[0].requestId == 5);
  CHECK(errors[0].code == ErrorCode::HandlerError);
  CHECK(errors[0].message == "boom 3");
  auto status = h.core.status(1).pools.at(0);
  CHECK(status.retried == 3);
  CHECK(status.failed == 1);
  CHECK(h.core.jobCount() == 0);
}

TEST_CASE("retries: only the failures asked for are retried, and never a place", "[broker][retries]") {
  Harness h;
  auto r = h.ready("r1", "p", 4);
  msg::Submit plain = retrying(1, 3);
  plain.retryHandlerError = false;
  submit(h, "c", plain);
  msg::Submit place = retrying(2, 3);
  place.mode = Mode::Place;
  submit(h, "c", place);
  msg::Submit timeoutOnly = retrying(3, 3);
  timeoutOnly.retryHandlerError = false;
  timeoutOnly.retryTimeout = true;
  submit(h, "c", timeoutOnly);
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 3);
  for (auto& j : jobs) h.done(r, j.jobId, "", ErrorCode::HandlerError, "no");
  CHECK(h.outbox.takeOf<msg::Error>("c").size() == 2);  // the call that asked for timeout retries, and the first
  CHECK(h.outbox.takeOf<msg::ChildExited>("c").size() == 1);
  CHECK(h.jobsFor(r).empty());
  CHECK(h.core.status(1).pools.at(0).retried == 0);
}

TEST_CASE("retries: a run budget that runs out is retried as a new job while the old one is cancelled", "[broker][retries]") {
  Harness h;
  auto r = h.ready("r1", "p", 2);
  msg::Submit s = retrying(9, 1);
  s.retryHandlerError = false;
  s.retryTimeout = true;
  s.timeoutMs = 1000;
  submit(h, "c", s);
  auto first = h.jobsFor(r);
  REQUIRE(first.size() == 1);
  h.advance(Duration(1000));
  auto sent = h.outbox.take(r);
  // The old attempt is cancelled on its runner, and the retry (a new job id) takes the other slot.
  REQUIRE(sent.size() >= 2);
  std::vector<msg::CancelJob> cancels;
  std::vector<msg::Job> retries;
  for (auto& m : sent) {
    if (auto* c = std::get_if<msg::CancelJob>(&m.message)) cancels.push_back(*c);
    if (auto* j = std::get_if<msg::Job>(&m.message)) retries.push_back(*j);
  }
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].jobId == first[0].jobId);
  REQUIRE(retries.size() == 1);
  CHECK(retries[0].jobId != first[0].jobId);
  CHECK(retries[0].budgetMs == 1000);  // a whole run budget again
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  // The old attempt's end only gives its slot back; the retry's result answers the request.
  h.done(r, first[0].jobId, "", ErrorCode::Cancelled, "cancelled");
  CHECK(h.outbox.takeOf<msg::Error>("c").empty());
  CHECK(h.core.findRunner("r1")->used == 1);
  h.done(r, retries[0].jobId, "second time lucky");
  auto results = h.outbox.take("c");
  REQUIRE(results.size() == 1);
  REQUIRE(std::holds_alternative<msg::Result>(results[0].message));
  CHECK(std::get<msg::Result>(results[0].message).requestId == 9);
  CHECK(results[0].payload == "second time lucky");
  CHECK(h.core.findRunner("r1")->used == 0);
  CHECK(h.core.jobCount() == 0);
  CHECK(h.core.clientSessionCount() == 1);
  // The retry's own run budget running out is final.
  submit(h, "c", s);
  REQUIRE(h.jobsFor(r).size() == 1);
  h.advance(Duration(1000));
  h.heartbeat(r);
  auto retry = h.jobsFor(r);
  REQUIRE(retry.size() == 1);
  h.advance(Duration(1000));
  auto errors = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].code == ErrorCode::Timeout);
}

TEST_CASE("retries: a lost runner's idempotent job waits its backoff, and a cancel during it ends it", "[broker][retries]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  msg::Submit s = retrying(1, 2, 500);
  s.retryHandlerError = false;
  s.idempotent = true;
  submit(h, "c", s);
  submit(h, "c", [&] { auto t = s; t.requestId = 2; return t; }());
  REQUIRE(h.jobsFor(r1).size() == 1);
  auto r2 = h.ready("r2", "p", 1);
  REQUIRE(h.jobsFor(r2).size() == 1);
  CHECK(h.core.dropRunner("r1", "machine gone"));
  CHECK(h.core.dropRunner("r2", "machine gone"));
  auto r3 = h.ready("r3", "p", 2);
  CHECK(h.jobsFor(r3).empty());  // both wait out their backoff
  h.core.onClient("c", msg::Cancel{2}, {});
  auto cancelled = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].code == ErrorCode::Cancelled);
  h.heartbeat(r3);
  h.advance(Duration(500));
  auto jobs = h.jobsFor(r3);
  REQUIRE(jobs.size() == 1);  // the cancelled one is gone for good
  h.done(r3, jobs[0].jobId, "ok");
  CHECK(h.outbox.takeOf<msg::Result>("c").size() == 1);
  CHECK(h.core.status(1).pools.at(0).retried == 2);
  CHECK(h.core.jobCount() == 0);
}

TEST_CASE("retries: the pool's retry_backoff applies to jobs that set none, and shutdown ends a waiting retry", "[broker][retries]") {
  Harness h;
  PoolSettings settings;
  settings.retryBackoff = Duration(2000);
  settings.retryBackoffMax = Duration(2000);
  h.core.declarePool("p", settings);
  auto r = h.ready("r1", "p", 1);
  submit(h, "c", retrying(1, 1));
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  h.done(r, jobs[0].jobId, "", ErrorCode::HandlerError, "flaky");
  h.heartbeat(r);
  h.advance(Duration(1400));  // 2 s jittered down by at most 25 %: not before 1.5 s
  CHECK(h.jobsFor(r).empty());
  h.core.beginShutdown();
  auto errors = h.outbox.takeOf<msg::Error>("c");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].code == ErrorCode::ShuttingDown);
  h.advance(Duration(1000));
  CHECK(h.jobsFor(r).empty());
  CHECK(h.core.jobCount() == 0);
}

TEST_CASE("retries: an idempotent child waiting out its backoff after its runner was lost can be stopped", "[broker][retries]") {
  Harness h;
  auto r1 = h.ready("r1", "p", 1);
  msg::Submit s = retrying(1, 1, 1000);
  s.retryHandlerError = false;
  s.idempotent = true;
  s.mode = Mode::Place;
  submit(h, "c", s);
  auto placed = h.outbox.takeOf<msg::Placed>("c");
  REQUIRE(placed.size() == 1);
  CHECK(h.core.dropRunner("r1", "machine gone"));
  CHECK(h.core.status(1).pools.at(0).retried == 1);
  h.core.onClient("other", msg::StopChild{placed[0].childId}, {});
  CHECK(h.outbox.takeOf<msg::Stopped>("other").size() == 1);  // at once: it runs nowhere
  auto r2 = h.ready("r2", "p", 1);
  h.heartbeat(r2);
  h.advance(Duration(1000));
  CHECK(h.jobsFor(r2).empty());
  CHECK(h.core.jobCount() == 0);
}
