// Latency histogram with log-linear buckets (the HdrHistogram idea, minimal): values below 128
// are exact, above that each power of two is split into 64 buckets, so any reported percentile
// is within 1/64 (1.6 %) of a recorded value. Fixed memory (~18 KiB), O(1) record, mergeable.
//
// Not thread-safe: one thread records into its own Histogram; merge() them afterwards.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace flame::bench {

class Histogram {
 public:
  // Records one value (nanoseconds). Values above kMaxValue are clamped to it.
  void record(uint64_t ns) {
    if (ns > kMaxValue) ns = kMaxValue;
    ++counts_[index(ns)];
    ++count_;
    sum_ += ns;
    if (ns > max_) max_ = ns;
  }

  void merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    if (other.max_ > max_) max_ = other.max_;
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }

  // The value at quantile q in [0, 1] (0.5 = median), as the midpoint of its bucket, in
  // nanoseconds; 0 when empty. The highest quantile never exceeds the recorded maximum.
  uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    if (q <= 0) q = 0;
    if (q >= 1) return max_;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_));
    if (rank >= count_) rank = count_ - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > rank) {
        uint64_t mid = lowerBound(i) + width(i) / 2;
        return mid > max_ ? max_ : mid;
      }
    }
    return max_;
  }

  static constexpr uint64_t kMaxValue = (uint64_t{1} << 40) - 1;  // ~18 minutes in ns

 private:
  static constexpr unsigned kSubBits = 6;  // 64 buckets per power of two
  static constexpr uint64_t kExact = uint64_t{1} << (kSubBits + 1);  // 0..127 exact
  static constexpr size_t kBuckets = kExact + (40 - kSubBits) * (uint64_t{1} << kSubBits);

  static size_t index(uint64_t v) {
    if (v < kExact) return static_cast<size_t>(v);
    unsigned magnitude = 63u - static_cast<unsigned>(std::countl_zero(v));  // >= kSubBits + 1
    unsigned shift = magnitude - kSubBits;                                 // >= 1
    uint64_t sub = (v >> shift) - (uint64_t{1} << kSubBits);              // 0..63
    return static_cast<size_t>(kExact + (shift - 1) * (uint64_t{1} << kSubBits) + sub);
  }
  static uint64_t lowerBound(size_t i) {
    if (i < kExact) return i;
    uint64_t k = i - kExact;
    unsigned shift = static_cast<unsigned>(k >> kSubBits) + 1;
    uint64_t sub = (k & ((uint64_t{1} << kSubBits) - 1)) + (uint64_t{1} << kSubBits);
    return sub << shift;
  }
  static uint64_t width(size_t i) {
    if (i < kExact) return 1;
    return uint64_t{1} << (((i - kExact) >> kSubBits) + 1);
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

}  // namespace flame::bench
