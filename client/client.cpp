// Client internals: API threads register a request in the PendingTable and pass its frames to
// the I/O thread over an inproc pipe; the I/O thread alone touches the DEALER, the outbox, the
// linked children and the heartbeat/liveness timers.
#include "client/client.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "client/pending.h"
#include "common/codec.h"
#include "common/duration.h"
#include "common/log.h"
#include "common/transport.h"

namespace flame {

namespace {

// One pipe per context, and each Client owns its context, so a fixed name is unique.
constexpr const char* kPipeEndpoint = "inproc://flame-client-io";
// Pipe messages: [control][header][payload?]; control = op byte + request id (8 bytes).
constexpr char kOpSend = 'S';
constexpr char kOpQuit = 'Q';
constexpr size_t kControlBytes = 1 + sizeof(uint64_t);
// How often a message the DEALER could not take yet (no connection: ZMQ_IMMEDIATE) is retried.
constexpr Duration kOutboxRetry{5};
// Payloads up to this size are sent before the broker has told its payload limit; larger ones
// wait for its first heartbeat answer, because a frame far over the limit makes libzmq drop the
// connection without a word (PROTOCOL.md, Frames) and the request would wait out its deadline.
constexpr size_t kSendBeforeLimitKnown = 1024 * 1024;
// Messages handled per socket per wake-up, so a busy socket cannot starve the timers.
constexpr int kBatch = 1000;
// How long the goodbye messages of ~Client (cancel, stopChild) may take to leave.
constexpr Duration kGoodbyeLinger{250};
// Broker -> client: [empty][header][payload?].
constexpr size_t kMaxBrokerFrames = 3;

Failure unexpectedAnswer(const Answer& answer, std::string_view expected) {
  return Failure{ErrorCode::Internal, "the broker answered a " + std::string(expected) +
                                          " request with the wrong kind of message (answer index " +
                                          std::to_string(answer.index()) + ")"};
}

CallResult toCallResult(Answer answer) {
  if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
  if (auto* reply = std::get_if<CallReply>(&answer)) return std::move(reply->payload);
  return unexpectedAnswer(answer, "call");
}

Outcome<uint64_t> toJobId(Answer answer) {
  if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
  if (auto* accepted = std::get_if<msg::Accepted>(&answer)) return accepted->jobId;
  return unexpectedAnswer(answer, "cast");
}

Outcome<ChildHandle> toChildHandle(Answer answer) {
  if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
  if (auto* placed = std::get_if<msg::Placed>(&answer))
    return ChildHandle{placed->childId, std::move(placed->runnerId)};
  return unexpectedAnswer(answer, "place");
}

Outcome<void> toStopped(Answer answer) {
  if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
  if (std::holds_alternative<msg::Stopped>(answer)) return {};
  return unexpectedAnswer(answer, "stop");
}

Outcome<msg::StatusReply> toStatus(Answer answer) {
  if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
  if (auto* reply = std::get_if<msg::StatusReply>(&answer)) return std::move(*reply);
  return unexpectedAnswer(answer, "status");
}

// Starts a request with a completion and blocks until it has run. The promise is shared with
// the completion so that it outlives set_value() on the I/O thread.
template <class T>
Outcome<T> waitFor(const std::function<void(Completion)>& start, Outcome<T> (*convert)(Answer)) {
  auto promise = std::make_shared<std::promise<Outcome<T>>>();
  auto future = promise->get_future();
  start([promise, convert](Answer answer) { promise->set_value(convert(std::move(answer))); });
  return future.get();
}

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

Failure calledFromIoThread(std::string_view method) {
  return Failure{ErrorCode::Internal,
                 "Client::" + std::string(method) +
                     "() was called from a completion callback (the client's I/O thread), "
                     "where waiting would deadlock; use an asynchronous form"};
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientOptions options);
  ~Impl();

  // Each starts one request whose `done` runs exactly once (see client.h for the rules).
  void submit(Mode mode, std::string_view pool, std::string_view function, std::string_view payload,
              const CallOptions& options, Completion done, ExitCallback onExit);
  void stop(uint64_t childId, Duration timeout, Completion done);
  // A request the broker answers once (stop, status, setPool): past `timeout` (kInfinite:
  // never) it fails with `code` and "<what> within <timeout>".
  PendingRequest awaitAnswer(RequestKind kind, Completion done, Duration timeout, ErrorCode code,
                             const std::string& what);
  void status(Duration timeout, Completion done);
  void setPool(std::string_view pool, const PoolLimitsUpdate& update, Duration timeout,
               Completion done);

