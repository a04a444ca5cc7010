// The runner's I/O loop. One thread (the caller of run()) owns the DEALER and every piece of
// state below; a fixed pool of worker threads (WorkerPool, at most `concurrency`, started on
// demand and reused) only runs handlers and posts results to a CompletionQueue.
//
// Life of a connection: Down --connect--> Connecting (ready sent or pending) --welcome-->
// Registered. Silence for interval x liveness from the broker drops back to Down (the socket is
// closed) and a fresh DEALER reconnects after an exponential backoff. Silence for failsafeAfter
// ends the runner. Phases: Serving -> Draining (drain, retire) -> exit, or -> Stopping -> exit.
#include "worker/runner.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>
#include <variant>

#include "common/codec.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/transport.h"
#include "common/utf8.h"
#include "worker/completion_queue.h"
#include "worker/worker_pool.h"

namespace flame {

namespace {

constexpr size_t kMaxNameBytes = 128;
// Broker -> runner messages are a header and at most one payload frame.
constexpr size_t kMaxInboundFrames = 2;
// Messages handled per wake-up before timers get a turn, so a flood cannot starve heartbeats.
constexpr int kMaxMessagesPerWake = 256;
// How long the last messages (results, leaving) may take to reach the broker at exit.
constexpr Duration kFinalLinger{1000};
// zmq::poll takes milliseconds as a long; anything longer is "no timer".
constexpr Duration kLongestPoll{24L * 3600 * 1000};

std::string hostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

std::string randomHex(size_t words) {
  std::random_device random;
  std::string out;
  char hex[9];
  for (size_t i = 0; i < words; ++i) {
    std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>(random()));
    out += hex;
  }
  return out;
}

std::string generateRunnerId(const std::string& pool, const std::string& host) {
  return pool + "-" + host + "-" + std::to_string(::getpid()) + "-" + randomHex(1);
}

// A job as both sides name it: the broker run that dispatched it and its id in that run.
using JobKey = std::pair<uint64_t, uint64_t>;  // (instance, job id)

// A result waiting for (re-)registration, with the job it answers.
struct PendingResult {
  JobKey job;
  Frames frames;
};

// Message kinds in the order of the Message variant, for logs. Kinds added to the variant
// later than this list log as "message #N" until they are named here.
std::string kindName(const Message& m) {
  static constexpr const char* kNames[] = {
      "submit",  "cancel",      "stopChild", "statusRequest", "result",    "error",  "accepted",
      "placed",  "childExited", "stopped",   "statusReply",   "heartbeat", "ready",  "jobDone",
      "leaving", "welcome",     "job",       "cancelJob",     "drain",     "setPool"};
  static_assert(std::size(kNames) <= std::variant_size_v<Message>);
  if (m.index() < std::size(kNames)) return kNames[m.index()];
  return "message #" + std::to_string(m.index());
}

// A job in flight, as the I/O thread sees it.
struct RunningJob {
  std::shared_ptr<JobState> state;
  std::string function;
  ErrorCode stopReason = ErrorCode::None;  // Cancelled or Timeout once stop was requested
  std::string stopMessage;
  TimePoint graceEnds = TimePoint::max();  // set when stop is requested
  bool stuck = false;                      // still running after its cancel grace
};

enum class Link { Down, Connecting, Registered };
enum class Phase { Serving, Draining, Stopping };

TimePoint earliest(TimePoint a, TimePoint b) { return std::min(a, b); }

}  // namespace

class Runner::Impl {
 public:
  explicit Impl(RunnerOptions options);
  ~Impl();

  void handle(std::string function, Handler handler);
  RunExit run();

  RunnerOptions options_;
  std::string runnerId_;
  std::atomic<bool> drainRequested_{false};
  std::atomic<bool> stopRequested_{false};
  std::atomic<size_t> stranded_{0};
  std::shared_ptr<CompletionQueue> completions_ = std::make_shared<CompletionQueue>();

