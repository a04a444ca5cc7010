#include "client/client_core.h"

#include <algorithm>

#include "common/codec.h"
#include "common/duration.h"

namespace flame {

namespace {

// Payloads up to this size are sent before the broker has told its payload limit; larger ones
// wait for its first heartbeat answer, because a frame far over the limit makes libzmq drop the
// connection without a word (PROTOCOL.md, Frames) and the request would wait out its deadline.
constexpr size_t kSendBeforeLimitKnown = 1024 * 1024;

// Names of the messages a client may receive from a misbehaving broker but must not (for logs).
template <class T>
constexpr std::string_view foreignMessageName() {
  if constexpr (std::is_same_v<T, msg::Submit>)
    return "submit";
  else if constexpr (std::is_same_v<T, msg::Ready>)
    return "ready";
  else if constexpr (std::is_same_v<T, msg::Job>)
    return "job";
  else if constexpr (std::is_same_v<T, msg::Welcome>)
    return "welcome";
  else
    return "non-client";
}

ClientCoreOptions sanitized(ClientCoreOptions options) {
  // Intervals below 1 ms and a liveness of 0 would make every request fail at once.
  options.heartbeatInterval = std::max(options.heartbeatInterval, Duration(1));
  options.liveness = std::max<uint32_t>(options.liveness, 1);
  options.handshakeRetryMin = std::max(options.handshakeRetryMin, Duration(1));
  options.handshakeRetryMax = std::max(options.handshakeRetryMax, options.handshakeRetryMin);
  return options;
}

}  // namespace

bool retriesPossible(Mode mode, const CallOptions& options) {
  return mode != Mode::Place && (options.idempotent || options.retryHandlerError || options.retryTimeout);
}

namespace {

bool finite(Duration d) { return d > Duration(0) && d < Duration(kInfiniteMs); }

// a + b, kInfinite when it would not fit.
Duration addCapped(Duration a, Duration b) {
  if (a == kInfinite || b == kInfinite || a > kInfinite - b) return kInfinite;
  return a + b;
}

// What the local deadline covers before its slack; kInfinite = no local deadline.
Duration coveredBudget(Mode mode, const CallOptions& options) {
  // A cast is accepted at once, whatever its bounds and retries: only liveness bounds it. A
  // place is answered once placed (never retried): the wait bounds it. A call: the wait plus
  // the run budget, once per attempt, plus the delays between attempts. 0 is the pool's default
  // (unknown here): liveness again.
  if (mode == Mode::Cast || !finite(options.waitTimeout)) return kInfinite;
  if (mode == Mode::Place) return options.waitTimeout;
  if (!finite(options.timeout)) return kInfinite;
  Duration attempt = options.waitTimeout + options.timeout;
  if (!retriesPossible(mode, options)) return attempt;
  // A retry backoff of 0 is the pool's retry_backoff, unknown here: no local deadline (the
  // broker's retries could outlast any guess; liveness still bounds a lost broker).
  if (options.retryBackoff <= Duration(0)) return kInfinite;
  unsigned retries = options.retries == 0 ? 1 : options.retries;
  Duration total{0};
  for (unsigned i = 0; i <= retries; ++i) total = addCapped(total, attempt);
  // Delays before retry i (0-based): backoff x 2^i, capped by the max; jitter only shortens them.
  // A max of 0 is the pool's retry_backoff_max, unknown here (it may be above its 10 min
  // default): the delays are then counted uncapped, an upper bound whatever the pool says.
  Duration cap = options.retryBackoffMax > Duration(0) ? options.retryBackoffMax : kInfinite;
  Duration delay = options.retryBackoff;
  for (unsigned i = 0; i < retries && total != kInfinite; ++i) {
    total = addCapped(total, std::min(delay, cap));
    delay = delay > kInfinite / 2 ? kInfinite : 2 * delay;
  }
  return total;
}

}  // namespace

Duration clientDeadlineBudget(Mode mode, const CallOptions& options, Duration heartbeatInterval) {
  Duration covered = coveredBudget(mode, options);
  if (covered == kInfinite) return kInfinite;
  return addCapped(covered, 2 * std::max(heartbeatInterval, Duration(1)));
}

ClientRequest submitRequest(uint64_t requestId, Mode mode, std::string_view pool, std::string_view function,
                            std::string_view payload, const CallOptions& options, Duration heartbeatInterval,
                            AnswerHandler done, ExitCallback onExit) {
  ClientRequest request;
  request.requestId = requestId;
  request.pending.kind = mode == Mode::Call ? RequestKind::Call : mode == Mode::Cast ? RequestKind::Cast : RequestKind::Place;
  request.pending.link = options.link;
  request.pending.done = std::move(done);
  request.pending.onExit = std::move(onExit);
  request.budget = clientDeadlineBudget(mode, options, heartbeatInterval);
  // For the expiry message: what the local deadline covers (wait, plus the run for a call, for
  // every attempt and the delays between them).
  Duration covered = coveredBudget(mode, options);
  request.timeout = covered == kInfinite ? options.timeout : covered;
  request.header = encode(msg::Submit{.requestId = requestId,
                                      .mode = mode,
                                      .pool = std::string(pool),
                                      .function = std::string(function),
                                      .timeoutMs = toWireMs(options.timeout),
                                      .idempotent = options.idempotent,
                                      .retries = options.retries,
                                      .link = options.link,
                                      .waitTimeoutMs = toWireMs(options.waitTimeout),
                                      .splitBudget = true,
                                      .retryHandlerError = options.retryHandlerError,
                                      .retryTimeout = options.retryTimeout,
                                      .retryBackoffMs = toWireMs(options.retryBackoff),
                                      .retryBackoffMaxMs = toWireMs(options.retryBackoffMax)});
  request.payload.emplace(payload.data(), payload.size());
  return request;
}

namespace {
ClientRequest answeredOnce(uint64_t requestId, RequestKind kind, Duration timeout, AnswerHandler done) {
  ClientRequest request;
  request.requestId = requestId;
  request.pending.kind = kind;
  request.pending.done = std::move(done);
  request.budget = timeout;
  request.timeout = timeout;
  return request;
}
}  // namespace

ClientRequest stopRequest(uint64_t requestId, uint64_t childId, Duration timeout, AnswerHandler done) {
  ClientRequest request = answeredOnce(requestId, RequestKind::Stop, timeout, std::move(done));
  request.pending.childId = childId;
  request.header = encode(msg::StopChild{childId});
  return request;
}

ClientRequest statusRequest(uint64_t requestId, Duration timeout, AnswerHandler done) {
  ClientRequest request = answeredOnce(requestId, RequestKind::Status, timeout, std::move(done));
  request.header = encode(msg::StatusRequest{requestId});
  return request;
}

ClientRequest setPoolRequest(uint64_t requestId, std::string_view pool, const PoolLimitsUpdate& update,
                             Duration timeout, AnswerHandler done) {
  ClientRequest request = answeredOnce(requestId, RequestKind::SetPool, timeout, std::move(done));
  auto wire = [](const std::optional<uint32_t>& v) { return v ? static_cast<int64_t>(*v) : int64_t{-1}; };
  request.header = encode(msg::SetPool{requestId, std::string(pool), wire(update.min), wire(update.max), wire(update.warmSlots)});
  return request;
}

ClientRequest subscribeRequest(uint64_t requestId, std::string_view pool, Duration timeout, AnswerHandler done,
                               EventHandler onEvent, EndHandler onEnd) {
  ClientRequest request = answeredOnce(requestId, RequestKind::Subscribe, timeout, std::move(done));
  request.header = encode(msg::Subscribe{requestId, std::string(pool)});
  request.onEvent = std::move(onEvent);
  request.onEnd = std::move(onEnd);
  return request;
}

ClientRequest unsubscribeRequest(uint64_t subscriptionId) {
  ClientRequest request;
  request.requestId = subscriptionId;
  request.pending.kind = RequestKind::Unsubscribe;
  return request;
}

ClientCore::ClientCore(ClientCoreOptions options, const Clock& clock, ClientEffects& port)
    : options_(sanitized(std::move(options))),
      clock_(clock),
      port_(port),
      log_(logger("client")),
      interval_(options_.heartbeatInterval),
      liveness_(options_.heartbeatInterval, options_.liveness),
      handshakeRetry_(options_.handshakeRetryMin, options_.handshakeRetryMax) {}

ClientCore::~ClientCore() = default;

// ---------------------------------------------------------------- requests

void ClientCore::submit(ClientRequest request) {
  PendingRequest& pending = request.pending;
  if (pending.kind == RequestKind::Unsubscribe) {
    cancelSubscription(request.requestId);
    return;
  }
  if (shutDown_) {
    complete(pending, Failure{ErrorCode::ShuttingDown, "the client is shutting down"});
    return;
  }
  if (refusal_) {
    // Sending would only queue it for a connection the broker will not open.
    complete(pending, Failure{ErrorCode::Unauthorized, *refusal_});
    return;
  }
  TimePoint now = clock_.now();
  if (!outstanding()) beginWork(now);
  pending.timeout = request.timeout;
  if (request.budget != kInfinite) pending.deadline = addSaturating(now, std::max(request.budget, Duration(0)));
  uint64_t requestId = request.requestId;
  bool subscribe = pending.kind == RequestKind::Subscribe;
  bool added = pending_.add(requestId, pending);
  if (!added) {  // only after close(), which shutdown() does first: kept as a guard
    complete(pending, Failure{ErrorCode::ShuttingDown, "the client is shutting down"});
    return;
  }
  if (subscribe) subscriptions_[requestId] = Subscription{std::move(request.onEvent), std::move(request.onEnd), false};
  Outgoing message;
  message.requestId = requestId;
  message.frames[1] = std::move(request.header);  // frames[0]: the DEALER's empty delimiter
  message.count = 2;
  if (request.payload) message.frames[message.count++] = std::move(*request.payload);
  // Heartbeat first when work begins: the answer tells the payload limit a parked payload waits for.
  heartbeatIfDue(now);
  if (admitPayload(message)) send(std::move(message), true);
}

void ClientCore::beginWork(TimePoint now) {
  // The broker's silence is counted from when work began, not from the last message heard
  // (which may be hours old on an idle client): an idle client does not heartbeat, so it has no
  // reason to hear anything, and must not call a broker dead for that.
  liveness_.heard(now);
  busy_ = true;
}

// ---------------------------------------------------------------- broker messages

void ClientCore::onBrokerFrames(Frames& frames, bool truncated) {
  liveness_.heard(clock_.now());  // any message is a sign of life, even one we cannot read
  if (truncated || frames.size() < 2 || frames[0].size() != 0) {
    log_->warn("dropping a message from the broker with a bad frame layout ({}{} frames, delimiter {} bytes)",
               truncated ? "over " : "", frames.size(), frames.empty() ? 0 : frames[0].size());
    return;
  }
  auto decoded = decode(frames[1]);
  if (!decoded.ok()) {
    log_->warn("dropping a message from the broker that does not decode: {}", decoded.error);
    return;
  }
  handle(*decoded.message, frames.size() > 2 ? &frames[2] : nullptr);
}

void ClientCore::onMessage(Message& message, zmq::message_t* payload) {
  liveness_.heard(clock_.now());
  handle(message, payload);
}

// ---------------------------------------------------------------- handshakes

void ClientCore::onHandshakeRefused(const std::string& why) {
  if (shutDown_) return;
  TimePoint now = clock_.now();
  bool first = !refusal_;
  refusal_ = why;
  Duration retry = handshakeRetry_.next();
  handshakeRetryAt_ = addSaturating(now, retry);
  // info, not warn: every caller gets the refusal as a value (the CLI prints it). Said once per
  // refusal, not once per retry.
  if (first)
    log_->info("broker {} refused the handshake: {}; failing {} requests and {} watched children, trying again in {}",
               options_.broker, why, pending_.size(), children_.size(), formatDuration(retry));
  else
    log_->debug("broker {} still refuses the handshake: {}; trying again in {}", options_.broker, why,
                formatDuration(retry));
  failEverything(Failure{ErrorCode::Unauthorized, why});
  busy_ = outstanding();  // handlers cannot have added work: submits fail while refused
}

void ClientCore::onHandshakeSucceeded() {
  handshakeRetry_.reset();
  if (!refusal_) return;
  log_->info("broker {} accepted the handshake again", options_.broker);
  refusal_.reset();
  handshakeRetryAt_ = TimePoint::max();
}

void ClientCore::handle(Message& message, zmq::message_t* payload) {
  std::visit([&](auto& m) { on(m, payload); }, message);
}

void ClientCore::on(msg::Result& m, zmq::message_t* payload) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    log_->debug("dropping a result for unknown request={} job={}", m.requestId, m.jobId);
    return;
  }
  CallReply reply{payload ? payload->to_string() : std::string(), m.jobId};
  complete(*request, std::move(reply));
}

