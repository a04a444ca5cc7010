// Scaler: boots and stops a pool's machines from the broker's own state (queue depth, free
// and booting slots, idle timers). See docs/SCALER.md for the lifecycle and every rule.
//
// Runs on the broker's loop thread: it is a BrokerListener of the core, sees the broker only
// through ScalerPort (const views; drain, drop and fail-queued requests), and is driven by
// tick(), which the loop calls when nextWakeup() is due or something happened. It does not scan
// runners on every turn: demand changes mark a pool for a growth check (O(1) from the core's
// counts), and the walks over machines and idle runners run at the deadlines they computed
// (boot and drain timeouts, idle timers) or at most every second. Backend calls run on each
// pool's BackendExecutor; their results are queued and applied by the next tick() (the `wake`
// callback makes the loop come round).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "broker/backend_executor.h"
#include "broker/broker_core.h"
#include "broker/config.h"
#include "broker/metrics.h"
#include "common/liveness.h"

namespace flame {

class Scaler final : public BrokerListener {
 public:
  // `runnerEndpoint` is what booted runners connect to (FLAME_BROKER).
  Scaler(ScalerPort& broker, const Clock& clock, std::string brokerId, std::string runnerEndpoint);
  ~Scaler() override;

  // Manages `pool` (declares it in the core). Call before the loop runs.
  void addPool(const PoolConfig& config, std::unique_ptr<Backend> backend, std::unique_ptr<BackendExecutor> executor);

  // Boot tokens are derived from `secret` (broker/boot_token.h), so a successor broker with the
  // same broker id and secret can verify the runners this one boots. Until `adoptUntil`, a
  // runner this scaler did not boot but whose token verifies is re-adopted: it keeps its machine
  // and its work, and the orphan sweep waits until then. Without this call the secret is random
  // (nothing can be re-adopted). Call before the loop runs.
  void setTokenSecret(std::string secret, TimePoint adoptUntil);
  // CURVE (not owned; nullptr = off): every booted runner gets a key pair derived for its id
  // (FLAME_SECRET_KEY, with the broker's key in FLAME_SERVER_KEY), authorized in `keys` until its
  // machine is forgotten; a runner is admitted only with the key of its id; a static pool only
  // takes runners with a runner_keys key. Call before the loop runs.
  void setKeyRing(KeyRing* keys) { keys_ = keys; }

  // Called from any thread after a backend result was queued; should wake the loop.
  void setWake(std::function<void()> wake) { wake_ = std::move(wake); }

  // Applies backend results, then makes every decision that is due. Loop thread only.
  void tick();
  // When tick() next has something to do (TimePoint::max() if only events can start work).
  TimePoint nextWakeup() const;
  // Lists every backend's machines and stops those that are not runners we know (orphans).
  // Does nothing during the adoption window (setTokenSecret).
  void sweepOrphans();
  // Broker shutdown: drains runners and stops every machine through the backend, waiting for
  // the backend work to finish; with `keepMachines`, leaves them for a successor to re-adopt.
  // The drains are only queued in the core's outbox: the caller flushes them after this.
  void shutdown(bool keepMachines = false);

  const PoolLimits* limits(const std::string& pool) const;
  // Boot times of `pool` (nullptr if the scaler does not manage it), for metrics. Loop thread.
  const metrics::Histogram* bootSeconds(const std::string& pool) const;

  // BrokerListener
  ErrorCode admitRunner(const msg::Ready& ready, std::string_view key) override;
  void runnerJoined(const RunnerState& runner) override;
  void runnerLeft(const RunnerState& runner, const std::string& why) override;
  void demandChanged(const Pool& pool) override;
  void jobFinished(const RunnerState& runner) override;
  void describe(const Pool& pool, msg::PoolStatus& status) const override;
  ErrorCode setPool(const msg::SetPool& request, std::string& why) override;