 private:
  // -- connection --
  void connect(TimePoint now);
  void disconnect();
  void sendReady();
  void sendHeartbeat(TimePoint now);
  void sendLeaving(bool exiting);
  void sendResult(JobKey job, Frames frames);
  msg::JobDone jobDone(JobKey job, ErrorCode code, std::string message) const;
  void flushOutbox();
  TimePoint livenessDeadline() const;
  TimePoint failsafeAt() const { return addSaturating(lastHeard_, options_.failsafeAfter); }
  // -- input --
  void pollOnce(Duration timeout);
  void onReadable(TimePoint now);
  void onMessage(Frames& frames, bool truncated, TimePoint now);
  void onWelcome(const msg::Welcome& welcome, TimePoint now);
  void onError(const msg::Error& error, TimePoint now);
  void onJob(const msg::Job& job, const zmq::message_t* payload, TimePoint now);
  void onCancelJob(const msg::CancelJob& cancel, TimePoint now);
  void onCompletions();
  // -- jobs and phases --
  void cancel(RunningJob& job, ErrorCode reason, std::string message, TimePoint now);
  void beginDrain(Duration grace, std::string reason, RunExit exit, TimePoint now);
  void beginStop(RunExit exit, std::string reason, TimePoint now);
  void runTimers(TimePoint now);
  std::optional<RunExit> finishIfDone(TimePoint now);
  TimePoint nextWake() const;
  void strandRunningJobs();

  SteadyClock steadyClock_;
  const Clock* clock_;
  std::shared_ptr<spdlog::logger> log_ = logger("runner");
  std::string host_ = hostName();
  std::map<std::string, std::shared_ptr<const Handler>> handlers_;
  std::atomic<bool> started_{false};

  // ctx_ is declared before dealer_ so that the socket is closed first.
  zmq::context_t ctx_;
  std::optional<zmq::socket_t> dealer_;
  Link link_ = Link::Down;
  bool readyPending_ = false;  // ready not yet accepted by the socket (no connection yet)
  bool everRegistered_ = false;
  bool talk_ = true;  // false once the broker is gone for good (failsafe, refused)
  Duration interval_;
  uint32_t liveness_;
  Duration backoff_;
  TimePoint lastHeard_{};    // last message from the broker (or the start)
  TimePoint connectedAt_{};  // the current socket's creation
  TimePoint nextHeartbeat_ = TimePoint::max();
  TimePoint reconnectAt_ = TimePoint::max();

  // Every job in jobs_ is queued on or running in pool_ until its result is taken, and
  // jobs_.size() <= pool_.threads(): a queued job always has a thread free for it.
  std::map<JobKey, RunningJob> jobs_;
  WorkerPool pool_{completions_};
  std::deque<PendingResult> outbox_;  // results waiting for (re-)registration
  uint64_t brokerInstance_ = 0;       // Welcome.instance of the broker run we are registered with
  uint64_t maxResultBytes_ = 0;       // Welcome.maxPayloadBytes; 0 = unknown (no check)
  std::string secret_;                // the token every ready carries

  Phase phase_ = Phase::Serving;
  RunExit exit_ = RunExit::Stopped;
  std::string leavingReason_;
  TimePoint drainDeadline_ = TimePoint::max();
  bool drainExpired_ = false;
};

Runner::Impl::Impl(RunnerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &steadyClock_),
      interval_(options_.heartbeatInterval),
      liveness_(options_.liveness),
      backoff_(options_.reconnectMin) {
  if (options_.pool.empty() || options_.pool.size() > kMaxNameBytes || !isValidUtf8(options_.pool))
    throw std::invalid_argument("pool name must be 1-128 bytes of UTF-8, got '" + toValidUtf8(options_.pool) + "'");
  if (options_.concurrency == 0) throw std::invalid_argument("concurrency must be at least 1");
  if (options_.heartbeatInterval <= Duration(0) || options_.liveness == 0)
    throw std::invalid_argument("heartbeat interval and liveness must be positive");
  if (options_.reconnectMin <= Duration(0) || options_.reconnectMax < options_.reconnectMin)
    throw std::invalid_argument("reconnect backoff must satisfy 0 < min <= max");
  if (options_.failsafeAfter < Duration(0) || options_.drainGrace < Duration(0) ||
      options_.cancelGrace < Duration(0))
    throw std::invalid_argument("failsafe, drain and cancel durations must not be negative");
  if (options_.runnerId.empty())
    runnerId_ = generateRunnerId(options_.pool, host_);
  else
    runnerId_ = options_.runnerId;
  // Every ready proves the identity of the first one with this token: the boot token of a
  // booted runner, a random secret of a static one (so nobody can take over its runner id).
  secret_ = options_.token.empty() ? randomHex(4) : options_.token;
  // Reject a malformed endpoint here, with a clear message, rather than deep inside run().
  try {
    connectDealer(ctx_, options_.broker);
  } catch (const zmq::error_t& e) {
    throw std::invalid_argument("bad broker endpoint '" + options_.broker + "': " + e.what());
  }
}

