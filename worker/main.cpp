// flame-worker: a generic runner serving the built-in functions (worker/builtins.h).
// Thin by design: flags and environment, signals, wiring, run(). Exit codes: 0 drained or
// stopped, 2 bad usage (also: a key that cannot be read), 3 failsafe (broker unreachable),
// 4 retired, 5 unauthorized (boot token or handshake refused).
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "common/curve_keys.h"
#include "common/duration.h"
#include "common/log.h"
#include "worker/builtins.h"
#include "worker/runner.h"

namespace {

constexpr int kExitUsage = 2;

int exitCode(flame::RunExit exit) {
  switch (exit) {
    case flame::RunExit::Stopped:
    case flame::RunExit::Drained:
      return 0;
    case flame::RunExit::FailsafeExpired:
      return 3;
    case flame::RunExit::Retired:
      return 4;
    case flame::RunExit::Unauthorized:
      return 5;
  }
  return 1;
}

bool parseDurationFlag(const char* flag, const std::string& text, flame::Duration& out) {
  if (text.empty()) return true;  // not given: keep the default
  auto parsed = flame::parseDuration(text);
  if (!parsed) {
    std::fprintf(stderr, "flame-worker: %s: '%s' is not a duration (e.g. 500ms, 30s, 5m)\n", flag,
                 text.c_str());
    return false;
  }
  out = *parsed;
  return true;
}

// --server-key and --key-file, when given, replace what the environment said.
bool readKeyFlags(const std::string& serverKey, const std::string& keyFile, flame::RunnerOptions& options) {
  try {
    if (!serverKey.empty()) options.serverKey = flame::readPublicKey(serverKey);
  } catch (const flame::KeyFileError& e) {
    std::fprintf(stderr, "flame-worker: --server-key: %s\n", e.what());
    return false;
  }
  try {
    if (!keyFile.empty()) options.secretKey = flame::readSecretKeyFile(keyFile);
  } catch (const flame::KeyFileError& e) {
    std::fprintf(stderr, "flame-worker: --key-file: %s\n", e.what());
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals before any thread exists, so that only the sigwait thread gets them
  // (and no async signal handler has to be written).
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

  flame::RunnerOptions options;
  try {
    options = flame::RunnerOptions::fromEnvironment();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "flame-worker: %s\n", e.what());
    return kExitUsage;
  }

  CLI::App app{"flame-worker: a flame runner serving echo, sleep and fail"};
  std::string failsafeAfter, drainGrace, cancelGrace, logLevel = "info";
  bool testFunctions = false;
  app.add_option("--broker", options.broker, "broker runner endpoint (FLAME_BROKER)")
      ->capture_default_str();
  app.add_option("--pool", options.pool, "pool name (FLAME_POOL)")->capture_default_str();
  app.add_option("--concurrency", options.concurrency, "jobs run at once (FLAME_MAX_CONCURRENCY)")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  app.add_option("--runner-id", options.runnerId, "runner id (FLAME_RUNNER_ID; default generated)");
  app.add_option("--token", options.token, "boot token (FLAME_BOOT_TOKEN)");
  std::string serverKey, keyFile;
  app.add_option("--server-key", serverKey,
                 "CURVE: the broker's public key, 40 Z85 characters or a NAME.pub file; with --key-file "
                 "(FLAME_SERVER_KEY)")
      ->type_name("FILE_OR_KEY");
  app.add_option("--key-file", keyFile,
                 "CURVE: this runner's secret key file (a NAME.key from flame keygen, mode 0600), whose public "
                 "key the broker's runner_keys must list (FLAME_KEY_FILE; booted runners get FLAME_SECRET_KEY)")
      ->type_name("FILE");
  app.add_option("--failsafe-after", failsafeAfter,
                 "exit when the broker is unreachable this long (default 30s)");
  app.add_option("--drain-grace", drainGrace,
                 "on SIGTERM, how long in-flight jobs may finish (default 30s)");
  app.add_option("--cancel-grace", cancelGrace,
                 "retire when a cancelled job runs this much longer (default 5s)");
  app.add_flag("--enable-test-functions", testFunctions, "also serve crash, hang and flaky (tests only)");
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (!parseDurationFlag("--failsafe-after", failsafeAfter, options.failsafeAfter) ||
      !parseDurationFlag("--drain-grace", drainGrace, options.drainGrace) ||
      !parseDurationFlag("--cancel-grace", cancelGrace, options.cancelGrace))
    return kExitUsage;
  if (!readKeyFlags(serverKey, keyFile, options)) return kExitUsage;
  if (options.serverKey.empty() != options.secretKey.empty()) {
    std::fprintf(stderr,
                 "flame-worker: CURVE needs both the broker's public key (--server-key or FLAME_SERVER_KEY) and this "
                 "runner's secret key (--key-file, FLAME_KEY_FILE or FLAME_SECRET_KEY); only the %s is given\n",
                 options.serverKey.empty() ? "secret key" : "broker's public key");
    return kExitUsage;
  }
  if (!flame::setLogLevel(logLevel)) {
    std::fprintf(stderr, "flame-worker: --log-level: unknown level '%s'\n", logLevel.c_str());
    return kExitUsage;
  }

  std::unique_ptr<flame::Runner> runner;
  try {
    runner = std::make_unique<flame::Runner>(options);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "flame-worker: %s\n", e.what());
    return kExitUsage;
  }
  flame::registerBuiltinFunctions(*runner, testFunctions);

  // First SIGTERM/SIGINT drains; a second one stops at once.
  std::atomic<bool> finished{false};
  std::thread signalThread([&] {
    int signal = 0, received = 0;
    while (sigwait(&stopSignals, &signal) == 0 && !finished.load()) {
      flame::logger("runner")->info("received signal {}: {}", signal,
                                    received == 0 ? "draining" : "stopping");
      if (received++ == 0)
        runner->requestDrain();
      else
        runner->requestStop();
    }
  });

  flame::RunExit exit = runner->run();
  finished.store(true);
  pthread_kill(signalThread.native_handle(), SIGTERM);  // blocked everywhere: wakes the sigwait
  signalThread.join();

  int code = exitCode(exit);
  if (exit == flame::RunExit::Retired || runner->strandedHandlers() > 0) {
    // A handler that ignored cancellation still runs on a detached thread: running static
    // destructors under it is unsafe, so leave without them.
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}
