#include "worker/completion_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace flame {

CompletionQueue::CompletionQueue() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

CompletionQueue::~CompletionQueue() { ::close(fd_); }

void CompletionQueue::post(JobOutcome outcome) {
  bool signal;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(outcome));
    // Only a reader that found the queue empty may be asleep: one write(2) wakes it, and the
    // posts after this one find it disarmed (it takes them all when it wakes). Under load the
    // reader is mostly busy, and most posts make no system call.
    signal = armed_;
    armed_ = false;
  }
  if (signal) wake();
}

void CompletionQueue::wake() noexcept {
  uint64_t one = 1;
  // Can only fail with EAGAIN when the counter is saturated, which still leaves fd readable.
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
}

void CompletionQueue::takeAll(std::vector<JobOutcome>& out) {
  std::lock_guard lock(mutex_);
  if (queue_.empty()) {
    armed_ = true;
    return;
  }
  out.swap(queue_);
}

void CompletionQueue::clearWake() noexcept {
  uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(fd_, &count, sizeof(count));
}

}  // namespace flame