  bool onIoThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  struct Outgoing {
    uint64_t requestId = 0;  // 0 for messages that belong to no request
    Frames frames;
  };

  // ---- any thread ----
  void start(uint64_t requestId, PendingRequest request, zmq::message_t header, bool withPayload,
             std::string_view payload);
  void sendToIo(char op, uint64_t requestId, zmq::message_t* header,
                const std::string_view* payload);

  // ---- I/O thread only ----
  void run();
  void onPipe();
  void onBroker();
  void onTimers(TimePoint now);
  Duration timeToNextEvent(TimePoint now) const;

  void on(msg::Result& m, Frames& frames);
  void on(msg::Error& m, Frames& frames);
  void on(msg::Accepted& m, Frames& frames);
  void on(msg::Placed& m, Frames& frames);
  void on(msg::ChildExited& m, Frames& frames);
  void on(msg::Stopped& m, Frames& frames);
  void on(msg::StatusReply& m, Frames& frames);
  void on(msg::Heartbeat& m, Frames& frames);
  template <class T>
  void on(T& m, Frames& frames);

  void sendToBroker(uint64_t requestId, Frames frames, bool queueIfBlocked);
  void sendToBroker(const Message& message, bool queueIfBlocked);
  void flushOutbox();
  bool dropFromOutbox(uint64_t requestId);
  // False if a submit's payload may not be sent now: refused (over the broker's limit, answered
  // payload_too_large) or parked until the limit is known.
  bool admitPayload(uint64_t requestId, Frames& frames);
  bool outstanding() const { return !pending_.empty() || !linkedChildren_.empty(); }
  void complete(PendingRequest& request, Answer answer);
  void exitChild(uint64_t childId, ExitCallback& onExit, std::optional<Failure> why);
  void failEverything(const Failure& failure);
  void shutdown();

  const ClientOptions options_;
  SteadyClock clock_;
  std::shared_ptr<spdlog::logger> log_;
  zmq::context_t context_;  // before the sockets: destroyed after them
  PendingTable pending_;
  std::atomic<uint64_t> nextRequestId_{1};

  std::mutex pipeMutex_;  // guards pipeOut_, which any API thread may use
  zmq::socket_t pipeOut_;

  // Owned by the I/O thread once it has started.
  zmq::socket_t pipeIn_;
  zmq::socket_t dealer_;
  std::deque<Outgoing> outbox_;  // not yet taken by the DEALER (no connection yet), in order
  std::deque<Outgoing> parked_;  // large submits waiting for the broker's payload limit
  uint64_t maxPayload_ = 0;      // the broker's payload limit, from its heartbeats; 0 = unknown
  std::unordered_map<uint64_t, ExitCallback> linkedChildren_;  // childId -> onExit
  Duration interval_;  // heartbeat interval: ours, or the broker's if smaller
  bool busy_ = false;  // something was outstanding at the last timer check
  bool quitting_ = false;
  TimePoint lastHeard_{};      // last message of any kind from the broker
  TimePoint lastHeartbeat_{};  // last heartbeat sent
  uint64_t brokerInstance_ = 0;  // from the broker's heartbeats; a change means it restarted