Runner::Impl::~Impl() {
  // Only reached with jobs if run() was never completed (it threw): never join a handler here.
  for (auto& [id, job] : jobs_) job.state->stop.request_stop();
  strandRunningJobs();
}

void Runner::Impl::handle(std::string function, Handler handler) {
  if (started_) throw std::logic_error("Runner::handle() called after run()");
  if (function.empty() || function.size() > kMaxNameBytes || !isValidUtf8(function))
    throw std::invalid_argument("function name must be 1-128 bytes of UTF-8, got '" + toValidUtf8(function) + "'");
  if (!handler) throw std::invalid_argument("empty handler for function '" + function + "'");
  handlers_[std::move(function)] = std::make_shared<const Handler>(std::move(handler));
}

RunExit Runner::Impl::run() {
  if (started_.exchange(true)) throw std::logic_error("Runner::run() called twice");
  TimePoint now = clock_->now();
  // A broker that is never reachable counts from the start.
  lastHeard_ = now;
  std::string names;
  for (const auto& [name, handler] : handlers_) names += (names.empty() ? "" : ",") + name;
  log_->info("runner={} starting pool={} broker={} slots={} functions=[{}]", runnerId_,
             options_.pool, options_.broker, options_.concurrency, names);
  connect(now);
  for (;;) {
    now = clock_->now();
    // Completions first: takeAll() clears the wake-up, and a request made after that point
    // either is seen by the checks below or wakes the next poll.
    onCompletions();
    if (stopRequested_.exchange(false)) beginStop(RunExit::Stopped, "stop requested", now);
    if (drainRequested_.exchange(false))
      beginDrain(options_.drainGrace, "drain requested", RunExit::Drained, now);
    if (talk_ && now >= failsafeAt()) {
      log_->warn("runner={} broker unreachable for {}, exiting (failsafe)", runnerId_,
                 formatDuration(now - lastHeard_));
      talk_ = false;
      disconnect();
      outbox_.clear();
      beginStop(RunExit::FailsafeExpired, "failsafe", now);
      exit_ = RunExit::FailsafeExpired;  // even if a stop or drain was already under way
    }
    runTimers(now);
    if (auto exit = finishIfDone(now)) return *exit;
    TimePoint wake = nextWake();
    Duration timeout = wake == TimePoint::max() ? kInfinite
                       : wake <= now            ? Duration(0)
                                                : wake - now;
    pollOnce(timeout);
  }
}

// ---- connection ----

void Runner::Impl::connect(TimePoint now) {
  dealer_.emplace(connectDealer(ctx_, options_.broker));
  link_ = Link::Connecting;
  connectedAt_ = now;
  reconnectAt_ = TimePoint::max();
  log_->debug("runner={} connecting to {}", runnerId_, options_.broker);
  sendReady();  // usually pending: with ZMQ_IMMEDIATE the send waits for the connection (POLLOUT)
}

void Runner::Impl::disconnect() {
  dealer_.reset();  // linger 0: whatever was queued for the old connection is dropped
  link_ = Link::Down;
  readyPending_ = false;
  nextHeartbeat_ = TimePoint::max();
}

