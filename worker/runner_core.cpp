#include "worker/runner_core.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <variant>

#include "common/codec.h"
#include "common/duration.h"
#include "common/utf8.h"

namespace flame {

namespace {

constexpr size_t kMaxNameBytes = 128;

// Message kinds in the order of the Message variant, for logs. Kinds added to the variant
// later than this list log as "message #N" until they are named here.
std::string kindName(const Message& m) {
  static constexpr const char* kNames[] = {
      "submit",  "cancel",      "stopChild", "statusRequest", "result",    "error",  "accepted",
      "placed",  "childExited", "stopped",   "statusReply",   "heartbeat", "ready",  "jobDone",
      "leaving", "welcome",     "job",       "cancelJob",     "drain",     "setPool", "subscribe", "subscribed", "event"};
  static_assert(std::size(kNames) <= std::variant_size_v<Message>);
  if (m.index() < std::size(kNames)) return kNames[m.index()];
  return "message #" + std::to_string(m.index());
}

const RunnerOptions& validated(const RunnerOptions& o) {
  if (o.pool.empty() || o.pool.size() > kMaxNameBytes || !isValidUtf8(o.pool))
    throw std::invalid_argument("pool name must be 1-128 bytes of UTF-8, got '" + toValidUtf8(o.pool) + "'");
  if (o.concurrency == 0) throw std::invalid_argument("concurrency must be at least 1");
  if (o.heartbeatInterval <= Duration(0) || o.liveness == 0)
    throw std::invalid_argument("heartbeat interval and liveness must be positive");
  if (o.reconnectMin <= Duration(0) || o.reconnectMax < o.reconnectMin)
    throw std::invalid_argument("reconnect backoff must satisfy 0 < min <= max");
  if (o.failsafeAfter < Duration(0) || o.drainGrace < Duration(0) || o.cancelGrace < Duration(0))
    throw std::invalid_argument("failsafe, drain and cancel durations must not be negative");
  return o;
}

// Error texts may come from a handler: the broker refuses text that is not UTF-8.
zmq::message_t encodeJobDone(uint64_t instance, uint64_t jobId, ErrorCode code, std::string_view message) {
  return encode(msg::JobDone{jobId, code, toValidUtf8(message), instance});
}

}  // namespace

RunnerCore::RunnerCore(const RunnerOptions& options, RunnerIdentity identity, const Clock& clock,
                       RunnerEffects& effects)
    : options_(validated(options)),
      identity_(std::move(identity)),
      clock_(clock),
      effects_(effects),
      interval_(options_.heartbeatInterval),
      liveness_(options_.heartbeatInterval, options_.liveness),
      backoff_(options_.reconnectMin, options_.reconnectMax, 0.25, options_.reconnectSeed) {}

RunnerCore::~RunnerCore() = default;

void RunnerCore::start() {
  if (started_) throw std::logic_error("RunnerCore::start() called twice");
  started_ = true;
  TimePoint now = clock_.now();
  // A broker that is never reachable counts from the start.
  lastHeard_ = now;
  std::string names;
  for (const auto& name : functions_) names += (names.empty() ? "" : ",") + name;
  log_->info("runner={} starting pool={} slots={} functions=[{}]", identity_.runnerId, options_.pool,
             options_.concurrency, names);
  connect(now);
}

// ---- connection ----

void RunnerCore::connect(TimePoint now) {
  effects_.connect();
  link_ = Link::Connecting;
  liveness_.heard(now);  // the new connection's silence counts from its opening
  reconnectAt_ = TimePoint::max();
  log_->debug("runner={} connecting", identity_.runnerId);
  sendReady();  // usually pending: the connection takes it once it is up (onWritable)
}

void RunnerCore::disconnect() {
  if (link_ != Link::Down) effects_.disconnect();
  link_ = Link::Down;
  readyPending_ = false;
  nextHeartbeat_ = TimePoint::max();
}

void RunnerCore::dropConnection(TimePoint now, const std::string& why) {
  disconnect();
  lastBackoff_ = backoff_.next();
  reconnectAt_ = addSaturating(now, lastBackoff_);
  log_->warn("runner={} {}; reconnecting in {}", identity_.runnerId, why, formatDuration(lastBackoff_));
}

void RunnerCore::heard(TimePoint now, bool success) {
  lastHeard_ = now;
  liveness_.heard(now);
  if (success) backoff_.reset();
}

void RunnerCore::sendReady() {
  // Everything still held: running jobs and results not yet delivered, so the broker can settle
  // what it assigned us (PROTOCOL.md, Runner registration).
  std::vector<msg::HeldJob> held;
  held.reserve(jobs_.size() + outbox_.size());
  for (const auto& [key, entry] : jobs_) held.push_back(msg::HeldJob{key.second, key.first});
  for (const auto& pending : outbox_) held.push_back(msg::HeldJob{pending.job.second, pending.job.first});
  msg::Ready ready{identity_.runnerId,
                   options_.pool,
                   options_.concurrency,
                   std::vector<std::string>(functions_.begin(), functions_.end()),
                   identity_.secret,
                   static_cast<uint32_t>(held.size()),
                   identity_.pid,
                   identity_.host,
                   std::move(held)};
  zmq::message_t header = encode(ready);
  readyPending_ = effects_.send(header, nullptr) != SendStatus::Ok;
  if (!readyPending_) log_->debug("runner={} sent ready busy={}", identity_.runnerId, ready.busy);
}

void RunnerCore::onWritable() {
  if (link_ != Link::Down && readyPending_) sendReady();
  flushOutbox();
}

void RunnerCore::sendHeartbeat(TimePoint now) {
  zmq::message_t header =
      encode(msg::Heartbeat{static_cast<uint64_t>(now.time_since_epoch().count()), toWireMs(interval_)});
  // A heartbeat that cannot be queued is simply skipped: the next one follows.
  (void)effects_.send(header, nullptr);
}

void RunnerCore::sendLeaving(bool exiting) {
  if (link_ != Link::Registered) return;
  zmq::message_t header = encode(msg::Leaving{leavingReason_, exiting});
  if (effects_.send(header, nullptr) != SendStatus::Ok)
    log_->warn("runner={} could not queue leaving exiting={}", identity_.runnerId, exiting);
}

void RunnerCore::sendResult(JobKey job, zmq::message_t header, zmq::message_t* payload) {
  if (!talk_) return;
  if (link_ == Link::Registered && outbox_.empty()) {
    if (effects_.send(header, payload) == SendStatus::Ok) return;
    log_->warn("runner={} send queue full; result kept for later", identity_.runnerId);
  }
  PendingResult pending{job, std::move(header), {}, payload != nullptr};
  if (payload) pending.payload = std::move(*payload);
  outbox_.push_back(std::move(pending));
}

void RunnerCore::flushOutbox() {
  while (link_ == Link::Registered && !outbox_.empty()) {
    PendingResult& front = outbox_.front();
    if (effects_.send(front.header, front.hasPayload ? &front.payload : nullptr) != SendStatus::Ok) return;
    outbox_.pop_front();
  }
}

// ---- input ----

void RunnerCore::onUndecodable(const std::string& why) {
  heard(clock_.now(), true);  // any message, even a bad one, is a sign of life
  log_->warn("runner={} ignoring a bad message from the broker: {}", identity_.runnerId, why);
}

void RunnerCore::onMessage(Message&& m, zmq::message_t payload) {
  TimePoint now = clock_.now();
  // Any message is a sign of life; all but a refusal also reset the reconnect backoff (a
  // static runner refused while its old registration lives retries ever more slowly).
  auto* error = std::get_if<msg::Error>(&m);
  heard(now, !(error && error->code == ErrorCode::Unauthorized));
  if (log_->should_log(spdlog::level::debug)) log_->debug("runner={} recv {}", identity_.runnerId, kindName(m));
  if (auto* job = std::get_if<msg::Job>(&m)) {
    onJob(*job, std::move(payload), now);
  } else if (auto* cancelJob = std::get_if<msg::CancelJob>(&m)) {
    onCancelJob(*cancelJob, now);
  } else if (auto* welcome = std::get_if<msg::Welcome>(&m)) {
    onWelcome(*welcome, now);
  } else if (error) {
    onError(*error, now);
  } else if (auto* drain = std::get_if<msg::Drain>(&m)) {
    log_->info("runner={} drain requested by the broker grace={}", identity_.runnerId,
               formatDuration(fromWireMs(drain->graceMs)));
    beginDrain(fromWireMs(drain->graceMs), "drain requested by the broker", RunExit::Drained, now);
  } else if (!std::holds_alternative<msg::Heartbeat>(m)) {
    log_->warn("runner={} ignoring unexpected {} from the broker", identity_.runnerId, kindName(m));
  }
}

void RunnerCore::onWelcome(const msg::Welcome& welcome, TimePoint now) {
  if (link_ == Link::Down) return;  // for a connection already closed: nothing to register
  if (welcome.heartbeatIntervalMs > 0)
    interval_ = Duration(welcome.heartbeatIntervalMs);
  else
    log_->warn("runner={} welcome without a heartbeat interval; keeping {}", identity_.runnerId,
               formatDuration(interval_));
  uint32_t liveness = options_.liveness;
  if (welcome.liveness > 0)
    liveness = welcome.liveness;
  else
    log_->warn("runner={} welcome without liveness; keeping {}", identity_.runnerId, options_.liveness);
  liveness_.setRule(interval_, liveness);
  if (brokerInstance_ != 0 && welcome.instance != brokerInstance_)
    log_->info("runner={} the broker restarted: {} jobs of its previous run still held", identity_.runnerId,
               jobs_.size() + outbox_.size());
  brokerInstance_ = welcome.instance;
  maxResultBytes_ = welcome.maxPayloadBytes;
  link_ = Link::Registered;
  readyPending_ = false;
  nextHeartbeat_ = addSaturating(now, interval_);
  if (!everRegistered_) {
    log_->info("runner={} registered pool={} heartbeat={} liveness={}", identity_.runnerId, options_.pool,
               formatDuration(interval_), liveness);
  } else {
    log_->info("runner={} re-registered busy={} queued_results={}", identity_.runnerId, jobs_.size(),
               outbox_.size());
  }
  everRegistered_ = true;
  flushOutbox();
  // A broker that lost us meanwhile must still learn that we take no new work.
  if (phase_ == Phase::Draining) sendLeaving(false);
}

void RunnerCore::onError(const msg::Error& error, TimePoint now) {
  switch (error.code) {
    case ErrorCode::UnknownPeer:
      // Every message sent before the broker saw our ready is answered so: one ready is
      // enough. (A second one would cross with the jobs the first one lets the broker send,
      // and list fewer jobs than we will hold.)
      if (link_ != Link::Registered) return;
      log_->warn("runner={} broker does not know this connection; sending ready again", identity_.runnerId);
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
        if (link_ == Link::Down) return;
        dropConnection(now, "the broker refused this runner id (" + error.message + ")");
        return;
      }
      log_->error("runner={} broker refused the boot token: {}", identity_.runnerId, error.message);
      giveUp(RunExit::Unauthorized, "unauthorized", now);
      return;
    default:
      log_->warn("runner={} broker reported {}: {}", identity_.runnerId, errorCodeName(error.code), error.message);
  }
}