void ClientCore::on(msg::Error& m, zmq::message_t*) {
  Failure failure{m.code, std::move(m.message)};
  if (m.requestId == 0) {
    // stopChild carries no request id, so its errors cannot name one (see pending.h).
    if (auto stop = pending_.takeUnaddressedStop(m.jobId)) {
      complete(stop->second, std::move(failure));
      return;
    }
    log_->warn("the broker reported an error for no request: {}", failure.toString());
    return;
  }
  auto request = pending_.take(m.requestId);
  if (auto sub = subscriptions_.find(m.requestId); sub != subscriptions_.end()) {
    // A refused subscribe (its request answers it), or the broker ending a live subscription
    // (`cancelled` after our cancel, or a subscription it dropped).
    Subscription subscription = std::move(sub->second);
    subscriptions_.erase(sub);
    if (subscription.confirmed && subscription.onEnd) port_.ended(subscription.onEnd, failure);
  }
  if (!request) {
    log_->debug("dropping an error for unknown request={}: {}", m.requestId, failure.toString());
    return;
  }
  complete(*request, std::move(failure));
}

void ClientCore::on(msg::Accepted& m, zmq::message_t*) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    log_->debug("dropping an accepted for unknown request={} job={}", m.requestId, m.jobId);
    return;
  }
  complete(*request, m);
}

