// The socket shell around ClientCore: the I/O thread owns the DEALER, a Reactor (the tree's one
// loop, which owns the wake-up timer) and the core. API threads encode their request and append
// it to a hand-over batch; the first request of a batch writes an eventfd that wakes the loop.
// Requests made on the I/O thread (completion callbacks) go to the core directly.
#include "client/client.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "client/client_core.h"
#include "common/codec.h"
#include "common/curve_keys.h"
#include "common/handshake_monitor.h"
#include "common/log.h"
#include "common/transport.h"

namespace flame {

namespace {

// Messages handled per wake-up, so a busy socket cannot starve the timers.
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
  if (auto* placed = std::get_if<msg::Placed>(&answer)) return ChildHandle{placed->childId, std::move(placed->runnerId)};
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

Outcome<msg::Subscribed> toSubscribed(Answer answer) {
  if (auto* failure = std::get_if<Failure>(&answer)) return std::move(*failure);
  if (auto* subscribed = std::get_if<msg::Subscribed>(&answer)) return *subscribed;
  return unexpectedAnswer(answer, "subscribe");
}

// Starts a request with a handler and blocks until it has run. The promise is shared with the
// handler so that it outlives set_value() on the I/O thread.
template <class T>
Outcome<T> waitFor(const std::function<void(AnswerHandler)>& start, Outcome<T> (*convert)(Answer)) {
  auto promise = std::make_shared<std::promise<Outcome<T>>>();
  auto future = promise->get_future();
  start([promise, convert](Answer answer) { promise->set_value(convert(std::move(answer))); });
  return future.get();
}

Failure calledFromIoThread(std::string_view method) {
  return Failure{ErrorCode::Internal, "Client::" + std::string(method) +
                                          "() was called from a completion callback (the client's I/O thread), "
                                          "where waiting would deadlock; use an asynchronous form"};
}

const Clock& clockOf(const ClientOptions& options) { return options.clock ? *options.clock : Reactor::steadyClock(); }

}  // namespace

class Client::Impl final : private ClientEffects {
 public:
  explicit Impl(ClientOptions options);
  ~Impl() override;

  // Any thread. Each starts one request whose handler runs exactly once (see client.h).
  void submit(Mode mode, std::string_view pool, std::string_view function, std::string_view payload,
              const CallOptions& options, AnswerHandler done, ExitCallback onExit);
  void stop(uint64_t childId, Duration timeout, AnswerHandler done);
  void status(Duration timeout, AnswerHandler done);
  void setPool(std::string_view pool, const PoolLimitsUpdate& update, Duration timeout, AnswerHandler done);
  void subscribe(uint64_t requestId, std::string_view pool, Duration timeout, AnswerHandler done,
                 EventHandler onEvent, EndHandler onEnd);
  void unsubscribe(uint64_t subscriptionId) { start(unsubscribeRequest(subscriptionId)); }
  uint64_t nextId() { return nextRequestId_.fetch_add(1, std::memory_order_relaxed); }
  // What Subscription handles hold: cleared by ~Impl, so a handle outliving its Client is inert.
  const std::shared_ptr<Subscription::Link>& link() const { return link_; }

  bool onIoThread() const { return std::this_thread::get_id() == ioThread_; }

 private:
  // Hands a request to the core: directly on the I/O thread, else through the batch.
  void start(ClientRequest request);

  // ---- I/O thread only ----
  void run();
  void onWake();
  void onBroker();
  void onTimer();
  // Moves the wake-up timer to the core's next wake-up.
  void arm();
  void fail(ClientRequest& request, const Failure& failure);

  // ClientEffects
  SendStatus send(zmq::message_t* frames, size_t count) override { return sendFrames(dealer_, frames, count); }
  void wantWritable(bool want) override { reactor_.wantWritable(dealer_, want); }
  void deliver(AnswerHandler& done, Answer answer) override;
  void exited(ExitCallback& onExit, uint64_t childId, std::optional<Failure> why) override;
  void event(EventHandler& onEvent, const msg::Event& event) override;
  void ended(EndHandler& onEnd, Failure why) override;
  void reconnect() override;

  // Starts watching the DEALER's handshakes (before it connects, so none is missed); the loop
  // reads the events once monitor_->watch(reactor_) ran.
  void monitorHandshakes();
  // Puts the DEALER and its monitor on the loop.
  void watchDealer();

  const ClientOptions options_;
  const std::optional<CurveClient> curve_;  // from options_.serverKey/secretKey
  const Clock& realClock_;  // options_.clock or the steady clock: the Reactor's timers
  // What the core reads: realClock_, read once per handler (a batch of a thousand results reads
  // the time once, not twice per message; the core's times are exact to within one batch).
  CachedClock clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<zmq::context_t> ownContext_;  // unless options_.context; before the socket
  zmq::context_t& context_;
  zmq::socket_t dealer_;
  std::atomic<uint64_t> nextRequestId_{1};

