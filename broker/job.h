// A job as the broker tracks it from submit until its client has been answered and its
// runner has given the slot back. Plain data; BrokerCore owns every Job.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/messages.h"

namespace flame {

struct Pool;
struct RunnerState;

using JobId = uint64_t;

enum class JobState : uint8_t {
  Queued,   // waiting in its pool's queue
  Running,  // dispatched to `runner`, which holds a slot for it
  Delayed,  // waiting out a retry's backoff (until retryAt): in no queue, on no runner
};

struct Job {
  // Laid out so that small fields share words: a queued job costs memory (bench: memory).
  JobId id = 0;
  Mode mode = Mode::Call;
  JobState state = JobState::Queued;
  bool link = false;
  bool idempotent = false;
  bool answered = false;  // the client has had its final answer (result, error or timeout)
  // Split budgets (PROTOCOL.md, Deadlines): waiting for a runner is bounded by waitBound, and the
  // run budget starts when a runner takes the job. Without, `deadline` counts from receipt.
  bool split = false;
  // Retries (PROTOCOL.md, Retries): runner_lost when idempotent; these on request.
  bool retryHandlerError = false;
  bool retryTimeout = false;
  // Its request was taken over by a retry (a run budget that ran out: the retry is a new job, as
  // the runner may still hold this one); its jobDone only gives the slot back.
  bool superseded = false;
  uint8_t retriesLeft = 0;
  uint8_t attempt = 0;            // retries so far
  uint32_t runnerPos = 0;         // its index in runner->jobs while Running
  uint32_t retryBackoffMs = 0;    // the first retry's delay (0: none), doubling
  uint32_t retryBackoffMaxMs = 0;
  Pool* pool = nullptr;
  RunnerState* runner = nullptr;  // set while Running
  std::string function;
  std::string client;             // routing id of the submitting client
  std::string owner;              // CURVE: the key that submitted it (may stop it after a reconnect)
  uint64_t requestId = 0;
  TimePoint deadline = TimePoint::max();  // the current one: waiting, or running (split budgets)
  Duration waitBound = kInfinite;
  Duration runBudget = kInfinite;
  TimePoint submitted{};          // metrics: when it was accepted, and when last dispatched
  TimePoint dispatched{};
  TimePoint retryAt = TimePoint::max();  // while Delayed
  zmq::message_t payload;         // kept until the job ends (retries and requeues resend it)
};

}  // namespace flame
