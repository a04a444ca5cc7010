// The `flame` CLI: in-process through runCli() against the fake broker, plus one run of the
// real binary when FLAME_BIN_DIR is set (ctest sets it).
#include "client/cli.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client/fake_broker.h"

using namespace flame;
using flame::testing::FakeBroker;

namespace {

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs the CLI on another thread (the test thread drives the fake broker meanwhile).
// `tty`: the CLI is told its output is a terminal.
std::future<CliRun> startCli(std::vector<std::string> args, std::string input = "",
                             std::string defaultBroker = kDefaultClientEndpoint, bool tty = false) {
  return std::async(std::launch::async,
                    [args = std::move(args), input = std::move(input), defaultBroker, tty] {
                      std::vector<const char*> argv{"flame"};
                      for (const auto& a : args) argv.push_back(a.c_str());
                      std::istringstream in(input);
                      std::ostringstream out, err;
                      CliRun run;
                      run.code = runCli(static_cast<int>(argv.size()), argv.data(),
                                        CliStreams{in, out, err, tty}, defaultBroker);
                      run.out = out.str();
                      run.err = err.str();
                      return run;
                    });
}

CliRun finish(std::future<CliRun>& f) {
  REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  return f.get();
}

msg::StatusReply onePool(uint64_t requestId) {
  msg::StatusReply reply;
  reply.requestId = requestId;
  msg::PoolStatus pool;
  pool.name = "thumbs";
  pool.slotsTotal = 4;
  pool.max = 3;
  pool.runners.push_back(msg::RunnerStatus{"thumbs-r1", "ready", 0, 4, 42, "box", 250});
  reply.pools.push_back(pool);
  return reply;
}

}  // namespace

TEST_CASE("cli: status --json prints one JSON object", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"status", "--json"}, "", broker.endpoint());  // broker from the default
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  broker.send(got->first.peer, onePool(got->second.requestId));
  auto r = finish(run);
  CHECK(r.code == 0);
  CHECK(r.err.empty());
  CHECK(
      r.out ==
      R"({"pools":[{"name":"thumbs","queued":0,"slots_used":0,"slots_total":4,"runners":[{"id":"thumbs-r1",)"
      R"("state":"ready","slots_used":0,"slots_total":4,"pid":42,"host":"box","idle_ms":250}],"booting":0,)"
      R"("boots":0,"boot_failures":0,"completed":0,"failed":0,"retried":0,"min":0,"max":3}]})"
      "\n");
}

TEST_CASE("cli: status prints tables, --broker may follow the subcommand", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"status", "--broker", broker.endpoint(), "--log-level", "error"});
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  broker.send(got->first.peer, onePool(got->second.requestId));
  auto r = finish(run);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("POOL    QUEUED  SLOTS"));
  CHECK_THAT(r.out, Catch::Contains("thumbs-r1  ready  0/4    42   box   250ms"));
}

TEST_CASE("cli: call prints the result bytes verbatim", "[client][cli]") {
  FakeBroker broker;
  const std::string result("line\0two", 8);

  SECTION("payload argument") {
    auto run = startCli({"--broker", broker.endpoint(), "call", "--timeout", "30s", "--idempotent",
                         "--retries", "2", "thumbs", "resize", "hello"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->second.mode == Mode::Call);
    CHECK(got->second.timeoutMs == 30000);
    CHECK(got->second.idempotent);
    CHECK(got->second.retries == 2);
    CHECK(got->second.link);
    CHECK(got->first.payload == std::string("hello"));
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, result);
    auto r = finish(run);
    CHECK(r.code == 0);
    CHECK(r.out == result);  // no added newline
  }
  SECTION("- reads stdin; no payload is empty") {
    auto run = startCli({"--broker", broker.endpoint(), "call", "thumbs", "resize", "-"},
                        std::string("in\0put", 6));
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->first.payload == std::string("in\0put", 6));
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, result);
    CHECK(finish(run).out == result);

    auto empty = startCli({"--broker", broker.endpoint(), "call", "thumbs", "resize"}, "ignored");
    auto second = broker.expect<msg::Submit>();
    REQUIRE(second);
    CHECK(second->first.payload == std::string());
    broker.send(second->first.peer, msg::Result{second->second.requestId, 2});
    CHECK(finish(empty).code == 0);
  }
}

