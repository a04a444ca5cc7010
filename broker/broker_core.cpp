// Why the core looks the way it does:
// - Every path that ends a job goes through finish(), so slots, sessions, queue counts and the
//   deadline bookkeeping cannot drift apart.
// - A client is answered at most once per request (Job::answered); a runner's slot is freed only
//   by its jobDone (or its death), never by a timeout, so credit is exact.
#include "broker/broker_core.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <unordered_set>
#include <vector>

#include "broker/boot_token.h"
#include "common/codec.h"
#include "common/duration.h"
#include "common/log.h"

namespace flame {

namespace {
// The request id a client message carries (0 for those without one), to address an error to it.
uint64_t requestIdOf(const Message& message) {
  return std::visit(
      [](const auto& m) -> uint64_t {
        if constexpr (requires { m.requestId; }) return m.requestId;
        return 0;
      },
      message);
}
constexpr size_t kMaxNameBytes = 128;
constexpr uint32_t kMaxSlots = 1'000'000;
constexpr size_t kMaxFunctions = 10'000;
constexpr uint32_t kMaxSubscriptionsPerClient = 16;
constexpr size_t kMaxSubscriptions = 1024;

// Routing ids are binary; logs show them in hex.
std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

uint64_t millis(TimePoint t) { return static_cast<uint64_t>(t.time_since_epoch().count()); }

bool validName(const std::string& name) { return !name.empty() && name.size() <= kMaxNameBytes; }

}  // namespace

BrokerCore::BrokerCore(BrokerOptions options, const Clock& clock, Outbox& outbox)
    : options_(std::move(options)), log_(logger("broker")), clock_(clock), outbox_(outbox), listener_(&noListener_),
      random_(std::random_device{}()),
      instance_(std::random_device{}() | (uint64_t(std::random_device{}()) << 32) | 1) {
  nextSweep_ = clock_.now() + options_.heartbeatInterval;
  lastTick_ = clock_.now();
}

BrokerCore::~BrokerCore() = default;

template <class M>
SendStatus BrokerCore::sendClient(const std::string& client, const M& m, zmq::message_t* payload, JobId dispatch) {
  return outbox_.toClient(client, encode(m), payload, dispatch);
}

template <class M>
SendStatus BrokerCore::sendRunner(RunnerState& runner, const M& m, zmq::message_t* payload) {
  return outbox_.toRunner(runner.routingId, encode(m), payload, 0);
}

void BrokerCore::declarePool(const std::string& name, const PoolSettings& settings) {
  Pool& pool = ensurePool(name);
  pool.placement = settings.placement;
  pool.defaultTimeout = settings.defaultTimeout;
  pool.castTimeout = settings.castTimeout;
  pool.waitTimeout = settings.waitTimeout;
  pool.retryBackoff = settings.retryBackoff;
  pool.retryBackoffMax = settings.retryBackoffMax;
  pool.maxQueue = settings.maxQueue;
  pool.singleUse = settings.singleUse;
}

Pool& BrokerCore::ensurePool(const std::string& name) {
  auto it = pools_.find(name);
  if (it != pools_.end()) return *it->second;
  auto pool = std::make_unique<Pool>();
  pool->name = name;
  pool->placement = options_.placement;
  pool->defaultTimeout = options_.defaultTimeout;
  pool->waitTimeout = options_.defaultTimeout;  // a pool of static runners: no boot to wait for
  pool->maxQueue = options_.maxQueue;
  log_->info("pool={} created", name);
  return *pools_.emplace(name, std::move(pool)).first->second;
}

const Pool* BrokerCore::findPool(const std::string& name) const {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.get();
}
Pool* BrokerCore::findPool(const std::string& name) {
  auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.get();
}
const RunnerState* BrokerCore::findRunner(const std::string& runnerId) const {
  return const_cast<BrokerCore*>(this)->findRunner(runnerId);
}

RunnerState* BrokerCore::findRunner(const std::string& runnerId) {
  auto it = runners_.find(runnerId);
  return it == runners_.end() ? nullptr : it->second.get();
}
const Job* BrokerCore::findJob(JobId id) const { return jobs_.find(id); }

// ---------------------------------------------------------------- clients

void BrokerCore::onClient(const std::string& client, Message&& message, zmq::message_t payload,
                          std::string_view key) {
  auto now = clock_.now();
  auto& session = sessions_[client];
  session.lastSeen = now;
  if (keys_ && !authorizedSession(client, session, message, key)) return;
  if (auto* submit = std::get_if<msg::Submit>(&message)) {
    handleSubmit(client, session, *submit, std::move(payload));
  } else if (auto* cancel = std::get_if<msg::Cancel>(&message)) {
    handleCancel(client, session, *cancel);
  } else if (auto* stop = std::get_if<msg::StopChild>(&message)) {
    handleStopChild(client, *stop, key);
  } else if (auto* req = std::get_if<msg::StatusRequest>(&message)) {
    sendClient(client, status(req->requestId));
  } else if (auto* sub = std::get_if<msg::Subscribe>(&message)) {
    handleSubscribe(client, session, *sub);
  } else if (auto* set = std::get_if<msg::SetPool>(&message)) {
    if (keys_ && !keys_->isAdmin(key)) {
      log_->warn("client={} key {} may not change pool '{}': not an admin key", hex(client), keyFingerprint(key),
                 set->pool);
      replyError(client, set->requestId, ErrorCode::Unauthorized,
                 "changing a pool's limits needs an admin key (admin_keys); this client's key is not one");
      return;
    }
    std::string why;
    ErrorCode code = findPool(set->pool) ? listener_->setPool(*set, why) : ErrorCode::UnknownPool;
    if (code == ErrorCode::UnknownPool && why.empty()) why = "no pool named '" + set->pool + "'";
    if (code != ErrorCode::None) {
      replyError(client, set->requestId, code, why);
    } else {
      auto reply = status(set->requestId);
      std::erase_if(reply.pools, [&](const msg::PoolStatus& p) { return p.name != set->pool; });
      sendClient(client, reply);
    }
  } else if (std::holds_alternative<msg::Heartbeat>(message)) {
    sendClient(client, msg::Heartbeat{millis(now), static_cast<uint32_t>(options_.heartbeatInterval.count()), instance_,
                                      options_.maxPayloadBytes, shuttingDown_});
  } else {
    onClientInvalid(client, ErrorCode::BadRequest,
                    "this message kind is not accepted on the client endpoint", 0);
  }
}

bool BrokerCore::authorizedSession(const std::string& client, ClientSession& session, const Message& message,
                                   std::string_view key) {
  if (session.key.empty()) session.key = key;
  const char* refusal = nullptr;
  if (key.empty()) {
    refusal = "this connection was not authenticated";  // cannot happen with ZAP enforced
  } else if (key != session.key) {
    refusal = "this connection's routing id belongs to another key's session";
  } else if (session.revoked) {
    refusal = "this client's key was revoked";
  }
  if (!refusal) return true;
  log_->warn("client={} key {}: {}", hex(client), keyFingerprint(key), refusal);
  replyError(client, requestIdOf(message), ErrorCode::Unauthorized, refusal);
  return false;
}

void BrokerCore::keysReloaded() {
  if (!keys_) return;
  for (auto& [client, session] : sessions_) {
    if (session.revoked || session.key.empty() || keys_->isClient(session.key)) continue;
    session.revoked = true;
    log_->warn("client={} key {}: revoked; its further requests are refused", hex(client), keyFingerprint(session.key));
  }
  std::vector<RunnerState*> revoked;
  for (auto& [id, runner] : runners_)
    if (runner->token.empty() && !runner->key.empty() && !keys_->isStaticRunner(runner->key) &&
        runner->phase == RunnerPhase::Ready)
      revoked.push_back(runner.get());
  for (RunnerState* runner : revoked) {
    log_->warn("pool={} runner={} key {}: revoked; draining it", runner->pool->name, runner->id,
               keyFingerprint(runner->key));
    drain(*runner, options_.shutdownGrace, "its key was revoked");
  }
}

void BrokerCore::onClientInvalid(const std::string& client, ErrorCode code, const std::string& why,
                                 uint64_t requestId) {
  log_->warn("client={} sent a bad message: {} ({})", hex(client), why, errorCodeName(code));
  replyError(client, requestId, code, why);
}

void BrokerCore::replyError(const std::string& client, uint64_t requestId, ErrorCode code,
                            const std::string& message, JobId job) {
  sendClient(client, msg::Error{requestId, code, message, job});
}

void BrokerCore::handleSubmit(const std::string& client, ClientSession& session, msg::Submit& s,
                              zmq::message_t payload) {
  auto reject = [&](ErrorCode code, const std::string& why) {
    log_->warn("client={} request={} pool={} function={} rejected: {}: {}", hex(client),
                           s.requestId, s.pool, s.function, errorCodeName(code), why);
    replyError(client, s.requestId, code, why);
  };
  if (shuttingDown_) return reject(ErrorCode::ShuttingDown, "the broker is shutting down and accepts no new work");
  if (!validName(s.pool)) return reject(ErrorCode::BadRequest, "pool name must be 1 to 128 bytes");
  if (!validName(s.function)) return reject(ErrorCode::BadRequest, "function name must be 1 to 128 bytes");
  if (payload.size() > options_.maxPayloadBytes)
    return reject(ErrorCode::PayloadTooLarge, "payload of " + std::to_string(payload.size()) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(options_.maxPayloadBytes) + " bytes");
  if (session.requests.contains(s.requestId))
    return reject(ErrorCode::BadRequest, "request id " + std::to_string(s.requestId) + " is already in flight");
  Pool* pool = findPool(s.pool);
  if (!pool) return reject(ErrorCode::UnknownPool, "no pool named '" + s.pool + "'");
  if (!pool->runners.empty() && !pool->functionRunners.count(s.function))
    return reject(ErrorCode::UnknownFunction, "no runner of pool '" + s.pool + "' serves function '" + s.function + "'");
  if (pool->maxQueue != 0 && pool->queue.size() >= pool->maxQueue) {
    std::string why = "the queue of pool '" + s.pool + "' is full (" + std::to_string(pool->maxQueue) + " jobs)";
    if (auto now = clock_.now(); now - pool->queueFullEventAt >= Duration(1000)) {
      pool->queueFullEventAt = now;  // one event per second at most: a full queue refuses many
      publish(msg::Event{.kind = EventKind::QueueFull, .pool = pool->name, .runnerId = {}, .message = why});
    }
    return reject(ErrorCode::QueueFull, why);
  }

  auto now = clock_.now();
  Job& job = jobs_.create();
  const JobId id = job.id;
  // Deadlines (PROTOCOL.md). 0 = the pool's default: `timeout` for a call, `cast_timeout`
  // (infinite unless set) for a cast. A place's timeout bounds its placement only, as in FLAME.
  auto orDefault = [](uint32_t wire, Duration fallback) { return wire == 0 ? fallback : fromWireMs(wire); };
  Duration runDefault = s.mode == Mode::Place  ? kInfinite
                        : s.mode == Mode::Cast ? pool->castTimeout
                                               : pool->defaultTimeout;
  Duration waitDefault = s.mode == Mode::Cast ? pool->castTimeout : pool->waitTimeout;
  job.split = s.splitBudget || s.mode == Mode::Place;
  if (s.splitBudget) {
    job.waitBound = orDefault(s.waitTimeoutMs, waitDefault);
    job.runBudget = orDefault(s.timeoutMs, runDefault);
  } else if (s.mode == Mode::Place) {
    job.waitBound = orDefault(s.timeoutMs, waitDefault);
    job.runBudget = kInfinite;
  }
  // A split job's wait bound is armed only if it does wait (after the dispatch below): a job
  // dispatched at once pushes one deadline (its run budget), not two.
  Duration timeout = job.split ? kInfinite : orDefault(s.timeoutMs, runDefault);
  job.mode = s.mode;
  if (keys_) job.owner = session.key;
  job.link = s.link;
  job.idempotent = s.idempotent;
  // Retries (PROTOCOL.md, Retries): runner_lost when idempotent; handler_error and timeout (the
  // run budget, so split budgets only) on request, for calls and casts. 0 retries = one.
  job.retryHandlerError = s.retryHandlerError && s.mode != Mode::Place;
  job.retryTimeout = s.retryTimeout && s.splitBudget && s.mode != Mode::Place;
  job.retriesLeft = s.idempotent || job.retryHandlerError || job.retryTimeout ? std::max<uint8_t>(s.retries, 1) : 0;
  job.retryBackoffMs = s.retryBackoffMs == 0 ? toWireMs(pool->retryBackoff) : s.retryBackoffMs;
  job.retryBackoffMaxMs = s.retryBackoffMaxMs == 0 ? toWireMs(pool->retryBackoffMax) : s.retryBackoffMaxMs;
  job.pool = pool;
  job.function = std::move(s.function);
  job.client = client;
  job.requestId = s.requestId;
  job.deadline = addSaturating(now, timeout);
  job.submitted = now;
  pool->metrics.submit(job.mode);
  pool->metrics.bytesReceived += payload.size();
  job.payload = std::move(payload);
  if (job.deadline != TimePoint::max()) {
    deadlines_.push(job.deadline, id);
    ++timedJobs_;
  }
  session.requests.insert(s.requestId, id);
  if (job.link) ++session.linked;
  pool->queue.pushBack(job.function, id);
  log_->debug("pool={} job={} {} function={} queued", pool->name, id, modeName(job.mode), job.function);
  if (job.mode == Mode::Cast) sendClient(client, msg::Accepted{s.requestId, id});
  dispatch(*pool);
  if (Job* queued = jobs_.find(id); queued && queued->state == JobState::Queued) {
    if (queued->split) setDeadline(*queued, addSaturating(now, queued->waitBound));
    ownPayload(*queued);
  }
  listener_->demandChanged(*pool);
}

void BrokerCore::handleCancel(const std::string& client, ClientSession& session, const msg::Cancel& c) {
  const JobId* requested = session.requests.find(c.requestId);
  if (!requested && unsubscribe(client, session, c.requestId) > 0) {
    replyError(client, c.requestId, ErrorCode::Cancelled, "unsubscribed");
    return;
  }
  if (!requested) {
    replyError(client, c.requestId, ErrorCode::NotFound, "no request " + std::to_string(c.requestId) + " in flight");
    return;
  }
  Job& job = *jobs_.find(*requested);
  log_->info("pool={} job={} cancelled by its client", job.pool->name, job.id);
  if (!job.answered) job.pool->metrics.finish(job.mode, ErrorCode::Cancelled);
  if (!job.answered) replyError(client, job.requestId, ErrorCode::Cancelled, "cancelled by the client", job.id);
  job.answered = true;
  if (job.state != JobState::Running) {
    finish(job);
  } else {
    cancelRunning(job);
  }
}

void BrokerCore::handleStopChild(const std::string& client, const msg::StopChild& s, std::string_view key) {
  Job* child = jobs_.find(s.childId);
  if (!child || child->mode != Mode::Place) {
    replyError(client, 0, ErrorCode::NotFound, "no child " + std::to_string(s.childId), s.childId);
    return;
  }
  Job& job = *child;
  if (keys_ && key != job.owner && !keys_->isAdmin(key)) {
    log_->warn("pool={} child={}: key {} may not stop it (placed by key {})", job.pool->name, job.id,
               keyFingerprint(key), keyFingerprint(job.owner));
    replyError(client, 0, ErrorCode::Unauthorized,
               "child " + std::to_string(s.childId) + " was placed by another client's key; only it or an admin key may stop it",
               s.childId);
    return;
  }
  log_->info("pool={} child={} stop requested", job.pool->name, job.id);
  if (job.state != JobState::Running) {  // waiting for a runner, or for its retry's backoff
    answerError(job, ErrorCode::Cancelled, "stopped before it was placed");
    finish(job);
    sendClient(client, msg::Stopped{s.childId});
    return;
  }
  stopWaiters_[job.id].push_back(client);
  cancelRunning(job);
}

void BrokerCore::cancelRunning(Job& job) {
  if (job.runner) sendRunner(*job.runner, msg::CancelJob{job.id});
}

void BrokerCore::answerError(Job& job, ErrorCode code, const std::string& message) {
  if (job.answered) return;
  job.answered = true;
  job.pool->metrics.finish(job.mode, code);
  if (job.mode == Mode::Cast) {
    log_->warn("pool={} job={} cast function={} failed: {}: {}", job.pool->name, job.id,
                           job.function, errorCodeName(code), message);
    return;
  }
  if (job.mode == Mode::Place && job.state == JobState::Running) {
    // The placer already had `placed`: it hears about the end while it is connected.
    if (placerConnected(job)) sendClient(job.client, msg::ChildExited{job.id, code, message});
    return;
  }
  replyError(job.client, job.requestId, code, message, job.id);
}

bool BrokerCore::placerConnected(const Job& job) const {
  // Linked or not (linking decides only what happens when the placer goes away): a placer is
  // connected while its session is alive by the liveness rule.
  auto s = sessions_.find(job.client);
  return s != sessions_.end() && !silentTooLong(s->second.lastSeen, options_.livenessWindow(), clock_.now());
}

void BrokerCore::notifyStopWaiters(JobId child) {
  auto it = stopWaiters_.find(child);
  if (it == stopWaiters_.end()) return;
  for (auto& client : it->second) sendClient(client, msg::Stopped{child});
  stopWaiters_.erase(it);
}

// ---------------------------------------------------------------- events

void BrokerCore::handleSubscribe(const std::string& client, ClientSession& session, const msg::Subscribe& sub) {
  auto refuse = [&](ErrorCode code, const std::string& why) {
    log_->warn("client={} subscribe request={} refused: {}", hex(client), sub.requestId, why);
    replyError(client, sub.requestId, code, why);
  };
  if (!sub.pool.empty() && !findPool(sub.pool)) return refuse(ErrorCode::UnknownPool, "no pool named '" + sub.pool + "'");
  bool taken = session.requests.contains(sub.requestId) ||
               std::any_of(subscriptions_.begin(), subscriptions_.end(), [&](const Subscription& s) {
                 return s.client == client && s.requestId == sub.requestId;
               });
  if (taken) return refuse(ErrorCode::BadRequest, "request id " + std::to_string(sub.requestId) + " is already in flight");
  if (session.subscriptions >= kMaxSubscriptionsPerClient)
    return refuse(ErrorCode::BadRequest,
                  "a client may hold " + std::to_string(kMaxSubscriptionsPerClient) + " subscriptions at most");
  if (subscriptions_.size() >= kMaxSubscriptions)
    return refuse(ErrorCode::BadRequest, "the broker holds its maximum of " + std::to_string(kMaxSubscriptions) +
                                             " subscriptions");
  subscriptions_.push_back(Subscription{client, sub.requestId, sub.pool});
  ++session.subscriptions;
  log_->info("client={} subscribed to the events of {}", hex(client), sub.pool.empty() ? "every pool" : "pool " + sub.pool);
  sendClient(client, msg::Subscribed{sub.requestId, eventSeq_});
}

size_t BrokerCore::unsubscribe(const std::string& client, ClientSession& session, std::optional<uint64_t> requestId,
                               const std::string& tell) {
  size_t ended = std::erase_if(subscriptions_, [&](const Subscription& s) {
    if (s.client != client || (requestId && s.requestId != *requestId)) return false;
    // A client that only paused (its liveness window is longer than ours) learns it must
    // subscribe again instead of waiting for events that will not come.
    if (!tell.empty()) replyError(client, s.requestId, ErrorCode::Cancelled, tell);
    return true;
  });
  session.subscriptions -= std::min<uint32_t>(session.subscriptions, static_cast<uint32_t>(ended));
  return ended;
}

void BrokerCore::publish(msg::Event event) {
  event.seq = ++eventSeq_;  // numbered even unheard: a later subscriber's lastSeq counts it
  if (subscriptions_.empty()) return;
  event.timeMs = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  if (const Pool* pool = findPool(event.pool)) {
    msg::PoolStatus counts;
    listener_->describe(*pool, counts);
    event.runners = static_cast<uint32_t>(pool->runners.size());
    event.booting = counts.booting;
  }
  std::vector<std::string> gone;
  for (const Subscription& sub : subscriptions_) {
    if (!sub.pool.empty() && sub.pool != event.pool) continue;
    event.requestId = sub.requestId;
    // A subscriber too slow to take it (its queue is full) misses this one: the gap in seq says so.
    if (sendClient(sub.client, event) == SendStatus::Unreachable) gone.push_back(sub.client);
  }
  for (const std::string& client : gone)
    if (auto it = sessions_.find(client); it != sessions_.end()) unsubscribe(client, it->second, std::nullopt);
}

void BrokerCore::publishRunner(EventKind kind, const RunnerState& runner, std::string message) {
  publish(msg::Event{.kind = kind, .pool = runner.pool->name, .runnerId = runner.id, .message = std::move(message)});
}

// ---------------------------------------------------------------- dispatch

void BrokerCore::dispatch(Pool& pool) {
  if (pool.queue.empty() || pool.available.empty()) return;
  // Oldest first among the jobs a free runner can serve (pool.h, PoolQueue).
  pool.queue.drain(
      [&](JobId id) {
        const Job* job = jobs_.find(id);
        return job && job->state == JobState::Queued;
      },
      [&](const std::string& function) { return pool.available.pick(pool.placement, function); },
      [&](RunnerState& runner, JobId id) { return sendJob(runner, *jobs_.find(id)); });
}

bool BrokerCore::sendJob(RunnerState& runner, Job& job) {
  auto now = clock_.now();
  if (job.split) setDeadline(job, addSaturating(now, job.runBudget));  // the run budget starts now
  uint32_t budget = job.deadline == TimePoint::max()
                        ? kInfiniteMs
                        : toWireMs(std::max(Duration(0), job.deadline - now));
  // The job keeps its payload while it runs, for a retry or a requeue; a zmq copy shares the
  // buffer (refcounted) except for tiny payloads, which are copied.
  zmq::message_t payload;
  payload.copy(job.payload);
  job.pool->metrics.queueSeconds.observe(now - job.submitted);
  job.pool->metrics.bytesSent += payload.size();
  job.dispatched = now;
  job.state = JobState::Running;
  job.runner = &runner;
  job.runnerPos = static_cast<uint32_t>(runner.jobs.size());
  runner.jobs.push_back(job.id);
  ++runner.used;
  ++runner.started;
  runner.pool->available.update(runner);
  auto status = outbox_.toRunner(runner.routingId, encode(msg::Job{job.id, job.function, job.mode, budget}), &payload,
                                 job.id);
  if (status != SendStatus::Ok) {
    onUndeliverable(runner.routingId, {job.id},
                    status == SendStatus::Unreachable ? "its connection is gone" : "its send queue is full");
    return false;
  }
  log_->debug("pool={} job={} -> runner={} ({}/{})", runner.pool->name, job.id, runner.id,
                          runner.used, runner.slots);
  if (job.mode == Mode::Place) sendClient(job.client, msg::Placed{job.requestId, job.id, runner.id}, nullptr, job.id);
  return true;
}

void BrokerCore::setDeadline(Job& job, TimePoint deadline) {
  if (deadline == job.deadline) return;
  if (job.deadline != TimePoint::max()) --timedJobs_;  // its heap entry is stale from now on
  job.deadline = deadline;
  if (deadline == TimePoint::max()) return;
  deadlines_.push(deadline, job.id);
  ++timedJobs_;
}

void BrokerCore::requeue(Job& job) {
  // A re-run waits for a runner again: with split budgets, within the wait bound.
  if (job.split) setDeadline(job, addSaturating(clock_.now(), job.waitBound));
  job.state = JobState::Queued;
  job.runner = nullptr;
  job.pool->queue.pushFront(job.function, job.id);
  ownPayload(job);
}

void BrokerCore::ownPayload(Job& job) {
  // A small payload received with zero-copy receive is a slice of one of libzmq's 8 KiB receive
  // buffers, and keeps the whole buffer alive: a job that waits gets its own copy (measured:
  // 675 -> ~330 bytes per queued job). Larger ones already have a buffer of their own.
  constexpr size_t kSharedBufferBytes = 8192;
  if (job.payload.size() > 0 && job.payload.size() < kSharedBufferBytes)
    job.payload = zmq::message_t(job.payload.data(), job.payload.size());
}

void BrokerCore::onUndeliverable(const std::string& routingId, const std::vector<JobId>& undelivered,
                                 const std::string& why) {
  auto it = byRouting_.find(routingId);
  if (it == byRouting_.end()) return;  // that connection's runner is already gone
  RunnerState& runner = *it->second;
  // Back to the head of the queue in dispatch order: push the last one first.
  for (auto id = undelivered.rbegin(); id != undelivered.rend(); ++id) {
    Job* found = jobs_.find(*id);
    if (!found || found->runner != &runner) continue;
    Job& job = *found;
    freeSlot(job);
    if (job.answered && job.mode != Mode::Place) {
      finish(job);  // cancelled or timed out meanwhile: nobody wants it run
      continue;
    }
    if (job.mode == Mode::Place && stopWaiters_.count(job.id)) {
      // A child stopped before it could start: its placer never had `placed` (it was dropped
      // with the dispatch), so the place request itself is answered.
      if (!job.answered) job.pool->metrics.finish(job.mode, ErrorCode::Cancelled);
      if (!job.answered) replyError(job.client, job.requestId, ErrorCode::Cancelled, "stopped before it was placed", job.id);
      job.answered = true;
      notifyStopWaiters(job.id);
      finish(job);
      continue;
    }
    log_->info("pool={} job={} was not delivered to runner={}; requeued", runner.pool->name, job.id, runner.id);
    requeue(job);
  }
  removeRunner(runner, ErrorCode::RunnerLost, why);
}

void BrokerCore::freeSlot(Job& job) {
  RunnerState& runner = *job.runner;
  // Swap-remove from the runner's list, keeping the moved job's position right.
  JobId last = runner.jobs.back();
  runner.jobs[job.runnerPos] = last;
  if (last != job.id) jobs_.find(last)->runnerPos = job.runnerPos;
  runner.jobs.pop_back();
  job.runner = nullptr;
  --runner.used;
  if (runner.used == 0) runner.idleSince = clock_.now();
  runner.pool->available.update(runner);
}

void BrokerCore::finish(Job& job) {
  if (job.state == JobState::Queued) job.pool->queue.forget(job.function);
  if (job.runner) freeSlot(job);
  if (job.deadline != TimePoint::max()) --timedJobs_;
  auto s = sessions_.find(job.client);
  if (s != sessions_.end()) {
    const JobId* requested = s->second.requests.find(job.requestId);
    if (requested && *requested == job.id) {
      s->second.requests.erase(job.requestId);
      if (job.link && s->second.linked > 0) --s->second.linked;
    }
  }
  jobs_.erase(job.id);
}

// ---------------------------------------------------------------- runners

void BrokerCore::onRunner(const std::string& routingId, Message&& message, zmq::message_t payload,
                          std::string_view key) {
  if (auto* ready = std::get_if<msg::Ready>(&message)) return handleReady(routingId, *ready, key);
  auto it = byRouting_.find(routingId);
  if (it == byRouting_.end()) {
    log_->debug("connection={} is not registered; asking it to send ready", hex(routingId));
    outbox_.toRunner(routingId, encode(msg::Error{0, ErrorCode::UnknownPeer, "unknown connection: send ready", 0}), nullptr,
                     0);
    return;
  }
  RunnerState& runner = *it->second;
  runner.lastSeen = clock_.now();
  if (auto* done = std::get_if<msg::JobDone>(&message)) {
    handleJobDone(runner, *done, std::move(payload));
  } else if (std::holds_alternative<msg::Heartbeat>(message)) {
    // lastSeen is all a heartbeat does
  } else if (auto* leaving = std::get_if<msg::Leaving>(&message)) {
    handleLeaving(runner, *leaving);
  } else {
    onRunnerInvalid(routingId, ErrorCode::BadRequest, "this message kind is not accepted on the runner endpoint");
  }
}

void BrokerCore::onRunnerInvalid(const std::string& routingId, ErrorCode code, const std::string& why) {
  auto it = byRouting_.find(routingId);
  log_->warn("runner={} connection={} sent a bad message: {}",
                         it == byRouting_.end() ? std::string("?") : it->second->id, hex(routingId), why);
  outbox_.toRunner(routingId, encode(msg::Error{0, code, why, 0}), nullptr, 0);
}

void BrokerCore::handleReady(const std::string& routingId, msg::Ready& ready, std::string_view key) {
  auto refuse = [&](ErrorCode code, const std::string& why) {
    log_->warn("runner={} pool={} refused: {}", ready.runnerId, ready.pool, why);
    outbox_.toRunner(routingId, encode(msg::Error{0, code, why, 0}), nullptr, 0);
  };
  if (!validName(ready.runnerId)) return refuse(ErrorCode::BadRequest, "runner id must be 1 to 128 bytes");
  if (!validName(ready.pool)) return refuse(ErrorCode::BadRequest, "pool name must be 1 to 128 bytes");
  if (ready.slots == 0 || ready.slots > kMaxSlots)
    return refuse(ErrorCode::BadRequest, "slots must be between 1 and " + std::to_string(kMaxSlots));
  if (ready.functions.size() > kMaxFunctions) return refuse(ErrorCode::BadRequest, "too many functions");
  for (auto& f : ready.functions)
    if (!validName(f)) return refuse(ErrorCode::BadRequest, "function names must be 1 to 128 bytes");

  if (ready.held.size() > kMaxSlots) return refuse(ErrorCode::BadRequest, "too many held jobs");
  if (shuttingDown_) return refuse(ErrorCode::ShuttingDown, "the broker is shutting down");

  auto now = clock_.now();
  if (auto known = runners_.find(ready.runnerId); known != runners_.end()) {
    RunnerState& r = *known->second;
    // Every ready must prove the identity the first one did, or anyone who read a runner id
    // (flame status shows them) could take over its connection and its jobs.
    if (!sameSecret(r.token, ready.token))
      return refuse(ErrorCode::Unauthorized,
                    "runner id '" + ready.runnerId + "' is registered with another token");
    if (keys_ && r.key != key)
      return refuse(ErrorCode::Unauthorized, "runner id '" + ready.runnerId + "' is registered with another key");
    if (r.token.empty() && routingId != r.routingId && now - r.lastSeen < options_.heartbeatInterval)
      return refuse(ErrorCode::Unauthorized, "runner id '" + ready.runnerId +
                                                 "' registered without a token and its connection is alive");
    if (r.pool->name != ready.pool)
      return refuse(ErrorCode::BadRequest, "runner id '" + ready.runnerId + "' is registered in pool '" + r.pool->name + "'");
    bool newConnection = r.routingId != routingId;
    if (newConnection) {
      byRouting_.erase(r.routingId);
      r.routingId = routingId;
      byRouting_[routingId] = &r;
    }
    r.lastSeen = now;
    log_->info("pool={} runner={} reconnected ({} jobs assigned, {} held)", r.pool->name, r.id, r.jobs.size(),
               ready.busy);
    sendRunner(r, welcome());
    Pool& pool = *r.pool;
    reconcile(r, ready, newConnection);  // may remove jobs and free slots
    dispatch(pool);
    listener_->demandChanged(pool);
    return;
  }
  if (ErrorCode verdict = listener_->admitRunner(ready, key); verdict != ErrorCode::None)
    return refuse(verdict, "runner '" + ready.runnerId + "' was not admitted (bad boot token or key)");
  if (auto old = byRouting_.find(routingId); old != byRouting_.end())
    removeRunner(*old->second, ErrorCode::RunnerLost, "its connection re-registered as another runner");

  Pool& pool = ensurePool(ready.pool);
  auto owned = std::make_unique<RunnerState>();
  RunnerState& r = *owned;
  r.id = ready.runnerId;
  r.routingId = routingId;
  r.pool = &pool;
  r.seq = nextRunnerSeq_++;
  r.slots = ready.slots;
  r.token = ready.token;
  r.key = key;
  r.lastSeen = now;
  r.idleSince = now;
  r.pid = ready.pid;
  r.host = ready.host;
  r.singleUse = pool.singleUse;
  for (auto& f : ready.functions)
    if (r.functions.insert(f).second) ++pool.functionRunners[f];
  runners_.emplace(r.id, std::move(owned));
  byRouting_[routingId] = &r;
  pool.runners.insert(&r);
  reconcile(r, ready, true);
  pool.available.join(r, ready.functions);
  log_->info("pool={} runner={} ready: {} slots, {} functions, pid {} on {}", pool.name, r.id,
                         r.slots, r.functions.size(), r.pid, r.host);
  publishRunner(EventKind::RunnerReady, r,
                std::to_string(r.slots) + " slots, pid " + std::to_string(r.pid) + " on " + r.host);
  sendRunner(r, welcome());
  listener_->runnerJoined(r);
  dispatch(pool);
}

msg::Welcome BrokerCore::welcome() const {
  return msg::Welcome{static_cast<uint32_t>(options_.heartbeatInterval.count()), options_.liveness, instance_,
                      options_.maxPayloadBytes};
}

void BrokerCore::reconcile(RunnerState& runner, const msg::Ready& ready, bool newConnection) {
  if (ready.held.size() != ready.busy) {
    // An older runner says only how many jobs it still runs: those this broker assigned it stay
    // assigned, the rest are jobs it does not know, each given back by its jobDone.
    uint32_t assigned = static_cast<uint32_t>(runner.jobs.size());
    runner.phantom = ready.busy > assigned && runner.slots > assigned
                         ? std::min(ready.busy - assigned, runner.slots - assigned)
                         : 0;
    runner.used = static_cast<uint32_t>(runner.jobs.size()) + runner.phantom;
    return;
  }
  // Job ids are reused by a restarted broker: only the ones this run dispatched are ours.
  std::unordered_set<JobId> ours;
  uint32_t phantom = 0;
  for (const msg::HeldJob& h : ready.held) {
    if (h.instance == instance_) ours.insert(h.jobId);
    else ++phantom;
  }
  // Assigned here but not held: its dispatch or its result was lost with the old connection.
  // On the same connection nothing is lost, and a job may simply have been sent after the
  // runner wrote its list (a repeated ready): those stay assigned.
  std::vector<JobId> lost;
  for (JobId id : runner.jobs)
    if (newConnection && !ours.count(id)) lost.push_back(id);
  for (JobId id : lost)
    loseJob(*jobs_.find(id), ErrorCode::RunnerLost,
            "runner " + runner.id + " re-registered without the job (its dispatch or its result was lost)");
  for (JobId id : ours) {
    Job* job = jobs_.find(id);
    if (job && job->runner == &runner) continue;
    if (job && job->state != JobState::Running && job->pool == runner.pool) {
      // A retry of a job this runner was declared lost with, while it kept running it: it is
      // still the best place for the job, and running it twice helps nobody.
      attach(*job, runner);
      continue;
    }
    ++phantom;  // finished, failed or running elsewhere meanwhile: its slot comes back with its jobDone
  }
  // A runner holds at most `slots` running jobs; more only when results wait to be sent, and
  // those come back right after the welcome. `used` never exceeds `slots` (credit is what
  // dispatch trusts); a jobDone beyond the phantoms counted is simply ignored.
  uint32_t assigned = static_cast<uint32_t>(runner.jobs.size());
  runner.phantom = std::min(phantom, runner.slots > assigned ? runner.slots - assigned : 0);
  runner.used = assigned + runner.phantom;
  if (runner.used == 0) runner.idleSince = clock_.now();
  runner.pool->available.update(runner);
}

void BrokerCore::attach(Job& job, RunnerState& runner) {
  if (job.state == JobState::Queued) job.pool->queue.forget(job.function);  // its queue entry goes stale
  if (job.split) setDeadline(job, addSaturating(clock_.now(), job.runBudget));
  job.state = JobState::Running;
  job.runner = &runner;
  job.runnerPos = static_cast<uint32_t>(runner.jobs.size());
  runner.jobs.push_back(job.id);
  ++runner.started;
  log_->info("pool={} job={} is still running on re-registered runner={}: reattached", runner.pool->name, job.id,
             runner.id);
}

void BrokerCore::loseJob(Job& job, ErrorCode code, const std::string& message) {
  Pool& pool = *job.pool;
  if (job.runner) freeSlot(job);
  if (wantsRetry(job, ErrorCode::RunnerLost)) return scheduleRetry(job, ErrorCode::RunnerLost, message);
  if (!job.superseded) ++pool.counters.failed;  // a superseded attempt's request is its retry's
  answerError(job, code, message);
  if (job.mode == Mode::Place) notifyStopWaiters(job.id);
  finish(job);
}

void BrokerCore::handleJobDone(RunnerState& runner, const msg::JobDone& done, zmq::message_t payload) {
  Pool& pool = *runner.pool;
  // A job id from another broker run (this one restarted) is never one of ours, whatever it is.
  bool ourRun = done.instance == 0 || done.instance == instance_;
  Job* found = ourRun ? jobs_.find(done.jobId) : nullptr;
  if (!found || found->runner != &runner) {
    if (runner.phantom > 0) {
      // A job a previous broker (or connection) gave it: its slot comes back now.
      --runner.phantom;
      --runner.used;
      if (runner.used == 0) runner.idleSince = clock_.now();
      pool.available.update(runner);
      dispatch(pool);
      listener_->demandChanged(pool);
    } else {
      log_->debug("pool={} runner={} finished unknown job={}", pool.name, runner.id, done.jobId);
    }
    return;
  }
  Job& job = *found;
  if (done.code == ErrorCode::ShuttingDown && !job.answered) {
    // The runner refused the job because it is leaving: it never ran, so it goes back to the
    // head of the queue for another runner (no retry is used up), and this runner gets no more.
    log_->info("pool={} job={} refused by leaving runner={}; requeued", pool.name, job.id, runner.id);
    freeSlot(job);
    setDraining(runner, "it refused a job: it is leaving");
    requeue(job);
    dispatch(pool);
    return;
  }
  ErrorCode code = done.code;
  std::string message = done.message;
  if (code == ErrorCode::None && payload.size() > options_.maxPayloadBytes) {
    code = ErrorCode::PayloadTooLarge;
    message = "result of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
              std::to_string(options_.maxPayloadBytes) + " bytes";
  }
  pool.metrics.runSeconds.observe(clock_.now() - job.dispatched);
  // A superseded attempt (a retry took over its request when its run budget ran out) only gives
  // its slot back; a failure the job asked to retry runs again.
  bool again = !job.superseded && wantsRetry(job, code);
  if (job.superseded || again) {
    if (again) {
      freeSlot(job);
      scheduleRetry(job, code, message);
    } else {
      finish(job);
    }
    listener_->jobFinished(runner);
    dispatch(pool);
    listener_->demandChanged(pool);
    return;
  }
  if (code == ErrorCode::None) ++pool.counters.completed;
  else ++pool.counters.failed;
  pool.metrics.bytesReceived += payload.size();
  if (code == ErrorCode::None && !job.answered) pool.metrics.finish(job.mode, ErrorCode::None);
  if (code == ErrorCode::None && job.mode == Mode::Call && !job.answered) pool.metrics.bytesSent += payload.size();
  log_->debug("pool={} job={} done on runner={}: {}", pool.name, job.id, runner.id, errorCodeName(code));
  if (code == ErrorCode::None && job.mode == Mode::Call) {
    if (!job.answered) {
      job.answered = true;
      sendClient(job.client, msg::Result{job.requestId, job.id}, &payload);
    }
  } else if (code == ErrorCode::None && job.mode == Mode::Place) {
    if (!job.answered && placerConnected(job)) sendClient(job.client, msg::ChildExited{job.id, ErrorCode::None, ""});
    job.answered = true;
  } else if (code != ErrorCode::None) {
    answerError(job, code, message);
  }
  if (job.mode == Mode::Place) notifyStopWaiters(job.id);
  finish(job);
  listener_->jobFinished(runner);
  dispatch(pool);
  listener_->demandChanged(pool);
}

bool BrokerCore::wantsRetry(const Job& job, ErrorCode code) const {
  bool wanted = code == ErrorCode::RunnerLost     ? job.idempotent
                : code == ErrorCode::HandlerError ? job.retryHandlerError
                : code == ErrorCode::Timeout      ? job.retryTimeout
                                                  : false;
  return wanted && job.retriesLeft > 0 && !job.answered && !shuttingDown_;
}

void BrokerCore::scheduleRetry(Job& job, ErrorCode code, const std::string& why) {
  constexpr double kRetryJitter = 0.25;
  Pool& pool = *job.pool;
  --job.retriesLeft;
  ++job.attempt;
  ++pool.counters.retried;
  double draw = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  Duration delay = backoffDelay(fromWireMs(job.retryBackoffMs), fromWireMs(job.retryBackoffMaxMs), job.attempt - 1u,
                                kRetryJitter, draw);
  std::string reason = std::string(errorCodeName(code)) + ": " + why;
  log_->info("pool={} job={} {}: retry {} in {} ({} left)", pool.name, job.id, reason, job.attempt,
             formatDuration(delay), job.retriesLeft);
  publish(msg::Event{.kind = EventKind::JobRetried, .pool = pool.name, .runnerId = {}, .message = reason,
                     .jobId = job.id, .attempt = job.attempt, .delayMs = toWireMs(delay)});
  if (delay <= Duration(0)) {
    requeue(job);
    return;
  }
  job.state = JobState::Delayed;
  job.runner = nullptr;
  if (job.split) setDeadline(job, TimePoint::max());  // its wait bound starts again when it is queued
  job.retryAt = addSaturating(clock_.now(), delay);
  retryTimers_.push(job.retryAt, job.id);
  ownPayload(job);
}

bool BrokerCore::retryTimedOut(Job& old) {
  if (!wantsRetry(old, ErrorCode::Timeout)) return false;
  // The runner holds `old` until its cancel lands (a handler may ignore it for a while), and a
  // runner knows a job by its id: the retry is a new job that takes over the client's request.
  Job& next = jobs_.create();
  next.mode = old.mode;
  next.link = old.link;
  next.idempotent = old.idempotent;
  next.retryHandlerError = old.retryHandlerError;
  next.retryTimeout = old.retryTimeout;
  next.retriesLeft = old.retriesLeft;
  next.attempt = old.attempt;
  next.retryBackoffMs = old.retryBackoffMs;
  next.retryBackoffMaxMs = old.retryBackoffMaxMs;
  next.pool = old.pool;
  next.function = old.function;
  next.client = old.client;
  next.owner = old.owner;
  next.requestId = old.requestId;
  next.split = old.split;
  next.waitBound = old.waitBound;
  next.runBudget = old.runBudget;
  next.submitted = old.submitted;
  next.payload.copy(old.payload);
  next.state = JobState::Delayed;  // in no queue until scheduleRetry puts it in one
  if (auto s = sessions_.find(old.client); s != sessions_.end()) {
    s->second.requests.erase(old.requestId);
    s->second.requests.insert(old.requestId, next.id);
  }
  old.superseded = true;
  old.answered = true;  // its request is next's now
  std::string why = "the run budget of " + formatDuration(old.runBudget) + " ran out on runner " + old.runner->id;
  cancelRunning(old);   // its slot comes back with the runner's jobDone
  Pool& pool = *old.pool;
  scheduleRetry(next, ErrorCode::Timeout, why);
  dispatch(pool);
  return true;
}

void BrokerCore::releaseRetries(TimePoint now) {
  while (!retryTimers_.empty() && retryTimers_.top().first <= now) {
    auto [at, id] = retryTimers_.top();
    retryTimers_.pop();
    Job* job = jobs_.find(id);
    if (!job || job->state != JobState::Delayed || job->retryAt != at) continue;  // cancelled, attached
    job->retryAt = TimePoint::max();
    Pool& pool = *job->pool;
    requeue(*job);
    dispatch(pool);
    listener_->demandChanged(pool);
  }
}

void BrokerCore::handleLeaving(RunnerState& runner, const msg::Leaving& leaving) {
  if (leaving.exiting) {
    removeRunner(runner, ErrorCode::RunnerLost, "runner " + runner.id + " exited: " + leaving.reason);
    return;
  }
  log_->info("pool={} runner={} draining: {}", runner.pool->name, runner.id, leaving.reason);
  setDraining(runner, leaving.reason);
  listener_->demandChanged(*runner.pool);
}

void BrokerCore::setDraining(RunnerState& runner, const std::string& why) {
  if (runner.phase == RunnerPhase::Draining) return;
  runner.phase = RunnerPhase::Draining;
  ++runner.pool->draining;
  runner.pool->available.erase(runner);
  publishRunner(EventKind::RunnerDraining, runner, why);
}

void BrokerCore::drain(RunnerState& runner, Duration grace, const std::string& why) {
  setDraining(runner, why);
  sendRunner(runner, msg::Drain{toWireMs(grace)});
}

bool BrokerCore::drainRunner(const std::string& runnerId, Duration grace, const std::string& why) {
  RunnerState* runner = findRunner(runnerId);
  if (!runner) return false;
  drain(*runner, grace, why);
  return true;
}

bool BrokerCore::dropRunner(const std::string& runnerId, const std::string& why) {
  RunnerState* runner = findRunner(runnerId);
  if (!runner) return false;
  removeRunner(*runner, ErrorCode::RunnerLost, why);
  return true;
}

PoolView BrokerCore::view(const Pool& pool) const {
  PoolView v;
  v.waiting = static_cast<uint32_t>(pool.queue.size());
  v.draining = pool.draining;
  v.ready = static_cast<uint32_t>(pool.runners.size()) - pool.draining;
  v.freeSlots = pool.available.freeSlots();
  return v;
}

void BrokerCore::failQueued(const std::string& pool, ErrorCode code, const std::string& message) {
  if (Pool* p = findPool(pool)) failQueued(*p, code, message);
}

void BrokerCore::failQueued(Pool& pool, ErrorCode code, const std::string& message) {
  std::vector<JobId> waiting;
  jobs_.forEach([&](Job& job) {
    if (job.pool == &pool && job.state != JobState::Running) waiting.push_back(job.id);
  });
  if (waiting.empty()) return;
  log_->warn("pool={} failing {} waiting jobs: {}: {}", pool.name, waiting.size(), errorCodeName(code), message);
  for (JobId id : waiting) {
    Job& job = *jobs_.find(id);
    ++pool.counters.failed;
    answerError(job, code, message);
    finish(job);
  }
}

void BrokerCore::beginShutdown() {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  auto now = clock_.now();
  shutdownDeadline_ = addSaturating(now, options_.shutdownGrace);
  log_->info("shutting down: {} jobs held, {} runners; running jobs may finish within {}", jobs_.size(),
             runners_.size(), formatDuration(options_.shutdownGrace));
  for (auto& [name, pool] : pools_) failQueued(*pool, ErrorCode::ShuttingDown, "the broker is shutting down");
  // Children run until stopped: stop them now, so the grace is spent finishing calls and casts.
  std::vector<JobId> children;
  jobs_.forEach([&](Job& job) {
    if (job.mode == Mode::Place && job.state == JobState::Running) children.push_back(job.id);
  });
  for (JobId id : children) {
    Job& job = *jobs_.find(id);
    answerError(job, ErrorCode::ShuttingDown, "the broker is shutting down");
    cancelRunning(job);
  }
  if (!options_.keepRunnersOnShutdown) {
    std::vector<RunnerState*> runners;
    for (auto& [id, r] : runners_) runners.push_back(r.get());
    for (RunnerState* r : runners) drain(*r, options_.shutdownGrace, "the broker is shutting down");
  }
}

void BrokerCore::abortAll(const std::string& why) {
  shuttingDown_ = true;
  std::vector<JobId> held;
  jobs_.forEach([&](Job& job) { held.push_back(job.id); });
  if (!held.empty()) log_->warn("ending {} jobs now: {}", held.size(), why);
  for (JobId id : held) {
    Job& job = *jobs_.find(id);
    answerError(job, ErrorCode::ShuttingDown, why);
    if (job.mode == Mode::Place) notifyStopWaiters(id);
    cancelRunning(job);
    finish(job);
  }
}

void BrokerCore::removeRunner(RunnerState& runner, ErrorCode code, const std::string& why) {
  Pool& pool = *runner.pool;
  std::vector<JobId> ids;
  ids.swap(runner.jobs);
  auto& log = log_;
  if (ids.empty()) log->info("pool={} runner={} removed: {}", pool.name, runner.id, why);
  else log->warn("pool={} runner={} lost with {} jobs: {}", pool.name, runner.id, ids.size(), why);
  pool.available.leave(runner);
  pool.runners.erase(&runner);
  if (runner.phase != RunnerPhase::Draining) ++pool.metrics.runnersLost;
  if (runner.phase == RunnerPhase::Draining) --pool.draining;
  for (auto& f : runner.functions) {
    auto fr = pool.functionRunners.find(f);
    if (fr != pool.functionRunners.end() && --fr->second == 0) pool.functionRunners.erase(fr);
  }
  std::string message = code == ErrorCode::RunnerLost ? "runner " + runner.id + " lost: " + why : why;
  for (JobId id : ids) {
    Job& job = *jobs_.find(id);
    job.runner = nullptr;  // the runner's job list is already gone (swapped out above)
    loseJob(job, code, message);
  }
  byRouting_.erase(runner.routingId);
  publishRunner(runner.phase == RunnerPhase::Draining ? EventKind::RunnerStopped : EventKind::RunnerLost, runner, why);
  listener_->runnerLeft(runner, why);
  runners_.erase(runner.id);  // `runner` dies here
  dispatch(pool);
  listener_->demandChanged(pool);
}

// ---------------------------------------------------------------- time

void BrokerCore::tick() {
  auto now = clock_.now();
  creditStall(now);
  if (shuttingDown_ && now >= shutdownDeadline_ && jobs_.size() > 0) {
    shutdownDeadline_ = TimePoint::max();
    abortAll("the broker shut down before the job finished (grace " + formatDuration(options_.shutdownGrace) + ")");
  }
  expireDeadlines(now);
  releaseRetries(now);
  if (now >= nextSweep_) {
    nextSweep_ = now + options_.heartbeatInterval;
    sweepPeers(now);
  }
  if (deadlines_.size() > 2 * timedJobs_ + 1024) {
    deadlines_.rebuild([this](const DeadlineHeap::Entry& e) {
      const Job* job = jobs_.find(e.second);
      return job && job->deadline == e.first;
    });
  }
}

TimePoint BrokerCore::nextWakeup() const {
  TimePoint next = std::min(nextSweep_, shutdownDeadline_);
  if (!deadlines_.empty()) next = std::min(next, deadlines_.top().first);
  if (!retryTimers_.empty()) next = std::min(next, retryTimers_.top().first);
  return next;
}

void BrokerCore::creditStall(TimePoint now) {
  // The loop comes round at least once per heartbeat interval. A much longer gap means this
  // process was not running (a VM pause, SIGSTOP, swapping) or could not read: the peers'
  // messages of that time may still wait unread in the sockets, so judging them now would
  // declare live runners lost. The gap is not counted as their silence.
  TimePoint last = lastTick_;
  lastTick_ = now;
  if (now - last <= 2 * options_.heartbeatInterval) return;
  auto gap = now - last;
  log_->warn("the broker loop did not run for {}; peers get that time back before their liveness is judged",
             formatDuration(std::chrono::duration_cast<Duration>(gap)));
  for (auto& [id, r] : runners_) r->lastSeen = std::min(now, addSaturating(r->lastSeen, gap));
  for (auto& [client, session] : sessions_) session.lastSeen = std::min(now, addSaturating(session.lastSeen, gap));
  nextSweep_ = std::max(nextSweep_, now);
}

void BrokerCore::expireDeadlines(TimePoint now) {
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    auto [deadline, id] = deadlines_.top();
    deadlines_.pop();
    Job* timed = jobs_.find(id);
    if (!timed || timed->deadline != deadline) continue;
    Job& job = *timed;
    job.deadline = TimePoint::max();  // fired: never again
    --timedJobs_;
    Pool& pool = *job.pool;
    if (job.state != JobState::Running) {
      log_->info("pool={} job={} timed out in the queue ({} runners, {} queued)", pool.name, id,
                             pool.runners.size(), pool.queue.size());
      ++pool.counters.failed;
      answerError(job, ErrorCode::Timeout,
                  job.state == JobState::Delayed ? "deadline passed while waiting to be retried (" + std::to_string(job.attempt) + " retries)"
                  : job.split ? "waited " + formatDuration(job.waitBound) + " for a runner of pool '" + pool.name +
                                  "' (wait timeout; the run budget had not started)"
                            : "deadline passed while queued in pool '" + pool.name + "' (no free runner)");
      finish(job);
      continue;
    }
    if (retryTimedOut(job)) continue;
    log_->info("pool={} job={} timed out on runner={}; cancelling", pool.name, id, job.runner->id);
    if (job.mode == Mode::Call) answerError(job, ErrorCode::Timeout, "deadline passed while running on runner " + job.runner->id);
    else if (job.mode == Mode::Cast) answerError(job, ErrorCode::Timeout, "deadline passed");
    cancelRunning(job);  // the slot comes back with the runner's jobDone
  }
}