void RunnerCore::refuse(JobKey key, ErrorCode code, std::string message) {
  log_->debug("runner={} job={} refused {}: {}", identity_.runnerId, key.second, errorCodeName(code), message);
  sendResult(key, encodeJobDone(key.first, key.second, code, message), nullptr);
}

void RunnerCore::onJob(const msg::Job& job, zmq::message_t payload, TimePoint now) {
  // The same id from another broker run is another job (a restarted broker reuses ids).
  const JobKey key{brokerInstance_, job.jobId};
  if (jobs_.count(key)) {
    // Answering would return a slot the broker still counts for the running copy. (The broker
    // does not send a job twice: a re-registration lists what we hold.)
    log_->warn("runner={} job={} is already running; duplicate ignored", identity_.runnerId, job.jobId);
    return;
  }
  if (phase_ != Phase::Serving) return refuse(key, ErrorCode::ShuttingDown, "runner " + identity_.runnerId + " is leaving");
  if (!functions_.count(job.function))
    return refuse(key, ErrorCode::UnknownFunction,
                  "function '" + job.function + "' is not registered on runner " + identity_.runnerId);
  if (jobs_.size() >= options_.concurrency) {
    log_->warn("runner={} job={} arrived with all {} slots busy", identity_.runnerId, job.jobId, options_.concurrency);
    return refuse(key, ErrorCode::Internal, "no free slot");
  }
  if (job.budgetMs == 0) return refuse(key, ErrorCode::Timeout, "no budget left at dispatch");

  auto running = std::make_shared<RunningJob>();
  running->jobId = job.jobId;
  running->instance = key.first;
  running->mode = job.mode;
  running->payload = std::move(payload);
  running->deadline = job.budgetMs == kInfiniteMs ? TimePoint::max() : addSaturating(now, Duration(job.budgetMs));
  std::string failure = effects_.startJob(running, job.function);
  if (!failure.empty()) {
    log_->error("runner={} job={} cannot start: {}", identity_.runnerId, job.jobId, failure);
    return refuse(key, ErrorCode::Internal, failure);
  }
  if (log_->should_log(spdlog::level::debug))
    log_->debug("runner={} job={} function={} mode={} budget={} started", identity_.runnerId, job.jobId, job.function,
                modeName(job.mode), formatDuration(fromWireMs(job.budgetMs)));
  Entry entry;
  entry.job = std::move(running);
  entry.function = job.function;
  jobs_.emplace(key, std::move(entry));
}

