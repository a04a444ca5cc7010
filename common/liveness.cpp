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

namespace {
Duration jitteredDown(Duration base, Duration min, Duration max, double jitter, double draw) {
  Duration delay = base;
  if (jitter > 0.0) delay = Duration(static_cast<Duration::rep>(static_cast<double>(base.count()) * (1.0 - jitter * draw)));
  return std::clamp(delay, min, max);
}
}  // namespace

Duration backoffDelay(Duration first, Duration max, uint32_t failures, double jitter, double draw) {
  if (first <= Duration(0)) return Duration(0);
  max = std::max(max, first);
  Duration base = first;
  for (uint32_t i = 0; i < failures && base < max; ++i) base = base >= max / 2 ? max : base * 2;
  return jitteredDown(std::min(base, max), first, max, jitter, draw);
}

Duration Backoff::next() {
  double draw = jitter_ > 0.0 ? std::uniform_real_distribution<double>(0.0, 1.0)(random_) : 0.0;
  Duration delay = jitteredDown(base_, min_, max_, jitter_, draw);
  base_ = base_ >= max_ / 2 ? max_ : base_ * 2;
  return delay;
}

}  // namespace flame
