// Prometheus metrics (issue 11): a histogram type and a writer for the text exposition format
// (https://prometheus.io/docs/instrumenting/exposition_formats/). No broker types here: the
// core and the scaler keep plain counters and Histograms where the events happen, and
// broker/metrics_server.h renders them from the loop thread into a snapshot that an HTTP
// thread serves. Not thread-safe: each object belongs to one thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <array>

#include "common/clock.h"
#include "common/messages.h"

namespace flame::metrics {

// Cumulative-on-render histogram: observe() adds to the first bucket whose upper bound is >= the
// value (binary search, no allocation); render() prints cumulative `le` buckets, +Inf, _sum
// and _count. Bounds are in base units (seconds), strictly increasing.
class Histogram {
 public:
  explicit Histogram(std::initializer_list<double> bounds);
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  void observe(Duration d) { observe(static_cast<double>(d.count()) / 1000.0); }
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; the last entry is the +Inf bucket.
  const std::vector<uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // bounds_.size() + 1
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Bucket bounds, seconds. Job latency: 1 ms (the clock's resolution) to 5 min. Boot: 100 ms to 10 min.
Histogram latencyHistogram();
Histogram bootHistogram();

// A pool's job counters, kept in its Pool (pool.h) and bumped by BrokerCore where the events
// happen: one increment or one observe each, no allocation.
struct PoolMetrics {
  static constexpr size_t kModes = 3;
  static constexpr size_t kOutcomes = static_cast<size_t>(ErrorCode::Internal) + 1;  // None = "ok"
  std::array<uint64_t, kModes> submitted{};                        // accepted submits, by Mode
  std::array<std::array<uint64_t, kOutcomes>, kModes> finished{};  // by Mode and final answer
  uint64_t runnersLost = 0;    // runners removed that were not draining (dead, disconnected, exited)
  uint64_t bytesReceived = 0;  // payloads of submits and results
  uint64_t bytesSent = 0;      // payloads dispatched to runners and results forwarded to clients
  Histogram queueSeconds = latencyHistogram();  // submit -> dispatch
  Histogram runSeconds = latencyHistogram();    // dispatch -> the runner's jobDone

  void submit(Mode mode) { ++submitted[static_cast<size_t>(mode) % kModes]; }
  // The job's final answer (ErrorCode::None = ok). Codes past Internal count as internal.
  void finish(Mode mode, ErrorCode code) {
    size_t c = std::min(static_cast<size_t>(code), kOutcomes - 1);
    ++finished[static_cast<size_t>(mode) % kModes][c];
  }
};

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// `\`, `"` and newline escaped as the text format requires for a label value.
std::string escapeLabelValue(std::string_view value);
// A sample value: integers without a decimal point, +Inf/-Inf/NaN spelled as Prometheus does.
std::string formatValue(double value);

// Builds one exposition text. Call family() once per metric name, before its samples; samples of
// one family must follow it without another family in between.
class TextWriter {
 public:
  // Writes `# HELP` and `# TYPE` (type: counter, gauge, histogram). `help` is escaped.
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  // _bucket (cumulative, with `le`), _sum and _count samples of family `name`.
  void histogram(std::string_view name, const Labels& labels, const Histogram& h);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void labels(const Labels& labels, std::string_view extraKey = {}, std::string_view extraValue = {});
  std::string out_;
};

}  // namespace flame::metrics
