// How worker threads hand results back to the runner's I/O thread (internal to worker/).
// A mutex-guarded queue plus an eventfd the I/O thread polls next to its DEALER: no ZeroMQ
// socket is shared between threads, and wake() is async-signal-safe (one write(2)), so
// Runner::requestDrain() can be called from a signal handler.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>

#include "worker/handler.h"

namespace flame {

// What a worker thread hands back for one job: the handler's result.
struct JobOutcome {
  uint64_t jobId = 0;
  HandlerResult result;
  uint64_t instance = 0;  // the broker run that gave the job (RunningJob::instance)
};

// Shared (std::shared_ptr) by the runner and its worker threads, so that a worker thread that
// was detached (its handler ignored cancellation) can still post safely after the runner is gone.
class CompletionQueue {
 public:
  CompletionQueue();  // throws std::system_error if no eventfd can be created
  ~CompletionQueue();
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // Thread-safe: queues a completion and wakes the I/O thread (if the queue was empty).
  void post(JobOutcome outcome);
  // Thread-safe and async-signal-safe: makes fd() readable.
  void wake() noexcept;
  // I/O thread: clears the wake-up and returns everything queued so far, oldest first.
  std::deque<JobOutcome> takeAll();
  // Readable (POLLIN) after post()/wake() until takeAll().
  int fd() const { return fd_; }

 private:
  int fd_;
  std::mutex mutex_;
  std::deque<JobOutcome> queue_;
};

}  // namespace flame
