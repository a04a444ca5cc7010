#include "common/liveness.h"

#include <algorithm>
#include <stdexcept>

namespace flame {

Duration livenessWindow(Duration interval, uint32_t liveness) {
  if (interval <= Duration(0) || liveness == 0) return Duration(0);
  if (interval.count() >= kInfinite.count() / static_cast<Duration::rep>(liveness)) return kInfinite;
  return interval * liveness;
}

Backoff::Backoff(Duration min, Duration max, double jitter, uint64_t seed)
    : min_(min), max_(max), base_(min), jitter_(jitter), random_(seed ? seed : std::random_device{}()) {
  if (min <= Duration(0) || max < min) throw std::invalid_argument("backoff must satisfy 0 < min <= max");
  if (!(jitter >= 0.0 && jitter < 1.0)) throw std::invalid_argument("backoff jitter must be in [0, 1)");
}

Duration Backoff::next() {
  Duration delay = base_;
  if (jitter_ > 0.0) {
    double cut = std::uniform_real_distribution<double>(0.0, jitter_)(random_);
    delay = Duration(static_cast<Duration::rep>(static_cast<double>(base_.count()) * (1.0 - cut)));
  }
  delay = std::clamp(delay, min_, max_);
  base_ = base_ >= max_ / 2 ? max_ : base_ * 2;
  return delay;
}

}  // namespace flame
