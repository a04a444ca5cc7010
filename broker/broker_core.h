// BrokerCore: the broker's whole state machine, with no sockets. It takes decoded messages
// and the time from a Clock, and emits messages through an Outbox. The socket loop
// (BrokerServer) and the unit tests (with a ManualClock and a recording Outbox) drive it.
//
// Not thread-safe: one thread (the socket loop) calls everything.
#pragma once

#include <zmq.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/deadline_heap.h"
#include "broker/id_map.h"
#include "broker/job.h"
#include "broker/job_table.h"
#include "broker/key_ring.h"
#include "broker/options.h"
#include "broker/pool.h"
#include "broker/scaler_port.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/transport.h"

namespace flame {

// Where BrokerCore's messages go. `header` is an encoded Envelope; `payload` (may be null) is
// moved from when the send succeeds. Unreachable means that peer is gone. `dispatch` names the
// job whose dispatch the message is part of (the runner's `job`, the client's `placed`), 0 for
// any other message.
//
// An Outbox may also accept a message now (Ok) and send it later (BrokerServer batches a loop
// iteration's sends): if a runner message then turns out undeliverable, it tells the core with
// BrokerCore::onUndeliverable().
class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual SendStatus toClient(const std::string& client, zmq::message_t header, zmq::message_t* payload,
                              JobId dispatch) = 0;
  virtual SendStatus toRunner(const std::string& routingId, zmq::message_t header, zmq::message_t* payload,
                              JobId dispatch) = 0;
};

// Hooks for the scaler: it is told about lifecycle events and decides on admissions.
class BrokerListener {
 public:
  virtual ~BrokerListener() = default;
  // A runner sent ready on a connection authenticated with `key` (empty without CURVE). Return
  // an error code (Unauthorized) to refuse it, None to admit.
  virtual ErrorCode admitRunner(const msg::Ready& ready, std::string_view key) { return ErrorCode::None; }
  virtual void runnerJoined(const RunnerState& runner) {}
  virtual void runnerLeft(const RunnerState& runner, const std::string& why) {}
  // A job was queued or a slot freed: demand may have changed.
  virtual void demandChanged(const Pool& pool) {}
  // A runner finished a job (any outcome).
  virtual void jobFinished(const RunnerState& runner) {}
  // Adds what the listener knows (booting machines, limits) to a pool's status.
  virtual void describe(const Pool& pool, msg::PoolStatus& status) const {}
  // A client asked to change a pool's limits. Returns None or an error code with `why` set.
  virtual ErrorCode setPool(const msg::SetPool& request, std::string& why) {
    why = "pool '" + request.pool + "' has no scaler (it is not declared in the config file)";
    return ErrorCode::UnknownPool;
  }
};

class BrokerCore final : public ScalerPort {
 public:
  BrokerCore(BrokerOptions options, const Clock& clock, Outbox& outbox);
  ~BrokerCore() override;

  // Not owned; nullptr restores the no-op listener.
  void setListener(BrokerListener* listener) { listener_ = listener ? listener : &noListener_; }
  // CURVE is on: keys are identities (docs/SECURITY.md, "Authorization"). A client's work is its
  // key's: stopChild only from that key or an admin key, setPool only from an admin key. A static
  // pool takes only runners with a runner key. Not owned; nullptr = no authorization (plaintext).
  void setKeyRing(const KeyRing* keys) { keys_ = keys; }
  // The key lists were re-read: connections of keys no longer listed get `unauthorized` for every
  // further request (their running work finishes), and static runners of such keys are drained.
  void keysReloaded();

  // Declares a pool (config file or scaler). Redeclaring updates its settings.
  void declarePool(const std::string& name, const PoolSettings& settings) override;

  // A decoded message from a client connection; `payload` is its payload frame (empty if none).
  // `key`: the key the connection was authenticated with (CURVE; see setKeyRing), else empty.
  void onClient(const std::string& client, Message&& message, zmq::message_t payload, std::string_view key = {});
  // A client message that could not be decoded: answered with an error, logged.
  void onClientInvalid(const std::string& client, ErrorCode code, const std::string& why, uint64_t requestId);
  // A decoded message from a runner connection.
  void onRunner(const std::string& routingId, Message&& message, zmq::message_t payload, std::string_view key = {});
  void onRunnerInvalid(const std::string& routingId, ErrorCode code, const std::string& why);
  // Messages the Outbox had accepted for connection `routingId` could not be delivered (the
  // connection is gone): `undelivered` are the jobs they dispatched, in dispatch order. Those
  // never reached the runner, so they go back to the head of the queue (no retry used up); the
  // runner is removed as lost, with `why`. A connection no runner uses any more is ignored.
  void onUndeliverable(const std::string& routingId, const std::vector<JobId>& undelivered, const std::string& why);