  std::thread thread_;  // last member: starts once everything above exists
};

Client::Impl::Impl(ClientOptions options)
    : options_([&] {
        // Intervals below 1 ms and a liveness of 0 would make every request fail at once.
        options.heartbeatInterval = std::max(options.heartbeatInterval, Duration(1));
        options.liveness = std::max<uint32_t>(options.liveness, 1);
        return std::move(options);
      }()),
      log_(logger("client")),
      interval_(options_.heartbeatInterval) {
  // HWM 0 (unlimited) on the pipe: a completion callback may start a request from the I/O
  // thread itself, which must never block on its own pipe.
  pipeIn_ = zmq::socket_t(context_, zmq::socket_type::pair);
  pipeIn_.set(zmq::sockopt::linger, 0);
  pipeIn_.set(zmq::sockopt::rcvhwm, 0);
  pipeIn_.bind(kPipeEndpoint);
  pipeOut_ = zmq::socket_t(context_, zmq::socket_type::pair);
  pipeOut_.set(zmq::sockopt::linger, 0);
  pipeOut_.set(zmq::sockopt::sndhwm, 0);
  pipeOut_.connect(kPipeEndpoint);
  dealer_ = connectDealer(context_, options_.broker);
  log_->debug("client connecting to {}", options_.broker);
  thread_ = std::thread([this] { run(); });
}

Client::Impl::~Impl() {
  sendToIo(kOpQuit, 0, nullptr, nullptr);
  thread_.join();
}

// ---------------------------------------------------------------- any thread

void Client::Impl::submit(Mode mode, std::string_view pool, std::string_view function,
                          std::string_view payload, const CallOptions& options, Completion done,
                          ExitCallback onExit) {
  uint64_t requestId = nextRequestId_++;
  PendingRequest request;
  request.kind = mode == Mode::Call   ? RequestKind::Call
                 : mode == Mode::Cast ? RequestKind::Cast
                                      : RequestKind::Place;
  request.link = options.link;
  request.done = std::move(done);
  request.onExit = std::move(onExit);
  // A cast is accepted at once, whatever its timeout: only liveness bounds it. Timeout 0 is the
  // pool's default (unknown here; infinite for place): liveness again.
  bool finite = options.timeout > Duration(0) && options.timeout < Duration(kInfiniteMs);
  if (mode != Mode::Cast && finite) {
    request.deadline =
        addSaturating(clock_.now(), options.timeout + 2 * options_.heartbeatInterval);
    request.expiry =
        Failure{ErrorCode::Timeout, "no answer within the " + formatDuration(options.timeout) +
                                        " timeout (checked by the client)"};
  }
  msg::Submit message{.requestId = requestId,
                      .mode = mode,
                      .pool = std::string(pool),
                      .function = std::string(function),
                      .timeoutMs = toWireMs(options.timeout),
                      .idempotent = options.idempotent,
                      .retries = options.retries,
                      .link = options.link};
  start(requestId, std::move(request), encode(message), true, payload);
}

PendingRequest Client::Impl::awaitAnswer(RequestKind kind, Completion done, Duration timeout, ErrorCode code,
                                         const std::string& what) {
  PendingRequest request;
  request.kind = kind;
  request.done = std::move(done);
  if (timeout != kInfinite) {
    request.deadline = addSaturating(clock_.now(), std::max(timeout, Duration(0)));
    request.expiry = Failure{code, what + " within " + formatDuration(timeout)};
  }
  return request;
}

void Client::Impl::stop(uint64_t childId, Duration timeout, Completion done) {
  uint64_t requestId = nextRequestId_++;
  PendingRequest request = awaitAnswer(RequestKind::Stop, std::move(done), timeout, ErrorCode::Timeout,
                                       "child " + std::to_string(childId) + " was not reported stopped");
  request.childId = childId;
  start(requestId, std::move(request), encode(msg::StopChild{childId}), false, {});
}

void Client::Impl::status(Duration timeout, Completion done) {
  uint64_t requestId = nextRequestId_++;
  PendingRequest request = awaitAnswer(RequestKind::Status, std::move(done), timeout, ErrorCode::BrokerUnreachable,
                                       "broker unreachable: no status reply");
  start(requestId, std::move(request), encode(msg::StatusRequest{requestId}), false, {});
}

void Client::Impl::setPool(std::string_view pool, const PoolLimitsUpdate& update, Duration timeout,
                           Completion done) {
  uint64_t requestId = nextRequestId_++;
  PendingRequest request = awaitAnswer(RequestKind::SetPool, std::move(done), timeout, ErrorCode::BrokerUnreachable,
                                       "broker unreachable: no answer to setPool");
  auto wire = [](const std::optional<uint32_t>& v) {
    return v ? static_cast<int64_t>(*v) : int64_t{-1};
  };
  msg::SetPool message{requestId, std::string(pool), wire(update.min), wire(update.max),
                       wire(update.warmSlots)};
  start(requestId, std::move(request), encode(message), false, {});
}

void Client::Impl::start(uint64_t requestId, PendingRequest request, zmq::message_t header,
                         bool withPayload, std::string_view payload) {
  if (!pending_.add(requestId, request)) {
    if (request.done) request.done(Failure{ErrorCode::ShuttingDown, "the client is shutting down"});
    return;
  }
  sendToIo(kOpSend, requestId, &header, withPayload ? &payload : nullptr);
}

void Client::Impl::sendToIo(char op, uint64_t requestId, zmq::message_t* header,
                            const std::string_view* payload) {
  std::array<char, kControlBytes> control{};
  control[0] = op;
  std::memcpy(control.data() + 1, &requestId, sizeof(requestId));
  std::lock_guard lock(pipeMutex_);
  // The pipe has no HWM, so these blocking sends never wait.
  pipeOut_.send(zmq::buffer(control), header ? zmq::send_flags::sndmore : zmq::send_flags::none);
  if (!header) return;
  pipeOut_.send(*header, payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
  if (payload) pipeOut_.send(zmq::buffer(payload->data(), payload->size()), zmq::send_flags::none);
}

// ---------------------------------------------------------------- I/O thread

void Client::Impl::run() {
  TimePoint now = clock_.now();
  lastHeard_ = now;
  lastHeartbeat_ = now - interval_;  // the first request heartbeats at once
  try {
    Reactor reactor;
    reactor.add(pipeIn_, [this] { onPipe(); });
    reactor.add(dealer_, [this] { onBroker(); });
    while (!quitting_) {
      reactor.pollOnce(timeToNextEvent(clock_.now()));
      if (!quitting_) onTimers(clock_.now());
    }
  } catch (const zmq::error_t& e) {
    log_->error("client I/O thread stopped on a ZeroMQ error, failing all requests: {}", e.what());
  }
  shutdown();
}

void Client::Impl::onPipe() {
  Frames frames;
  bool truncated = false;
  for (int i = 0; i < kBatch && !quitting_ && recvFrames(pipeIn_, frames, 3, truncated); ++i) {
    char op = frames[0].data<char>()[0];
    uint64_t requestId = 0;
    std::memcpy(&requestId, frames[0].data<char>() + 1, sizeof(requestId));
    if (op == kOpQuit) {
      quitting_ = true;
      return;
    }
    // The request may already be resolved (liveness failure, shutdown): then it is not sent.
    if (!pending_.contains(requestId)) continue;
    Frames out;
    out.emplace_back();  // the DEALER's empty delimiter
    for (size_t f = 1; f < frames.size(); ++f) out.push_back(std::move(frames[f]));
    if (!admitPayload(requestId, out)) continue;
    sendToBroker(requestId, std::move(out), true);
  }
}

void Client::Impl::onBroker() {
  Frames frames;
  bool truncated = false;
  for (int i = 0; i < kBatch && recvFrames(dealer_, frames, kMaxBrokerFrames, truncated); ++i) {
    lastHeard_ = clock_.now();  // any message is a sign of life, even one we cannot read
    if (truncated || frames.size() < 2 || frames[0].size() != 0) {
      log_->warn(
          "dropping a message from the broker with a bad frame layout ({}{} frames, delimiter {} "
          "bytes)",
          truncated ? "over " : "", frames.size(), frames.empty() ? 0 : frames[0].size());
      continue;
    }
    auto decoded = decode(frames[1]);
    if (!decoded.ok()) {
      log_->warn("dropping a message from the broker that does not decode: {}", decoded.error);
      continue;
    }
    std::visit([&](auto& message) { on(message, frames); }, *decoded.message);
  }
}

void Client::Impl::on(msg::Result& m, Frames& frames) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    log_->debug("dropping a result for unknown request={} job={}", m.requestId, m.jobId);
    return;
  }
  CallReply reply{frames.size() > 2 ? frames[2].to_string() : std::string(), m.jobId};
  complete(*request, std::move(reply));
}

