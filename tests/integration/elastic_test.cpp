// Elastic pools end to end: flame-broker with a config file and the process backend, real
// runner processes booted and stopped by the scaler.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "client/client.h"
#include "tests/integration/process_harness.h"

using namespace flame;
using namespace flame::test;

namespace {

// Pids whose parent is `parent` (from /proc).
std::set<pid_t> childrenOf(pid_t parent) {
  std::set<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    pid_t pid = static_cast<pid_t>(atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream st("/proc/" + std::string(e->d_name) + "/stat");
    std::string line;
    if (!std::getline(st, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent && state != 'Z') out.insert(pid);
  }
  closedir(d);
  return out;
}

bool alive(pid_t pid) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(st, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && line.find(" Z ", close) != close + 1;
}

std::string workerCommand(const std::string& extra = "") {
  return "command = [\"" + binary("flame-worker") + "\", \"--failsafe-after\", \"2s\"" + extra + "]\n";
}

}  // namespace

TEST_CASE("a burst on a min-0 pool boots exactly max runners, completes every call, and shrinks to zero",
          "[integration][elastic]") {
  auto config = writeBrokerConfig(R"(
[pools.burst]
backend = "process"
min = 0
max = 3
max_concurrency = 2
idle_shutdown_after = "1s"
shutdown_timeout = "2s"
boot_timeout = "10s"
[pools.burst.process]
)" + workerCommand());
  auto broker = BrokerProcess::start({"--config", config});
  ClientOptions co;
  co.broker = broker.clients;
  co.heartbeatInterval = Duration(200);
  Client client(co);
  CallOptions o;
  o.timeout = Duration(30000);
  std::vector<std::future<CallResult>> calls;
  for (int i = 0; i < 12; ++i) calls.push_back(client.callAsync("burst", "sleep", "300", o));
  int ok = 0;
  for (auto& f : calls) {
    REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    auto r = f.get();
    if (!r) FAIL(r.error().toString());
    ok += r.value().find("slept") != std::string::npos;
  }
  CHECK(ok == 12);
  auto st = client.status();
  REQUIRE(st);
  REQUIRE(st.value().pools.size() == 1);
  CHECK(st.value().pools[0].boots == 3);
  CHECK(st.value().pools[0].max == 3);
  // After idle_shutdown_after, every runner process is gone.
  CHECK(eventually([&] { return childrenOf(broker.process->pid()).empty(); }, Millis(15000)));
  auto after = client.status();
  REQUIRE(after);
  CHECK(after.value().pools[0].runners.empty());
  unlink(config.c_str());
}

TEST_CASE("kill -9 of the broker leaves no runner process alive after the failsafe period",
          "[integration][elastic]") {
  auto config = writeBrokerConfig(R"(
[pools.keep]
backend = "process"
min = 2
max = 2
[pools.keep.process]
)" + workerCommand());
  auto broker = BrokerProcess::start({"--config", config});
  std::set<pid_t> runners;
  REQUIRE(eventually(
      [&] {
        runners = childrenOf(broker.process->pid());
        return runners.size() == 2;
      },
      Millis(10000)));
  REQUIRE(broker.process->waitForLine("ready:", Millis(10000)));
  broker.process->signal(SIGKILL);
  REQUIRE(broker.process->waitExit(Millis(5000)));
  CHECK(eventually(
      [&] {
        for (pid_t p : runners)
          if (alive(p)) return false;
        return true;
      },
      Millis(2000 + 3000)));
  unlink(config.c_str());
}

TEST_CASE("a dead min runner is replaced", "[integration][elastic]") {
  auto config = writeBrokerConfig(R"(
[pools.m]
backend = "process"
min = 1
max = 1
[pools.m.process]
)" + workerCommand());
  auto broker = BrokerProcess::start({"--config", config});
  std::set<pid_t> first;
  REQUIRE(eventually([&] { return (first = childrenOf(broker.process->pid())).size() == 1; }, Millis(10000)));
  ::kill(*first.begin(), SIGKILL);  // a runner this test's broker started
  std::set<pid_t> second;
  CHECK(eventually(
      [&] {
        second = childrenOf(broker.process->pid());
        return second.size() == 1 && *second.begin() != *first.begin();
      },
      Millis(10000)));
  ClientOptions co;
  co.broker = broker.clients;
  Client client(co);
  CallOptions o;
  o.timeout = Duration(10000);
  auto r = client.call("m", "echo", "replaced", o);
  REQUIRE(r);
  CHECK(r.value() == "replaced");
  unlink(config.c_str());
}

TEST_CASE("a pool whose runners cannot start fails waiting calls with boot_failed", "[integration][elastic]") {
  auto config = writeBrokerConfig(R"(
[pools.broken]
backend = "process"
max = 2
boot_timeout = "500ms"
[pools.broken.process]
command = ["/bin/false"]
)");
  auto broker = BrokerProcess::start({"--config", config});
  ClientOptions co;
  co.broker = broker.clients;
  Client client(co);
  CallOptions o;
  o.timeout = Duration(60000);
  auto start = std::chrono::steady_clock::now();
  auto r = client.call("broken", "echo", "x", o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::BootFailed);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
  unlink(config.c_str());
}

TEST_CASE("a bad config is refused at start-up naming the key", "[integration][elastic]") {
  auto config = writeBrokerConfig("[pools.x]\nmin = 5\nmax = 2\n[pools.x.process]\ncommand = [\"w\"]\n");
  auto p = Process::start({binary("flame-broker"), "--config", config});
  auto status = p->waitExit(Millis(5000));
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 2);
  CHECK(p->output().find("pools.x.max") != std::string::npos);
  unlink(config.c_str());
}

