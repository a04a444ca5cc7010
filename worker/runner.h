// The runner runtime: connects to the broker's runner endpoint, registers (`ready`), runs jobs
// on handler threads, heartbeats, reconnects, and exits by itself when it must (drain, retire,
// failsafe, unauthorized). docs/PROTOCOL.md is the contract it implements.
//
//   flame::Runner runner(flame::RunnerOptions::fromEnvironment());
//   runner.handle("echo", [](flame::JobContext& job) { return std::string(job.payload()); });
//   return runner.run() == flame::RunExit::Drained ? 0 : 1;
//
// Threading: run() is the I/O thread; it alone owns the ZeroMQ socket. Jobs run on a fixed pool
// of long-lived handler threads, one per slot at most (started on demand, then reused; no thread
// is created per job); results come back through a queue and an eventfd wake-up.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "worker/handler.h"
#include "worker/typed.h"
#include "worker/runner_options.h"

namespace flame {

class Runner {
 public:
  // Throws std::invalid_argument for unusable options (empty pool, zero concurrency, ...).
  explicit Runner(RunnerOptions options);
  // Closes the socket; pending outgoing messages get a short linger. Must not run concurrently
  // with run().
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Registers `function` (1-128 bytes). Call before run(); registering a name twice replaces
  // the handler. Throws std::invalid_argument for a bad name, std::logic_error after run().
  void handle(std::string function, Handler handler);
  // Registers `function` to run on the runner's I/O thread instead of a handler thread: no
  // thread hand-off per job, the fastest path for cheap functions (flame-bench: "library
  // inline"). Only for handlers that return quickly and never block: while one runs the runner
  // reads and heartbeats nothing, and it cannot be interrupted (JobContext::stopRequested() sees
  // a cancel or an expired budget only if it came before the call). Same rules as handle().
  void handleInline(std::string function, Handler handler);
  // Serves a typed function declared once with the caller (common/function.h) with `impl`
  // (worker/typed.h, functionHandler: its forms, and what a payload that does not decode does).
  // Same rules as handle(); a wrong impl is a compile error.
  template <class In, class Out, class Impl>
  void serve(const Function<In, Out>& function, Impl impl) {
    handle(std::string(function.name), functionHandler(function, std::move(impl)));
  }

  // Blocks: connects, registers, serves jobs until the runner must stop, then says `leaving`
  // when it can and returns why. Call once. Throws only for programming errors (zmq misuse).
  RunExit run();

  // Thread-safe and async-signal-safe (an atomic store and one write(2)): drain as on SIGTERM:
  // take nothing new, let in-flight jobs finish within drainGrace, cancel the rest, leave.
  void requestDrain() noexcept;
  // Thread-safe and async-signal-safe: stop now, without drain grace. Running jobs are cancelled
  // and get up to cancelGrace to return, then run() returns RunExit::Stopped.
  void requestStop() noexcept;

  const std::string& runnerId() const;

  // After run() returned: how many handlers were still running (they ignored cancellation) and
  // were left on detached handler threads (idle handler threads are joined). Non-zero means the
  // process should end soon with std::_Exit(): those handlers may still use whatever they
  // captured. Thread-safe.
  size_t strandedHandlers() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flame