TEST_CASE("cli: a failed request prints error: <code>: <message> and exits 1", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "call", "nope", "f"});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  broker.send(got->first.peer,
              msg::Error{got->second.requestId, ErrorCode::UnknownPool, "no pool named nope", 0});
  auto r = finish(run);
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "error: unknown_pool: no pool named nope\n");
}

TEST_CASE("cli: cast prints the job id, unlinked", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "cast", "p", "log", "x"});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->second.mode == Mode::Cast);
  CHECK_FALSE(got->second.link);
  broker.send(got->first.peer, msg::Accepted{got->second.requestId, 99});
  auto r = finish(run);
  CHECK(r.code == 0);
  CHECK(r.out == "99\n");
}

TEST_CASE("cli: place prints the handle, stop stops it", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "place", "p", "serve"});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->second.mode == Mode::Place);
  CHECK_FALSE(got->second.link);
  broker.send(got->first.peer, msg::Placed{got->second.requestId, 12, "p-r1"});
  auto r = finish(run);
  CHECK(r.code == 0);
  CHECK(r.out == "12@p-r1\n");

  auto stop = startCli({"--broker", broker.endpoint(), "stop", "12@p-r1"});
  auto stopChild = broker.expect<msg::StopChild>();
  REQUIRE(stopChild);
  CHECK(stopChild->second.childId == 12);
  broker.send(stopChild->first.peer, msg::Stopped{12});
  CHECK(finish(stop).code == 0);

  auto missing = startCli({"--broker", broker.endpoint(), "stop", "13"});
  auto second = broker.expect<msg::StopChild>();
  REQUIRE(second);
  broker.send(second->first.peer, msg::Error{0, ErrorCode::NotFound, "no child 13", 13});
  auto m = finish(missing);
  CHECK(m.code == 1);
  CHECK(m.err == "error: not_found: no child 13\n");
}

TEST_CASE("cli: place --link stays until the child exits", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "place", "--link", "p", "serve"});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->second.link);
  broker.send(got->first.peer, msg::Placed{got->second.requestId, 3, "r"});
  CHECK(run.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  broker.send(got->first.peer, msg::ChildExited{3, ErrorCode::RunnerLost, "runner r vanished"});
  auto r = finish(run);
  CHECK(r.code == 1);
  CHECK(r.out == "3@r\n");
  CHECK(r.err == "error: runner_lost: runner r vanished\n");
}

