// ClientCore: flame::Client's protocol state machine (docs/PROTOCOL.md, client side) with no
// sockets and no threads, like BrokerCore. It keeps the pending-request table and its local
// deadlines, heartbeats while work is outstanding, decides when the broker is gone (Liveness)
// or restarted, admits payloads against the broker's limit, watches placed children (linked ones,
// and unlinked ones placed with an onExit), keeps event subscriptions, and says goodbye on
// shutdown. It takes requests, the broker's messages, "writable" and the time from a
// Clock, and emits through a ClientEffects: messages for the broker and the answers to deliver.
//
// The rules it implements are those of client/client.h ("Deadlines and liveness"). flame::Client
// is the socket shell around it; tests drive it with a ManualClock and a recording port.
//
// Not thread-safe: one thread calls everything. Handlers (AnswerHandler, ExitCallback,
// EventHandler, EndHandler) run inside the call that resolved them, through
// ClientEffects::deliver/exited/event/ended, and may call submit() (a completion that starts the
// next request, an event handler that unsubscribes); every other method must not be re-entered.
#pragma once

#include <zmq.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/client.h"
#include "client/pending.h"
#include "common/clock.h"
#include "common/liveness.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/transport.h"

namespace flame {

// Where ClientCore's output goes. flame::Client sends to its DEALER and runs the handlers;
// tests record. Interface only.
class ClientEffects {
 public:
  virtual ~ClientEffects() = default;
  // Offers one message for the broker: `count` frames = [empty delimiter][header][payload?]. Ok:
  // taken (the frames are moved from). Anything else: not taken now, frames untouched; the core
  // keeps the message (in order, ahead of anything later) and offers it again on onWritable().
  virtual SendStatus send(zmq::message_t* frames, size_t count) = 0;
  // True while the core holds messages the connection did not take: the shell should call
  // onWritable() when it can take output again.
  virtual void wantWritable(bool want) = 0;
  // Runs a request's handler with its answer (exactly once per request).
  virtual void deliver(AnswerHandler& done, Answer answer) = 0;
  // Runs a watched child's exit callback (exactly once per child): nullopt = returned normally.
  virtual void exited(ExitCallback& onExit, uint64_t childId, std::optional<Failure> why) = 0;
  // Runs a subscription's event handler (once per event) and its end handler (once).
  virtual void event(EventHandler& onEvent, const msg::Event& event) = 0;
  virtual void ended(EndHandler& onEnd, Failure why) = 0;
  // Replaces the connection with a fresh one (another handshake): libzmq never retries a
  // handshake the broker refused (common/handshake_monitor.h). Whatever the old one held is dropped.
  virtual void reconnect() = 0;
};

struct ClientCoreOptions {
  std::string broker;  // the broker's endpoint, for log lines only
  // Our heartbeat interval while work is outstanding (the broker's, when its heartbeat answer
  // says a smaller one), and how many intervals of silence mean "broker gone". Raised to at
  // least 1 ms and 1.
  Duration heartbeatInterval{1000};
  uint32_t liveness = 3;
  // After the broker refused the handshake: the first new attempt (reconnect()) after `min`,
  // doubling up to `max` while refusals go on (a key added to the broker's allow-list is picked
  // up within `max`).
  Duration handshakeRetryMin{500};
  Duration handshakeRetryMax{10000};
};

// A request made through the API, encoded (on the caller's thread) and not yet seen by the core.
struct ClientRequest {
  uint64_t requestId = 0;  // unique per client; carried in the header
  // kind, link, childId (stop), done, onExit (place). deadline/timeout are set by submit().
  PendingRequest pending;
  // Local deadline budget from submit(): kInfinite = none. Calls get wait + timeout, places
  // wait, each + 2 x heartbeatInterval (see clientDeadlineBudget); stop, status, setPool their own.
  Duration budget = kInfinite;
  Duration timeout{0};  // the caller's timeout, for the expiry message
  zmq::message_t header;                 // the encoded envelope
  std::optional<zmq::message_t> payload;  // submits only (always sent, possibly empty)
  // Subscribe only: kept by the core once the request is taken.
  EventHandler onEvent;
  EndHandler onEnd;
};

// The local safety deadline of a submit (CallOptions): a call's wait + run budget, a place's
// wait (it is answered once placed), + 2 x heartbeatInterval, when those are finite and non-zero;
// kInfinite otherwise (0 = the pool's default, unknown here: liveness bounds it). Casts get none
// (accepted at once). A call that may be retried (retriesPossible) must not fail here before the
// broker's retries are done: (retries + 1) x (wait + run) + the backoff delays, each
// min(retryBackoffMax, retryBackoff x 2^i) for i in 0 .. retries-1 (uncapped when the max is the
// pool's), + the slack; kInfinite when retryBackoff is 0 (the pool's, unknown here).
Duration clientDeadlineBudget(Mode mode, const CallOptions& options, Duration heartbeatInterval);
// The broker may run the work more than once: a call or cast with idempotent or a retry flag.
bool retriesPossible(Mode mode, const CallOptions& options);

// Requests as the API builds them (thread-safe: they only encode). `heartbeatInterval` is
// ClientOptions::heartbeatInterval (the deadline slack of calls and places).
ClientRequest submitRequest(uint64_t requestId, Mode mode, std::string_view pool, std::string_view function,
                            std::string_view payload, const CallOptions& options, Duration heartbeatInterval,
                            AnswerHandler done, ExitCallback onExit = {});
// stop, status and setPool fail past `timeout` (kInfinite: never).
ClientRequest stopRequest(uint64_t requestId, uint64_t childId, Duration timeout, AnswerHandler done);
ClientRequest statusRequest(uint64_t requestId, Duration timeout, AnswerHandler done);
ClientRequest setPoolRequest(uint64_t requestId, std::string_view pool, const PoolLimitsUpdate& update,
                             Duration timeout, AnswerHandler done);
// Subscribes to the broker's events of `pool` (empty: every pool). `done` gets msg::Subscribed,
// or a failure (unknown_pool; broker_unreachable past `timeout`), and only after `subscribed`
// do `onEvent` (each event) and `onEnd` (once, when it ends) run.
ClientRequest subscribeRequest(uint64_t requestId, std::string_view pool, Duration timeout, AnswerHandler done,
                               EventHandler onEvent, EndHandler onEnd);
// Ends subscription `subscriptionId` (a no-op if it already ended): see ClientCore::submit.
ClientRequest unsubscribeRequest(uint64_t subscriptionId);

class ClientCore {
 public:
  // `clock` and `port` are not owned and must outlive the core.
  ClientCore(ClientCoreOptions options, const Clock& clock, ClientEffects& port);
  ~ClientCore();
  ClientCore(const ClientCore&) = delete;
  ClientCore& operator=(const ClientCore&) = delete;