  // Expires deadlines, sends heartbeats, detects dead runners and clients. Call whenever the
  // clock may have reached nextWakeup() (the socket loop calls it on every iteration).
  void tick();
  // When tick() next has work to do.
  TimePoint nextWakeup() const;

  // ScalerPort: what the scaler may ask (scaler_port.h).
  bool drainRunner(const std::string& runnerId, Duration grace, const std::string& why) override;
  bool dropRunner(const std::string& runnerId, const std::string& why) override;
  void failQueued(const std::string& pool, ErrorCode code, const std::string& message) override;
  PoolView view(const Pool& pool) const override;
  void publish(msg::Event event) override;

  // Clean shutdown (SIGTERM). From now on submits and new runners are refused with
  // shuttingDown; queued jobs are answered shuttingDown at once; children are stopped (their
  // placers hear childExited shuttingDown); running calls and casts may finish until
  // options().shutdownGrace, after which tick() answers what is left shuttingDown and cancels it
  // on its runner. Runners are drained unless options().keepRunnersOnShutdown (a successor
  // broker re-adopts them). Idempotent.
  void beginShutdown();
  // Ends at once what beginShutdown() would have let finish (a second SIGTERM, or the grace is
  // over): every job still held is answered shuttingDown and cancelled on its runner.
  void abortAll(const std::string& why);
  bool shuttingDown() const override { return shuttingDown_; }
  // True once shutdown began and no job is left (every request answered, every slot back).
  bool shutdownComplete() const { return shuttingDown_ && jobs_.size() == 0; }

  msg::StatusReply status(uint64_t requestId) const;

  // Introspection for tests and the scaler.
  const Pool* findPool(const std::string& name) const override;
  Pool* findPool(const std::string& name);
  const RunnerState* findRunner(const std::string& runnerId) const override;
  RunnerState* findRunner(const std::string& runnerId);
  const Job* findJob(JobId id) const;
  size_t jobCount() const { return jobs_.size(); }
  size_t clientSessionCount() const { return sessions_.size(); }
  size_t subscriptionCount() const { return subscriptions_.size(); }
  const BrokerOptions& options() const { return options_; }
  uint64_t instance() const { return instance_; }

 private:
  struct ClientSession {
    TimePoint lastSeen{};
    std::string key;       // CURVE: the key of its connection (set by its first message)
    bool revoked = false;  // that key was removed from the lists (keysReloaded)
    IdMap requests;  // outstanding request id -> job
    uint32_t linked = 0;                            // how many of them are linked
    uint32_t subscriptions = 0;                     // event subscriptions it holds
  };
  // An event subscription (`subscribe`): events of `pool` (empty: all) go to `client`, tagged
  // with `requestId`, while the client is alive.
  struct Subscription {
    std::string client;
    uint64_t requestId = 0;
    std::string pool;
  };

  void handleSubmit(const std::string& client, ClientSession& session, msg::Submit& submit, zmq::message_t payload);
  void handleCancel(const std::string& client, ClientSession& session, const msg::Cancel& cancel);
  void handleStopChild(const std::string& client, const msg::StopChild& stop, std::string_view key);
  void handleSubscribe(const std::string& client, ClientSession& session, const msg::Subscribe& subscribe);
  // Ends `client`'s subscriptions (all of them, or the one of `requestId`); how many ended. With
  // `tell`, each ended one is answered `error cancelled` with that text.
  size_t unsubscribe(const std::string& client, ClientSession& session, std::optional<uint64_t> requestId,
                     const std::string& tell = {});
  // An event about `runner` (its pool, id) with `message`.
  void publishRunner(EventKind kind, const RunnerState& runner, std::string message);
  void handleReady(const std::string& routingId, msg::Ready& ready, std::string_view key);
  // CURVE: a message may be served only on a session of one unrevoked key (else it is answered
  // `unauthorized`); the first message sets the session's key.
  bool authorizedSession(const std::string& client, ClientSession& session, const Message& message,
                         std::string_view key);
  // Matches what a (re-)registering runner says it holds with what this broker assigned it.
  // `newConnection`: the ready came on another connection than the jobs assigned so far.
  void reconcile(RunnerState& runner, const msg::Ready& ready, bool newConnection);
  // Puts a job that waits in the queue (a retry) back on `runner`, which still runs it.
  void attach(Job& job, RunnerState& runner);
  // A running job whose runner no longer has it (lost with the runner or its connection):
  // retried if idempotent with retries left, else answered `code` and finished.
  void loseJob(Job& job, ErrorCode code, const std::string& message);
  // A job that failed with `code` runs again if it asked for retries of that failure, has some
  // left, and nobody had its answer yet (and the broker is not shutting down).
  bool wantsRetry(const Job& job, ErrorCode code) const;
  // Schedules a retry (counted, published, logged): requeued now or Delayed until its backoff ends.
  void scheduleRetry(Job& job, ErrorCode code, const std::string& why);
  // The run budget of a running job ran out and it asked for timeout retries: a new job takes
  // over its request (the runner may still hold this one until its cancel lands). False: no retry.
  bool retryTimedOut(Job& job);
  // Delayed jobs whose backoff ended go back to the head of their queue.
  void releaseRetries(TimePoint now);
  msg::Welcome welcome() const;
  // The loop was not running for a while (see tick()): peers' silence during it does not count.
  void creditStall(TimePoint now);
  void handleJobDone(RunnerState& runner, const msg::JobDone& done, zmq::message_t payload);
  void handleLeaving(RunnerState& runner, const msg::Leaving& leaving);
  // Asks a runner to drain (finish in-flight work, then exit); it takes no new job from now.
  void drain(RunnerState& runner, Duration grace, const std::string& why);
  // The runner takes no new job (drained, or leaving by itself).
  void setDraining(RunnerState& runner, const std::string& why);
  void failQueued(Pool& pool, ErrorCode code, const std::string& message);