void RunnerCore::onCancelJob(const msg::CancelJob& cancelJob, TimePoint now) {
  auto it = jobs_.find(JobKey{brokerInstance_, cancelJob.jobId});
  if (it == jobs_.end()) {
    log_->debug("runner={} cancel for job={} that is not running", identity_.runnerId, cancelJob.jobId);
    return;
  }
  if (it->second.stopReason == ErrorCode::None) cancel(it->second, ErrorCode::Cancelled, "cancelled", now);
}

void RunnerCore::onJobDone(JobOutcome&& done) {
  const JobKey key{done.instance, done.jobId};
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return;  // abandoned at a previous exit: nobody waits for it
  Entry& entry = it->second;
  ErrorCode code = ErrorCode::None;
  std::string_view message;
  std::string tooLarge;
  // Once stop was requested the job's outcome is that, whatever the handler returned: the
  // broker already told the client (cancelled / timeout).
  if (entry.stopReason != ErrorCode::None) {
    code = entry.stopReason;
    message = entry.stopMessage;
  } else if (done.result.isError) {
    code = ErrorCode::HandlerError;
    message = done.result.value;
  } else if (maxResultBytes_ != 0 && done.result.value.size() > maxResultBytes_) {
    // The broker would refuse it, or drop the connection if it is far over its frame limit.
    code = ErrorCode::PayloadTooLarge;
    tooLarge = "result of " + std::to_string(done.result.value.size()) + " bytes exceeds the broker's limit of " +
               std::to_string(maxResultBytes_) + " bytes";
    message = tooLarge;
  }
  if (log_->should_log(spdlog::level::debug))
    log_->debug("runner={} job={} function={} done code={}", identity_.runnerId, done.jobId, entry.function,
                errorCodeName(code));
  if (entry.stuck) log_->info("runner={} job={} returned after its cancel grace", identity_.runnerId, done.jobId);
  zmq::message_t header = encodeJobDone(key.first, key.second, code, message);
  jobs_.erase(it);
  if (code == ErrorCode::None) {
    zmq::message_t payload(done.result.value.data(), done.result.value.size());
    sendResult(key, std::move(header), &payload);
  } else {
    sendResult(key, std::move(header), nullptr);
  }
}