TEST_CASE("cli: place --wait prints the child's exit, linked or not", "[client][cli][children]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;  // a watched child keeps the client heartbeating: answer them

  SECTION("unlinked, returned normally: exit 0") {
    auto run = startCli({"--broker", broker.endpoint(), "place", "--wait", "p", "serve"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK_FALSE(got->second.link);
    broker.send(got->first.peer, msg::Placed{got->second.requestId, 5, "r"});
    REQUIRE(broker.awaitHeartbeats(1));  // still waiting, and watching: heartbeats go on
    CHECK(run.wait_for(std::chrono::milliseconds(0)) == std::future_status::timeout);
    broker.send(got->first.peer, msg::ChildExited{5, ErrorCode::None, ""});
    auto r = finish(run);
    CHECK(r.code == 0);
    CHECK(r.out == "5@r\nexited: ok\n");
    CHECK(r.err.empty());
  }
  SECTION("linked, failed: exit 1, as call exits for that error") {
    auto run = startCli({"--broker", broker.endpoint(), "place", "--link", "--wait", "p", "serve"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->second.link);
    broker.send(got->first.peer, msg::Placed{got->second.requestId, 6, "r"});
    broker.send(got->first.peer, msg::ChildExited{6, ErrorCode::HandlerError, "boom"});
    auto r = finish(run);
    CHECK(r.code == 1);
    CHECK(r.out == "6@r\nexited: handler_error: boom\n");
  }
}

TEST_CASE("cli: call and cast send the retry options", "[client][cli][retry]") {
  FakeBroker broker;
  SECTION("call --retry-on handler_error,timeout with a backoff") {
    auto run = startCli({"--broker", broker.endpoint(), "call", "--retry-on", "handler_error,timeout", "--retries",
                         "3", "--retry-backoff", "200ms", "--retry-backoff-max", "2s", "p", "f"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->second.mode == Mode::Call);
    CHECK_FALSE(got->second.idempotent);
    CHECK(got->second.retryHandlerError);
    CHECK(got->second.retryTimeout);
    CHECK(got->second.retries == 3);
    CHECK(got->second.retryBackoffMs == 200);
    CHECK(got->second.retryBackoffMaxMs == 2000);
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, std::string("ok"));
    CHECK(finish(run).code == 0);
  }
  SECTION("--retry-on takes one word: the pool after it is the pool, and the flag may repeat") {
    auto run = startCli({"--broker", broker.endpoint(), "call", "--retry-on", "handler_error", "--retry-on",
                         "timeout", "pool-after", "f"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->second.pool == "pool-after");
    CHECK(got->second.function == "f");
    CHECK(got->second.retryHandlerError);
    CHECK(got->second.retryTimeout);
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, std::string("ok"));
    CHECK(finish(run).code == 0);
  }
  SECTION("cast --retry-on runner_lost is --idempotent, backoffs default to the pool's") {
    auto run = startCli({"--broker", broker.endpoint(), "cast", "--retry-on", "runner_lost", "p", "f"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->second.mode == Mode::Cast);
    CHECK(got->second.idempotent);
    CHECK_FALSE(got->second.retryHandlerError);
    CHECK_FALSE(got->second.retryTimeout);
    CHECK(got->second.retries == 0);
    CHECK(got->second.retryBackoffMs == 0);
    CHECK(got->second.retryBackoffMaxMs == 0);
    broker.send(got->first.peer, msg::Accepted{got->second.requestId, 5});
    CHECK(finish(run).out == "5\n");
  }
  SECTION("without retry flags nothing is retried") {
    auto run = startCli({"--broker", broker.endpoint(), "call", "p", "f"});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK_FALSE(got->second.idempotent);
    CHECK_FALSE(got->second.retryHandlerError);
    CHECK_FALSE(got->second.retryTimeout);
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1});
    CHECK(finish(run).code == 0);
  }
}

TEST_CASE("cli: bad retry options are usage errors", "[client][cli][retry]") {
  for (auto [args, error] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"call", "--retry-on", "handler_error,bogus", "p", "f"}, "bogus"},
           {{"cast", "--retry-on", "runner_lost,idempotent", "p", "f"}, "idempotent"},
           {{"call", "--retry-backoff", "soon", "p", "f"}, "not a duration"},
           {{"call", "--retry-backoff", "1s", "--retry-backoff-max", "500ms", "p", "f"},
            "call: --retry-backoff-max (500ms) is below --retry-backoff (1s)"},
           {{"place", "--retry-on", "timeout", "p", "f"}, "--retry-on"},  // a place is never retried
       }) {
    auto run = startCli(args);
    auto r = finish(run);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(error));
  }
}

namespace {
// Answers the next `count` status requests, the i-th (from 1) with `queued` = i.
void answerStatuses(FakeBroker& broker, int count) {
  for (int i = 1; i <= count; ++i) {
    auto got = broker.expect<msg::StatusRequest>();
    REQUIRE(got);
    auto reply = onePool(got->second.requestId);
    reply.pools[0].queued = static_cast<uint32_t>(i);
    broker.send(got->first.peer, reply);
  }
}

std::vector<std::string> linesOf(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}
}  // namespace

TEST_CASE("cli: status --watch --count 3 appends three stamped tables when not a terminal", "[client][cli][watch]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "status", "--watch", "--count", "3", "--interval", "10ms"});
  answerStatuses(broker, 3);
  auto r = finish(run);
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find('\x1b') == std::string::npos);  // no screen control codes in a pipe
  std::vector<std::string> headers, rows;
  for (auto& line : linesOf(r.out)) {
    if (line.rfind("# ", 0) == 0) headers.push_back(line);
    if (line.rfind("thumbs  ", 0) == 0) rows.push_back(line);
  }
  REQUIRE(headers.size() == 3);
  for (auto& h : headers) {
    CHECK_THAT(h, Catch::Matches(R"(# \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z broker .+)"));
    CHECK_THAT(h, Catch::EndsWith(" broker " + broker.endpoint()));
  }
  CHECK(headers[0] <= headers[1]);  // ISO stamps sort as time
  CHECK(headers[1] <= headers[2]);
  REQUIRE(rows.size() == 3);  // in the order answered: queued 1, 2, 3
  for (size_t i = 0; i < 3; ++i) CHECK_THAT(rows[i], Catch::StartsWith("thumbs  " + std::to_string(i + 1) + " "));
  CHECK(broker.next(Duration(50)) == std::nullopt);  // --count ran out: no fourth request
}