void Runner::Impl::sendReady() {
  std::vector<std::string> functions;
  for (const auto& [name, handler] : handlers_) functions.push_back(name);
  // Everything still held: running jobs and results not yet delivered, so the broker can settle
  // what it assigned us (PROTOCOL.md, Runner registration).
  std::vector<msg::HeldJob> held;
  for (const auto& [key, job] : jobs_) held.push_back(msg::HeldJob{key.second, key.first});
  for (const auto& pending : outbox_) held.push_back(msg::HeldJob{pending.job.second, pending.job.first});
  msg::Ready ready{runnerId_,
                   options_.pool,
                   options_.concurrency,
                   std::move(functions),
                   secret_,
                   static_cast<uint32_t>(held.size()),
                   static_cast<uint32_t>(::getpid()),
                   host_,
                   std::move(held)};
  Frames frames;
  frames.push_back(encode(ready));
  readyPending_ = sendFrames(*dealer_, frames) != SendStatus::Ok;
  if (!readyPending_) log_->debug("runner={} sent ready busy={}", runnerId_, ready.busy);
}

void Runner::Impl::sendHeartbeat(TimePoint now) {
  Frames frames;
  frames.push_back(encode(
      msg::Heartbeat{static_cast<uint64_t>(now.time_since_epoch().count()), toWireMs(interval_)}));
  // A heartbeat that cannot be queued is simply skipped: the next one follows.
  (void)sendFrames(*dealer_, frames);
}

void Runner::Impl::sendLeaving(bool exiting) {
  if (link_ != Link::Registered) return;
  Frames frames;
  frames.push_back(encode(msg::Leaving{leavingReason_, exiting}));
  if (sendFrames(*dealer_, frames) != SendStatus::Ok)
    log_->warn("runner={} could not queue leaving exiting={}", runnerId_, exiting);
}

msg::JobDone Runner::Impl::jobDone(JobKey job, ErrorCode code, std::string message) const {
  // Error texts may come from a handler: the broker refuses text that is not UTF-8.
  return msg::JobDone{job.second, code, toValidUtf8(message), job.first};
}

void Runner::Impl::sendResult(JobKey job, Frames frames) {
  if (!talk_) return;
  if (link_ == Link::Registered && outbox_.empty()) {
    if (sendFrames(*dealer_, frames) == SendStatus::Ok) return;
    log_->warn("runner={} send queue full; result kept for later", runnerId_);
  }
  outbox_.push_back(PendingResult{job, std::move(frames)});
}

void Runner::Impl::flushOutbox() {
  while (link_ == Link::Registered && !outbox_.empty()) {
    if (sendFrames(*dealer_, outbox_.front().frames) != SendStatus::Ok) return;
    outbox_.pop_front();
  }
}

TimePoint Runner::Impl::livenessDeadline() const {
  // interval and liveness come from the broker's welcome: saturate instead of overflowing.
  Duration silence =
      interval_.count() > kInfinite.count() / liveness_ ? kInfinite : interval_ * liveness_;
  return addSaturating(std::max(lastHeard_, connectedAt_), silence);
}

// ---- input ----

void Runner::Impl::pollOnce(Duration timeout) {
  zmq::pollitem_t items[2] = {{nullptr, completions_->fd(), ZMQ_POLLIN, 0}, {}};
  size_t count = 1;
  if (dealer_) {
    short events = ZMQ_POLLIN | (readyPending_ ? ZMQ_POLLOUT : 0);
    items[count++] = zmq::pollitem_t{dealer_->handle(), 0, events, 0};
  }
  long ms =
      (timeout < Duration(0) || timeout >= kLongestPoll) ? -1 : static_cast<long>(timeout.count());
  try {
    zmq::poll(items, count, std::chrono::milliseconds(ms));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return;
    throw;
  }
  if (count < 2) return;
  TimePoint now = clock_->now();
  if (items[1].revents & ZMQ_POLLIN) onReadable(now);
  if (dealer_ && readyPending_ && (items[1].revents & ZMQ_POLLOUT)) sendReady();
  // The completion fd needs nothing here: the loop drains the queue on every turn.
}

void Runner::Impl::onReadable(TimePoint now) {
  Frames frames;
  bool truncated = false;
  for (int i = 0; i < kMaxMessagesPerWake && dealer_; ++i) {
    if (!recvFrames(*dealer_, frames, kMaxInboundFrames, truncated)) return;
    onMessage(frames, truncated, now);
  }
}