void RunnerCore::onHandshakeRefused(const std::string& why) {
  if (!started_ || finished_ || !talk_) return;
  // error: a human must fix a key, an allow-list or the broker's endpoint; retrying cannot.
  log_->error("runner={} the broker at {} refused the handshake, exiting: {}", identity_.runnerId, options_.broker,
              why);
  giveUp(RunExit::Unauthorized, "unauthorized", clock_.now());
}

void RunnerCore::onHandshakeSucceeded() {
  log_->debug("runner={} handshake with {} succeeded", identity_.runnerId, options_.broker);
}

void RunnerCore::requestDrain() {
  beginDrain(options_.drainGrace, "drain requested", RunExit::Drained, clock_.now());
}

void RunnerCore::requestStop() { beginStop(RunExit::Stopped, "stop requested", clock_.now()); }

// ---- jobs and phases ----

void RunnerCore::cancel(Entry& entry, ErrorCode reason, std::string message, TimePoint now) {
  entry.stopReason = reason;
  entry.stopMessage = std::move(message);
  entry.graceEnds = addSaturating(now, options_.cancelGrace);
  effects_.cancelJob(*entry.job);
  log_->debug("runner={} job={} stop requested ({})", identity_.runnerId, entry.job->jobId, errorCodeName(reason));
}