  // Starts a request: it is answered exactly once (by the broker, its local deadline, a liveness
  // failure, a broker restart or shutdown). After shutdown() it is answered shutting_down at
  // once. Payloads over the broker's known limit fail payload_too_large without being sent;
  // payloads over 1 MiB wait for that limit (the first heartbeat answer).
  //
  // Subscriptions (subscribeRequest): once `subscribed` answered the request, every `event` with
  // its id goes to onEvent, and the subscription lasts, heartbeating like any outstanding work,
  // until it ends: the caller's unsubscribeRequest (`cancelled`; a `cancel` goes to the broker),
  // an error from the broker naming it, a silent broker or refused handshake, a broker restart
  // (`broker_unreachable`: the new run knows no subscription), or shutdown (`shutting_down`);
  // onEnd then runs once. An unsubscribe is never answered.
  void submit(ClientRequest request);

  // One message from the broker as received: [empty delimiter][header][payload?]; `truncated`:
  // it had more frames than were kept. Anything heard is a sign of life, even bytes that do not
  // decode (those are dropped with a warning).
  void onBrokerFrames(Frames& frames, bool truncated);
  // A decoded broker message and its payload frame (nullptr if none).
  void onMessage(Message& message, zmq::message_t* payload);

  // The broker refused the connection's handshake (an unknown key, CURVE on one side only, a
  // wrong server key: common/handshake_monitor.h); `why` says which, for the caller. Every
  // outstanding request fails at once with `unauthorized: <why>` (watched children are reported
  // exited so), and so does every request submitted until a handshake succeeds. A fresh
  // connection is tried after handshakeRetryMin, backing off to handshakeRetryMax.
  void onHandshakeRefused(const std::string& why);
  // A handshake succeeded: a refusal is over (requests go to the broker again).
  void onHandshakeSucceeded();
  // The refusal in force (the text requests fail with), if any.
  const std::optional<std::string>& refusal() const { return refusal_; }

  // The connection may take output again: offers the queued messages.
  void onWritable();
  // Expires local deadlines, detects a silent broker, sends heartbeats. Call when the clock has
  // reached nextWakeup() (calling it early is harmless).
  void tick();
  // When tick() next has work to do (including the next handshake attempt after a refusal);
  // TimePoint::max() when idle. (Not const: it drops answered
  // requests' stale deadlines on the way.)
  TimePoint nextWakeup();

  // Between beginBurst() and endBurst() messages are queued instead of offered, and endBurst()
  // offers them all at once: the shell brackets a batch of input (a burst of results whose
  // completions issue the next calls) so the connection is woken once per batch, not once per
  // message. Nothing else changes: a queued message is still "never sent" for its deadline.
  void beginBurst() { holding_ = true; }
  void endBurst();

  // ~Client: cancels outstanding linked calls and places that reached the connection and stops
  // linked children (only what the connection takes now: best effort, never queued), then fails
  // every request with shutting_down and reports every watched child exited with shutting_down
  // (an unlinked child is not stopped: its message says it keeps running, unwatched).
  // Refuses later submits. Returns true if goodbyes were sent (the shell lingers for them).
  bool shutdown();

