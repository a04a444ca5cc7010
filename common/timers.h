// TimerQueue: one-shot and periodic timers on a Clock, cancellable. The Reactor owns one and
// sleeps exactly until nextDeadline(); tests drive one directly with a ManualClock.
//
// Not thread-safe: the loop thread schedules, cancels and runs. A timer's handler may schedule
// and cancel timers (itself included); a timer scheduled while due timers run waits for the
// next runDue() even if it is already due, so a handler that re-arms itself at `now` cannot
// starve the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "common/clock.h"

namespace flame {

using TimerId = uint64_t;  // 0 is never a timer

class TimerQueue {
 public:
  using Callback = std::function<void()>;

  // Runs `fn` once at `when` (at once, on the next runDue(), if `when` has passed).
  TimerId at(TimePoint when, Callback fn);
  // Runs `fn` every `period` (> 0), the first time at `first`. Missed periods are not replayed:
  // the next run is one period after the run that happened.
  TimerId every(Duration period, TimePoint first, Callback fn);
  // Moves a pending timer to `when` (a periodic one keeps its period). False if it is gone.
  bool reschedule(TimerId id, TimePoint when);
  // False if the timer already ran (one-shot) or was cancelled.
  bool cancel(TimerId id);

  // The earliest deadline of a pending timer, TimePoint::max() if none.
  TimePoint nextDeadline();
  // Runs every timer due at `now`, earliest first. Returns how many ran.
  size_t runDue(TimePoint now);
  size_t size() const { return timers_.size(); }

 private:
  struct Timer {
    TimePoint when;
    Duration period{0};
    uint64_t generation = 0;  // bumped on reschedule: older heap entries are stale
    Callback fn;
  };
  struct Entry {
    TimePoint when;
    uint64_t order;  // FIFO among equal deadlines
    TimerId id;
    uint64_t generation;
    bool operator>(const Entry& o) const { return when != o.when ? when > o.when : order > o.order; }
  };
  void push(TimerId id, const Timer& t);
  void dropStale();

  std::unordered_map<TimerId, Timer> timers_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  TimerId nextId_ = 1;
  uint64_t nextOrder_ = 0;
};

}  // namespace flame