void Runner::Impl::onMessage(Frames& frames, bool truncated, TimePoint now) {
  // Any message, even a bad one, is a sign of life.
  lastHeard_ = now;
  backoff_ = options_.reconnectMin;
  if (truncated)
    log_->warn("runner={} broker sent more than {} frames; extra frames ignored", runnerId_,
               kMaxInboundFrames);
  DecodeResult decoded = decode(frames[0]);
  if (!decoded.ok()) {
    log_->warn("runner={} ignoring a bad message from the broker: {}", runnerId_, decoded.error);
    return;
  }
  const Message& m = *decoded.message;
  if (log_->should_log(spdlog::level::debug))
    log_->debug("runner={} recv {}", runnerId_, kindName(m));
  if (auto* job = std::get_if<msg::Job>(&m)) {
    onJob(*job, frames.size() > 1 ? &frames[1] : nullptr, now);
  } else if (auto* cancelJob = std::get_if<msg::CancelJob>(&m)) {
    onCancelJob(*cancelJob, now);
  } else if (auto* welcome = std::get_if<msg::Welcome>(&m)) {
    onWelcome(*welcome, now);
  } else if (auto* error = std::get_if<msg::Error>(&m)) {
    onError(*error, now);
  } else if (auto* drain = std::get_if<msg::Drain>(&m)) {
    log_->info("runner={} drain requested by the broker grace={}", runnerId_,
               formatDuration(fromWireMs(drain->graceMs)));
    beginDrain(fromWireMs(drain->graceMs), "drain requested by the broker", RunExit::Drained, now);
  } else if (!std::holds_alternative<msg::Heartbeat>(m)) {
    log_->warn("runner={} ignoring unexpected {} from the broker", runnerId_, kindName(m));
  }
}

void Runner::Impl::onWelcome(const msg::Welcome& welcome, TimePoint now) {
  if (welcome.heartbeatIntervalMs > 0)
    interval_ = Duration(welcome.heartbeatIntervalMs);
  else
    log_->warn("runner={} welcome without a heartbeat interval; keeping {}", runnerId_,
               formatDuration(interval_));
  if (welcome.liveness > 0)
    liveness_ = welcome.liveness;
  else
    log_->warn("runner={} welcome without liveness; keeping {}", runnerId_, liveness_);
  if (brokerInstance_ != 0 && welcome.instance != brokerInstance_)
    log_->info("runner={} the broker restarted: {} jobs of its previous run still held", runnerId_,
               jobs_.size() + outbox_.size());
  brokerInstance_ = welcome.instance;
  maxResultBytes_ = welcome.maxPayloadBytes;
  link_ = Link::Registered;
  readyPending_ = false;
  nextHeartbeat_ = addSaturating(now, interval_);
  if (!everRegistered_) {
    log_->info("runner={} registered pool={} broker={} heartbeat={} liveness={}", runnerId_,
               options_.pool, options_.broker, formatDuration(interval_), liveness_);
  } else {
    log_->info("runner={} re-registered busy={} queued_results={}", runnerId_, jobs_.size(),
               outbox_.size());
  }
  everRegistered_ = true;
  flushOutbox();
  // A broker that lost us meanwhile must still learn that we take no new work.
  if (phase_ == Phase::Draining) sendLeaving(false);
}