 private:
  // A machine's life as the scaler sees it. While Running, its runner's own state (ready,
  // draining) is the core's: the scaler reads it, and only remembers when it asked for a drain.
  enum class Phase { Booting, Running, Stopping };
  struct Machine {
    std::string runnerId;
    MachineHandle handle;
    bool hasHandle = false;  // boot() returned
    Phase phase = Phase::Booting;
    TimePoint since{};       // when the phase began
    TimePoint drainDeadline = TimePoint::max();  // we asked its runner to drain: stop it by then
    bool stopPosted = false;
    bool adopted = false;    // booted by a previous broker run; its handle comes from list()
  };
  struct Managed {
    PoolConfig config;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<BackendExecutor> executor;
    std::map<std::string, Machine> machines;  // by runner id
    uint32_t consecutiveFailures = 0;
    // Between boots while they fail: 500 ms doubling to 30 s, exact (no jitter: one scaler per
    // pool, nothing to de-synchronize), reset by a runner that registers.
    Backoff bootBackoff{Duration(500), Duration(30'000), 0.0};
    TimePoint nextBootAt{};
    std::string lastBootError;
    bool failWaiting = false;  // a boot just failed: fail waiting jobs if nothing else can run them
    bool lastFailurePermanent = false;  // the last boot failure was not retryable
    uint32_t booting = 0;       // machines in Phase::Booting
    uint64_t boots = 0, bootFailures = 0;  // counters for status
    metrics::Histogram bootSeconds = metrics::bootHistogram();  // boot() -> its runner's ready
    bool demand = true;         // demand changed since the last growth check
    // A min runner was drained by min_idle_shutdown_after: the pool stays below min while idle
    // (as FLAME's), and min is restored with the next waiting job.
    bool idledBelowMin = false;
    TimePoint nextGrowth = TimePoint::max();    // a growth check is due (the boot backoff ends)
    TimePoint nextTimeouts = TimePoint::max();  // earliest boot or drain timeout
    TimePoint nextIdleWalk{};                   // when idle runners are next looked at
    bool needsHandles = false;  // adopted machines wait for a list() to learn their handles
  };

  void tickPool(Managed& pool, TimePoint now);
  void grow(Managed& pool, const Pool& p, TimePoint now);
  void checkTimeouts(Managed& pool, TimePoint now);
  void shrinkIdle(Managed& pool, const Pool& p, TimePoint now);
  void setPhase(Managed& pool, Machine& machine, Phase phase, TimePoint now);
  void forget(Managed& pool, const std::string& runnerId);
  void reapExited(Managed& pool, TimePoint now);
  void boot(Managed& pool, TimePoint now);
  // `permanent`: the backend says retrying cannot help (a rejected image, bad credentials).
  void bootFailed(Managed& pool, const std::string& runnerId, const std::string& why, TimePoint now,
                  bool permanent = false);
  void stopMachine(Managed& pool, Machine& machine, const std::string& why);
  void post(Managed& pool, std::function<void()> backendWork);
  // Lists the pool's machines: fills in the handles of adopted machines and, with
  // `stopOrphans`, stops machines no runner of ours owns.
  void listMachines(Managed& pool, bool stopOrphans);
  std::string bootToken(const std::string& pool, const std::string& runnerId) const;
  CurveKeyPair runnerKeys(const std::string& pool, const std::string& runnerId) const;
  void complete(std::function<void()> onLoop);
  Managed* managedFor(const std::string& pool);

  ScalerPort& broker_;
  const Clock& clock_;
  std::string brokerId_;
  std::string runnerEndpoint_;
  std::function<void()> wake_;
  std::map<std::string, std::unique_ptr<Managed>> pools_;
  TimePoint nextReap_{};
  std::string tokenSecret_;
  KeyRing* keys_ = nullptr;
  TimePoint adoptUntil_ = TimePoint::min();

  std::mutex completionsMutex_;
  std::vector<std::function<void()>> completions_;  // run on the loop thread by tick()
};

}  // namespace flame
