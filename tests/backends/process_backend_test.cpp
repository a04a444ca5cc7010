// ProcessBackend with real child processes. Every wait is for an event (a file appears, a
// process is gone) with a deadline that only bounds failure.
#include "backends/process_backend.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>

#include "tests/backends/local_files.h"

using namespace flame;
using namespace flame::test;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

// A complete line was written (the shell writes "...\n" in one go, but be strict).
bool hasLine(const std::string& path) {
  std::string text = readAll(path);
  return !text.empty() && text.back() == '\n';
}

// Gone: no such process, or a zombie nobody of ours will reap (re-parented to init).
bool processGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::string stat = readAll("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

BootSpec spec(const std::string& runnerId, const std::string& brokerId = "broker-a") {
  BootSpec s;
  s.pool = "thumbs";
  s.runnerId = runnerId;
  s.brokerId = brokerId;
  s.env = {{kEnvBootToken, "tok-" + runnerId}};
  return s;
}

ProcessOptions shell(const std::string& script, milliseconds grace = milliseconds(200)) {
  ProcessOptions options;
  options.command = {"/bin/sh", "-c", script};
  options.stopGrace = grace;
  return options;
}

pid_t pidOf(const MachineHandle& handle) { return static_cast<pid_t>(std::stol(handle.machineId)); }

}  // namespace

TEST_CASE("process boot passes the runner environment and stop terminates", "[backends][process]") {
  TempDir tmp("flame-proc");
  ProcessOptions options =
      shell("echo \"$FLAME_RUNNER_ID $FLAME_POOL $FLAME_BROKER_ID $FLAME_BOOT_TOKEN $EXTRA\" > " +
            tmp.path("") + "$FLAME_RUNNER_ID.env; exec sleep 1000");
  options.extraEnv = {{"EXTRA", "extra-value"}, {kEnvRunnerId, "config-cannot-override"}};
  ProcessBackend backend(options);

  BootResult result = backend.boot(spec("r-1"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.runnerId == "r-1");
  CHECK(result.handle.pool == "thumbs");
  pid_t pid = pidOf(result.handle);
  REQUIRE(waitFor([&] { return hasLine(tmp.path("r-1.env")); }));
  CHECK(readAll(tmp.path("r-1.env")) == "r-1 thumbs broker-a tok-r-1 extra-value\n");
  CHECK(::getpgid(pid) == pid);  // its own process group
  CHECK(backend.childCount() == 1);

  auto started = std::chrono::steady_clock::now();
  CHECK(backend.stop(result.handle).ok);
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(2000));  // sleep dies on TERM
  CHECK(::kill(pid, 0) == -1);  // reaped: not even a zombie
  CHECK(errno == ESRCH);
  CHECK(backend.childCount() == 0);
  CHECK(backend.stop(result.handle).ok);  // idempotent
}

TEST_CASE("process stop SIGKILLs a child that ignores SIGTERM after the grace",
          "[backends][process]") {
  TempDir tmp("flame-proc");
  ProcessBackend backend(shell(
      "trap '' TERM; echo ready > " + tmp.path("ready") + "; exec sleep 1000", milliseconds(200)));
  BootResult result = backend.boot(spec("r-stubborn"));
  REQUIRE(result.status.ok);
  pid_t pid = pidOf(result.handle);
  REQUIRE(waitFor([&] { return hasLine(tmp.path("ready")); }));

  auto started = std::chrono::steady_clock::now();
  CHECK(backend.stop(result.handle).ok);
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(elapsed >= milliseconds(200));
  CHECK(elapsed < milliseconds(3000));
  CHECK(::kill(pid, 0) == -1);
}

TEST_CASE("process stop kills the runner's whole process group", "[backends][process]") {
  TempDir tmp("flame-proc");
  // The runner starts a helper in its group and then waits.
  ProcessBackend backend(shell("sleep 1000 & echo $! > " + tmp.path("helper") + "; wait"));
  BootResult result = backend.boot(spec("r-group"));
  REQUIRE(result.status.ok);
  REQUIRE(waitFor([&] { return hasLine(tmp.path("helper")); }));
  pid_t helper = static_cast<pid_t>(std::stol(readAll(tmp.path("helper"))));
  CHECK(backend.stop(result.handle).ok);
  CHECK(waitFor([&] { return processGone(helper); }));
}

