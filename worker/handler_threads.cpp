#include "worker/handler_threads.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <utility>

namespace flame {

namespace {

struct Task {
  std::shared_ptr<RunningJob> job;
  std::shared_ptr<const Handler> handler;
};

}  // namespace

namespace {

HandlerResult callHandler(const RunningJob& job, const Handler& handler) {
  JobContext context(job.jobId, job.mode,
                     std::string_view(static_cast<const char*>(job.payload.data()), job.payload.size()),
                     job.stop.get_token(), job.deadline, job.slot);
  try {
    return handler(context);
  } catch (const std::exception& e) {
    return fail(std::string("handler threw: ") + e.what());
  } catch (...) {
    // An exception escaping a thread would end the process.
    return fail("handler threw a non-standard exception");
  }
}

}  // namespace

HandlerResult runHandler(const RunningJob& job, const Handler& handler) {
  HandlerResult result = callHandler(job, handler);
  // Free before the outcome is posted: the core starts the next job only after it has read
  // this outcome, and that job must find the slot free.
  if (job.slots) job.slots->release(job.slot);
  return result;
}

// Everything a handler thread touches, owned jointly by the pool and every thread, so that a
// thread detached at shutdown outlives the pool (and the runner) safely.
struct HandlerThreads::Shared {
  explicit Shared(std::shared_ptr<CompletionQueue> c) : completions(std::move(c)) {}

  const std::shared_ptr<CompletionQueue> completions;
  std::mutex mutex;
  std::condition_variable cv;
  // Guarded by mutex:
  std::deque<Task> queue;
  std::vector<char> busy;  // per thread index: inside a handler
  size_t sleeping = 0;     // threads blocked waiting for work
  size_t waking = 0;       // notified, not yet back (never more than really are)
  bool closed = false;

  // Under the lock: wakes one sleeping thread unless one is already on its way. The woken
  // thread wakes the next if work is still queued when it takes its job (a chain), so a burst
  // of short jobs is run by the threads already awake instead of waking one thread per job,
  // and a burst of long ones still gets a thread each. Returns whether to notify.
  bool claimWake() {
    if (sleeping == 0 || waking > 0) return false;
    ++waking;
    return true;
  }
};

HandlerThreads::HandlerThreads(std::shared_ptr<CompletionQueue> completions)
    : shared_(std::make_shared<Shared>(std::move(completions))) {}

HandlerThreads::~HandlerThreads() { shutdown(); }

void HandlerThreads::ensureThreads(size_t count) {
  while (threads_.size() < count) {
    size_t index = threads_.size();
    {
      std::lock_guard lock(shared_->mutex);
      if (shared_->busy.size() <= index) shared_->busy.resize(index + 1, 0);
    }
    threads_.emplace_back(workerLoop, shared_, index);  // throws std::system_error
  }
}

void HandlerThreads::submit(std::shared_ptr<RunningJob> job, std::shared_ptr<const Handler> handler) {
  bool wake;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->queue.push_back(Task{std::move(job), std::move(handler)});
    wake = shared_->claimWake();
  }
  if (wake) shared_->cv.notify_one();
}

size_t HandlerThreads::shutdown() {
  std::deque<Task> dropped;  // destroyed outside the lock
  std::vector<char> busy;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->closed = true;
    dropped.swap(shared_->queue);
    busy = shared_->busy;
  }
  shared_->cv.notify_all();
  size_t detached = 0;
  for (size_t i = 0; i < threads_.size(); ++i) {
    if (!threads_[i].joinable()) continue;
    // A thread not busy under the lock above is waiting, or about to wait, for work it will
    // no longer get (or finishing a post): it ends at once. A busy one may never return.
    if (busy[i]) {
      threads_[i].detach();
      ++detached;
    } else {
      threads_[i].join();
    }
  }
  return detached;
}

void HandlerThreads::workerLoop(std::shared_ptr<Shared> shared, size_t index) {
  std::unique_lock lock(shared->mutex);
  for (;;) {
    // A thread that finished a job takes the next one without sleeping.
    while (!shared->closed && shared->queue.empty()) {
      ++shared->sleeping;
      shared->cv.wait(lock);
      --shared->sleeping;
      // Every return counts as the wake it may have been: `waking` may undercount (an extra
      // notify later), never overcount (a queued job left with every thread asleep).
      if (shared->waking > 0) --shared->waking;
    }
    if (shared->closed) return;
    Task task = std::move(shared->queue.front());
    shared->queue.pop_front();
    shared->busy[index] = 1;
    bool wake = !shared->queue.empty() && shared->claimWake();
    lock.unlock();
    if (wake) shared->cv.notify_one();

    HandlerResult result = runHandler(*task.job, *task.handler);
    uint64_t jobId = task.job->jobId;
    uint64_t instance = task.job->instance;
    task = Task{};

    // Not busy before the result is visible: once the I/O thread has seen every result, no
    // thread counts as busy, and shutdown() joins them all.
    lock.lock();
    shared->busy[index] = 0;
    lock.unlock();
    shared->completions->post(JobOutcome{jobId, std::move(result), instance});
    lock.lock();
  }
}

}  // namespace flame