TEST_CASE("cli: status --watch --json prints one JSON object per line", "[client][cli][watch]") {
  FakeBroker broker;
  auto run = startCli(
      {"--broker", broker.endpoint(), "status", "--json", "--watch", "--count", "3", "--interval", "10ms"});
  answerStatuses(broker, 3);
  auto r = finish(run);
  CHECK(r.code == 0);
  auto lines = linesOf(r.out);
  REQUIRE(lines.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    auto json = nlohmann::json::parse(lines[i]);
    CHECK(json["time"].get<std::string>().size() == 24);  // 2026-12-03T18:50:01.123Z
    CHECK(json["pools"][0]["name"] == "thumbs");
    CHECK(json["pools"][0]["queued"] == i + 1);
    CHECK(json["pools"][0]["retried"] == 0);
  }
}

TEST_CASE("cli: status --watch reports a silent broker on a line and keeps watching", "[client][cli][watch]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "status", "--watch", "--count", "2", "--interval", "10ms",
                       "--timeout", "200ms"});
  auto ignored = broker.expect<msg::StatusRequest>();  // never answered
  REQUIRE(ignored);
  answerStatuses(broker, 1);
  auto r = finish(run);
  CHECK(r.code == 0);  // the last one was answered
  auto lines = linesOf(r.out);
  REQUIRE(lines.size() >= 4);
  CHECK(lines[1] == "broker_unreachable: broker unreachable: no status reply within 200ms");
  CHECK_THAT(r.out, Catch::Contains("\nthumbs  1 "));
}

TEST_CASE("cli: status --watch on a terminal redraws in place", "[client][cli][watch]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "status", "--watch", "--count", "2", "--interval", "10ms"}, "",
                      kDefaultClientEndpoint, /*tty=*/true);
  answerStatuses(broker, 2);
  auto r = finish(run);
  CHECK(r.code == 0);
  const std::string clear = "\x1b[H\x1b[2J";
  CHECK(r.out.rfind(clear + "# ", 0) == 0);
  auto second = r.out.find(clear, clear.size());
  REQUIRE(second != std::string::npos);
  CHECK_THAT(r.out.substr(second), Catch::Contains("thumbs  2 "));
}

TEST_CASE("cli: status --watch flags are checked", "[client][cli][watch]") {
  for (auto [args, error] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"status", "--watch", "--interval", "0"}, "must be more than 0 and finite: 0"},
           {{"status", "--watch", "--interval", "soon"}, "not a duration"},
           {{"status", "--watch", "--interval", "infinity"}, "must be more than 0 and finite"},
           {{"status", "--watch", "--count", "0"}, "--count"},
           {{"status", "--count", "3"}, "--count requires --watch"},
           {{"status", "--interval", "1s"}, "--interval requires --watch"},
       }) {
    auto run = startCli(args);
    auto r = finish(run);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains(error));
  }
}

namespace {
msg::Event eventFor(uint64_t subscription, uint64_t seq, EventKind kind, std::string runner = "r-3") {
  msg::Event e;
  e.requestId = subscription;
  e.seq = seq;
  e.timeMs = 1'796'323'801'123;  // 2026-12-03T18:50:01.123Z
  e.kind = kind;
  e.pool = "thumbs";
  e.runnerId = std::move(runner);
  e.runners = 2;
  e.booting = 1;
  return e;
}
}  // namespace