  // The hand-over from API threads: appended under the mutex; the thread that makes the batch
  // non-empty writes wakeFd_ once, and the I/O thread takes the whole batch.
  int wakeFd_ = -1;
  std::mutex handoverMutex_;
  std::vector<ClientRequest> handover_;  // guarded by handoverMutex_
  bool quit_ = false;                    // guarded by handoverMutex_: ~Impl asked the loop to stop
  bool closed_ = false;                  // guarded by handoverMutex_: the loop has stopped taking requests

  // Owned by the I/O thread once it has started.
  Reactor reactor_;
  std::unique_ptr<HandshakeMonitor> monitor_;  // of dealer_; closed before it
  ClientCore core_;
  TimerId timer_ = 0;
  TimePoint armedFor_ = TimePoint::min();  // where timer_ is set; min() = not set
  std::vector<ClientRequest> batch_;  // the I/O thread's side of the hand-over (kept for its capacity)
  Frames frames_;                     // receive buffer (kept for its capacity)
  bool quitting_ = false;

  std::shared_ptr<Subscription::Link> link_;

  std::thread::id ioThread_;
  std::thread thread_;  // last member: starts once everything above exists
};

struct Subscription::Link {
  // Recursive: a cancel() from onEnd (which runs inside another cancel() on the I/O thread) must
  // not deadlock. Held while a handle reaches the Impl, so ~Impl cannot free it meanwhile.
  std::recursive_mutex mutex;
  Client::Impl* impl = nullptr;  // guarded by mutex; nullptr once the Client is gone
};

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    cancel();
    link_ = std::move(other.link_);
    id_ = std::exchange(other.id_, 0);
    lastSeq_ = std::exchange(other.lastSeq_, 0);
  }
  return *this;
}

void Subscription::cancel() {
  if (!link_ || id_ == 0) return;
  {
    std::lock_guard lock(link_->mutex);
    if (link_->impl != nullptr) link_->impl->unsubscribe(id_);
  }
  link_.reset();
  id_ = 0;
}

Client::Impl::Impl(ClientOptions options)
    : options_(std::move(options)),
      curve_(curveClientFor("ClientOptions", options_.serverKey, options_.secretKey)),
      realClock_(clockOf(options_)),
      clock_(realClock_),
      log_(logger("client")),
      ownContext_(options_.context ? std::nullopt : std::make_optional<zmq::context_t>()),
      context_(options_.context ? *options_.context : *ownContext_),
      reactor_(realClock_),
      core_(ClientCoreOptions{options_.broker, options_.heartbeatInterval, options_.liveness}, clock_, *this) {
  link_ = std::make_shared<Subscription::Link>();
  link_->impl = this;
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  try {
    dealer_ = newDealer(context_, {}, curve_ ? &*curve_ : nullptr);
    monitorHandshakes();  // before connect(): the first handshake may fail within ~0.1 ms
    dealer_.connect(options_.broker);
  } catch (...) {
    ::close(wakeFd_);
    throw;
  }
  log_->debug("client connecting to {}", options_.broker);
  thread_ = std::thread([this] { run(); });
  ioThread_ = thread_.get_id();
}

Client::Impl::~Impl() {
  {
    std::lock_guard lock(link_->mutex);  // waits for a cancel() under way on another thread
    link_->impl = nullptr;
  }
  {
    std::lock_guard lock(handoverMutex_);
    quit_ = true;
  }
  uint64_t one = 1;
  (void)!::write(wakeFd_, &one, sizeof one);
  thread_.join();
  ::close(wakeFd_);
}

// ---------------------------------------------------------------- any thread

void Client::Impl::submit(Mode mode, std::string_view pool, std::string_view function, std::string_view payload,
                          const CallOptions& options, AnswerHandler done, ExitCallback onExit) {
  start(submitRequest(nextId(), mode, pool, function, payload, options, options_.heartbeatInterval, std::move(done),
                      std::move(onExit)));
}

void Client::Impl::stop(uint64_t childId, Duration timeout, AnswerHandler done) {
  start(stopRequest(nextId(), childId, timeout, std::move(done)));
}

void Client::Impl::status(Duration timeout, AnswerHandler done) {
  start(statusRequest(nextId(), timeout, std::move(done)));
}

void Client::Impl::setPool(std::string_view pool, const PoolLimitsUpdate& update, Duration timeout,
                           AnswerHandler done) {
  start(setPoolRequest(nextId(), pool, update, timeout, std::move(done)));
}

