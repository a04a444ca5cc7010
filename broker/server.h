// BrokerServer: the broker's socket loop. It owns the two ROUTER sockets, turns frames into
// messages at the decode boundary (common/codec.h) with size and frame-count limits, feeds
// BrokerCore, and sends what the core emits. One thread runs run(); stop() may be called from
// any thread (a signal handler thread, a test).
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <functional>
#include <string>

#include "broker/broker_core.h"
#include "broker/key_ring.h"
#include "broker/send_queue.h"
#include "common/codec.h"
#include "common/transport.h"

namespace flame {

class BrokerServer final : private Outbox {
 public:
  // Binds both endpoints (throws zmq::error_t if a bind fails). The core's clock is `clock`
  // read once per batch (CachedClock). With `keys` (not owned), both endpoints are CURVE servers
  // whose handshakes the ZAP handler checks (bound in `ctx` before this), and every message
  // reaches the core with the key it was authenticated with.
  BrokerServer(zmq::context_t& ctx, BrokerOptions options, const Clock& clock, const KeyRing* keys = nullptr);
  ~BrokerServer() override;

  // The endpoints actually bound (a "*" port resolved).
  const std::string& clientsEndpoint() const { return clientsEndpoint_; }
  const std::string& runnersEndpoint() const { return runnersEndpoint_; }

  BrokerCore& core() { return core_; }

  // What runs on the loop beside the core (the scaler, the orphan sweep). All optional.
  struct Hooks {
    std::function<void(Reactor&)> setup;   // before serving: add timers of your own
    std::function<void()> onTick;          // after every turn of the loop
    std::function<TimePoint()> nextWakeup; // when onTick next has work (the loop sleeps until then)
    std::function<void()> onStopped;       // the work has ended: queue last messages (drains)
  };
  // Serves until stopped (see stop()). The loop sleeps until a message arrives or the earliest
  // of the core's and the hooks' deadlines, exactly (a Reactor timer). Everything the core
  // emitted, including what onStopped queued, is sent before it returns.
  void run(const Hooks& hooks = {});
  // Thread-safe and cheap (an atomic and one write(2)). The first call begins a clean shutdown
  // (BrokerCore::beginShutdown: new work refused, queued work answered, running work finishes
  // within the grace); run() returns once no job is left. A second call ends what is left at
  // once (answered shuttingDown) and run() returns.
  void stop();
  // Thread-safe: as two stop() calls.
  void stopNow();
  // Thread-safe. Makes the loop come round (run its timers and onIdle) now.
  void wake();

 private:
  // Outbox: messages are queued and sent in one burst by flush() at the end of each batch
  // (send_queue.h says why).
  SendStatus toClient(const std::string& client, zmq::message_t header, zmq::message_t* payload,
                      JobId dispatch) override;
  SendStatus toRunner(const std::string& routingId, zmq::message_t header, zmq::message_t* payload,
                      JobId dispatch) override;
  void readClients();
  void readRunners();
  void flush();
  SendStatus send(const SendQueue::Message& m, zmq::message_t* frames);

  BrokerOptions options_;
  bool authenticated_;  // CURVE: messages carry their peer's key
  CachedClock loopClock_;  // the core's clock: read once per batch (common/clock.h)
  zmq::socket_t clients_;
  zmq::socket_t runners_;
  int wakeFd_ = -1;  // an eventfd: wake() is one write, from any thread
  std::string clientsEndpoint_;
  std::string runnersEndpoint_;
  std::atomic<int> stopRequests_{0};
  DecodeLimits limits_;
  BrokerCore core_;
  Frames frames_;      // reused receive buffer
  SendQueue outgoing_;
  SendQueue::Send send_;
  SendQueue::Undeliverable undeliverable_;
};

}  // namespace flame