TEST_CASE("cli: events --count 2 --json prints two JSON lines, then cancels", "[client][cli][events]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;
  auto run = startCli({"--broker", broker.endpoint(), "events", "--count", "2", "--json"});
  auto got = broker.expect<msg::Subscribe>();
  REQUIRE(got);
  CHECK(got->second.pool.empty());  // every pool
  uint64_t id = got->second.requestId;
  broker.send(got->first.peer, msg::Subscribed{id, 10});
  broker.send(got->first.peer, eventFor(id, 11, EventKind::RunnerBooting, ""));
  auto retried = eventFor(id, 12, EventKind::JobRetried);
  retried.jobId = 77;
  retried.attempt = 2;
  retried.delayMs = 1500;
  retried.message = "handler_error: disk full";
  broker.send(got->first.peer, retried);
  broker.send(got->first.peer, eventFor(id, 13, EventKind::RunnerReady));  // past --count: not printed
  auto cancel = broker.expect<msg::Cancel>();
  REQUIRE(cancel);
  CHECK(cancel->second.requestId == id);
  auto r = finish(run);
  INFO(r.err);
  CHECK(r.code == 0);
  auto lines = linesOf(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] ==
        R"({"seq":11,"time":"2026-12-03T18:50:01.123Z","timeMs":1796323801123,"kind":"runner_booting","pool":"thumbs",)"
        R"("runner":"","message":"","jobId":0,"attempt":0,"delayMs":0,"runners":2,"booting":1})");
  auto second = nlohmann::json::parse(lines[1]);
  CHECK(second["seq"] == 12);
  CHECK(second["kind"] == "job_retried");
  CHECK(second["runner"] == "r-3");
  CHECK(second["jobId"] == 77);
  CHECK(second["attempt"] == 2);
  CHECK(second["delayMs"] == 1500);
  CHECK(second["message"] == "handler_error: disk full");
}

TEST_CASE("cli: events prints human lines, and says when events were missed", "[client][cli][events]") {
  FakeBroker broker;
  SECTION("every pool: a gap in seq is reported") {
    auto run = startCli({"--broker", broker.endpoint(), "events", "--count", "3"});
    auto got = broker.expect<msg::Subscribe>();
    REQUIRE(got);
    uint64_t id = got->second.requestId;
    broker.send(got->first.peer, msg::Subscribed{id, 10});
    broker.send(got->first.peer, eventFor(id, 11, EventKind::RunnerReady));
    auto draining = eventFor(id, 14, EventKind::RunnerDraining);
    draining.message = "idle for 10s";
    broker.send(got->first.peer, draining);
    auto retried = eventFor(id, 15, EventKind::JobRetried);
    retried.jobId = 9;
    retried.attempt = 1;
    retried.delayMs = 250;
    retried.message = "runner_lost: \"r-3\" vanished";
    broker.send(got->first.peer, retried);
    auto r = finish(run);
    CHECK(r.code == 0);
    CHECK(r.out ==
          "2026-12-03T18:50:01.123Z pool=thumbs runner_ready runner=r-3 runners=2 booting=1\n"
          "(missed 2 events)\n"
          "2026-12-03T18:50:01.123Z pool=thumbs runner_draining runner=r-3 runners=2 booting=1 message=\"idle for 10s\"\n"
          "2026-12-03T18:50:01.123Z pool=thumbs job_retried runner=r-3 runners=2 booting=1 job=9 attempt=1 delay=250ms "
          "message=\"runner_lost: \\\"r-3\\\" vanished\"\n");
  }
  SECTION("one pool: other pools' numbers are skipped, no gap is claimed") {
    auto run = startCli({"--broker", broker.endpoint(), "events", "--pool", "thumbs", "--count", "2"});
    auto got = broker.expect<msg::Subscribe>();
    REQUIRE(got);
    CHECK(got->second.pool == "thumbs");
    uint64_t id = got->second.requestId;
    broker.send(got->first.peer, msg::Subscribed{id, 3});
    broker.send(got->first.peer, eventFor(id, 7, EventKind::RunnerBooting, ""));
    broker.send(got->first.peer, eventFor(id, 12, EventKind::RunnerReady));
    auto r = finish(run);
    CHECK(r.code == 0);
    CHECK(r.out.find("missed") == std::string::npos);
    CHECK(linesOf(r.out).size() == 2);
    CHECK_THAT(r.out, Catch::StartsWith("2026-12-03T18:50:01.123Z pool=thumbs runner_booting runners=2 booting=1\n"));
  }
}

