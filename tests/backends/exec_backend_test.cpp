// ExecBackend: placeholder expansion, and boot/stop/list through real /bin/sh scripts.
#include "backends/exec_backend.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>

#include "tests/backends/local_files.h"

using namespace flame;
using namespace flame::test;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

bool processGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::string stat = readAll("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

BootSpec spec(const std::string& runnerId = "r-1") {
  BootSpec s;
  s.pool = "thumbs";
  s.runnerId = runnerId;
  s.brokerId = "broker-a";
  s.env = {{kEnvBroker, "tcp://127.0.0.2:5556"}, {kEnvBootToken, "one time"}};
  return s;
}

std::vector<std::string> sh(const std::string& script) { return {"/bin/sh", "-c", script}; }

}  // namespace

TEST_CASE("exec placeholders expand", "[backends][exec]") {
  ExecContext context{
      "r-1", "thumbs", "broker-a", "m-9", {{"A", "1"}, {"B", "two words"}, {"C", "{pool}"}}};
  CHECK(expandPlaceholders({"x-{runner_id}-{pool}", "{broker_id}", "{machine_id}"}, context) ==
        std::vector<std::string>{"x-r-1-thumbs", "broker-a", "m-9"});
  CHECK(expandPlaceholders({"{env:A}", "[{env:B}]", "{env:MISSING}"}, context) ==
        std::vector<std::string>{"1", "[two words]", ""});
  // A whole-argument {env} becomes one argument per variable, unquoted.
  CHECK(expandPlaceholders({"env", "{env}", "runner"}, context) ==
        std::vector<std::string>{"env", "A=1", "B=two words", "C={pool}", "runner"});
  // Inside a longer argument it is a shell-ready string.
  CHECK(expandPlaceholders({"ssh host env {env} runner"}, context) ==
        std::vector<std::string>{"ssh host env A=1 B='two words' C='{pool}' runner"});
  // Values are not expanded again; unknown braces are left alone.
  CHECK(expandPlaceholders({"{env:C}", "{\"json\": {unknown}}", "{", "{pool"}, context) ==
        std::vector<std::string>{"{pool}", "{\"json\": {unknown}}", "{", "{pool"});
  CHECK(expandPlaceholders({"{{pool}}"}, context) == std::vector<std::string>{"{thumbs}"});
}

TEST_CASE("exec shellQuote", "[backends][exec]") {
  CHECK(shellQuote("plain-value_1.2:/x") == "plain-value_1.2:/x");
  CHECK(shellQuote("") == "''");
  CHECK(shellQuote("a b") == "'a b'");
  CHECK(shellQuote("it's") == "'it'\\''s'");
  CHECK(shellQuote("$HOME") == "'$HOME'");
}