void Client::Impl::on(msg::Error& m, Frames&) {
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
  if (!request) {
    log_->debug("dropping an error for unknown request={}: {}", m.requestId, failure.toString());
    return;
  }
  complete(*request, std::move(failure));
}

void Client::Impl::on(msg::Accepted& m, Frames&) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    log_->debug("dropping an accepted for unknown request={} job={}", m.requestId, m.jobId);
    return;
  }
  complete(*request, m);
}

void Client::Impl::on(msg::Placed& m, Frames&) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    // The caller already gave up (local deadline) and never saw the handle: nobody else could
    // stop this child, so stop it now.
    log_->info("stopping child={} runner={} placed for abandoned request={}", m.childId, m.runnerId,
               m.requestId);
    sendToBroker(msg::StopChild{m.childId}, true);
    return;
  }
  if (request->kind == RequestKind::Place && request->link)
    linkedChildren_[m.childId] = std::move(request->onExit);
  complete(*request, m);
}

void Client::Impl::on(msg::ChildExited& m, Frames&) {
  auto it = linkedChildren_.find(m.childId);
  if (it == linkedChildren_.end()) {
    log_->debug("dropping childExited for unknown child={}", m.childId);
    return;
  }
  ExitCallback onExit = std::move(it->second);
  linkedChildren_.erase(it);
  std::optional<Failure> why;
  if (m.code != ErrorCode::None) why = Failure{m.code, std::move(m.message)};
  exitChild(m.childId, onExit, std::move(why));
}

