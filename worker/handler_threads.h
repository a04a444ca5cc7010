// HandlerThreads (internal to worker/): the runner's fixed set of long-lived threads that take
// jobs from a queue, run their handlers and post results to the CompletionQueue. No thread is
// created per job.
//
// Threads start on demand (ensureThreads) and never exceed what the runner asks for, which is
// at most its `concurrency`; once started they live until shutdown(). shutdown() joins the
// threads that are idle and detaches the ones still inside a handler (it ignored cancellation):
// everything such a thread touches afterwards (the queue, its job, the handler, the completion
// queue) is owned jointly by shared_ptr, so it never reaches freed memory.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/messages.h"
#include "worker/completion_queue.h"
#include "worker/handler.h"

namespace flame {

// One job as a handler thread runs it. Shared (shared_ptr) by the I/O thread, which requests
// stop, and the handler thread running it; only `stop` changes once it is submitted.
struct RunningJob {
  uint64_t jobId = 0;
  uint64_t instance = 0;  // the broker run that dispatched it: a restarted broker reuses job ids
  Mode mode = Mode::Call;
  zmq::message_t payload;  // the job's payload frame, as received (no copy)
  TimePoint deadline = TimePoint::max();
  std::stop_source stop;
};

// Runs one handler for `job`: the boundary with user code, so no exception escapes it (one
// becomes a handlerError result). Used by the handler threads and for inline handlers.
HandlerResult runHandler(const RunningJob& job, const Handler& handler);

class HandlerThreads {
 public:
  explicit HandlerThreads(std::shared_ptr<CompletionQueue> completions);
  ~HandlerThreads();  // shutdown()
  HandlerThreads(const HandlerThreads&) = delete;
  HandlerThreads& operator=(const HandlerThreads&) = delete;

  // Starts threads until there are `count`. Throws std::system_error if one cannot be started
  // (those started so far stay). Owner thread only.
  void ensureThreads(size_t count);
  size_t threads() const { return threads_.size(); }

  // Queues a job for the next idle thread. The caller keeps no more jobs queued or running
  // (not yet posted) than there are threads, so a queued job never waits for a busy thread.
  void submit(std::shared_ptr<RunningJob> job, std::shared_ptr<const Handler> handler);

  // Takes no more work (queued jobs are dropped), joins idle threads, detaches threads still
  // inside a handler and returns how many it detached. Idempotent: later calls return 0.
  size_t shutdown();

 private:
  struct Shared;
  static void workerLoop(std::shared_ptr<Shared> shared, size_t index);

  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
};

}  // namespace flame
