// `flame events` end to end (issue 11, item 3): a real broker with a process-backend pool of
// min 0, the real `flame events --json` as a child process, and a burst of calls that grows the
// pool from 0 and lets it shrink back. Every wait is bounded; nothing sleeps.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client/client.h"
#include "tests/integration/process_harness.h"

using namespace flame;
using namespace flame::test;

namespace {

// The JSON objects among `output`'s lines (the process's stderr is merged in: skip the rest).
std::vector<nlohmann::json> jsonLines(const std::string& output) {
  std::vector<nlohmann::json> out;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!json.is_discarded()) out.push_back(std::move(json));
  }
  return out;
}

}  // namespace

TEST_CASE("flame events --json shows a min-0 pool growing for a burst and shrinking back",
          "[integration][events]") {
  auto config = writeBrokerConfig(R"(
[pools.ev]
backend = "process"
min = 0
max = 2
max_concurrency = 2
idle_shutdown_after = "1s"
shutdown_timeout = "2s"
boot_timeout = "10s"
[pools.ev.process]
command = [")" + binary("flame-worker") +
                            R"(", "--failsafe-after", "2s"]
[pools.other]
backend = "process"
min = 0
max = 1
[pools.other.process]
command = [")" + binary("flame-worker") +
                            R"(", "--failsafe-after", "2s"]
)");
  auto broker = BrokerProcess::start({"--config", config});
  auto events = Process::start(
      {binary("flame"), "events", "--json", "--pool", "ev", "--broker", broker.clients});

  ClientOptions co;
  co.broker = broker.clients;
  co.heartbeatInterval = Duration(200);
  Client client(co);
  // The subscription is in force once a pool change shows up in the stream (the events
  // process gives no other sign): change the limits until one does.
  bool subscribed = false;
  for (int attempt = 0; attempt < 50 && !subscribed; ++attempt) {
    REQUIRE(client.setPool("ev", PoolLimitsUpdate{.max = 2}));
    subscribed = events->waitForLine("\"pool_changed\"", Millis(200)).has_value();
  }
  REQUIRE(subscribed);
  // Another pool's change must not show up (the filter; checked on every line at the end).
  REQUIRE(client.setPool("other", PoolLimitsUpdate{.max = 1}));

  CallOptions o;
  o.timeout = Duration(30000);
  std::vector<std::future<CallResult>> calls;
  for (int i = 0; i < 6; ++i) calls.push_back(client.callAsync("ev", "sleep", "200", o));
  for (auto& f : calls) {
    REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    auto r = f.get();
    if (!r) FAIL(r.error().toString());
  }
  // Growing from 0, then (after idle_shutdown_after) shrinking back: wait until every runner
  // that came up went away again (the events process's output is polled: it is another
  // process's state), then check the order below.
  INFO(events->output());
  REQUIRE(eventually(
      [&] {
        int ready = 0, stopped = 0, gone = 0;
        for (auto& e : jsonLines(events->output())) {
          ready += e["kind"] == "runner_ready";
          stopped += e["kind"] == "runner_stopped";
          gone += e["kind"] == "runner_stopped" || e["kind"] == "runner_lost";
        }
        return ready > 0 && stopped > 0 && gone == ready;
      },
      Millis(20000)));

  // SIGINT ends it cleanly.
  events->signal(SIGINT);
  auto status = events->waitExit(Millis(5000));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);

  auto lines = jsonLines(events->output());
  REQUIRE(lines.size() >= 5);
  uint64_t lastSeq = 0;
  std::vector<std::string> kinds;
  for (auto& e : lines) {
    CHECK(e["pool"] == "ev");  // never the other pool's
    CHECK(e["seq"].get<uint64_t>() > lastSeq);
    lastSeq = e["seq"].get<uint64_t>();
    CHECK(e["time"].get<std::string>().size() == 24);
    for (const char* key :
         {"timeMs", "runner", "message", "jobId", "attempt", "delayMs", "runners", "booting"})
      CHECK(e.contains(key));
    kinds.push_back(e["kind"].get<std::string>());
  }
  // In this order: a boot (its booting count saying so), a runner ready, one draining (idle),
  // one stopped.
  auto firstOf = [&](const char* kind, std::vector<std::string>::iterator from) {
    return std::find(from, kinds.end(), kind);
  };
  auto boot = firstOf("runner_booting", kinds.begin());
  REQUIRE(boot != kinds.end());
  CHECK(lines[static_cast<size_t>(boot - kinds.begin())]["booting"].get<int>() >= 1);
  auto ready = firstOf("runner_ready", boot);
  REQUIRE(ready != kinds.end());
  auto draining = firstOf("runner_draining", ready);
  REQUIRE(draining != kinds.end());
  CHECK_THAT(lines[static_cast<size_t>(draining - kinds.begin())]["message"].get<std::string>(),
             Catch::StartsWith("idle for"));
  CHECK(firstOf("runner_stopped", draining) != kinds.end());
  // Nothing about runners before the first boot: the pool started at 0.
  CHECK(std::find(kinds.begin(), boot, "runner_ready") == boot);
  unlink(config.c_str());
}

TEST_CASE("flame status --watch into a pipe appends stamped tables until SIGTERM, then exits 0",
          "[integration][watch]") {
  auto broker = BrokerProcess::start();
  auto watch = Process::start(
      {binary("flame"), "status", "--watch", "--interval", "100ms", "--broker", broker.clients});
  // Not a terminal: each table follows a "# <time> broker <endpoint>" line, no screen codes.
  REQUIRE(watch->waitForLine("no pools", Millis(10000)));  // a broker without a config
  auto tables = [&] {
    const std::string& out = watch->output();
    size_t n = out.rfind("# ", 0) == 0 ? 1 : 0;
    for (size_t at = out.find("\n# "); at != std::string::npos; at = out.find("\n# ", at + 1)) ++n;
    return n;
  };
  REQUIRE(
      eventually([&] { return tables() >= 3; }, Millis(10000)));  // still watching, one per 100 ms
  watch->signal(SIGTERM);
  auto status = watch->waitExit(Millis(5000));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(watch->output().find('\x1b') == std::string::npos);
  CHECK(watch->output().find(" broker " + broker.clients + "\n") != std::string::npos);
}
