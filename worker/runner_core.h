// RunnerCore: the runner's whole protocol state machine (docs/PROTOCOL.md, the runner's side),
// with no sockets and no threads. It takes decoded broker messages, job outcomes and requests,
// reads the time from a Clock, and acts through RunnerEffects: messages to the broker, opening
// and closing the connection, starting and cancelling jobs, and finishing. flame::Runner (the
// socket shell, worker/runner.cpp) and the unit tests (a ManualClock and recording effects)
// drive it; so a test proves a liveness window, a backoff or a grace to the millisecond without
// waiting for any of them.
//
// Life of a connection: Down --connect--> Connecting (ready sent, or pending until the
// connection can take it) --welcome--> Registered. Silence for interval x liveness
// (common/liveness.h) drops back to Down and a fresh connection follows after a jittered
// exponential backoff; silence for failsafeAfter ends the runner. Phases: Serving -> Draining
// (drain, requestDrain, retire) -> finished, or -> Stopping (requestStop, failsafe,
// unauthorized) -> finished.
//
// A job is named by (broker instance, job id): a restarted broker reuses ids.
//
// Not thread-safe: one thread (the runner's I/O loop) calls everything, and every effect is
// called on that thread, from inside one of the calls below.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/transport.h"
#include "worker/completion_queue.h"
#include "worker/runner_options.h"
#include "worker/handler_threads.h"

namespace flame {

// What RunnerCore asks of its shell. An interface: the runner's socket shell implements it
// with a DEALER and a HandlerThreads, tests with a recorder.
class RunnerEffects {
 public:
  virtual ~RunnerEffects() = default;
  // Opens a fresh connection to the broker (a new DEALER; there is none open). The shell
  // calls RunnerCore::onWritable() once it can take a message, while wantsWritable().
  virtual void connect() = 0;
  // Closes the connection; whatever was queued on it is dropped.
  virtual void disconnect() = 0;
  // Queues one message on the open connection without blocking: `header` is an encoded
  // Envelope, `payload` (may be null) the payload frame; both are consumed on Ok. WouldBlock:
  // not queued (the connection is not up yet, or its queue is full).
  virtual SendStatus send(zmq::message_t& header, zmq::message_t* payload) = 0;
  // Runs `job` with the handler registered for `function` on a handler thread; its outcome
  // comes back through RunnerCore::onJobDone(). Returns an empty string, or why the job cannot
  // start (no thread could be started): the core answers the job `internal`.
  virtual std::string startJob(std::shared_ptr<RunningJob> job, const std::string& function) = 0;
  // Asks a started job to stop: its stop token fires (the handler may ignore it).
  virtual void cancelJob(RunningJob& job) = 0;
  // The runner is done: the last messages are queued, the jobs left (if any) ignored
  // cancellation past their grace and are abandoned. Called once; the shell closes the
  // connection after a short linger and returns `exit` from run(). Returns how many handlers
  // were abandoned on their threads (for the log).
  virtual size_t finish(RunExit exit) = 0;
};

// Who the runner is: fixed for its life, announced in every ready.
struct RunnerIdentity {
  std::string runnerId;  // 1-128 bytes
  std::string secret;    // the token every ready carries: boot token, or a random secret
  std::string host;
  uint32_t pid = 0;
};

class RunnerCore {
 public:
  // Throws std::invalid_argument for unusable options (empty pool, zero concurrency, bad
  // durations). `options.broker` and `options.clock` are the shell's; `clock` and `effects` are
  // not owned and must outlive the core.
  RunnerCore(const RunnerOptions& options, RunnerIdentity identity, const Clock& clock,
             RunnerEffects& effects);
  ~RunnerCore();
  RunnerCore(const RunnerCore&) = delete;
  RunnerCore& operator=(const RunnerCore&) = delete;

  // Adds a function name to what ready announces. Before start() only.
  void addFunction(const std::string& name) { functions_.insert(name); }

  // Begins: counts the broker's silence from now and connects. Once.
  void start();

  // The open connection can take a message (the first time: it is up). Sends a pending ready,
  // and results that waited for room in a full send queue.
  void onWritable();
  // True while a ready waits for the connection, or results wait for room while registered
  // (the shell then watches for writability).
  bool wantsWritable() const {
    return link_ != Link::Down && (readyPending_ || (link_ == Link::Registered && !outbox_.empty()));
  }

  // A decoded message from the broker with its payload frame (empty if none).
  void onMessage(Message&& message, zmq::message_t payload);
  // A message from the broker that could not be decoded: ignored, but a sign of life.
  void onUndecodable(const std::string& why);
  // A handler thread's outcome of a started job.
  void onJobDone(JobOutcome&& outcome);

  // The broker refused the connection's handshake (a key it does not accept, CURVE on one side
  // only, a wrong server key: common/handshake_monitor.h). Like a refused boot token, final: the
  // runner says nothing more to the broker, stops (running jobs are cancelled) and run() ends
  // with RunExit::Unauthorized; `why` goes to the log.
  void onHandshakeRefused(const std::string& why);
  // A handshake succeeded (logged; registration proceeds with ready/welcome as before).
  void onHandshakeSucceeded();

