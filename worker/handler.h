// What a runner function sees and returns: JobContext (the job's id, mode, payload, deadline
// and cooperative stop token) and HandlerResult (result bytes or an error message).
//
//   runner.handle("upper", [](flame::JobContext& job) -> flame::HandlerResult {
//     if (job.payload().empty()) return flame::fail("empty input");
//     std::string s(job.payload());
//     for (auto& c : s) c = std::toupper(c);
//     return s;  // a std::string is a success
//   });
#pragma once

#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/messages.h"

namespace flame {

// The outcome of a handler: on success `value` holds the result bytes, on failure the error
// message sent to the client (code handlerError). Build with ok()/fail(), or return a
// std::string (success) directly.
struct HandlerResult {
  HandlerResult() = default;                                       // success with an empty result
  HandlerResult(std::string result) : value(std::move(result)) {}  // NOLINT: implicit by design
  HandlerResult(std::string_view result) : value(result) {}        // NOLINT
  HandlerResult(const char* result) : value(result) {}             // NOLINT

  bool isError = false;
  std::string value;
};

// Success with `bytes` as the result.
inline HandlerResult ok(std::string bytes = {}) { return HandlerResult(std::move(bytes)); }
// Failure: the job ends with code handlerError and `message` as its text.
inline HandlerResult fail(std::string message) {
  HandlerResult r(std::move(message));
  r.isError = true;
  return r;
}

// The job a handler runs. Valid only during the handler call (the payload view points into
// the runner's copy of the frame). Thread-safe to read; the runner requests stop from its I/O
// thread when the job is cancelled, when its deadline passes, or when the runner stops.
class JobContext {
 public:
  // Runners build these; tests of a handler may build one directly.
  JobContext(uint64_t jobId, Mode mode, std::string_view payload, std::stop_token stop,
             TimePoint deadline, uint32_t slot = 0)
      : jobId_(jobId),
        mode_(mode),
        payload_(payload),
        stop_(std::move(stop)),
        deadline_(deadline),
        slot_(slot) {}

  uint64_t jobId() const { return jobId_; }
  Mode mode() const { return mode_; }
  // The argument bytes (the job's payload frame).
  std::string_view payload() const { return payload_; }
  // The slot the job runs in: 0 .. concurrency-1, unique among the runner's running jobs at any
  // moment; a slot is free again once its job's handler has returned, and a new job takes the
  // lowest free one. Pin a job's resources to it, e.g. one GPU per slot:
  //   cudaSetDevice(job.slot()), or CUDA_VISIBLE_DEVICES=<slot> in a child process's environment.
  uint32_t slot() const { return slot_; }

  // Cooperative cancellation: true once the job was cancelled, timed out or the runner is
  // stopping. A handler should return soon after; one that does not within the runner's
  // cancel grace makes the runner retire.
  bool stopRequested() const { return stop_.stop_requested(); }
  // The same signal, for std::condition_variable_any waits or std::stop_callback.
  std::stop_token stopToken() const { return stop_; }
  // When the job's budget runs out (on the runner's clock); TimePoint::max() = no deadline.
  TimePoint deadline() const { return deadline_; }

  // Sleeps up to `d` (real time; kInfinite = until stop). Returns false if stop was requested
  // (possibly early, as soon as it is), true if the whole duration elapsed.
  bool sleepFor(Duration d) const;

 private:
  uint64_t jobId_;
  Mode mode_;
  std::string_view payload_;
  std::stop_token stop_;
  TimePoint deadline_;
  uint32_t slot_;
};

// A runner function. Called on a handler thread, one call per job; it may block, and should
// poll the stop token if it runs long. Exceptions it throws become handlerError results.
using Handler = std::function<HandlerResult(JobContext&)>;

}  // namespace flame