void ClientCore::on(msg::Placed& m, zmq::message_t*) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    // The caller already gave up (local deadline) and never saw the handle: nobody else could
    // stop this child, so stop it now.
    log_->info("stopping child={} runner={} placed for abandoned request={}", m.childId, m.runnerId, m.requestId);
    send(msg::StopChild{m.childId}, true);
    return;
  }
  // Watched: every linked child (stopped at shutdown, reported exited), and every unlinked one
  // placed with an onExit — the broker tells its placer of every child's exit while the placer
  // is connected, and the heartbeats that go on while a child is watched keep it connected.
  if (request->kind == RequestKind::Place && (request->link || request->onExit))
    children_[m.childId] = WatchedChild{std::move(request->onExit), request->link};
  complete(*request, m);
}

void ClientCore::on(msg::ChildExited& m, zmq::message_t*) {
  auto it = children_.find(m.childId);
  if (it == children_.end()) {
    log_->debug("dropping childExited for unwatched child={}", m.childId);
    return;
  }
  WatchedChild child = std::move(it->second);
  children_.erase(it);
  std::optional<Failure> why;
  if (m.code != ErrorCode::None) why = Failure{m.code, std::move(m.message)};
  exitChild(m.childId, child, std::move(why));
}

void ClientCore::on(msg::Stopped& m, zmq::message_t*) {
  // Whether or not the broker also sends childExited, a stopped watched child has exited.
  if (auto it = children_.find(m.childId); it != children_.end()) {
    WatchedChild child = std::move(it->second);
    children_.erase(it);
    exitChild(m.childId, child, Failure{ErrorCode::Cancelled, "stopped"});
  }
  auto stops = pending_.takeStopsOf(m.childId);
  if (stops.empty()) log_->debug("dropping stopped for child={} that no stop waits for", m.childId);
  for (auto& [requestId, request] : stops) complete(request, m);
}