void Runner::Impl::onError(const msg::Error& error, TimePoint now) {
  switch (error.code) {
    case ErrorCode::UnknownPeer:
      // Every message sent before the broker saw our ready is answered so: one ready is
      // enough. (A second one would cross with the jobs the first one lets the broker send,
      // and list fewer jobs than we will hold.)
      if (link_ == Link::Connecting) return;
      log_->warn("runner={} broker does not know this connection; sending ready again", runnerId_);
      link_ = Link::Connecting;
      nextHeartbeat_ = TimePoint::max();
      sendReady();
      return;
    case ErrorCode::Unauthorized:
      if (options_.token.empty()) {
        // A static runner's only credential is its own secret: the broker refuses it only while
        // another live connection holds this runner id (e.g. our previous process, restarted
        // with the same id before the broker noticed it died). That registration ends within
        // the broker's liveness window: try again after a backoff.
        log_->warn("runner={} the broker refused this runner id ({}); retrying in {}", runnerId_,
                   error.message, formatDuration(backoff_));
        disconnect();
        reconnectAt_ = addSaturating(now, backoff_);
        backoff_ = std::min(backoff_ * 2, options_.reconnectMax);
        return;
      }
      log_->error("runner={} broker refused the boot token: {}", runnerId_, error.message);
      talk_ = false;
      disconnect();
      outbox_.clear();
      beginStop(RunExit::Unauthorized, "unauthorized", now);
      exit_ = RunExit::Unauthorized;
      return;
    default:
      log_->warn("runner={} broker reported {}: {}", runnerId_, errorCodeName(error.code),
                 error.message);
  }
}

void Runner::Impl::onJob(const msg::Job& job, const zmq::message_t* payload, TimePoint now) {
  // The same id from another broker run is another job (a restarted broker reuses ids).
  const JobKey key{brokerInstance_, job.jobId};
  auto reply = [&](ErrorCode code, std::string message) {
    log_->debug("runner={} job={} refused {}: {}", runnerId_, job.jobId, errorCodeName(code),
                message);
    Frames frames;
    frames.push_back(encode(jobDone(key, code, std::move(message))));
    sendResult(key, std::move(frames));
  };
  if (jobs_.count(key)) {
    // Answering would return a slot the broker still counts for the running copy. (The broker
    // does not send a job twice: a re-registration lists what we hold.)
    log_->warn("runner={} job={} is already running; duplicate ignored", runnerId_, job.jobId);
    return;
  }
  if (phase_ != Phase::Serving)
    return reply(ErrorCode::ShuttingDown, "runner " + runnerId_ + " is leaving");
  auto handler = handlers_.find(job.function);
  if (handler == handlers_.end())
    return reply(ErrorCode::UnknownFunction,
                 "function '" + job.function + "' is not registered on runner " + runnerId_);
  if (jobs_.size() >= options_.concurrency) {
    log_->warn("runner={} job={} arrived with all {} slots busy", runnerId_, job.jobId,
               options_.concurrency);
    return reply(ErrorCode::Internal, "no free slot");
  }
  if (job.budgetMs == 0) return reply(ErrorCode::Timeout, "no budget left at dispatch");

  auto state = std::make_shared<JobState>();
  state->jobId = job.jobId;
  state->instance = key.first;
  state->mode = job.mode;
  if (payload) state->payload.assign(static_cast<const char*>(payload->data()), payload->size());
  state->deadline =
      job.budgetMs == kInfiniteMs ? TimePoint::max() : addSaturating(now, Duration(job.budgetMs));
  try {
    // Threads start on demand, one per slot at most, and are then reused.
    pool_.ensureThreads(jobs_.size() + 1);
  } catch (const std::system_error& e) {
    log_->error("runner={} job={} cannot start a worker thread: {}", runnerId_, job.jobId,
                e.what());
    return reply(ErrorCode::Internal, std::string("cannot start a worker thread: ") + e.what());
  }
  RunningJob running;
  running.state = state;
  running.function = job.function;
  pool_.submit(state, handler->second);
  log_->debug("runner={} job={} function={} mode={} budget={} started", runnerId_, job.jobId,
              job.function, modeName(job.mode), formatDuration(fromWireMs(job.budgetMs)));
  jobs_.emplace(key, std::move(running));
}

void Runner::Impl::onCancelJob(const msg::CancelJob& cancelJob, TimePoint now) {
  auto it = jobs_.find(JobKey{brokerInstance_, cancelJob.jobId});
  if (it == jobs_.end()) {
    log_->debug("runner={} cancel for job={} that is not running", runnerId_, cancelJob.jobId);
    return;
  }
  if (it->second.stopReason == ErrorCode::None)
    cancel(it->second, ErrorCode::Cancelled, "cancelled", now);
}

