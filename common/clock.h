// Time is injected: everything that computes deadlines, heartbeats or idle timers takes a
// Clock. The real one (SteadyClock) is built only in main(); tests use ManualClock and
// advance it, so no test sleeps to make time pass.
#pragma once

#include <atomic>
#include <chrono>

namespace flame {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

inline constexpr Duration kInfinite = Duration::max();

// Monotonic time source. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::steady_clock::now());
  }
};

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint(Duration(1'000'000))) : now_(start.time_since_epoch().count()) {}
  TimePoint now() const override { return TimePoint(Duration(now_.load())); }
  void advance(Duration d) { now_ += d.count(); }

 private:
  std::atomic<Duration::rep> now_;
};

// Reads `source` only on refresh(): a loop that handles hundreds of messages per iteration reads
// the time once per batch instead of several times per message (clock_gettime costs ~25 ns in
// a VM, which was 15% of the broker's per-job work). Time stands still between refreshes, so
// only a loop that refreshes at least once per iteration may use it. Thread-safe.
class CachedClock final : public Clock {
 public:
  explicit CachedClock(const Clock& source) : source_(source), now_(source.now().time_since_epoch().count()) {}
  TimePoint now() const override { return TimePoint(Duration(now_.load(std::memory_order_relaxed))); }
  void refresh() { now_.store(source_.now().time_since_epoch().count(), std::memory_order_relaxed); }

 private:
  const Clock& source_;
  std::atomic<Duration::rep> now_;
};

// a + d, saturating at TimePoint::max() (so infinite budgets never overflow).
inline TimePoint addSaturating(TimePoint a, Duration d) {
  if (d >= TimePoint::max() - a) return TimePoint::max();
  return a + d;
}

}  // namespace flame