void ClientCore::on(msg::StatusReply& m, zmq::message_t*) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    log_->debug("dropping a status reply for unknown request={}", m.requestId);
    return;
  }
  complete(*request, std::move(m));
}

void ClientCore::on(msg::Heartbeat& m, zmq::message_t*) {
  if (m.instance != 0) {
    if (brokerInstance_ != 0 && m.instance != brokerInstance_) {
      // A new broker process answers on the same endpoint: it never heard of our requests.
      log_->warn("broker {} restarted: failing {} requests in flight", options_.broker, pending_.size());
      brokerInstance_ = m.instance;
      Failure subscriptions{ErrorCode::BrokerUnreachable,
                            "broker restarted: the subscription ended (the new broker run knows no subscriber)"};
      failEverything(
          Failure{ErrorCode::BrokerUnreachable, "broker restarted: the request was lost (it may or may not have run)"},
          &subscriptions);
    }
    brokerInstance_ = m.instance;
  }
  if (m.maxPayloadBytes != 0) {
    bool firstLimit = maxPayload_ == 0;
    maxPayload_ = m.maxPayloadBytes;
    if (firstLimit) {
      auto parked = std::move(parked_);
      parked_.clear();
      for (auto& p : parked)
        if (admitPayload(p)) send(std::move(p), true);
    }
  }
  if (m.intervalMs > 0 && Duration(m.intervalMs) < interval_) {
    log_->debug("adopting the broker's heartbeat interval of {}ms", m.intervalMs);
    interval_ = Duration(m.intervalMs);
    liveness_.setRule(interval_, options_.liveness);
  }
}

