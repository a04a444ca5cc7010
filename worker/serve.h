// serveIfBooted: FLAME.Parent in one call. An application whose main() starts with it is its
// own runner when a flame backend booted it, and the application otherwise:
//
//   inline constexpr flame::Function<Document, Counts> countWords{"count_words"};  // shared
//
//   int main(int argc, char** argv) {
//     flame::serveIfBooted([](flame::Runner& r) { r.serve(countWords, countWordsImpl); });
//     ... // not booted: the application, which calls countWords through flame::Client
//   }
//
// One function registers every served function, once, on the Runner it is given; it is called
// only when the process serves, so the application pays nothing for it otherwise.
#pragma once

#include <functional>
#include <optional>

#include "worker/runner.h"

namespace flame {

// True when a backend booted this process as a runner: FLAME_BOOT_TOKEN or FLAME_BROKER is set
// in the environment (backends/backend.h sets both; setting FLAME_BROKER by hand joins a pool as
// a static runner, as flame-worker would).
bool bootedAsRunner();

// Serves when booted: builds a Runner from RunnerOptions::fromEnvironment() (FLAME_BROKER,
// FLAME_POOL, FLAME_RUNNER_ID, FLAME_BOOT_TOKEN, FLAME_MAX_CONCURRENCY, the CURVE keys), lets
// `registerFunctions` register the functions, runs it with SIGTERM/SIGINT draining it (a second
// signal stops it), and returns its exit code as flame-worker's: 0 drained or stopped, 2 bad
// environment (logged), 3 failsafe, 4 retired, 5 unauthorized — except that when handlers
// that ignored cancellation still run (Runner::strandedHandlers()), it ends the process itself
// with std::_Exit(code), as flame-worker does. Not booted: returns nullopt at
// once and calls nothing. Call once, from the main thread, before starting other threads (it
// sets signal dispositions while it serves, and restores them).
std::optional<int> runIfBooted(const std::function<void(Runner&)>& registerFunctions);

// runIfBooted, and when it served: ends the process with its exit code (std::exit).
// Returns only when not booted, so the rest of main() is the application.
void serveIfBooted(const std::function<void(Runner&)>& registerFunctions);

// The exit code for `exit` (see runIfBooted).
int runnerExitCode(RunExit exit);

}  // namespace flame