TEST_CASE("cli: events fails on an unknown pool and when the subscription ends", "[client][cli][events]") {
  FakeBroker broker;
  SECTION("unknown pool") {
    auto run = startCli({"--broker", broker.endpoint(), "events", "--pool", "nope"});
    auto got = broker.expect<msg::Subscribe>();
    REQUIRE(got);
    broker.send(got->first.peer, msg::Error{got->second.requestId, ErrorCode::UnknownPool, "no pool named nope", 0});
    auto r = finish(run);
    CHECK(r.code == 1);
    CHECK(r.err == "error: unknown_pool: no pool named nope\n");
  }
  SECTION("a broker restart ends it") {
    broker.heartbeatReplyMs = 50;
    auto run = startCli({"--broker", broker.endpoint(), "events"});
    auto got = broker.expect<msg::Subscribe>();
    REQUIRE(got);
    uint64_t id = got->second.requestId;
    broker.send(got->first.peer, msg::Subscribed{id, 0});
    broker.send(got->first.peer, eventFor(id, 1, EventKind::RunnerReady));
    REQUIRE(broker.awaitHeartbeats(1));  // answered by run 7
    broker.instance = 8;                 // the next answers come from a new broker run
    REQUIRE(broker.awaitHeartbeats(1));
    auto r = finish(run);
    CHECK(r.code == 1);
    CHECK(linesOf(r.out).size() == 1);
    CHECK_THAT(r.err, Catch::StartsWith("error: broker_unreachable: broker restarted: the subscription ended"));
  }
}

TEST_CASE("cli: pool set changes limits and prints the pool", "[client][cli]") {
  FakeBroker broker;
  auto run = startCli({"--broker", broker.endpoint(), "pool", "set", "thumbs", "--min", "1",
                       "--warm-slots", "2", "--json"});
  auto got = broker.expect<msg::SetPool>();
  REQUIRE(got);
  CHECK(got->second.pool == "thumbs");
  CHECK(got->second.min == 1);
  CHECK(got->second.max == -1);
  CHECK(got->second.warmSlots == 2);
  broker.send(got->first.peer, onePool(got->second.requestId));
  auto r = finish(run);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith(R"({"pools":[{"name":"thumbs",)"));
}

TEST_CASE("cli: bad usage exits 2, --help exits 0", "[client][cli]") {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {},
           {"frobnicate"},
           {"call", "only-pool"},
           {"call", "--timeout", "soon", "p", "f"},
           {"call", "--retries", "300", "p", "f"},
           {"stop", "not-a-handle"},
           {"status", "--log-level", "loud"},
           {"pool"},
           {"pool", "set", "thumbs"},
           {"pool", "set", "thumbs", "--max", "-1"},
       }) {
    auto run = startCli(args);
    auto r = finish(run);
    INFO(r.err);
    CHECK(r.code == 2);
  }
  auto help = startCli({"--help"});
  auto r = finish(help);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("status"));
}

TEST_CASE("cli: an unreachable broker is reported within the status timeout", "[client][cli]") {
  auto start = std::chrono::steady_clock::now();
  auto run = startCli({"--broker", flame::testing::deadEndpoint(), "status", "--timeout", "300ms"});
  auto r = finish(run);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::StartsWith("error: broker_unreachable: "));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("cli: the flame binary prints status JSON", "[client][cli]") {
  const char* binDir = std::getenv("FLAME_BIN_DIR");
  if (binDir == nullptr || !std::filesystem::exists(std::filesystem::path(binDir) / "flame")) {
    WARN("FLAME_BIN_DIR/flame not found: skipping the binary test");
    return;
  }
  FakeBroker broker;
  std::string command = std::string(binDir) + "/flame status --json";
  auto run = std::async(std::launch::async, [&] {
    // The endpoint comes from the environment variable, as in real use.
    std::string withEnv = std::string(kEnvClientEndpoint) + "=" + broker.endpoint() + " " + command;
    std::string out;
    FILE* pipe = popen(withEnv.c_str(), "r");
    if (pipe == nullptr) return std::make_pair(-1, out);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    int status = pclose(pipe);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  });
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  broker.send(got->first.peer, onePool(got->second.requestId));
  REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto [code, out] = run.get();
  CHECK(code == 0);
  CHECK_THAT(out, Catch::StartsWith(R"({"pools":[{"name":"thumbs",)"));
}