void RunnerCore::beginDrain(Duration grace, std::string reason, RunExit exit, TimePoint now) {
  if (phase_ == Phase::Stopping || finished_) return;
  TimePoint deadline = addSaturating(now, grace);
  if (phase_ == Phase::Draining) {
    drainDeadline_ = std::min(drainDeadline_, deadline);
    return;
  }
  phase_ = Phase::Draining;
  exit_ = exit;
  leavingReason_ = std::move(reason);
  drainDeadline_ = deadline;
  log_->info("runner={} draining ({}) in_flight={} grace={}", identity_.runnerId, leavingReason_, jobs_.size(),
             formatDuration(grace));
  sendLeaving(false);
}

void RunnerCore::beginStop(RunExit exit, std::string reason, TimePoint now) {
  if (phase_ == Phase::Stopping || finished_) return;
  phase_ = Phase::Stopping;
  exit_ = exit;
  leavingReason_ = std::move(reason);
  log_->info("runner={} stopping ({}) in_flight={}", identity_.runnerId, leavingReason_, jobs_.size());
  for (auto& [key, entry] : jobs_)
    if (entry.stopReason == ErrorCode::None) cancel(entry, ErrorCode::Cancelled, "runner stopping", now);
}

void RunnerCore::giveUp(RunExit exit, const char* reason, TimePoint now) {
  // The broker is gone for good (or refused us): nothing more is said to it.
  talk_ = false;
  disconnect();
  reconnectAt_ = TimePoint::max();
  outbox_.clear();
  beginStop(exit, reason, now);
  exit_ = exit;  // even if a stop or drain was already under way
}

void RunnerCore::tick() {
  if (!started_ || finished_) return;
  TimePoint now = clock_.now();
  if (talk_ && now >= failsafeAt()) {
    log_->warn("runner={} broker unreachable for {}, exiting (failsafe)", identity_.runnerId,
               formatDuration(now - lastHeard_));
    giveUp(RunExit::FailsafeExpired, "failsafe", now);
  }
  runTimers(now);
  finishIfDone(now);
}

