// Fault injectors of the chaos suite, one small class per kind of fault. Each one picks a
// target with the driver's seeded RNG, injects the fault at once and heals it later (restart,
// SIGCONT, link up) when tick() finds its time has come; healAll() ends every fault now.
//
// Threading: used by the driver's main thread only, like the Cluster they act on.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/chaos/cluster.h"

namespace flame::chaos {

using Rng = std::mt19937_64;
using TimePoint = std::chrono::steady_clock::time_point;

// Prints one line of the fault timeline ("[ 12.3s] RunnerKiller: ...").
using EventLog = std::function<void(const std::string&)>;

class Fault {
 public:
  virtual ~Fault() = default;
  virtual const char* name() const = 0;
  // Injects one fault now. Returns false when no target is eligible (nothing was done).
  virtual bool inject(Rng& rng, TimePoint now) = 0;
  // Heals the faults whose time has come.
  virtual void tick(TimePoint now) = 0;
  // Heals every fault still in effect, now.
  virtual void healAll() = 0;
  size_t injected() const { return injected_; }

 protected:
  size_t injected_ = 0;
};

// Milliseconds uniformly in [lo, hi].
Millis uniformMs(Rng& rng, int64_t lo, int64_t hi);

// Runners that are up, not under any fault and past their quiet time; the injectors leave at
// least `keepUp` of them alone so the pool keeps some capacity.
std::vector<RunnerSlot*> healthyRunners(Cluster& cluster, size_t keepUp, TimePoint now);
// How long a healed runner is left alone.
inline constexpr Millis kRecovery{2500};

// kill -9 of a runner; restarted after a short delay, half of the time with a new runner id.
class RunnerKiller : public Fault {
 public:
  RunnerKiller(Cluster& cluster, EventLog log) : cluster_(cluster), log_(std::move(log)) {}
  const char* name() const override { return "RunnerKiller (kill -9 runner, restart)"; }
  bool inject(Rng& rng, TimePoint now) override;
  void tick(TimePoint now) override;
  void healAll() override;

 private:
  struct Pending { RunnerSlot* slot; TimePoint restartAt; bool newId; };
  void restart(const Pending& p);
  Cluster& cluster_;
  EventLog log_;
  std::vector<Pending> pending_;
};

// SIGSTOP of a runner for longer than the liveness window, then SIGCONT.
class Stopper : public Fault {
 public:
  Stopper(Cluster& cluster, EventLog log) : cluster_(cluster), log_(std::move(log)) {}
  const char* name() const override { return "Stopper (SIGSTOP runner past liveness, SIGCONT)"; }
  bool inject(Rng& rng, TimePoint now) override;
  void tick(TimePoint now) override;
  void healAll() override;

 private:
  struct Pending { RunnerSlot* slot; TimePoint contAt; };
  Cluster& cluster_;
  EventLog log_;
  std::vector<Pending> pending_;
};

// Cuts the veth link of a namespace holding a runner, restores it later.
class LinkCutter : public Fault {
 public:
  LinkCutter(Cluster& cluster, std::vector<NetnsLink*> links, EventLog log)
      : cluster_(cluster), links_(std::move(links)), log_(std::move(log)) {}
  const char* name() const override { return "LinkCutter (veth down, up)"; }
  bool inject(Rng& rng, TimePoint now) override;
  void tick(TimePoint now) override;
  void healAll() override;

 private:
  struct Pending { NetnsLink* link; TimePoint restoreAt; };
  void quiet(NetnsLink* link, TimePoint now);
  Cluster& cluster_;
  std::vector<NetnsLink*> links_;
  EventLog log_;
  std::vector<Pending> pending_;
};

// kill -9 of the broker, restarted after a short delay on the same endpoints.
class BrokerRestarter : public Fault {
 public:
  BrokerRestarter(Cluster& cluster, EventLog log) : cluster_(cluster), log_(std::move(log)) {}
  const char* name() const override { return "BrokerRestarter (kill -9 broker, restart same endpoints)"; }
  bool inject(Rng& rng, TimePoint now) override;
  void tick(TimePoint now) override;
  void healAll() override;
  size_t failedRestarts() const { return failedRestarts_; }

 private:
  void restart();
  Cluster& cluster_;
  EventLog log_;
  std::optional<TimePoint> restartAt_;
  size_t failedRestarts_ = 0;
};

// SIGSTOP of the broker for just past the liveness window, then SIGCONT: on waking, the broker
// finds every runner silent for longer than liveness (each runner, meanwhile, has heard
// nothing either and reconnects).
class BrokerFreezer : public Fault {
 public:
  BrokerFreezer(Cluster& cluster, EventLog log) : cluster_(cluster), log_(std::move(log)) {}
  const char* name() const override { return "BrokerFreezer (SIGSTOP broker past liveness, SIGCONT)"; }
  bool inject(Rng& rng, TimePoint now) override;
  void tick(TimePoint now) override;
  void healAll() override;

 private:
  Cluster& cluster_;
  EventLog log_;
  pid_t frozen_ = -1;
  std::optional<TimePoint> contAt_;
};

}  // namespace flame::chaos