  // Drain as on SIGTERM: take nothing new, let running jobs finish within drainGrace, cancel
  // the rest, leave.
  void requestDrain();
  // Stop now: running jobs are cancelled and get cancelGrace to return, then finish.
  void requestStop();

  // Fires what is due: failsafe, liveness, reconnect, heartbeat, job deadlines, cancel graces,
  // drain grace; then finishes when the runner is done. Call whenever the clock may have
  // reached nextWakeup(), and after every input (the shell calls it after each event).
  void tick();
  // When tick() next has work to do (TimePoint::max(): nothing timed).
  TimePoint nextWakeup() const;

  // The shell is going away without finishing (run() threw, or never ran): asks every job to
  // stop and forgets them (their outcomes are never read).
  void abandon();

  bool finished() const { return finished_; }
  RunExit exitReason() const { return exit_; }

  // Introspection (tests, logs).
  enum class Link { Down, Connecting, Registered };
  Link link() const { return link_; }
  size_t runningJobs() const { return jobs_.size(); }
  size_t queuedResults() const { return outbox_.size(); }
  uint64_t brokerInstance() const { return brokerInstance_; }
  // The delay the next reconnect waits (drawn when the connection was dropped), 0 if none.
  Duration lastBackoff() const { return lastBackoff_; }
  const std::string& runnerId() const { return identity_.runnerId; }

 private:
  enum class Phase { Serving, Draining, Stopping };
  // A job as both sides name it: the broker run that dispatched it and its id in that run.
  using JobKey = std::pair<uint64_t, uint64_t>;  // (instance, job id)
  // A started job, as the core tracks it.
  struct Entry {
    std::shared_ptr<RunningJob> job;
    std::string function;
    ErrorCode stopReason = ErrorCode::None;  // Cancelled or Timeout once stop was requested
    std::string stopMessage;
    TimePoint graceEnds = TimePoint::max();  // set when stop is requested
    bool stuck = false;                      // still running after its cancel grace
  };
  // A result waiting for (re-)registration, with the job it answers.
  struct PendingResult {
    JobKey job;
    zmq::message_t header;
    zmq::message_t payload;
    bool hasPayload = false;
  };

  // -- connection --
  void connect(TimePoint now);
  // Closes the connection and schedules the next one after a backoff; logs `why`.
  void dropConnection(TimePoint now, const std::string& why);
  void disconnect();
  void sendReady();
  void sendHeartbeat(TimePoint now);
  void sendLeaving(bool exiting);
  void sendResult(JobKey job, zmq::message_t header, zmq::message_t* payload);
  void flushOutbox();
  TimePoint failsafeAt() const { return addSaturating(lastHeard_, options_.failsafeAfter); }
  // A message arrived; `success`: it also resets the reconnect backoff.
  void heard(TimePoint now, bool success);
  // -- input --
  void onWelcome(const msg::Welcome& welcome, TimePoint now);
  void onError(const msg::Error& error, TimePoint now);
  void onJob(const msg::Job& job, zmq::message_t payload, TimePoint now);
  void onCancelJob(const msg::CancelJob& cancel, TimePoint now);
  void refuse(JobKey key, ErrorCode code, std::string message);
  // -- jobs and phases --
  void cancel(Entry& entry, ErrorCode reason, std::string message, TimePoint now);
  void beginDrain(Duration grace, std::string reason, RunExit exit, TimePoint now);
  void beginStop(RunExit exit, std::string reason, TimePoint now);
  void giveUp(RunExit exit, const char* reason, TimePoint now);
  void runTimers(TimePoint now);
  void finishIfDone(TimePoint now);

  RunnerOptions options_;
  RunnerIdentity identity_;
  const Clock& clock_;
  RunnerEffects& effects_;
  std::shared_ptr<spdlog::logger> log_ = logger("runner");
  std::set<std::string> functions_;
  bool started_ = false;

  Link link_ = Link::Down;
  bool readyPending_ = false;  // ready not yet accepted by the connection
  bool everRegistered_ = false;
  bool talk_ = true;  // false once the broker is gone for good (failsafe, refused)
  Duration interval_;
  TimePoint lastHeard_{};  // last message from the broker (or the start): the failsafe counts from it
  Liveness liveness_;      // silence since the last message or the current connection's opening
  Backoff backoff_;
  Duration lastBackoff_{0};
  TimePoint nextHeartbeat_ = TimePoint::max();
  TimePoint reconnectAt_ = TimePoint::max();

  std::map<JobKey, Entry> jobs_;      // started, outcome not yet in
  std::deque<PendingResult> outbox_;  // results waiting for (re-)registration
  uint64_t brokerInstance_ = 0;       // Welcome.instance of the broker run we are registered with
  uint64_t maxResultBytes_ = 0;       // Welcome.maxPayloadBytes; 0 = unknown (no check)

  Phase phase_ = Phase::Serving;
  RunExit exit_ = RunExit::Stopped;
  std::string leavingReason_;
  TimePoint drainDeadline_ = TimePoint::max();
  bool drainExpired_ = false;
  bool finished_ = false;
};

}  // namespace flame
