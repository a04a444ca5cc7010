// How handler threads hand outcomes back to the runner's I/O thread (internal to worker/).
// A mutex-guarded queue plus an eventfd the I/O thread polls next to its DEALER: no ZeroMQ
// socket is shared between threads, and wake() is async-signal-safe (one write(2)), so
// Runner::requestDrain() can be called from a signal handler.
//
// The descriptor is written only when the I/O thread is about to sleep: it drains the queue
// with takeAll() until that finds nothing, which arms the queue, and only the first post()
// after that writes the eventfd. Outcomes posted while the I/O thread is busy cost no system
// call and no wake-up; it picks them up before it sleeps again.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "worker/handler.h"

namespace flame {

// What a handler thread hands back for one job: the handler's result.
struct JobOutcome {
  uint64_t jobId = 0;
  HandlerResult result;
  uint64_t instance = 0;  // the broker run that gave the job (RunningJob::instance)
};

// Shared (std::shared_ptr) by the runner and its handler threads, so that a handler thread that
// was detached (its handler ignored cancellation) can still post safely after the runner is gone.
class CompletionQueue {
 public:
  CompletionQueue();  // throws std::system_error if no eventfd can be created
  ~CompletionQueue();
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // Thread-safe: queues an outcome; makes fd() readable if the reader is armed (see takeAll).
  void post(JobOutcome outcome);
  // Thread-safe and async-signal-safe: makes fd() readable.
  void wake() noexcept;
  // I/O thread: swaps everything queued, oldest first, into `out` (which must be empty; its
  // capacity is reused for the next batch). When nothing was queued it arms the queue instead:
  // the next post() makes fd() readable. So a reader may sleep on fd() only after a takeAll()
  // that found nothing.
  void takeAll(std::vector<JobOutcome>& out);
  // I/O thread: consumes the readability of fd() (after poll said so).
  void clearWake() noexcept;
  int fd() const { return fd_; }

 private:
  int fd_;
  std::mutex mutex_;
  std::vector<JobOutcome> queue_;  // guarded by mutex_
  bool armed_ = false;             // guarded by mutex_: the reader sleeps or is about to
};

}  // namespace flame
