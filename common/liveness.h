// Liveness and reconnect backoff, written once for the broker, the runner and the client
// (docs/PROTOCOL.md, "Liveness and reconnects", states the same rules for other languages).
//
// Liveness: a peer is alive while something — any message, even one that cannot be decoded —
// was heard from it within its window, interval x liveness. It is dead from the instant
// lastHeard + window is reached (`now >= deadline`, the same comparison everywhere). The window
// saturates: an enormous interval or liveness means "never", not an overflow.
//
// Backoff: after a failure, wait `next()` before trying again. The base starts at `min`, doubles
// after every failure up to `max`, and goes back to `min` on reset() (a sign of life). Each delay
// is jittered down by up to `jitter` of the base (so many peers that lost the same broker do not
// reconnect in lockstep), and is never below `min` nor above `max`.
#pragma once

#include <cstdint>
#include <random>

#include "common/clock.h"

namespace flame {

// interval x liveness, saturating at kInfinite.
Duration livenessWindow(Duration interval, uint32_t liveness);

// The one rule: silent since `lastHeard` for the whole `window` (or more) means dead.
inline bool silentTooLong(TimePoint lastHeard, Duration window, TimePoint now) {
  return now >= addSaturating(lastHeard, window);
}

// One peer's liveness (the runner's and the client's view of the broker). The broker, with
// thousands of peers and one window, keeps only each peer's lastHeard and calls silentTooLong.
class Liveness {
 public:
  Liveness(Duration interval, uint32_t liveness) : window_(livenessWindow(interval, liveness)) {}

  // Something was heard from the peer (or counting starts: a new connection, work began).
  void heard(TimePoint now) { lastHeard_ = now; }
  // A new rule (the broker's welcome or heartbeat told us its interval and liveness).
  void setRule(Duration interval, uint32_t liveness) { window_ = livenessWindow(interval, liveness); }
  // Silence that does not count (our own loop was stalled): moves lastHeard forward by `d`.
  void credit(Duration d) { lastHeard_ = addSaturating(lastHeard_, d); }

  TimePoint lastHeard() const { return lastHeard_; }
  Duration window() const { return window_; }
  // The instant the peer becomes dead if nothing is heard before.
  TimePoint deadline() const { return addSaturating(lastHeard_, window_); }
  bool dead(TimePoint now) const { return silentTooLong(lastHeard_, window_, now); }
  Duration silence(TimePoint now) const { return now > lastHeard_ ? now - lastHeard_ : Duration(0); }

 private:
  Duration window_;
  TimePoint lastHeard_{};
};

// The one backoff rule, stateless: the delay after `failures` failures (0 = the first delay) is
// first x 2^failures capped at `max`, cut by up to `jitter` of itself (`draw`, in [0, 1), picks
// how much), never below `first` nor above `max`. first 0: no delay. Backoff below and the
// broker's job retries (PROTOCOL.md, Retries) both use it.
Duration backoffDelay(Duration first, Duration max, uint32_t failures, double jitter, double draw);

class Backoff {
 public:
  // Throws std::invalid_argument unless 0 < min <= max and 0 <= jitter < 1. `seed` 0: random.
  Backoff(Duration min, Duration max, double jitter = 0.25, uint64_t seed = 0);

  // The delay before the next attempt; the base then doubles (capped at max).
  Duration next();
  // A success: the next delay starts from min again.
  void reset() { base_ = min_; }
  // The base the next delay is drawn from (before jitter).
  Duration base() const { return base_; }
  Duration min() const { return min_; }
  Duration max() const { return max_; }

 private:
  Duration min_, max_, base_;
  double jitter_;
  std::mt19937_64 random_;
};

}  // namespace flame