TEST_CASE("flame keygen writes NAME.key and NAME.pub, prints the public key, never overwrites",
          "[cli]") {
  char dir[] = "/tmp/flame-keygen-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string base = std::string(dir) + "/runner";
  auto f = startCli({"keygen", base});
  CliRun run = finish(f);
  CHECK(run.code == 0);
  CHECK(run.err.empty());
  REQUIRE(run.out.size() == 41);  // 40 Z85 characters and a newline
  CHECK(std::filesystem::exists(base + ".key"));
  CHECK((std::filesystem::status(base + ".key").permissions() & std::filesystem::perms::group_all) ==
        std::filesystem::perms::none);
  std::ifstream pub(base + ".pub");
  std::string line;
  std::getline(pub, line);
  CHECK(line + "\n" == run.out);
  auto again = startCli({"keygen", base});
  CliRun refused = finish(again);
  CHECK(refused.code == 1);
  CHECK(refused.err.find("refusing to overwrite") != std::string::npos);
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------- CURVE (issue 10, item 3)

namespace {

// Runs the CLI with all global defaults given (what main.cpp reads from the environment).
std::future<CliRun> startCliWith(std::vector<std::string> args, CliDefaults defaults) {
  return std::async(std::launch::async, [args = std::move(args), defaults = std::move(defaults)] {
    std::vector<const char*> argv{"flame"};
    for (const auto& a : args) argv.push_back(a.c_str());
    std::istringstream in;
    std::ostringstream out, err;
    CliRun run;
    run.code = runCli(static_cast<int>(argv.size()), argv.data(), CliStreams{in, out, err}, defaults);
    run.out = out.str();
    run.err = err.str();
    return run;
  });
}

// A key pair for the broker and one for the client, as flame keygen writes them, in a folder
// removed at the end.
struct KeyFiles {
  std::string dir;
  CurveKeyPair broker = generateCurveKeyPair(), client = generateCurveKeyPair();
  KeyFiles() {
    char name[] = "/tmp/flame-cli-curve-XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    dir = name;
    writeKeyPair(dir + "/broker", broker);
    writeKeyPair(dir + "/client", client);
  }
  ~KeyFiles() { std::filesystem::remove_all(dir); }
  std::string brokerPub() const { return dir + "/broker.pub"; }
  std::string clientKey() const { return dir + "/client.key"; }
};

flame::testing::CurveBrokerSetup setupWith(const CurveKeyPair& keys) {
  flame::testing::CurveBrokerSetup setup;
  setup.keys = keys;
  return setup;
}

}  // namespace

TEST_CASE("cli: --server-key and --key-file talk CURVE, the broker sees the client's key", "[client][cli][curve]") {
  KeyFiles keys;
  FakeBroker broker(setupWith(keys.broker));
  broker.zap()->allow(keys.client.publicKey);
  // --server-key as a .pub file, global options after the subcommand.
  auto run = startCli({"status", "--json", "--broker", broker.endpoint(), "--server-key", keys.brokerPub(),
                       "--key-file", keys.clientKey()});
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  CHECK(got->first.key == keys.client.publicKey);
  broker.send(got->first.peer, onePool(got->second.requestId));
  auto r = finish(run);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::StartsWith(R"({"pools":[{"name":"thumbs",)"));

  // --server-key as the key itself, before the subcommand.
  auto call = startCli({"--broker", broker.endpoint(), "--server-key", keys.broker.publicKey, "--key-file",
                        keys.clientKey(), "call", "thumbs", "resize", "in"});
  auto submit = broker.expect<msg::Submit>();
  REQUIRE(submit);
  CHECK(submit->first.key == keys.client.publicKey);
  broker.send(submit->first.peer, msg::Result{submit->second.requestId, 3}, std::string("out"));
  auto c = finish(call);
  CHECK(c.code == 0);
  CHECK(c.out == "out");
}