void RunnerCore::runTimers(TimePoint now) {
  if (link_ != Link::Down && liveness_.dead(now))
    dropConnection(now, "broker silent for " + formatDuration(liveness_.silence(now)));
  if (link_ == Link::Down && talk_ && now >= reconnectAt_) connect(now);
  if (link_ == Link::Registered && now >= nextHeartbeat_) {
    sendHeartbeat(now);
    nextHeartbeat_ = addSaturating(now, interval_);
  }
  bool retire = false;
  uint64_t stuckJob = 0;
  for (auto& [key, entry] : jobs_) {
    if (entry.stopReason == ErrorCode::None && now >= entry.job->deadline) {
      cancel(entry, ErrorCode::Timeout, "deadline exceeded", now);
    } else if (entry.stopReason != ErrorCode::None && !entry.stuck && now >= entry.graceEnds) {
      entry.stuck = true;
      log_->warn("runner={} job={} function={} ignored cancellation for {}", identity_.runnerId, key.second,
                 entry.function, formatDuration(options_.cancelGrace));
      if (phase_ == Phase::Serving && !retire) {
        retire = true;
        stuckJob = key.second;
      }
    }
  }
  if (retire)
    beginDrain(options_.drainGrace, "retired: job " + std::to_string(stuckJob) + " ignored cancellation",
               RunExit::Retired, now);
  if (phase_ == Phase::Draining && !drainExpired_ && now >= drainDeadline_) {
    drainExpired_ = true;
    if (!jobs_.empty()) log_->info("runner={} drain grace over; cancelling {} jobs", identity_.runnerId, jobs_.size());
    for (auto& [key, entry] : jobs_)
      if (entry.stopReason == ErrorCode::None) cancel(entry, ErrorCode::Cancelled, "runner draining", now);
  }
}

void RunnerCore::finishIfDone(TimePoint now) {
  if (phase_ == Phase::Serving) return;
  // Stuck jobs will not come back; everything else must have reported first.
  bool settled = std::all_of(jobs_.begin(), jobs_.end(), [](const auto& j) { return j.second.stuck; });
  if (!settled) return;
  // A drain waits (within its grace) for a re-registration that delivers the queued results.
  if (phase_ == Phase::Draining && talk_ && !outbox_.empty() && link_ != Link::Registered && now < drainDeadline_)
    return;
  flushOutbox();
  sendLeaving(true);
  finished_ = true;
  size_t abandoned = effects_.finish(exit_);
  if (abandoned > 0)
    log_->warn("runner={} left {} handlers running on detached threads", identity_.runnerId, abandoned);
  jobs_.clear();
  link_ = Link::Down;
  log_->info("runner={} exiting: {}", identity_.runnerId, runExitName(exit_));
}

void RunnerCore::abandon() {
  for (auto& [key, entry] : jobs_)
    if (entry.stopReason == ErrorCode::None) effects_.cancelJob(*entry.job);
  jobs_.clear();
}

TimePoint RunnerCore::nextWakeup() const {
  if (!started_ || finished_) return TimePoint::max();
  TimePoint t = TimePoint::max();
  if (talk_) t = std::min(t, failsafeAt());
  if (link_ != Link::Down) t = std::min(t, liveness_.deadline());
  if (link_ == Link::Down && talk_) t = std::min(t, reconnectAt_);
  if (link_ == Link::Registered) t = std::min(t, nextHeartbeat_);
  for (const auto& [key, entry] : jobs_) {
    if (entry.stopReason == ErrorCode::None)
      t = std::min(t, entry.job->deadline);
    else if (!entry.stuck)
      t = std::min(t, entry.graceEnds);
  }
  if (phase_ == Phase::Draining && !drainExpired_) t = std::min(t, drainDeadline_);
  return t;
}

}  // namespace flame