void BrokerCore::sweepPeers(TimePoint now) {
  Duration window = options_.livenessWindow();
  std::vector<RunnerState*> dead, closed;
  msg::Heartbeat beat{millis(now), static_cast<uint32_t>(options_.heartbeatInterval.count()), instance_};
  auto header = encode(beat);
  for (auto& [id, r] : runners_) {
    if (silentTooLong(r->lastSeen, window, now)) {
      dead.push_back(r.get());
      continue;
    }
    zmq::message_t copy;
    copy.copy(header);
    if (outbox_.toRunner(r->routingId, std::move(copy), nullptr, 0) != SendStatus::Ok) closed.push_back(r.get());
  }
  for (RunnerState* r : closed) removeRunner(*r, ErrorCode::RunnerLost, "its connection closed");
  for (RunnerState* r : dead) {
    auto silent = std::chrono::duration_cast<Duration>(now - r->lastSeen);
    removeRunner(*r, ErrorCode::RunnerLost, "no heartbeat for " + formatDuration(silent));
  }

  std::vector<std::string> gone;
  for (auto& [client, session] : sessions_) {
    if (!silentTooLong(session.lastSeen, window, now)) continue;
    if (session.linked > 0 || session.subscriptions > 0 || session.requests.empty()) gone.push_back(client);
  }
  for (auto& client : gone) {
    auto it = sessions_.find(client);
    const std::string silent = "silent for " + formatDuration(window);
    if (it->second.subscriptions > 0 &&
        unsubscribe(client, it->second, std::nullopt, "the subscription ended: this client was " + silent) > 0)
      log_->info("client={} {}: its event subscriptions ended", hex(client), silent);
    if (it->second.linked > 0) clientGone(client, it->second);
    if (it->second.requests.empty()) sessions_.erase(it);
  }
}

