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
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/messages.h"
#include "worker/completion_queue.h"
#include "worker/handler.h"

namespace flame {

// The runner's slot numbers (JobContext::slot()): 0 .. count-1, each held by at most one running
// job. The I/O thread acquires one when a job starts; runHandler() releases it as soon as the
// handler returns, on whichever thread ran it, so the table is shared and thread-safe. The core
// starts a job only while fewer than `concurrency` are running (their outcomes not yet in), and
// every one of those holds at most one slot, so acquire() finds one free whenever a job starts.
class SlotTable {
 public:
  explicit SlotTable(uint32_t count) : used_(count, 0) {}
  // The lowest free slot, now held; nullopt if all are held (a bug in the caller). Thread-safe.
  std::optional<uint32_t> acquire() {
    std::lock_guard lock(mutex_);
    for (uint32_t i = 0; i < used_.size(); ++i)
      if (!used_[i]) {
        used_[i] = 1;
        return i;
      }
    return std::nullopt;
  }
  // Frees a held slot. Thread-safe.
  void release(uint32_t slot) {
    std::lock_guard lock(mutex_);
    if (slot < used_.size()) used_[slot] = 0;
  }
  // How many slots are held. Thread-safe.
  size_t held() const {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (char u : used_) n += u ? 1 : 0;
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<char> used_;
};

// One job as a handler thread runs it. Shared (shared_ptr) by the I/O thread, which requests
// stop, and the handler thread running it; only `stop` changes once it is submitted.
struct RunningJob {
  uint64_t jobId = 0;
  uint64_t instance = 0;  // the broker run that dispatched it: a restarted broker reuses job ids
  Mode mode = Mode::Call;
  zmq::message_t payload;  // the job's payload frame, as received (no copy)
  TimePoint deadline = TimePoint::max();
  std::stop_source stop;
  uint32_t slot = 0;                  // JobContext::slot()
  std::shared_ptr<SlotTable> slots;   // where `slot` is held; null: none (tests). runHandler frees it
};

// Runs one handler for `job`: the boundary with user code, so no exception escapes it (one
// becomes a handlerError result). Then frees the job's slot. Used by the handler threads and for
// inline handlers; once per job.
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
