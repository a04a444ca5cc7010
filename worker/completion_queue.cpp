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
  bool wasEmpty;
  {
    std::lock_guard lock(mutex_);
    wasEmpty = queue_.empty();
    queue_.push_back(std::move(outcome));
  }
  // Only the first completion of a run needs to wake the I/O thread: takeAll() takes the whole
  // queue, and a post that finds it non-empty is behind one whose write(2) is still to come or
  // not yet consumed (takeAll clears the eventfd before it swaps the queue). Under load this
  // saves a system call per job.
  if (wasEmpty) wake();
}

void CompletionQueue::wake() noexcept {
  uint64_t one = 1;
  // Can only fail with EAGAIN when the counter is saturated, which still leaves fd readable.
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
}

std::deque<JobOutcome> CompletionQueue::takeAll() {
  // Clear the wake-up first: a post() after this point writes again, so none is lost.
  uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(fd_, &count, sizeof(count));
  std::deque<JobOutcome> out;
  std::lock_guard lock(mutex_);
  out.swap(queue_);
  return out;
}

}  // namespace flame