void ClientCore::on(msg::Subscribed& m, zmq::message_t*) {
  auto sub = subscriptions_.find(m.requestId);
  if (sub != subscriptions_.end() && sub->second.confirmed) {
    log_->debug("dropping a second subscribed for subscription={}", m.requestId);
    return;
  }
  auto request = pending_.take(m.requestId);
  if (!request || sub == subscriptions_.end()) {
    // Its caller gave up (local deadline) or cancelled it: nobody listens, end it at the broker.
    log_->debug("cancelling subscription={} that nobody waits for", m.requestId);
    if (sub != subscriptions_.end()) subscriptions_.erase(sub);
    send(msg::Cancel{m.requestId}, true);
    return;
  }
  sub->second.confirmed = true;
  complete(*request, m);
}

void ClientCore::on(msg::Event& m, zmq::message_t*) {
  auto sub = subscriptions_.find(m.requestId);
  if (sub == subscriptions_.end() || !sub->second.confirmed) {
    log_->debug("dropping event seq={} for unknown subscription={}", m.seq, m.requestId);
    return;
  }
  // The handler may cancel its own subscription (erasing the entry): it runs from a local.
  EventHandler onEvent = std::move(sub->second.onEvent);
  if (onEvent) port_.event(onEvent, m);
  if (auto still = subscriptions_.find(m.requestId); still != subscriptions_.end()) still->second.onEvent = std::move(onEvent);
}

void ClientCore::cancelSubscription(uint64_t subscriptionId) {
  auto sub = subscriptions_.find(subscriptionId);
  if (sub == subscriptions_.end()) return;  // already ended
  Subscription subscription = std::move(sub->second);
  subscriptions_.erase(sub);
  Failure cancelled{ErrorCode::Cancelled, "the subscription was cancelled"};
  bool neverSent = false;
  if (auto request = pending_.take(subscriptionId)) {
    neverSent = dropUnsent(subscriptionId);
    complete(*request, cancelled);
  }
  // The broker answers `error cancelled`, which finds nothing here any more.
  if (!neverSent) send(msg::Cancel{subscriptionId}, true);
  if (subscription.confirmed && subscription.onEnd) port_.ended(subscription.onEnd, cancelled);
}

template <class T>
void ClientCore::on(T&, zmq::message_t*) {
  log_->warn("dropping a {} message (kind {}) from the broker: not a broker-to-client message",
             foreignMessageName<T>(), Message(std::in_place_type<T>).index());
}

// ---------------------------------------------------------------- time

void ClientCore::tick() {
  if (shutDown_) return;
  TimePoint now = clock_.now();
  if (refusal_ && now >= handshakeRetryAt_) {
    // Idle or not: a key added to the broker's allow-list should work for the next request.
    handshakeRetryAt_ = TimePoint::max();
    log_->debug("trying a new handshake with broker {}", options_.broker);
    port_.reconnect();
  }
  for (auto& [requestId, request] : pending_.takeExpired(now)) {
    // Still queued or parked: it never reached the broker. Otherwise tell the broker we gave up.
    bool neverSent = dropUnsent(requestId);
    if (request.kind == RequestKind::Subscribe) subscriptions_.erase(requestId);  // never confirmed
    if (!neverSent && (request.kind == RequestKind::Call || request.kind == RequestKind::Place ||
                       request.kind == RequestKind::Subscribe))
      send(msg::Cancel{requestId}, true);
    complete(request, expiryOf(request));
  }

  bool busyNow = outstanding();
  if (busyNow && !busy_) beginWork(now);
  busy_ = busyNow;
  if (!busy_) return;
  if (liveness_.dead(now)) {
    Duration silence = liveness_.silence(now);
    // info, not warn: every caller gets this failure as a value.
    log_->info("broker {} silent for {}ms: failing {} requests and {} watched children", options_.broker,
               silence.count(), pending_.size(), children_.size());
    failEverything(
        Failure{ErrorCode::BrokerUnreachable, "broker unreachable: no answer for " + std::to_string(silence.count()) + "ms"});
    busy_ = outstanding();  // a completion may have started new work, which counts from now
    if (busy_) liveness_.heard(now);
    return;
  }
  heartbeatIfDue(now);
}

