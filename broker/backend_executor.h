// Runs a pool's backend calls (boot, stop, list: they may block on HTTP or fork) away from the
// broker's socket loop. The scaler posts work; results come back as closures that the loop
// runs (Scaler::tick drains them). Tests use the inline variant, which runs work at once.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace flame {

class BackendExecutor {
 public:
  virtual ~BackendExecutor() = default;
  // Runs `work` (on the executor's thread, or inline). Thread-safe.
  virtual void post(std::function<void()> work) = 0;
};

// Runs the work inside post(). For tests with fake backends.
class InlineBackendExecutor final : public BackendExecutor {
 public:
  void post(std::function<void()> work) override { work(); }
};

// One thread, FIFO. The destructor finishes the queued work, then joins. The thread lives as
// long as the executor, which matters for the process backend (PR_SET_PDEATHSIG is tied to the
// thread that forked).
class ThreadBackendExecutor final : public BackendExecutor {
 public:
  ThreadBackendExecutor() : thread_([this] { loop(); }) {}
  ~ThreadBackendExecutor() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void post(std::function<void()> work) override {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(work));
    }
    wake_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> work;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      work();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace flame