void Runner::Impl::onCompletions() {
  for (Completion& done : completions_->takeAll()) {
    const JobKey key{done.instance, done.jobId};
    auto it = jobs_.find(key);
    if (it == jobs_.end()) continue;  // stranded at a previous exit: nobody waits for it
    RunningJob& job = it->second;
    ErrorCode code = ErrorCode::None;
    std::string message;
    // Once stop was requested the job's outcome is that, whatever the handler returned: the
    // broker already told the client (cancelled / timeout).
    if (job.stopReason != ErrorCode::None) {
      code = job.stopReason;
      message = job.stopMessage;
    } else if (done.result.isError) {
      code = ErrorCode::HandlerError;
      message = std::move(done.result.value);
    } else if (maxResultBytes_ != 0 && done.result.value.size() > maxResultBytes_) {
      // The broker would refuse it, or drop the connection if it is far over its frame limit.
      code = ErrorCode::PayloadTooLarge;
      message = "result of " + std::to_string(done.result.value.size()) +
                " bytes exceeds the broker's limit of " + std::to_string(maxResultBytes_) + " bytes";
    }
    log_->debug("runner={} job={} function={} done code={}", runnerId_, done.jobId, job.function,
                errorCodeName(code));
    if (job.stuck)
      log_->info("runner={} job={} returned after its cancel grace", runnerId_, done.jobId);
    Frames frames;
    frames.push_back(encode(jobDone(key, code, std::move(message))));
    if (code == ErrorCode::None)
      frames.emplace_back(done.result.value.data(), done.result.value.size());
    jobs_.erase(it);
    sendResult(key, std::move(frames));
  }
}

// ---- jobs and phases ----

void Runner::Impl::cancel(RunningJob& job, ErrorCode reason, std::string message, TimePoint now) {
  job.stopReason = reason;
  job.stopMessage = std::move(message);
  job.graceEnds = addSaturating(now, options_.cancelGrace);
  job.state->stop.request_stop();
  log_->debug("runner={} job={} stop requested ({})", runnerId_, job.state->jobId,
              errorCodeName(reason));
}

void Runner::Impl::beginDrain(Duration grace, std::string reason, RunExit exit, TimePoint now) {
  if (phase_ == Phase::Stopping) return;
  TimePoint deadline = addSaturating(now, grace);
  if (phase_ == Phase::Draining) {
    drainDeadline_ = std::min(drainDeadline_, deadline);
    return;
  }
  phase_ = Phase::Draining;
  exit_ = exit;
  leavingReason_ = std::move(reason);
  drainDeadline_ = deadline;
  log_->info("runner={} draining ({}) in_flight={} grace={}", runnerId_, leavingReason_,
             jobs_.size(), formatDuration(grace));
  sendLeaving(false);
}

void Runner::Impl::beginStop(RunExit exit, std::string reason, TimePoint now) {
  if (phase_ == Phase::Stopping) return;
  phase_ = Phase::Stopping;
  exit_ = exit;
  leavingReason_ = std::move(reason);
  log_->info("runner={} stopping ({}) in_flight={}", runnerId_, leavingReason_, jobs_.size());
  for (auto& [id, job] : jobs_)
    if (job.stopReason == ErrorCode::None)
      cancel(job, ErrorCode::Cancelled, "runner stopping", now);
}