void ClientCore::heartbeatIfDue(TimePoint now) {
  if (lastHeartbeat_ && now < addSaturating(*lastHeartbeat_, interval_)) return;
  lastHeartbeat_ = now;
  // Queued like anything else while the connection is not up, so the broker hears the first one
  // (and tells us its interval and payload limit) as soon as it is; the outbox is bounded by the
  // liveness rule, which clears it.
  send(msg::Heartbeat{static_cast<uint64_t>(now.time_since_epoch().count()), static_cast<uint32_t>(interval_.count())},
       true);
}

TimePoint ClientCore::nextWakeup() {
  if (shutDown_) return pending_.nextDeadline();
  TimePoint retry = refusal_ ? handshakeRetryAt_ : TimePoint::max();
  if (!outstanding()) return std::min(pending_.nextDeadline(), retry);  // idle: no heartbeats, no liveness
  TimePoint next = std::min({pending_.nextDeadline(), liveness_.deadline(), retry});
  return std::min(next, lastHeartbeat_ ? addSaturating(*lastHeartbeat_, interval_) : TimePoint::min());
}

// ---------------------------------------------------------------- output

void ClientCore::send(Outgoing&& message, bool queueIfBlocked) {
  if (outbox_.empty() && !holding_ && port_.send(message.frames.data(), message.count) == SendStatus::Ok) return;
  if (!queueIfBlocked) return;
  // Queued behind earlier messages to keep the order; onWritable() or endBurst() offers them.
  outbox_.push_back(std::move(message));
  if (!holding_ && !wantWritable_) {
    wantWritable_ = true;
    port_.wantWritable(true);
  }
}

void ClientCore::send(const Message& message, bool queueIfBlocked) {
  Outgoing out;
  out.frames[1] = encodeMessage(message);
  out.count = 2;
  send(std::move(out), queueIfBlocked);
}

void ClientCore::flush() {
  while (!outbox_.empty()) {
    Outgoing& front = outbox_.front();
    if (port_.send(front.frames.data(), front.count) != SendStatus::Ok) break;
    outbox_.pop_front();
  }
  bool want = !outbox_.empty();
  if (want != wantWritable_) {
    wantWritable_ = want;
    port_.wantWritable(want);
  }
}

void ClientCore::onWritable() { flush(); }

void ClientCore::endBurst() {
  holding_ = false;
  flush();
}

bool ClientCore::dropUnsent(uint64_t requestId) {
  for (auto* queue : {&outbox_, &parked_}) {
    auto it = std::find_if(queue->begin(), queue->end(), [&](const Outgoing& o) { return o.requestId == requestId; });
    if (it == queue->end()) continue;
    queue->erase(it);
    if (outbox_.empty() && wantWritable_) {
      wantWritable_ = false;
      port_.wantWritable(false);
    }
    return true;
  }
  return false;
}

bool ClientCore::admitPayload(Outgoing& message) {
  // Only submits carry a payload frame.
  size_t size = message.payloadSize();
  if (maxPayload_ == 0) {
    if (size <= kSendBeforeLimitKnown) return true;
    parked_.push_back(std::move(message));
    return false;
  }
  if (size <= maxPayload_) return true;
  if (auto request = pending_.take(message.requestId))
    complete(*request, Failure{ErrorCode::PayloadTooLarge, "payload of " + std::to_string(size) +
                                                               " bytes exceeds the broker's limit of " +
                                                               std::to_string(maxPayload_) + " bytes"});
  return false;
}

// ---------------------------------------------------------------- endings