TEST_CASE("cli: a refused key prints unauthorized: ... and exits 1 at once", "[client][cli][curve]") {
  KeyFiles keys;
  FakeBroker broker(setupWith(keys.broker));  // allows no key
  auto start = std::chrono::steady_clock::now();
  auto run = startCli({"call", "--timeout", "60s", "--broker", broker.endpoint(), "--server-key", keys.brokerPub(),
                       "--key-file", keys.clientKey(), "thumbs", "resize", "in"});
  auto r = finish(run);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::StartsWith("error: unauthorized: the broker refused this client's key " +
                                      keyFingerprint(keys.client.publicKey)));
  // Not the 60 s timeout (finish() bounds the wait at 10 s; the handshake takes milliseconds).
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));

  // Without keys, against the same CURVE broker: refused too, saying what to give.
  auto plain = startCli({"status", "--timeout", "60s", "--broker", broker.endpoint()});
  auto p = finish(plain);
  CHECK(p.code == 1);
  // (Either wording of common/handshake_monitor.h: a mismatch may race into cut handshakes.)
  CHECK_THAT(p.err, Catch::StartsWith("error: unauthorized: the broker ") && Catch::Contains("CURVE on this endpoint") &&
                        Catch::Contains("--server-key and --key-file"));
}

TEST_CASE("cli: key options default from the environment, bad keys are usage errors naming their source",
          "[client][cli][curve]") {
  KeyFiles keys;
  FakeBroker broker(setupWith(keys.broker));
  broker.zap()->allow(keys.client.publicKey);
  CliDefaults fromEnv;
  fromEnv.broker = broker.endpoint();
  fromEnv.serverKey = keys.broker.publicKey;  // $FLAME_SERVER_KEY
  fromEnv.keyFile = keys.clientKey();         // $FLAME_KEY_FILE
  auto run = startCliWith({"status", "--json"}, fromEnv);
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  CHECK(got->first.key == keys.client.publicKey);
  broker.send(got->first.peer, onePool(got->second.requestId));
  CHECK(finish(run).code == 0);

  struct Case {
    std::vector<std::string> args;
    CliDefaults defaults;
    std::string error;
  };
  CliDefaults onlyServerKeyFromEnv;
  onlyServerKeyFromEnv.serverKey = keys.broker.publicKey;
  CliDefaults badKeyFileFromEnv = fromEnv;
  badKeyFileFromEnv.keyFile = keys.dir + "/missing.key";
  for (const Case& c : std::vector<Case>{
           {{"status", "--server-key", keys.brokerPub()},
            {},
            "error: --server-key is set but --key-file is not: CURVE needs this client's secret key too"},
           {{"status", "--key-file", keys.clientKey()},
            {},
            "error: --key-file is set but --server-key is not: CURVE needs the broker's public key too"},
           {{"status"},
            onlyServerKeyFromEnv,
            "error: $FLAME_SERVER_KEY is set but --key-file is not: CURVE needs this client's secret key too"},
           {{"status", "--server-key", keys.brokerPub(), "--key-file", keys.dir + "/missing.key"},
            {},
            "error: --key-file: " + keys.dir + "/missing.key: cannot read"},
           {{"status"}, badKeyFileFromEnv, "error: $FLAME_KEY_FILE: " + keys.dir + "/missing.key: cannot read"},
           {{"status", "--server-key", "not-a-key", "--key-file", keys.clientKey()},
            {},
            "error: --server-key: not-a-key: neither a Z85 public key"},
       }) {
    auto bad = startCliWith(c.args, c.defaults);
    auto r = finish(bad);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::StartsWith(c.error));
  }
}

TEST_CASE("cli: the flame binary reads FLAME_SERVER_KEY and FLAME_KEY_FILE", "[client][cli][curve]") {
  const char* binDir = std::getenv("FLAME_BIN_DIR");
  if (binDir == nullptr || !std::filesystem::exists(std::filesystem::path(binDir) / "flame")) {
    WARN("FLAME_BIN_DIR/flame not found: skipping the binary test");
    return;
  }
  KeyFiles keys;
  FakeBroker broker(setupWith(keys.broker));
  broker.zap()->allow(keys.client.publicKey);
  std::string command = std::string(kEnvClientEndpoint) + "=" + broker.endpoint() + " " + kEnvClientServerKey + "=" +
                        keys.brokerPub() + " " + kEnvClientKeyFile + "=" + keys.clientKey() + " " + binDir +
                        "/flame status --json";
  auto run = std::async(std::launch::async, [&] {
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return -1;
    char buffer[4096];
    while (fread(buffer, 1, sizeof buffer, pipe) > 0) {
    }
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  });
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  CHECK(got->first.key == keys.client.publicKey);
  broker.send(got->first.peer, onePool(got->second.requestId));
  REQUIRE(run.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(run.get() == 0);
}
