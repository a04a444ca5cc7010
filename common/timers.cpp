#include "common/timers.h"

#include <stdexcept>

namespace flame {

void TimerQueue::push(TimerId id, const Timer& t) { heap_.push(Entry{t.when, nextOrder_++, id, t.generation}); }

TimerId TimerQueue::at(TimePoint when, Callback fn) {
  TimerId id = nextId_++;
  Timer& t = timers_[id];
  t.when = when;
  t.fn = std::move(fn);
  push(id, t);
  return id;
}

TimerId TimerQueue::every(Duration period, TimePoint first, Callback fn) {
  if (period <= Duration(0)) throw std::invalid_argument("a periodic timer needs a positive period");
  TimerId id = at(first, std::move(fn));
  timers_[id].period = period;
  return id;
}

bool TimerQueue::reschedule(TimerId id, TimePoint when) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return false;
  if (it->second.when == when) return true;
  it->second.when = when;
  ++it->second.generation;
  push(id, it->second);
  return true;
}

bool TimerQueue::cancel(TimerId id) { return timers_.erase(id) > 0; }

void TimerQueue::dropStale() {
  while (!heap_.empty()) {
    const Entry& top = heap_.top();
    auto it = timers_.find(top.id);
    if (it != timers_.end() && it->second.generation == top.generation) return;
    heap_.pop();
  }
}

TimePoint TimerQueue::nextDeadline() {
  dropStale();
  return heap_.empty() ? TimePoint::max() : heap_.top().when;
}

size_t TimerQueue::runDue(TimePoint now) {
  // Only entries that exist now may run in this round (see the header).
  uint64_t horizon = nextOrder_;
  size_t ran = 0;
  for (;;) {
    dropStale();
    if (heap_.empty()) break;
    Entry top = heap_.top();
    if (top.when > now || top.order >= horizon) break;
    heap_.pop();
    auto it = timers_.find(top.id);
    Callback fn;
    if (it->second.period > Duration(0)) {
      it->second.when = addSaturating(now, it->second.period);
      ++it->second.generation;
      push(top.id, it->second);
      fn = it->second.fn;  // a copy: the handler may cancel its own timer
    } else {
      fn = std::move(it->second.fn);
      timers_.erase(it);
    }
    fn();
    ++ran;
  }
  return ran;
}

}  // namespace flame
