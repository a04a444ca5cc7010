// CURVE end to end with the real binaries (issue 10): flame-broker with a [security] section and
// keys written by `flame keygen`, a runner booted by the process backend (its key minted by the
// scaler), a static flame-worker with a listed key, and the flame CLI with and without keys.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/process_harness.h"

using namespace flame::test;

namespace {

struct Dir {
  std::filesystem::path path;
  Dir() {
    char pattern[] = "/tmp/flame-security-it-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

std::string firstLine(const std::string& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

struct Ran {
  int exitCode = -1;
  std::string output;
};

// Runs a command to its end (bounded: a hung command fails the test, it is killed by pid).
Ran run(const std::vector<std::string>& argv, Millis bound = Millis(20000)) {
  auto p = Process::start(argv);
  auto status = p->waitExit(bound);
  Ran r;
  r.output = p->output();
  if (!status) {
    FAIL("did not exit within " << bound.count() << " ms: " << argv[0] << " " << argv.back() << "\n" << r.output);
  }
  r.exitCode = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
  return r;
}

// A broker with CURVE on, the keys of its clients and runners, and a pool booted by the process
// backend. Keys are made with the real `flame keygen`.
struct Secured {
  Dir dir;
  BrokerProcess broker;

  Secured() {
    for (const char* name : {"broker", "alice", "bob", "ops", "static", "stranger"})
      REQUIRE(run({binary("flame"), "keygen", dir / name}).exitCode == 0);
    writeList("clients.list", {"alice", "bob"});
    writeList("admins.list", {"ops"});
    writeList("runners.list", {"static"});
    std::ofstream(dir / "broker.toml") << R"([broker]
heartbeat_interval = "200ms"
[security]
secret_key_file = ")" << (dir / "broker.key") << R"("
client_keys = ")" << (dir / "clients.list") << R"("
admin_keys = ")" << (dir / "admins.list") << R"("
runner_keys = ")" << (dir / "runners.list") << R"("
[pools.booted]
backend = "process"
max = 1
idle_shutdown_after = "30s"
boot_timeout = "10s"
[pools.booted.process]
command = [")" << binary("flame-worker") << R"(", "--failsafe-after", "2s"]
)";
    broker = BrokerProcess::start({"--config", dir / "broker.toml"});
  }
  void writeList(const std::string& file, std::initializer_list<const char*> names) {
    std::ofstream out(dir / file);
    for (const char* n : names) out << firstLine(dir / (std::string(n) + ".pub")) << " " << n << "\n";
  }
  // The flame CLI as `who` (a key name; "" = no key at all).
  std::vector<std::string> cli(const std::string& who, std::vector<std::string> args) {
    std::vector<std::string> argv{binary("flame"), "--broker", broker.clients};
    if (!who.empty()) {
      argv.insert(argv.end(), {"--server-key", dir / "broker.pub", "--key-file", dir / (who + ".key")});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  // A static runner, registered.
  std::unique_ptr<Process> readyRunner(const std::string& key) {
    auto p = staticRunner(key);
    bool registered = p->waitForLine("registered pool=", Millis(10000)).has_value();
    INFO(p->output());
    INFO("broker: " << broker.process->output());
    REQUIRE(registered);
    return p;
  }
  std::unique_ptr<Process> staticRunner(const std::string& key) {
    return Process::start({binary("flame-worker"), "--broker", broker.runners, "--pool", "static", "--server-key",
                           dir / "broker.pub", "--key-file", dir / (key + ".key"), "--failsafe-after", "5s"});
  }
  uint64_t completed(const std::string& pool) {
    Ran st = run(cli("ops", {"status", "--json"}));
    REQUIRE(st.exitCode == 0);
    auto at = st.output.find("\"name\":\"" + pool + "\"");
    if (at == std::string::npos) at = st.output.find("\"name\": \"" + pool + "\"");
    REQUIRE(at != std::string::npos);
    auto c = st.output.find("\"completed\"", at);
    REQUIRE(c != std::string::npos);
    return std::stoull(st.output.substr(st.output.find(':', c) + 1));
  }
};

}  // namespace

TEST_CASE("with CURVE, a booted runner and a static runner with a listed key serve calls end to end",
          "[integration][security]") {
  Secured s;
  auto worker = s.readyRunner("static");

  Ran r = run(s.cli("alice", {"call", "static", "echo", "over curve", "--timeout", "20s"}));
  INFO(r.output);
  CHECK(r.exitCode == 0);
  CHECK(r.output.find("over curve") != std::string::npos);

  // The process backend boots a runner whose key the scaler minted (FLAME_SECRET_KEY).
  Ran booted = run(s.cli("bob", {"call", "booted", "echo", "booted too", "--timeout", "20s"}));
  INFO(booted.output);
  CHECK(booted.exitCode == 0);
  CHECK(booted.output.find("booted too") != std::string::npos);
}

TEST_CASE("an unknown key, a plaintext client and a revoked key are refused at once, none of their jobs runs",
          "[integration][security]") {
  Secured s;
  auto worker = s.readyRunner("static");

  // The call's own budget is a minute: an answer within the bound below is the handshake's.
  auto refusedQuickly = [&](const std::string& who) {
    Ran r = run(s.cli(who, {"call", "static", "echo", "x", "--timeout", "60s"}), Millis(10000));
    INFO(who << ": " << r.output);
    CHECK(r.exitCode != 0);
    CHECK(r.output.find("unauthorized") != std::string::npos);
  };
  refusedQuickly("stranger");
  refusedQuickly("");         // plaintext
  refusedQuickly("static");   // a runner's key is not a client's
  CHECK(s.completed("static") == 0);

  // Revoke bob: drop him from the list, SIGHUP.
  REQUIRE(run(s.cli("bob", {"call", "static", "echo", "before", "--timeout", "20s"})).exitCode == 0);
  s.writeList("clients.list", {"alice"});
  s.broker.process->signal(SIGHUP);
  REQUIRE(s.broker.process->waitForLine("reloaded the key lists", Millis(10000)));
  refusedQuickly("bob");
  CHECK(s.completed("static") == 1);
  // A runner with an unknown key cannot join: it is refused and exits.
  auto rogue = s.staticRunner("stranger");
  auto exited = rogue->waitExit(Millis(10000));
  REQUIRE(exited);
  CHECK(WEXITSTATUS(*exited) != 0);
  CHECK(rogue->output().find("unauthorized") != std::string::npos);
}

TEST_CASE("with CURVE, a client cannot stop another's child and only an admin key changes a pool",
          "[integration][security]") {
  Secured s;
  auto worker = s.readyRunner("static");
  Ran placed = run(s.cli("alice", {"place", "static", "sleep", "60000"}));
  REQUIRE(placed.exitCode == 0);
  std::string handle = placed.output.substr(0, placed.output.find('\n'));
  REQUIRE(handle.find('@') != std::string::npos);

  Ran bobStop = run(s.cli("bob", {"stop", handle, "--timeout", "10s"}));
  INFO(bobStop.output);
  CHECK(bobStop.exitCode != 0);
  CHECK(bobStop.output.find("unauthorized") != std::string::npos);
  Ran aliceSet = run(s.cli("alice", {"pool", "set", "booted", "--max", "2"}));
  CHECK(aliceSet.exitCode != 0);
  CHECK(aliceSet.output.find("unauthorized") != std::string::npos);

  Ran opsSet = run(s.cli("ops", {"pool", "set", "booted", "--max", "2"}));
  INFO(opsSet.output);
  CHECK(opsSet.exitCode == 0);
  Ran aliceStop = run(s.cli("alice", {"stop", handle, "--timeout", "10s"}));
  INFO(aliceStop.output);
  CHECK(aliceStop.exitCode == 0);
}
