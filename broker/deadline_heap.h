// Min-heap of (deadline, job id) with lazy deletion: finished jobs are not removed, they are
// skipped when they reach the top (the owner checks the job still exists with that deadline).
// When stale entries outnumber live ones the owner rebuilds the heap, so memory stays
// proportional to the jobs in flight even at hundreds of thousands of jobs per second.
#pragma once

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "broker/job.h"

namespace flame {

class DeadlineHeap {
 public:
  using Entry = std::pair<TimePoint, JobId>;
  void push(TimePoint deadline, JobId id) {
    heap_.emplace_back(deadline, id);
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  }
  bool empty() const { return heap_.empty(); }
  const Entry& top() const { return heap_.front(); }
  void pop() {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
  }
  size_t size() const { return heap_.size(); }
  // Keeps only the entries for which keep(entry) is true.
  template <class Keep>
  void rebuild(Keep&& keep) {
    std::erase_if(heap_, [&](const Entry& e) { return !keep(e); });
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
  }

 private:
  std::vector<Entry> heap_;
};

}  // namespace flame