void Client::Impl::on(msg::Stopped& m, Frames&) {
  // Whether or not the broker also sends childExited, a stopped linked child has exited.
  if (auto it = linkedChildren_.find(m.childId); it != linkedChildren_.end()) {
    ExitCallback onExit = std::move(it->second);
    linkedChildren_.erase(it);
    exitChild(m.childId, onExit, Failure{ErrorCode::Cancelled, "stopped"});
  }
  auto stops = pending_.takeStopsOf(m.childId);
  if (stops.empty()) log_->debug("dropping stopped for child={} that no stop waits for", m.childId);
  for (auto& [requestId, request] : stops) complete(request, m);
}

void Client::Impl::on(msg::StatusReply& m, Frames&) {
  auto request = pending_.take(m.requestId);
  if (!request) {
    log_->debug("dropping a status reply for unknown request={}", m.requestId);
    return;
  }
  complete(*request, std::move(m));
}

void Client::Impl::on(msg::Heartbeat& m, Frames&) {
  if (m.instance != 0) {
    if (brokerInstance_ != 0 && m.instance != brokerInstance_) {
      // A new broker process answers on the same endpoint: it never heard of our requests.
      log_->warn("broker {} restarted: failing {} requests in flight", options_.broker, pending_.size());
      failEverything(Failure{ErrorCode::BrokerUnreachable,
                             "broker restarted: the request was lost (it may or may not have run)"});
    }
    brokerInstance_ = m.instance;
  }
  if (m.maxPayloadBytes != 0 && maxPayload_ == 0) {
    maxPayload_ = m.maxPayloadBytes;
    auto parked = std::move(parked_);
    parked_.clear();
    for (auto& p : parked)
      if (admitPayload(p.requestId, p.frames)) sendToBroker(p.requestId, std::move(p.frames), true);
  }
  maxPayload_ = m.maxPayloadBytes != 0 ? m.maxPayloadBytes : maxPayload_;
  if (m.intervalMs > 0 && Duration(m.intervalMs) < interval_) {
    log_->debug("adopting the broker's heartbeat interval of {}ms", m.intervalMs);
    interval_ = Duration(m.intervalMs);
  }
}

template <class T>
void Client::Impl::on(T&, Frames&) {
  log_->warn("dropping a {} message (kind {}) from the broker: not a broker-to-client message",
             foreignMessageName<T>(), Message(std::in_place_type<T>).index());
}