void Client::Impl::subscribe(uint64_t requestId, std::string_view pool, Duration timeout, AnswerHandler done,
                             EventHandler onEvent, EndHandler onEnd) {
  start(subscribeRequest(requestId, pool, timeout, std::move(done), std::move(onEvent), std::move(onEnd)));
}

void Client::Impl::start(ClientRequest request) {
  if (onIoThread()) {
    // A completion callback starting the next request: no hand-over, no wake-up. arm() runs when
    // the handler that called the callback returns.
    core_.submit(std::move(request));
    return;
  }
  bool accepted = false, wake = false;
  {
    std::lock_guard lock(handoverMutex_);
    if (!closed_) {
      accepted = true;
      wake = handover_.empty();  // else the batch's wake-up is already on its way
      handover_.push_back(std::move(request));
    }
  }
  if (!accepted) {
    // The loop has stopped (~Client is running): answered here, on the calling thread.
    if (request.pending.done) request.pending.done(Failure{ErrorCode::ShuttingDown, "the client is shutting down"});
    return;
  }
  if (!wake) return;
  uint64_t one = 1;
  (void)!::write(wakeFd_, &one, sizeof one);  // an eventfd only fails when its counter is full
}

// ---------------------------------------------------------------- I/O thread

void Client::Impl::run() {
  try {
    reactor_.addFd(wakeFd_, [this] { onWake(); });
    watchDealer();
    while (!quitting_) reactor_.pollOnce();
  } catch (const zmq::error_t& e) {
    log_->error("client I/O thread stopped on a ZeroMQ error, failing all requests: {}", e.what());
  }
  std::vector<ClientRequest> leftover;
  {
    std::lock_guard lock(handoverMutex_);
    closed_ = true;
    leftover.swap(handover_);
  }
  bool saidGoodbye = core_.shutdown();
  Failure failure{ErrorCode::ShuttingDown, "the client is shutting down"};
  for (auto& request : batch_) fail(request, failure);
  for (auto& request : leftover) fail(request, failure);
  try {
    if (saidGoodbye) dealer_.set(zmq::sockopt::linger, static_cast<int>(kGoodbyeLinger.count()));
  } catch (const zmq::error_t& e) {
    log_->warn("could not linger for the goodbyes to the broker: {}", e.what());
  }
  monitor_.reset();  // before the socket it watches
  dealer_.close();
}

void Client::Impl::watchDealer() {
  reactor_.add(dealer_, [this] { onBroker(); }, [this] {
    clock_.refresh();
    core_.onWritable();
    arm();
  });
  monitor_->watch(reactor_);
}

void Client::Impl::monitorHandshakes() {
  HandshakeMonitor::Callbacks callbacks;
  callbacks.succeeded = [this] {
    clock_.refresh();
    core_.onHandshakeSucceeded();
    arm();
  };
  callbacks.refused = [this](const std::string& why) {
    clock_.refresh();
    core_.onHandshakeRefused(why);
    arm();
  };
  monitor_ = std::make_unique<HandshakeMonitor>(
      context_, dealer_, HandshakeVerdicts(curve_.has_value(), "client", curve_ ? curve_->publicKey : ""),
      std::move(callbacks));
}

void Client::Impl::reconnect() {
  // Called from the core's tick (a timer), never from the monitor's own handler.
  monitor_.reset();
  reactor_.remove(dealer_);
  dealer_.close();
  dealer_ = newDealer(context_, {}, curve_ ? &*curve_ : nullptr);
  monitorHandshakes();
  dealer_.connect(options_.broker);
  watchDealer();
  log_->debug("client reconnecting to {} for a new handshake", options_.broker);
}

void Client::Impl::onWake() {
  uint64_t count = 0;
  (void)!::read(wakeFd_, &count, sizeof count);
  batch_.clear();
  {
    std::lock_guard lock(handoverMutex_);
    batch_.swap(handover_);
    quitting_ = quit_;
  }
  if (quitting_) return;  // run() fails the batch with shutting_down
  clock_.refresh();
  core_.beginBurst();
  for (auto& request : batch_) core_.submit(std::move(request));
  core_.endBurst();
  batch_.clear();
  arm();
}

void Client::Impl::onBroker() {
  clock_.refresh();
  core_.beginBurst();  // the next calls issued by the completions leave together, at the end
  bool truncated = false;
  for (int i = 0; i < kBatch && recvFrames(dealer_, frames_, kMaxBrokerFrames, truncated); ++i)
    core_.onBrokerFrames(frames_, truncated);
  core_.endBurst();
  arm();
}

void Client::Impl::onTimer() {
  armedFor_ = TimePoint::min();  // a one-shot timer: it is gone now
  clock_.refresh();
  core_.tick();
  arm();
}

