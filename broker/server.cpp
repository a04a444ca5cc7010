#include "broker/server.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "broker/inbound.h"
#include "common/log.h"

namespace flame {

namespace {
// How many messages one readiness event may process before the loop checks timers again.
constexpr int kBatch = 256;
// When the broker stops: how long it goes on reading (answering shutting_down) after its last
// answers, and then how long what is still queued may take to leave.
constexpr Duration kClosingTime{300};
constexpr Duration kFinalLinger{1000};

SocketLimits socketLimits(const BrokerOptions& o) {
  SocketLimits l;
  // libzmq drops a connection whose frame exceeds MAXMSGSIZE without telling anyone; keep that
  // far above the application limit so oversized payloads get a clear error reply instead.
  l.maxFrameBytes = static_cast<int64_t>(o.maxPayloadBytes) * 2 + 1024 * 1024;
  return l;
}
}  // namespace

namespace {
// No high-water mark towards runners: credit is their flow control (a runner never has more
// jobs queued than its slots), so a send to a live runner never fails for lack of room.
SocketLimits runnerLimits(const BrokerOptions& o) {
  SocketLimits l = socketLimits(o);
  l.sendHwm = 0;
  return l;
}
}  // namespace

namespace {
zmq::socket_t bindEndpoint(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits,
                           const KeyRing* keys, const char* zapDomain) {
  if (!keys) return bindRouter(ctx, endpoint, limits);
  CurveServer curve{keys->secretKey(), zapDomain};
  return bindRouter(ctx, endpoint, limits, &curve);
}
}  // namespace

BrokerServer::BrokerServer(zmq::context_t& ctx, BrokerOptions options, const Clock& clock, const KeyRing* keys)
    : options_(std::move(options)),
      authenticated_(keys != nullptr),
      loopClock_(clock),
      clients_(bindEndpoint(ctx, options_.clientsEndpoint, socketLimits(options_), keys, kClientsZapDomain)),
      runners_(bindEndpoint(ctx, options_.runnersEndpoint, runnerLimits(options_), keys, kRunnersZapDomain)),
      core_(options_, loopClock_, *this) {
  clientsEndpoint_ = boundEndpoint(clients_);
  runnersEndpoint_ = boundEndpoint(runners_);
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  limits_.maxHeaderBytes = options_.maxHeaderBytes;
  send_ = [this](const SendQueue::Message& m, zmq::message_t* frames) { return send(m, frames); };
  undeliverable_ = [this](const std::string& peer, const std::vector<JobId>& jobs, SendStatus why) {
    core_.onUndeliverable(peer, jobs,
                          why == SendStatus::Unreachable ? "its connection is gone" : "its send queue is full");
  };
}

BrokerServer::~BrokerServer() { close(wakeFd_); }

void BrokerServer::stop() {
  stopRequests_.fetch_add(1);
  wake();
}

void BrokerServer::stopNow() {
  stopRequests_.fetch_add(2);
  wake();
}

void BrokerServer::wake() {
  uint64_t one = 1;
  (void)!write(wakeFd_, &one, sizeof one);  // only fails when the counter is full: still readable
}

void BrokerServer::run(const Hooks& hooks) {
  Reactor reactor(loopClock_);
  reactor.add(clients_, [this] {
    readClients();
    flush();
  });
  reactor.add(runners_, [this] {
    readRunners();
    flush();
  });
  reactor.addFd(wakeFd_, [this] {
    uint64_t count = 0;
    (void)!read(wakeFd_, &count, sizeof count);
  });
  // One timer, moved to the earliest deadline of the core and the hooks after every turn: the
  // loop wakes exactly then (a boot backoff or boot_timeout is not rounded up to a heartbeat).
  TimerId due = reactor.every(Duration(24L * 3600 * 1000), [] {});
  if (hooks.setup) hooks.setup(reactor);
  logger("broker")->info("serving clients on {} and runners on {}", clientsEndpoint_, runnersEndpoint_);
  for (;;) {
    loopClock_.refresh();
    int stops = stopRequests_.load();
    if (stops >= 2) {
      core_.abortAll("the broker was told to stop now");
      flush();
      break;
    }
    if (stops == 1 && !core_.shuttingDown()) {
      core_.beginShutdown();
      flush();
    }
    if (core_.shutdownComplete()) break;
    TimePoint next = core_.nextWakeup();
    if (hooks.nextWakeup) next = std::min(next, hooks.nextWakeup());
    reactor.reschedule(due, std::max(next, loopClock_.now()));
    reactor.pollOnce();
    loopClock_.refresh();
    core_.tick();
    if (hooks.onTick) hooks.onTick();
    flush();
  }
  if (hooks.onStopped) hooks.onStopped();
  flush();
  // The last answers (results, shutting_down, drain) must reach their peers. Exiting at once
  // loses some: a peer's heartbeat that arrives unread when the process closes its TCP sockets
  // makes the kernel reset the connection, and the peer discards what it had not read yet
  // (seen: 1 in 3 second-SIGTERM answers lost). So keep reading (and refusing) for a moment,
  // then close with a linger for what is still queued.
  TimePoint closeAt = loopClock_.now() + kClosingTime;
  for (;;) {
    loopClock_.refresh();
    if (loopClock_.now() >= closeAt) break;
    reactor.pollOnce(closeAt - loopClock_.now());
    flush();
  }
  clients_.set(zmq::sockopt::linger, static_cast<int>(kFinalLinger.count()));
  runners_.set(zmq::sockopt::linger, static_cast<int>(kFinalLinger.count()));
  logger("broker")->info("stopped");
}

void BrokerServer::readClients() {
  loopClock_.refresh();
  bool truncated = false;
  for (int i = 0; i < kBatch; ++i) {
    if (!recvFrames(clients_, frames_, kMaxClientFrames, truncated)) return;
    deliverFromClient(core_, limits_, frames_, truncated, authenticated_);
  }
}

void BrokerServer::readRunners() {
  loopClock_.refresh();
  bool truncated = false;
  for (int i = 0; i < kBatch; ++i) {
    if (!recvFrames(runners_, frames_, kMaxRunnerFrames, truncated)) return;
    deliverFromRunner(core_, limits_, frames_, truncated, authenticated_);
  }
}

SendStatus BrokerServer::toClient(const std::string& client, zmq::message_t header, zmq::message_t* payload,
                                  JobId dispatch) {
  outgoing_.push(false, client, std::move(header), payload, dispatch);
  return SendStatus::Ok;
}

SendStatus BrokerServer::toRunner(const std::string& routingId, zmq::message_t header, zmq::message_t* payload,
                                  JobId dispatch) {
  outgoing_.push(true, routingId, std::move(header), payload, dispatch);
  return SendStatus::Ok;
}

SendStatus BrokerServer::send(const SendQueue::Message& m, zmq::message_t* frames) {
  return sendFrames(m.toRunner ? runners_ : clients_, frames, m.count);
}

void BrokerServer::flush() { outgoing_.flush(send_, undeliverable_); }

}  // namespace flame