void Client::Impl::onTimers(TimePoint now) {
  for (auto& [requestId, request] : pending_.takeExpired(now)) {
    // Still in the outbox: it never reached the broker. Otherwise tell the broker we gave up.
    bool neverSent = dropFromOutbox(requestId);
    if (!neverSent && (request.kind == RequestKind::Call || request.kind == RequestKind::Place))
      sendToBroker(msg::Cancel{requestId}, true);
    complete(request, request.expiry);
  }

  bool busyNow = outstanding();
  if (busyNow && !busy_) lastHeard_ = now;  // the broker's silence counts from when work began
  busy_ = busyNow;
  if (busy_) {
    Duration silence = now - lastHeard_;
    if (silence >= interval_ * options_.liveness) {
      // info, not warn: every caller gets this failure as a value.
      log_->info("broker {} silent for {}ms: failing {} requests and {} linked children",
                 options_.broker, silence.count(), pending_.size(), linkedChildren_.size());
      failEverything(
          Failure{ErrorCode::BrokerUnreachable,
                  "broker unreachable: no answer for " + std::to_string(silence.count()) + "ms"});
      busy_ = outstanding();  // a completion may have started new work
      if (busy_) lastHeard_ = now;
    } else if (now - lastHeartbeat_ >= interval_) {
      lastHeartbeat_ = now;
      // Queued like anything else while the connection is not up, so the broker hears the
      // first one (and tells us its interval) as soon as it is; the outbox is bounded by the
      // liveness rule, which clears it.
      sendToBroker(msg::Heartbeat{static_cast<uint64_t>(now.time_since_epoch().count()),
                                  static_cast<uint32_t>(interval_.count())},
                   true);
    }
  }
  flushOutbox();
}

Duration Client::Impl::timeToNextEvent(TimePoint now) const {
  TimePoint next = pending_.nextDeadline();
  if (busy_) {
    next = std::min(next, lastHeard_ + interval_ * options_.liveness);
    next = std::min(next, lastHeartbeat_ + interval_);
  }
  if (!outbox_.empty()) next = std::min(next, now + kOutboxRetry);
  if (next == TimePoint::max()) return kInfinite;
  return std::max(Duration(0), next - now);
}

void Client::Impl::sendToBroker(uint64_t requestId, Frames frames, bool queueIfBlocked) {
  if (outbox_.empty() && sendFrames(dealer_, frames) == SendStatus::Ok) return;
  // Queued behind earlier messages to keep the order; flushOutbox() retries.
  if (queueIfBlocked) outbox_.push_back(Outgoing{requestId, std::move(frames)});
}

void Client::Impl::sendToBroker(const Message& message, bool queueIfBlocked) {
  Frames frames;
  frames.emplace_back();
  frames.push_back(encodeMessage(message));
  sendToBroker(0, std::move(frames), queueIfBlocked);
}

void Client::Impl::flushOutbox() {
  while (!outbox_.empty()) {
    if (sendFrames(dealer_, outbox_.front().frames) != SendStatus::Ok) return;
    outbox_.pop_front();
  }
}

bool Client::Impl::dropFromOutbox(uint64_t requestId) {
  for (auto* queue : {&outbox_, &parked_}) {
    auto it = std::find_if(queue->begin(), queue->end(),
                           [&](const Outgoing& o) { return o.requestId == requestId; });
    if (it == queue->end()) continue;
    queue->erase(it);
    return true;
  }
  return false;
}

bool Client::Impl::admitPayload(uint64_t requestId, Frames& frames) {
  // frames: [delimiter][header][payload?]; only submits carry a payload frame.
  if (frames.size() < 3) return true;
  size_t size = frames[2].size();
  if (maxPayload_ == 0) {
    if (size <= kSendBeforeLimitKnown) return true;
    parked_.push_back(Outgoing{requestId, std::move(frames)});
    return false;
  }
  if (size <= maxPayload_) return true;
  if (auto request = pending_.take(requestId))
    complete(*request, Failure{ErrorCode::PayloadTooLarge, "payload of " + std::to_string(size) +
                                                               " bytes exceeds the broker's limit of " +
                                                               std::to_string(maxPayload_) + " bytes"});
  return false;
}

void Client::Impl::complete(PendingRequest& request, Answer answer) {
  if (!request.done) return;
  // A throwing user callback must not take the I/O thread (and every other request) down.
  try {
    request.done(std::move(answer));
  } catch (const std::exception& e) {
    log_->error("a completion callback threw: {}", e.what());
  }
}

void Client::Impl::exitChild(uint64_t childId, ExitCallback& onExit, std::optional<Failure> why) {
  if (!onExit) return;
  try {
    onExit(childId, std::move(why));
  } catch (const std::exception& e) {
    log_->error("an onExit callback for child={} threw: {}", childId, e.what());
  }
}

void Client::Impl::failEverything(const Failure& failure) {
  outbox_.clear();
  parked_.clear();
  for (auto& [requestId, request] : pending_.takeAll()) complete(request, failure);
  auto children = std::move(linkedChildren_);
  linkedChildren_.clear();
  for (auto& [childId, onExit] : children) exitChild(childId, onExit, failure);
}