TEST_CASE("exec boot runs the command with the runner environment, stdout names the machine",
          "[backends][exec]") {
  TempDir tmp("flame-exec");
  ExecOptions options;
  options.bootCommand =
      sh("echo \"$FLAME_RUNNER_ID $FLAME_POOL $FLAME_BROKER_ID $FLAME_BOOT_TOKEN {pool}\" > " +
         tmp.path("boot-{runner_id}") + "; printf '  machine-%s  \\nsecond line\\n' {runner_id}");
  options.stopCommand =
      sh("echo \"{machine_id} $FLAME_MACHINE_ID {runner_id} {pool} {broker_id}\" > " +
         tmp.path("stopped"));
  ExecBackend backend(options);
  CHECK_FALSE(backend.supportsList());

  BootResult result = backend.boot(spec("r-1"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "machine-r-1");
  CHECK(result.handle.runnerId == "r-1");
  CHECK(result.handle.pool == "thumbs");
  CHECK(readAll(tmp.path("boot-r-1")) == "r-1 thumbs broker-a one time thumbs\n");

  REQUIRE(backend.stop(result.handle).ok);
  CHECK(readAll(tmp.path("stopped")) == "machine-r-1 machine-r-1 r-1 thumbs broker-a\n");
}

TEST_CASE("exec boot with empty stdout uses the runner id", "[backends][exec]") {
  ExecOptions options;
  options.bootCommand = {"true"};
  options.stopCommand = {"true"};
  ExecBackend backend(options);
  BootResult result = backend.boot(spec("r-quiet"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "r-quiet");
}

TEST_CASE("exec boot failure carries the stderr tail", "[backends][exec]") {
  ExecOptions options;
  options.bootCommand = sh("echo 'noise' >&2; echo 'quota exceeded for {pool}' >&2; exit 3");
  options.stopCommand = {"true"};
  ExecBackend backend(options);
  BootResult result = backend.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("exit status 3"));
  CHECK_THAT(result.status.message, Catch::Contains("quota exceeded for thumbs"));
}

TEST_CASE("exec: commands that cannot run are not retryable", "[backends][exec]") {
  ExecOptions options;
  options.stopCommand = {"true"};
  SECTION("exit 127 from the shell") { options.bootCommand = sh("exec flame-no-such-command-xyz"); }
  SECTION("missing executable") { options.bootCommand = {"/nonexistent/flame-boot"}; }
  SECTION("no command") { options.bootCommand = {}; }
  ExecBackend backend(options);
  BootResult result = backend.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
}

TEST_CASE("exec stop failure is reported", "[backends][exec]") {
  ExecOptions options;
  options.bootCommand = {"true"};
  options.stopCommand = sh("echo 'no such machine {machine_id}' >&2; exit 1");
  ExecBackend backend(options);
  BackendStatus status = backend.stop(MachineHandle{"m-7", "r-7", "thumbs"});
  CHECK_FALSE(status.ok);
  CHECK_THAT(status.message, Catch::Contains("no such machine m-7"));
}

TEST_CASE("exec commandTimeout kills a hanging command and its group", "[backends][exec]") {
  TempDir tmp("flame-exec");
  ExecOptions options;
  options.bootCommand =
      sh("sleep 1000 & echo $! > " + tmp.path("child") + "; echo 'starting' >&2; wait");
  options.stopCommand = {"true"};
  options.commandTimeout = milliseconds(300);
  ExecBackend backend(options);
  auto started = std::chrono::steady_clock::now();
  BootResult result = backend.boot(spec());
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("timed out"));
  CHECK_THAT(result.status.message, Catch::Contains("starting"));
  CHECK(elapsed >= milliseconds(300));
  CHECK(elapsed < milliseconds(3000));
  pid_t child = static_cast<pid_t>(std::stol(readAll(tmp.path("child"))));
  CHECK(waitFor([&] { return processGone(child); }));
}

TEST_CASE("exec boot returns when the command exits even if a background process holds stdout",
          "[backends][exec]") {
  TempDir tmp("flame-exec");
  ExecOptions options;
  // The command launches a long-lived "machine" in the background, prints its id and exits.
  options.bootCommand = sh("(exec sleep 1000) & echo $! > " + tmp.path("bg") + "; echo machine-bg");
  options.stopCommand = sh("kill $(cat " + tmp.path("bg") + ")");
  options.commandTimeout = milliseconds(5000);
  ExecBackend backend(options);
  auto started = std::chrono::steady_clock::now();
  BootResult result = backend.boot(spec());
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(2000));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "machine-bg");
  pid_t bg = static_cast<pid_t>(std::stol(readAll(tmp.path("bg"))));
  CHECK(backend.stop(result.handle).ok);
  CHECK(waitFor([&] { return processGone(bg); }));
}

TEST_CASE("exec list parses machine ids, runner ids and pools", "[backends][exec]") {
  ExecOptions options;
  options.bootCommand = {"true"};
  options.stopCommand = {"true"};
  options.listCommand =
      sh("echo 'listing for {broker_id} '\"$FLAME_BROKER_ID\" >&2; printf 'm-1 r-1 thumbs\\n\\n  "
         "m-2\\nm-3 r-3\\n'");
  ExecBackend backend(options);
  CHECK(backend.supportsList());
  ListResult result = backend.list("broker-a");
  REQUIRE(result.status.ok);
  REQUIRE(result.machines.size() == 3);
  CHECK(result.machines[0].machineId == "m-1");
  CHECK(result.machines[0].runnerId == "r-1");
  CHECK(result.machines[0].pool == "thumbs");
  CHECK(result.machines[1].machineId == "m-2");
  CHECK(result.machines[1].runnerId.empty());
  CHECK(result.machines[2].runnerId == "r-3");

  ExecOptions failing = options;
  failing.listCommand = sh("echo 'api down' >&2; exit 2");
  ExecBackend broken(failing);
  ListResult failed = broken.list("broker-a");
  CHECK_FALSE(failed.status.ok);
  CHECK_THAT(failed.status.message, Catch::Contains("api down"));
}
