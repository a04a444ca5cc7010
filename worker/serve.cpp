#include "worker/serve.h"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>

#include "common/log.h"

namespace flame {

namespace {

// A signal handler has no other way to reach the runner: one per process serves at a time
// (runIfBooted is called once, from main), and requestDrain/requestStop are async-signal-safe.
std::atomic<Runner*> gServing{nullptr};
std::atomic<int> gSignals{0};

void onSignal(int) {
  Runner* runner = gServing.load();
  if (runner == nullptr) return;
  if (gSignals.fetch_add(1) == 0)
    runner->requestDrain();
  else
    runner->requestStop();
}

bool isSet(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0';
}

}  // namespace

bool bootedAsRunner() { return isSet("FLAME_BOOT_TOKEN") || isSet("FLAME_BROKER"); }

int runnerExitCode(RunExit exit) {
  switch (exit) {
    case RunExit::Stopped:
    case RunExit::Drained:
      return 0;
    case RunExit::FailsafeExpired:
      return 3;
    case RunExit::Retired:
      return 4;
    case RunExit::Unauthorized:
      return 5;
  }
  return 1;
}

std::optional<int> runIfBooted(const std::function<void(Runner&)>& registerFunctions) {
  if (!bootedAsRunner()) return std::nullopt;
  auto log = logger("runner");
  std::unique_ptr<Runner> runner;
  try {
    runner = std::make_unique<Runner>(RunnerOptions::fromEnvironment());
  } catch (const std::invalid_argument& e) {  // a bad environment: untrusted input, not a bug
    log->error("cannot serve as a runner: {}", e.what());
    return 2;
  }
  registerFunctions(*runner);

  struct sigaction action {}, oldTerm {}, oldInt {};
  action.sa_handler = onSignal;
  sigemptyset(&action.sa_mask);
  gSignals.store(0);
  gServing.store(runner.get());
  sigaction(SIGTERM, &action, &oldTerm);
  sigaction(SIGINT, &action, &oldInt);
  RunExit exit = runner->run();
  sigaction(SIGTERM, &oldTerm, nullptr);
  sigaction(SIGINT, &oldInt, nullptr);
  gServing.store(nullptr);

  int code = runnerExitCode(exit);
  if (exit == RunExit::Retired || runner->strandedHandlers() > 0) {
    // A handler still runs on a detached thread: destroying the runner or running static
    // destructors under it is unsafe, so leave at once.
    spdlog::shutdown();
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

void serveIfBooted(const std::function<void(Runner&)>& registerFunctions) {
  if (auto code = runIfBooted(registerFunctions)) std::exit(*code);
}

}  // namespace flame