  Pool& ensurePool(const std::string& name);
  void dispatch(Pool& pool);
  bool sendJob(RunnerState& runner, Job& job);
  void requeue(Job& job);
  // Moves a job's deadline (TimePoint::max(): none), keeping the deadline heap's count right.
  void setDeadline(Job& job, TimePoint deadline);
  // Gives a waiting job's payload its own buffer (see the .cpp).
  void ownPayload(Job& job);
  // Removes the job everywhere and frees its slot. The job reference dies.
  void finish(Job& job);
  // Gives `job`'s slot back to its runner (job.runner, which must be set) and detaches it.
  void freeSlot(Job& job);
  void removeRunner(RunnerState& runner, ErrorCode code, const std::string& why);
  void expireDeadlines(TimePoint now);
  void sweepPeers(TimePoint now);
  void clientGone(const std::string& client, ClientSession& session);
  void cancelRunning(Job& job);
  void stopQueuedChild(Job& job);

  // Client answers. `answer*` mark the job answered; a job already answered is not answered twice.
  void answerError(Job& job, ErrorCode code, const std::string& message);
  void replyError(const std::string& client, uint64_t requestId, ErrorCode code, const std::string& message, JobId job = 0);
  void notifyStopWaiters(JobId child);
  // The client that placed `job` (a child) is connected: it gets `childExited`, linked or not.
  bool placerConnected(const Job& job) const;
  template <class M>
  SendStatus sendClient(const std::string& client, const M& m, zmq::message_t* payload = nullptr, JobId dispatch = 0);
  template <class M>
  SendStatus sendRunner(RunnerState& runner, const M& m, zmq::message_t* payload = nullptr);

  BrokerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  const Clock& clock_;
  Outbox& outbox_;
  BrokerListener* listener_ = nullptr;
  BrokerListener noListener_;
  const KeyRing* keys_ = nullptr;

  std::unordered_map<std::string, std::unique_ptr<Pool>> pools_;
  std::unordered_map<std::string, std::unique_ptr<RunnerState>> runners_;  // by runner id
  std::unordered_map<std::string, RunnerState*> byRouting_;
  JobTable jobs_;
  std::unordered_map<std::string, ClientSession> sessions_;
  std::unordered_map<JobId, std::vector<std::string>> stopWaiters_;  // child -> clients awaiting `stopped`
  std::vector<Subscription> subscriptions_;
  uint64_t eventSeq_ = 0;  // the last event's number
  DeadlineHeap deadlines_;
  DeadlineHeap retryTimers_;  // (retryAt, job) of Delayed jobs; stale entries are skipped
  std::mt19937_64 random_;    // retry jitter
  size_t timedJobs_ = 0;  // jobs with a finite deadline (to know when the heap is mostly stale)
  uint64_t instance_;  // random per run, sent in heartbeats
  uint64_t nextRunnerSeq_ = 1;
  TimePoint nextSweep_{};
  TimePoint lastTick_{};
  bool shuttingDown_ = false;
  TimePoint shutdownDeadline_ = TimePoint::max();
};

}  // namespace flame