void Runner::Impl::runTimers(TimePoint now) {
  if (link_ != Link::Down && now >= livenessDeadline()) {
    log_->warn("runner={} broker silent for {}; reconnecting in {}", runnerId_,
               formatDuration(now - std::max(lastHeard_, connectedAt_)), formatDuration(backoff_));
    disconnect();
    reconnectAt_ = addSaturating(now, backoff_);
    backoff_ = std::min(backoff_ * 2, options_.reconnectMax);
  }
  if (link_ == Link::Down && talk_ && now >= reconnectAt_) connect(now);
  if (link_ == Link::Registered && now >= nextHeartbeat_) {
    sendHeartbeat(now);
    nextHeartbeat_ = addSaturating(now, interval_);
  }
  bool retire = false;
  uint64_t stuckJob = 0;
  for (auto& [key, job] : jobs_) {
    const uint64_t id = key.second;
    if (job.stopReason == ErrorCode::None && now >= job.state->deadline) {
      cancel(job, ErrorCode::Timeout, "deadline exceeded", now);
    } else if (job.stopReason != ErrorCode::None && !job.stuck && now >= job.graceEnds) {
      job.stuck = true;
      log_->warn("runner={} job={} function={} ignored cancellation for {}", runnerId_, id,
                 job.function, formatDuration(options_.cancelGrace));
      if (phase_ == Phase::Serving && !retire) {
        retire = true;
        stuckJob = id;
      }
    }
  }
  if (retire)
    beginDrain(options_.drainGrace,
               "retired: job " + std::to_string(stuckJob) + " ignored cancellation",
               RunExit::Retired, now);
  if (phase_ == Phase::Draining && !drainExpired_ && now >= drainDeadline_) {
    drainExpired_ = true;
    if (!jobs_.empty())
      log_->info("runner={} drain grace over; cancelling {} jobs", runnerId_, jobs_.size());
    for (auto& [id, job] : jobs_)
      if (job.stopReason == ErrorCode::None)
        cancel(job, ErrorCode::Cancelled, "runner draining", now);
  }
}

std::optional<RunExit> Runner::Impl::finishIfDone(TimePoint now) {
  if (phase_ == Phase::Serving) return std::nullopt;
  // Stuck jobs will not come back; everything else must have reported first.
  bool settled =
      std::all_of(jobs_.begin(), jobs_.end(), [](const auto& j) { return j.second.stuck; });
  if (!settled) return std::nullopt;
  // A drain waits (within its grace) for a re-registration that delivers the queued results.
  if (phase_ == Phase::Draining && talk_ && !outbox_.empty() && link_ != Link::Registered &&
      now < drainDeadline_)
    return std::nullopt;
  flushOutbox();
  sendLeaving(true);
  if (!jobs_.empty())
    log_->warn("runner={} leaving {} handlers running on detached threads", runnerId_,
               jobs_.size());
  strandRunningJobs();
  if (dealer_) {
    // Give the last results and `leaving` a moment to reach the broker: closing the context
    // waits for them (up to the linger).
    dealer_->set(zmq::sockopt::linger, static_cast<int>(kFinalLinger.count()));
    dealer_.reset();
  }
  ctx_.close();
  log_->info("runner={} exiting: {}", runnerId_, runExitName(exit_));
  return exit_;
}

TimePoint Runner::Impl::nextWake() const {
  TimePoint t = TimePoint::max();
  if (talk_) t = earliest(t, failsafeAt());
  if (link_ != Link::Down) t = earliest(t, livenessDeadline());
  if (link_ == Link::Down && talk_) t = earliest(t, reconnectAt_);
  if (link_ == Link::Registered) t = earliest(t, nextHeartbeat_);
  for (const auto& [id, job] : jobs_) {
    if (job.stopReason == ErrorCode::None)
      t = earliest(t, job.state->deadline);
    else if (!job.stuck)
      t = earliest(t, job.graceEnds);
  }
  if (phase_ == Phase::Draining && !drainExpired_) t = earliest(t, drainDeadline_);
  return t;
}

void Runner::Impl::strandRunningJobs() {
  // Idle worker threads are joined; those still inside a handler are detached and counted.
  stranded_.fetch_add(pool_.shutdown());
  jobs_.clear();
}

// ---- Runner ----

Runner::Runner(RunnerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Runner::~Runner() = default;

void Runner::handle(std::string function, Handler handler) {
  impl_->handle(std::move(function), std::move(handler));
}

RunExit Runner::run() { return impl_->run(); }

void Runner::requestDrain() noexcept {
  impl_->drainRequested_.store(true);
  impl_->completions_->wake();
}

void Runner::requestStop() noexcept {
  impl_->stopRequested_.store(true);
  impl_->completions_->wake();
}

const std::string& Runner::runnerId() const { return impl_->runnerId_; }

size_t Runner::strandedHandlers() const { return impl_->stranded_.load(); }

}  // namespace flame