  // Introspection (tests, logs).
  bool outstanding() const { return !pending_.empty() || !children_.empty() || !subscriptions_.empty(); }
  size_t subscriptionCount() const { return subscriptions_.size(); }  // confirmed or not
  size_t pendingCount() const { return pending_.size(); }
  size_t watchedChildCount() const { return children_.size(); }
  size_t linkedChildCount() const;
  size_t queuedCount() const { return outbox_.size(); }   // waiting for the connection
  size_t parkedCount() const { return parked_.size(); }   // waiting for the payload limit
  Duration heartbeatInterval() const { return interval_; }
  uint64_t maxPayload() const { return maxPayload_; }
  const Liveness& liveness() const { return liveness_; }
  bool isShutDown() const { return shutDown_; }

 private:
  struct Outgoing {
    uint64_t requestId = 0;  // 0 for messages that belong to no request
    std::array<zmq::message_t, 3> frames;  // [delimiter][header][payload?]
    uint8_t count = 0;
    size_t payloadSize() const { return count > 2 ? frames[2].size() : 0; }
  };

  void on(msg::Result& m, zmq::message_t* payload);
  void on(msg::Error& m, zmq::message_t* payload);
  void on(msg::Accepted& m, zmq::message_t* payload);
  void on(msg::Placed& m, zmq::message_t* payload);
  void on(msg::ChildExited& m, zmq::message_t* payload);
  void on(msg::Stopped& m, zmq::message_t* payload);
  void on(msg::StatusReply& m, zmq::message_t* payload);
  void on(msg::Heartbeat& m, zmq::message_t* payload);
  void on(msg::Subscribed& m, zmq::message_t* payload);
  void on(msg::Event& m, zmq::message_t* payload);
  template <class T>
  void on(T& m, zmq::message_t* payload);

  // Offers `frames` now if nothing is queued ahead; else (or if refused) queues it when
  // `queueIfBlocked`, drops it otherwise.
  void send(Outgoing&& message, bool queueIfBlocked);
  void send(const Message& message, bool queueIfBlocked);
  void flush();
  // Removes a request's message from the outbox or the parked list. True if it was there
  // (it never reached the connection).
  bool dropUnsent(uint64_t requestId);
  // False if a submit's payload may not be offered now: refused (answered payload_too_large) or
  // parked until the limit is known.
  bool admitPayload(Outgoing& message);
  // Work is about to become outstanding: silence counts from now (see the .cpp).
  void beginWork(TimePoint now);
  void heartbeatIfDue(TimePoint now);
  void handle(Message& message, zmq::message_t* payload);
  void complete(PendingRequest& request, Answer answer);
  // A placed child whose exit the client waits for (see the .cpp, on(msg::Placed&)).
  struct WatchedChild {
    ExitCallback onExit;  // may be empty for a linked child (watched to be stopped at shutdown)
    bool link = false;
  };
  void exitChild(uint64_t childId, WatchedChild& child, std::optional<Failure> why);
  // Fails every request, child and subscription; subscriptions with `subscriptions` if given.
  void failEverything(const Failure& failure, const Failure* subscriptions = nullptr);
  void cancelSubscription(uint64_t subscriptionId);
  Failure expiryOf(const PendingRequest& request) const;

  const ClientCoreOptions options_;
  const Clock& clock_;
  ClientEffects& port_;
  std::shared_ptr<spdlog::logger> log_;

  PendingTable pending_;
  std::deque<Outgoing> outbox_;  // not yet taken by the connection, in order
  std::deque<Outgoing> parked_;  // large submits waiting for the broker's payload limit
  uint64_t maxPayload_ = 0;      // the broker's payload limit, from its heartbeats; 0 = unknown
  std::unordered_map<uint64_t, WatchedChild> children_;  // childId -> how to report its exit
  struct Subscription {
    EventHandler onEvent;
    EndHandler onEnd;
    bool confirmed = false;  // `subscribed` arrived: events flow, onEnd is owed
  };
  std::unordered_map<uint64_t, Subscription> subscriptions_;  // by the subscribe's requestId
  Duration interval_;  // heartbeat interval: ours, or the broker's if smaller
  Liveness liveness_;
  bool busy_ = false;  // work was outstanding at the last check (heartbeats and liveness run)
  bool wantWritable_ = false;
  bool holding_ = false;  // inside beginBurst()/endBurst()
  bool shutDown_ = false;
  std::optional<std::string> refusal_;       // set while the broker refuses our handshake
  TimePoint handshakeRetryAt_ = TimePoint::max();  // when to try a fresh connection, while refused
  Backoff handshakeRetry_;
  std::optional<TimePoint> lastHeartbeat_;  // last heartbeat sent (none yet: the first is due at once)
  uint64_t brokerInstance_ = 0;  // from the broker's heartbeats; a change means it restarted
};

}  // namespace flame
