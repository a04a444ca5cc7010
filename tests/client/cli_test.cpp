// The `flame` CLI: in-process through runCli() against the fake broker, plus one run of the
// real binary when FLAME_BIN_DIR is set (ctest sets it).
#include "client/cli.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
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
std::future<CliRun> startCli(std::vector<std::string> args, std::string input = "",
                             std::string defaultBroker = kDefaultClientEndpoint) {
  return std::async(std::launch::async,
                    [args = std::move(args), input = std::move(input), defaultBroker] {
                      std::vector<const char*> argv{"flame"};
                      for (const auto& a : args) argv.push_back(a.c_str());
                      std::istringstream in(input);
                      std::ostringstream out, err;
                      CliRun run;
                      run.code = runCli(static_cast<int>(argv.size()), argv.data(),
                                        CliStreams{in, out, err}, defaultBroker);
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
      R"("boots":0,"boot_failures":0,"completed":0,"failed":0,"min":0,"max":3}]})"
      "\n");
}

TEST_CASE("cli: status prints tables; --broker may follow the subcommand", "[client][cli]") {
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

TEST_CASE("cli: place prints the handle; stop stops it", "[client][cli]") {
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
