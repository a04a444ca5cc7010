// What the scaler may see of the broker and ask of it. BrokerCore implements it; the scaler
// reads pools and runners through const views and changes nothing itself: each runner's
// connection lifecycle (ready, draining, lost) is the core's, each machine's (booting, stopping)
// the scaler's. docs/SCALER.md draws the two.
#pragma once

#include <string>

#include "broker/pool.h"
#include "common/clock.h"
#include "common/messages.h"

namespace flame {

// Settings of a pool declared up front (config file) rather than by a runner's ready.
struct PoolSettings {
  Placement placement = Placement::Pack;
  Duration defaultTimeout{30000};
  uint32_t maxQueue = 0;
  bool singleUse = false;  // each runner takes one job in its life, then is drained
  Duration castTimeout = kInfinite;  // a cast's deadline when it sets none (FLAME: none)
  // How long a job may wait for a runner (queue and boot) when it sets no bound (split budgets,
  // and every place). Config default: boot_timeout + 10 s.
  Duration waitTimeout{40000};
  // A retry's first delay (0: at once), doubling per retry up to retry_backoff_max, jittered
  // down by up to 25 %; for jobs that set none (PROTOCOL.md, Retries).
  Duration retryBackoff{0};
  Duration retryBackoffMax{600'000};
};

// A pool's load, in O(1) (the core keeps these counts as things happen).
struct PoolView {
  uint32_t waiting = 0;    // jobs queued
  uint32_t ready = 0;      // runners registered and not draining
  uint32_t draining = 0;   // runners draining
  uint32_t freeSlots = 0;  // free slots of ready runners that can take a job now
};

class ScalerPort {
 public:
  virtual ~ScalerPort() = default;
  // Declares a pool (redeclaring updates its settings).
  virtual void declarePool(const std::string& name, const PoolSettings& settings) = 0;
  // nullptr for an unknown pool / runner. Read-only views, valid until the core next runs.
  virtual const Pool* findPool(const std::string& name) const = 0;
  virtual const RunnerState* findRunner(const std::string& runnerId) const = 0;
  virtual PoolView view(const Pool& pool) const = 0;
  // Asks a runner to finish its work and leave (no new jobs from now). False if unknown.
  // `why` is what subscribers of events read ("idle for 30s").
  virtual bool drainRunner(const std::string& runnerId, Duration grace, const std::string& why) = 0;
  // The runner's machine is gone: forget the runner now (its jobs are lost as on a missed
  // heartbeat) instead of waiting for its liveness to run out. False if unknown.
  virtual bool dropRunner(const std::string& runnerId, const std::string& why) = 0;
  // Fails every job waiting in `pool`'s queue with `code`.
  virtual void failQueued(const std::string& pool, ErrorCode code, const std::string& message) = 0;
  virtual bool shuttingDown() const = 0;
  // Tells the event subscribers (`flame events`) what happened; the core numbers and times it
  // and fills in the pool's runner counts.
  virtual void publish(msg::Event event) {}
};

}  // namespace flame