TEST_CASE("the --default-timeout flag applies to a pool declared in the config file",
          "[integration][elastic]") {
  // The configuration in effect, as the broker prints it: the flag's 1 s is the pool's default
  // run budget (its own `timeout` key would still win), not the built-in 30 s.
  auto config = writeBrokerConfig(R"(
[pools.slow]
backend = "process"
[pools.slow.process]
command = ["/bin/sleep", "30"]
[pools.own]
timeout = "5s"
[pools.own.process]
command = ["/bin/sleep", "30"]
)");
  auto p = Process::start({binary("flame-broker"), "--config", config, "--default-timeout", "1s", "--print-config"});
  auto status = p->waitExit(Millis(10000));
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 0);
  const std::string& out = p->output();
  INFO(out);
  auto slow = out.find("[pools.slow]"), own = out.find("[pools.own]");
  REQUIRE(slow != std::string::npos);
  REQUIRE(own != std::string::npos);
  CHECK(out.find("default_timeout = \"1s\"") != std::string::npos);
  CHECK(out.find("\ntimeout = \"1s\"", slow) < out.find("[pools.slow.process]"));
  CHECK(out.find("\ntimeout = \"5s\"", own) < out.find("[pools.own.process]"));
  unlink(config.c_str());
}

TEST_CASE("flame-broker refuses a non-loopback plaintext endpoint and names the fix",
          "[integration][security]") {
  // Refused before anything is bound: no socket on another address is ever opened.
  auto p = Process::start({binary("flame-broker"), "--clients", "tcp://0.0.0.0:0", "--runners", "tcp://127.0.0.1:0"});
  auto status = p->waitExit(Millis(5000));
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 2);
  CHECK(p->output().find("--insecure") != std::string::npos);
}

TEST_CASE("a cold pool: a boot longer than the run budget does not eat it, and an explicit wait bound is kept",
          "[integration][elastic]") {
  // Runners take 2 s to start: a slow machine boot. Two such pools, each cold for its case.
  std::string pools;
  for (const char* name : {"cold", "colder"})
    pools += std::string("[pools.") + name + R"(]
backend = "process"
max = 1
boot_timeout = "20s"
idle_shutdown_after = "30s"
[pools.)" + name + R"(.process]
command = ["sh", "-c", "sleep 2; exec \"$0\" --failsafe-after 2s", ")" + binary("flame-worker") + R"("]
)";
  auto config = writeBrokerConfig(pools);
  auto broker = BrokerProcess::start({"--config", config});
  ClientOptions co;
  co.broker = broker.clients;
  co.heartbeatInterval = Duration(200);
  Client client(co);

  // A 1 s run budget and the pool's wait bound (boot_timeout + 10 s): the call waits out the
  // 2 s boot and then runs within its budget. (Counted from receipt, it would time out at 1 s.)
  CallOptions budget;
  budget.timeout = Duration(1000);
  auto r = client.call("cold", "echo", "warm now", budget);
  if (!r) FAIL(r.error().toString());
  CHECK(r.value() == "warm now");

  // With an explicit 1 s bound on waiting, the cold pool is too slow: timeout, naming the wait.
  CallOptions impatient;
  impatient.timeout = Duration(1000);
  impatient.waitTimeout = Duration(1000);
  auto refused = client.call("colder", "echo", "x", impatient);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::Timeout);
  CHECK(refused.error().message.find("waited 1s for a runner") != std::string::npos);
  unlink(config.c_str());
}