void Client::Impl::arm() {
  TimePoint next = core_.nextWakeup();
  if (next == armedFor_) return;
  if (armedFor_ == TimePoint::min() || !reactor_.reschedule(timer_, next)) timer_ = reactor_.at(next, [this] { onTimer(); });
  armedFor_ = next;
}

void Client::Impl::fail(ClientRequest& request, const Failure& failure) {
  if (request.pending.done) deliver(request.pending.done, failure);
}

void Client::Impl::deliver(AnswerHandler& done, Answer answer) {
  // A throwing user callback must not take the I/O thread (and every other request) down.
  try {
    done(std::move(answer));
  } catch (const std::exception& e) {
    log_->error("a completion callback threw: {}", e.what());
  }
}

void Client::Impl::exited(ExitCallback& onExit, uint64_t childId, std::optional<Failure> why) {
  try {
    onExit(childId, std::move(why));
  } catch (const std::exception& e) {
    log_->error("an onExit callback for child={} threw: {}", childId, e.what());
  }
}

void Client::Impl::event(EventHandler& onEvent, const msg::Event& event) {
  try {
    onEvent(event);
  } catch (const std::exception& e) {
    log_->error("an onEvent callback for subscription={} threw: {}", event.requestId, e.what());
  }
}

void Client::Impl::ended(EndHandler& onEnd, Failure why) {
  try {
    onEnd(std::move(why));
  } catch (const std::exception& e) {
    log_->error("an onEnd callback of a subscription threw: {}", e.what());
  }
}

// ---------------------------------------------------------------- Client

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

CallResult Client::call(std::string_view pool, std::string_view function, std::string_view payload,
                        CallOptions options) {
  if (impl_->onIoThread()) return calledFromIoThread("call");
  return waitFor<std::string>(
      [&](AnswerHandler done) { impl_->submit(Mode::Call, pool, function, payload, options, std::move(done), {}); },
      &toCallResult);
}

std::future<CallResult> Client::callAsync(std::string_view pool, std::string_view function,
                                          std::string_view payload, CallOptions options) {
  auto promise = std::make_shared<std::promise<CallResult>>();
  auto future = promise->get_future();
  impl_->submit(Mode::Call, pool, function, payload, options,
                [promise](Answer answer) { promise->set_value(toCallResult(std::move(answer))); }, {});
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

Outcome<uint64_t> Client::cast(std::string_view pool, std::string_view function, std::string_view payload,
                               CallOptions options) {
  if (impl_->onIoThread()) return calledFromIoThread("cast");
  return waitFor<uint64_t>(
      [&](AnswerHandler done) { impl_->submit(Mode::Cast, pool, function, payload, options, std::move(done), {}); },
      &toJobId);
}

Outcome<ChildHandle> Client::place(std::string_view pool, std::string_view function, std::string_view payload,
                                   CallOptions options,
                                   std::function<void(uint64_t childId, std::optional<Failure>)> onExit) {
  if (impl_->onIoThread()) return calledFromIoThread("place");
  return waitFor<ChildHandle>(
      [&](AnswerHandler done) {
        impl_->submit(Mode::Place, pool, function, payload, options, std::move(done), std::move(onExit));
      },
      &toChildHandle);
}

Outcome<void> Client::stop(const ChildHandle& child, Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("stop");
  return waitFor<void>([&](AnswerHandler done) { impl_->stop(child.childId, timeout, std::move(done)); }, &toStopped);
}

Outcome<msg::StatusReply> Client::status(Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("status");
  return waitFor<msg::StatusReply>([&](AnswerHandler done) { impl_->status(timeout, std::move(done)); }, &toStatus);
}

Outcome<Subscription> Client::subscribe(std::string_view pool, std::function<void(const msg::Event&)> onEvent,
                                        std::function<void(Failure)> onEnd, Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("subscribe");
  uint64_t id = impl_->nextId();
  auto confirmed = waitFor<msg::Subscribed>(
      [&](AnswerHandler done) {
        impl_->subscribe(id, pool, timeout, std::move(done), std::move(onEvent), std::move(onEnd));
      },
      &toSubscribed);
  if (!confirmed) return confirmed.error();
  return Subscription(impl_->link(), id, confirmed->lastSeq);
}

Outcome<msg::StatusReply> Client::setPool(std::string_view pool, const PoolLimitsUpdate& update, Duration timeout) {
  if (impl_->onIoThread()) return calledFromIoThread("setPool");
  return waitFor<msg::StatusReply>(
      [&](AnswerHandler done) { impl_->setPool(pool, update, timeout, std::move(done)); }, &toStatus);
}

}  // namespace flame