Failure ClientCore::expiryOf(const PendingRequest& request) const {
  std::string within = formatDuration(request.timeout);
  switch (request.kind) {
    case RequestKind::Stop:
      return Failure{ErrorCode::Timeout, "child " + std::to_string(request.childId) + " was not reported stopped within " + within};
    case RequestKind::Status:
      return Failure{ErrorCode::BrokerUnreachable, "broker unreachable: no status reply within " + within};
    case RequestKind::SetPool:
      return Failure{ErrorCode::BrokerUnreachable, "broker unreachable: no answer to setPool within " + within};
    case RequestKind::Subscribe:
      return Failure{ErrorCode::BrokerUnreachable, "broker unreachable: no answer to subscribe within " + within};
    default:
      return Failure{ErrorCode::Timeout, "no answer within the " + within + " timeout (checked by the client)"};
  }
}

void ClientCore::complete(PendingRequest& request, Answer answer) {
  if (request.done) port_.deliver(request.done, std::move(answer));
}

void ClientCore::exitChild(uint64_t childId, WatchedChild& child, std::optional<Failure> why) {
  if (child.onExit) port_.exited(child.onExit, childId, std::move(why));
}

size_t ClientCore::linkedChildCount() const {
  return static_cast<size_t>(std::count_if(children_.begin(), children_.end(), [](const auto& c) { return c.second.link; }));
}

void ClientCore::failEverything(const Failure& failure, const Failure* subscriptionFailure) {
  outbox_.clear();
  parked_.clear();
  if (wantWritable_) {
    wantWritable_ = false;
    port_.wantWritable(false);
  }
  auto requests = pending_.takeAll();
  auto children = std::move(children_);
  children_.clear();
  auto subscriptions = std::move(subscriptions_);
  subscriptions_.clear();
  // Everything is taken out before any handler runs: a handler may submit new work.
  for (auto& [requestId, request] : requests) complete(request, failure);
  for (auto& [childId, child] : children) exitChild(childId, child, failure);
  // Unconfirmed subscriptions were answered through their request above.
  for (auto& [id, subscription] : subscriptions)
    if (subscription.confirmed && subscription.onEnd)
      port_.ended(subscription.onEnd, subscriptionFailure ? *subscriptionFailure : failure);
}

bool ClientCore::shutdown() {
  if (shutDown_) return false;
  shutDown_ = true;
  busy_ = false;
  holding_ = false;
  auto requests = pending_.close();
  auto children = std::move(children_);
  children_.clear();
  auto subscriptions = std::move(subscriptions_);
  subscriptions_.clear();
  std::vector<bool> reachedConnection;
  reachedConnection.reserve(requests.size());
  for (auto& [requestId, request] : requests) reachedConnection.push_back(!dropUnsent(requestId));
  // What is still queued will never leave; goodbyes are best effort: sent only if the
  // connection takes them now, never queued.
  outbox_.clear();
  parked_.clear();
  if (wantWritable_) {
    wantWritable_ = false;
    port_.wantWritable(false);
  }
  bool saidGoodbye = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    const PendingRequest& request = requests[i].second;
    if (!reachedConnection[i]) continue;
    if (request.kind == RequestKind::Subscribe ||
        (request.link && (request.kind == RequestKind::Call || request.kind == RequestKind::Place))) {
      send(msg::Cancel{requests[i].first}, false);
      saidGoodbye = true;
    }
  }
  for (auto& [id, subscription] : subscriptions) {
    if (!subscription.confirmed) continue;  // its subscribe is among the requests above
    send(msg::Cancel{id}, false);
    saidGoodbye = true;
  }
  for (auto& [childId, child] : children) {
    if (!child.link) continue;  // an unlinked child outlives its placer: it is only unwatched
    send(msg::StopChild{childId}, false);
    saidGoodbye = true;
  }
  Failure failure{ErrorCode::ShuttingDown, "the client is shutting down"};
  for (auto& [requestId, request] : requests) complete(request, failure);
  for (auto& [childId, child] : children) {
    exitChild(childId, child,
              child.link ? failure
                         : Failure{ErrorCode::ShuttingDown, "the client is shutting down: it stopped watching child " +
                                                                std::to_string(childId) + ", which keeps running"});
  }
  for (auto& [id, subscription] : subscriptions)
    if (subscription.confirmed && subscription.onEnd) port_.ended(subscription.onEnd, failure);
  return saidGoodbye;
}

}  // namespace flame