void BrokerCore::clientGone(const std::string& client, ClientSession& session) {
  std::vector<JobId> linked;
  session.requests.forEach([&](uint64_t, JobId id) {
    if (jobs_.find(id)->link) linked.push_back(id);
  });
  log_->info("client={} silent for {}: cancelling its {} linked jobs", hex(client),
                         formatDuration(options_.livenessWindow()), linked.size());
  const std::string why = "client went silent for " + formatDuration(options_.livenessWindow()) +
                          ": its linked work was cancelled";
  for (JobId id : linked) {
    Job& job = *jobs_.find(id);
    // Answered although the client is probably gone: if it is only slow or cut off for a
    // while, it learns what happened instead of waiting forever.
    answerError(job, ErrorCode::Cancelled, why);
    session.requests.erase(job.requestId);
    job.link = false;     // no longer counted in the session
    if (job.state != JobState::Running) finish(job);
    else cancelRunning(job);
  }
  session.linked = 0;
}

// ---------------------------------------------------------------- status

msg::StatusReply BrokerCore::status(uint64_t requestId) const {
  auto now = clock_.now();
  msg::StatusReply reply;
  reply.requestId = requestId;
  std::vector<const Pool*> pools;
  for (auto& [name, p] : pools_) pools.push_back(p.get());
  std::sort(pools.begin(), pools.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (const Pool* p : pools) {
    msg::PoolStatus ps;
    ps.name = p->name;
    ps.queued = static_cast<uint32_t>(p->queue.size());
    ps.completed = p->counters.completed;
    ps.failed = p->counters.failed;
    ps.retried = p->counters.retried;
    std::vector<const RunnerState*> runners(p->runners.begin(), p->runners.end());
    std::sort(runners.begin(), runners.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
    for (const RunnerState* r : runners) {
      ps.slotsUsed += r->used;
      ps.slotsTotal += r->slots;
      uint64_t idle = r->used == 0 ? static_cast<uint64_t>((now - r->idleSince).count()) : 0;
      ps.runners.push_back(msg::RunnerStatus{r->id, r->phase == RunnerPhase::Ready ? "ready" : "draining",
                                             r->used, r->slots, r->pid, r->host, idle});
    }
    listener_->describe(*p, ps);
    reply.pools.push_back(std::move(ps));
  }
  return reply;
}

}  // namespace flame