void Client::Impl::shutdown() {
  auto requests = pending_.close();
  auto children = std::move(linkedChildren_);
  linkedChildren_.clear();
  // Goodbyes are best effort: sent only if the DEALER takes them now, then lingered briefly.
  bool saidGoodbye = false;
  try {
    for (auto& [requestId, request] : requests) {
      bool neverSent = dropFromOutbox(requestId);
      if (neverSent || !request.link) continue;
      if (request.kind == RequestKind::Call || request.kind == RequestKind::Place) {
        sendToBroker(msg::Cancel{requestId}, false);
        saidGoodbye = true;
      }
    }
    for (auto& [childId, onExit] : children) {
      sendToBroker(msg::StopChild{childId}, false);
      saidGoodbye = true;
    }
    if (saidGoodbye) dealer_.set(zmq::sockopt::linger, static_cast<int>(kGoodbyeLinger.count()));
  } catch (const zmq::error_t& e) {
    log_->warn("could not say goodbye to the broker: {}", e.what());
  }
  outbox_.clear();
  Failure failure{ErrorCode::ShuttingDown, "the client is shutting down"};
  for (auto& [requestId, request] : requests) complete(request, failure);
  for (auto& [childId, onExit] : children) exitChild(childId, onExit, failure);
  dealer_.close();
  pipeIn_.close();
}

// ---------------------------------------------------------------- Client

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

CallResult Client::call(std::string_view pool, std::string_view function, std::string_view payload,
                        CallOptions options) {
  if (impl_->onIoThread()) return calledFromIoThread("call");
  return waitFor<std::string>(
      [&](Completion done) {
        impl_->submit(Mode::Call, pool, function, payload, options, std::move(done), {});
      },
      &toCallResult);
}

std::future<CallResult> Client::callAsync(std::string_view pool, std::string_view function,
                                          std::string_view payload, CallOptions options) {
  auto promise = std::make_shared<std::promise<CallResult>>();
  auto future = promise->get_future();
  impl_->submit(Mode::Call, pool, function, payload, options,
                [promise](Answer answer) { promise->set_value(toCallResult(std::move(answer))); },
                {});
  return future;
}

void Client::callAsync(std::string_view pool, std::string_view function, std::string_view payload,
                       CallOptions options, std::function<void(CallResult)> done) {
  impl_->submit(Mode::Call, pool, function, payload, options,
                [done = std::move(done)](Answer answer) {
                  if (done) done(toCallResult(std::move(answer)));
                },
                {});
}

Outcome<uint64_t> Client::cast(std::string_view pool, std::string_view function,
                               std::string_view payload, CallOptions options) {
  if (impl_->onIoThread()) return calledFromIoThread("cast");
  return waitFor<uint64_t>(
      [&](Completion done) {
        impl_->submit(Mode::Cast, pool, function, payload, options, std::move(done), {});
      },
      &toJobId);
}

Outcome<ChildHandle> Client::place(
    std::string_view pool, std::string_view function, std::string_view payload, CallOptions options,
    std::function<void(uint64_t childId, std::optional<Failure>)> onExit) {
  if (impl_->onIoThread()) return calledFromIoThread("place");
  return waitFor<ChildHandle>(
      [&](Completion done) {
        impl_->submit(Mode::Place, pool, function, payload, options, std::move(done),
                      std::move(onExit));
      },
      &toChildHandle);
}

Outcome<void> Client::stop(const ChildHandle& child, Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("stop");
  return waitFor<void>(
      [&](Completion done) { impl_->stop(child.childId, timeout, std::move(done)); }, &toStopped);
}

Outcome<msg::StatusReply> Client::status(Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("status");
  return waitFor<msg::StatusReply>(
      [&](Completion done) { impl_->status(timeout, std::move(done)); }, &toStatus);
}

Outcome<msg::StatusReply> Client::setPool(std::string_view pool, const PoolLimitsUpdate& update,
                                          Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("setPool");
  return waitFor<msg::StatusReply>(
      [&](Completion done) { impl_->setPool(pool, update, timeout, std::move(done)); }, &toStatus);
}

}  // namespace flame