TEST_CASE("process reap reports a child that exits by itself, once", "[backends][process]") {
  ProcessBackend backend(shell("exit 3"));
  BootResult result = backend.boot(spec("r-exit"));
  REQUIRE(result.status.ok);
  std::vector<ExitedProcess> exited;
  REQUIRE(waitFor([&] {
    auto reaped = backend.reap();
    exited.insert(exited.end(), reaped.begin(), reaped.end());
    return !exited.empty();
  }));
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == result.handle.machineId);
  CHECK(exited[0].machine.runnerId == "r-exit");
  CHECK(WIFEXITED(exited[0].waitStatus));
  CHECK(WEXITSTATUS(exited[0].waitStatus) == 3);
  CHECK(exited[0].description == "exit status 3");
  CHECK(backend.reap().empty());
  CHECK(backend.childCount() == 0);
  CHECK(backend.stop(result.handle).ok);  // already reaped: nothing to signal
}

TEST_CASE("process list shows running children of one broker", "[backends][process]") {
  TempDir tmp("flame-proc");
  ProcessBackend backend(shell("exec sleep 1000"));
  auto a = backend.boot(spec("r-a", "broker-a"));
  auto b = backend.boot(spec("r-b", "broker-a"));
  auto c = backend.boot(spec("r-c", "broker-b"));
  REQUIRE((a.status.ok && b.status.ok && c.status.ok));
  CHECK(backend.supportsList());
  ListResult listed = backend.list("broker-a");
  REQUIRE(listed.status.ok);
  REQUIRE(listed.machines.size() == 2);
  std::vector<std::string> runners{listed.machines[0].runnerId, listed.machines[1].runnerId};
  std::sort(runners.begin(), runners.end());
  CHECK(runners == std::vector<std::string>{"r-a", "r-b"});
  REQUIRE(backend.stop(a.handle).ok);
  CHECK(backend.list("broker-a").machines.size() == 1);
  CHECK(backend.list("broker-b").machines.size() == 1);
}

TEST_CASE("process backend destructor leaves no child alive", "[backends][process]") {
  TempDir tmp("flame-proc");
  std::vector<pid_t> pids;
  auto started = std::chrono::steady_clock::now();
  {
    ProcessBackend backend(
        shell("trap '' TERM; echo ready > " + tmp.path("") + "$FLAME_RUNNER_ID; exec sleep 1000",
              milliseconds(200)));
    for (int i = 0; i < 3; ++i) {
      auto result = backend.boot(spec("r-" + std::to_string(i)));
      REQUIRE(result.status.ok);
      pids.push_back(pidOf(result.handle));
    }
    for (int i = 0; i < 3; ++i)
      REQUIRE(waitFor([&] { return hasLine(tmp.path("r-" + std::to_string(i))); }));
  }
  // One shared grace for all children, not one each.
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(3000));
  for (pid_t pid : pids) {
    CHECK(::kill(pid, 0) == -1);
    CHECK(errno == ESRCH);
  }
}

TEST_CASE("process boot of a missing command fails, not retryable", "[backends][process]") {
  ProcessOptions options;
  options.command = {"flame-no-such-command-xyz"};
  ProcessBackend backend(options);
  BootResult result = backend.boot(spec("r-missing"));
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("flame-no-such-command-xyz"));

  ProcessBackend empty(ProcessOptions{});
  CHECK_FALSE(empty.boot(spec("r-none")).status.ok);

  ProcessOptions notExecutable;
  notExecutable.command = {"/etc/hostname"};
  ProcessBackend noExec(notExecutable);
  BootResult denied = noExec.boot(spec("r-denied"));
  CHECK_FALSE(denied.status.ok);
  CHECK_FALSE(denied.status.retryable);
}

TEST_CASE("process stop never signals pids it did not start", "[backends][process]") {
  ProcessBackend backend(shell("exec sleep 1000"));
  pid_t self = ::getpid();
  CHECK(backend.stop(MachineHandle{std::to_string(self), "x", "p"}).ok);
  CHECK(backend.stop(MachineHandle{"1", "x", "p"}).ok);
  CHECK(backend.stop(MachineHandle{"not-a-pid", "x", "p"}).ok);
  CHECK(::kill(self, 0) == 0);  // still here
}

TEST_CASE("process children die with the broker that spawned them", "[backends][process]") {
  TempDir tmp("flame-proc");
  std::string pidFile = tmp.path("pid");
  // An intermediate "broker" process boots a runner and dies without any cleanup (_exit):
  // PR_SET_PDEATHSIG must take the runner down with it.
  pid_t broker = ::fork();
  REQUIRE(broker >= 0);
  if (broker == 0) {
    ProcessBackend backend(shell("echo $$ > " + pidFile + "; exec sleep 1000"));
    BootResult result = backend.boot(spec("r-orphan"));
    bool written = result.status.ok && waitFor([&] { return hasLine(pidFile); });
    ::_exit(written ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(broker, &status, 0) == broker);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  pid_t runner = static_cast<pid_t>(std::stol(readAll(pidFile)));
  CHECK(waitFor([&] { return processGone(runner); }));
}
