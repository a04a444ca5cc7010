#include "broker/scaler.h"

#include <algorithm>
#include <random>

#include "broker/boot_token.h"
#include "common/duration.h"
#include "common/log.h"

namespace flame {

namespace {
constexpr uint32_t kFailuresBeforeBootFailed = 3;
// How often backends are asked for machines that ended by themselves.
constexpr Duration kReapInterval{100};
// Idle runners are looked at by their idle timers, and at least this often (a runner may become
// eligible to stop because of something else: another runner joined, limits changed).
constexpr Duration kIdleWalkMax{1000};

std::string randomHex(size_t bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    auto v = static_cast<unsigned>(rng() & 0xff);
    out.push_back(digits[v >> 4]);
    out.push_back(digits[v & 15]);
  }
  return out;
}

}  // namespace

Scaler::Scaler(ScalerPort& broker, const Clock& clock, std::string brokerId, std::string runnerEndpoint)
    : broker_(broker),
      clock_(clock),
      brokerId_(std::move(brokerId)),
      runnerEndpoint_(std::move(runnerEndpoint)),
      tokenSecret_(randomSecret()) {}

void Scaler::setTokenSecret(std::string secret, TimePoint adoptUntil) {
  tokenSecret_ = std::move(secret);
  adoptUntil_ = adoptUntil;
}

std::string Scaler::bootToken(const std::string& pool, const std::string& runnerId) const {
  return deriveBootToken(tokenSecret_, brokerId_, pool, runnerId);
}

CurveKeyPair Scaler::runnerKeys(const std::string& pool, const std::string& runnerId) const {
  return deriveRunnerKeyPair(tokenSecret_, brokerId_, pool, runnerId);
}

Scaler::~Scaler() = default;

void Scaler::addPool(const PoolConfig& config, std::unique_ptr<Backend> backend, std::unique_ptr<BackendExecutor> executor) {
  auto managed = std::make_unique<Managed>();
  managed->config = config;
  managed->backend = std::move(backend);
  managed->executor = std::move(executor);
  PoolSettings settings = config.settings;
  settings.singleUse = config.limits.singleUse;
  broker_.declarePool(config.name, settings);
  logger("scaler")->info("pool={} backend={} min={} max={} max_concurrency={} idle_shutdown_after={}", config.name,
                         config.backend, config.limits.min, config.limits.max, config.limits.maxConcurrency,
                         formatDuration(config.limits.idleShutdownAfter));
  pools_[config.name] = std::move(managed);
}

const PoolLimits* Scaler::limits(const std::string& pool) const {
  auto it = pools_.find(pool);
  return it == pools_.end() ? nullptr : &it->second->config.limits;
}

Scaler::Managed* Scaler::managedFor(const std::string& pool) {
  auto it = pools_.find(pool);
  return it == pools_.end() ? nullptr : it->second.get();
}

void Scaler::setPhase(Managed& pool, Machine& m, Phase phase, TimePoint now) {
  if (m.phase == Phase::Booting) --pool.booting;
  if (phase == Phase::Booting) ++pool.booting;
  m.phase = phase;
  m.since = now;
  pool.demand = true;  // what may grow changed
}

void Scaler::forget(Managed& pool, const std::string& runnerId) {
  auto it = pool.machines.find(runnerId);
  if (it == pool.machines.end()) return;
  if (it->second.phase == Phase::Booting) --pool.booting;
  pool.machines.erase(it);
  if (keys_) keys_->forgetMinted(runnerId);  // its key opens no new connection now
  pool.demand = true;
}

void Scaler::post(Managed& pool, std::function<void()> backendWork) { pool.executor->post(std::move(backendWork)); }

void Scaler::complete(std::function<void()> onLoop) {
  {
    std::lock_guard lock(completionsMutex_);
    completions_.push_back(std::move(onLoop));
  }
  if (wake_) wake_();
}

// ---------------------------------------------------------------- the loop

void Scaler::tick() {
  std::vector<std::function<void()>> done;
  {
    std::lock_guard lock(completionsMutex_);
    done.swap(completions_);
  }
  for (auto& f : done) f();
  auto now = clock_.now();
  bool reap = now >= nextReap_;
  if (reap) nextReap_ = now + kReapInterval;
  for (auto& [name, pool] : pools_) {
    if (reap && !pool->machines.empty()) reapExited(*pool, now);
    if (pool->needsHandles) {
      pool->needsHandles = false;
      listMachines(*pool, false);
    }
    tickPool(*pool, now);
  }
}

TimePoint Scaler::nextWakeup() const {
  TimePoint next = TimePoint::max();
  bool anyMachines = false;
  for (auto& [name, pool] : pools_) {
    if (pool->demand || pool->needsHandles) return TimePoint{};  // now
    next = std::min({next, pool->nextGrowth, pool->nextTimeouts, pool->nextIdleWalk});
    anyMachines = anyMachines || !pool->machines.empty();
  }
  if (anyMachines) next = std::min(next, nextReap_);
  return next;
}

void Scaler::reapExited(Managed& pool, TimePoint now) {
  for (const ExitedMachine& exited : pool.backend->reapExited()) {
    auto it = pool.machines.find(exited.machine.runnerId);
    if (it == pool.machines.end()) continue;
    Machine& m = it->second;
    std::string runnerId = m.runnerId;
    if (m.phase == Phase::Booting) {
      bootFailed(pool, runnerId, "runner exited before connecting (" + exited.description + ")", now);
    } else if (m.phase == Phase::Running) {
      logger("scaler")->warn("pool={} runner={} machine={} exited unexpectedly: {}", pool.config.name, runnerId,
                             exited.machine.machineId, exited.description);
    }
    // The machine is gone: nothing left to stop. Its runner is left to its liveness window:
    // results it sent just before exiting may still be on their way.
    forget(pool, runnerId);
  }
}

void Scaler::tickPool(Managed& pool, TimePoint now) {
  const Pool* p = broker_.findPool(pool.config.name);
  if (!p) return;
  if (now >= pool.nextTimeouts) checkTimeouts(pool, now);
  if (pool.demand || now >= pool.nextGrowth) grow(pool, *p, now);
  if (now >= pool.nextIdleWalk) shrinkIdle(pool, *p, now);
}

// Machines whose runner never came, or that will not leave. Walks the pool's machines (at most
// `max`), only when the earliest such deadline is due.
void Scaler::checkTimeouts(Managed& pool, TimePoint now) {
  const PoolLimits& L = pool.config.limits;
  TimePoint next = TimePoint::max();
  std::vector<std::string> late;
  for (auto& [id, m] : pool.machines) {
    TimePoint deadline = TimePoint::max();
    if (m.phase == Phase::Booting) deadline = addSaturating(m.since, L.bootTimeout);
    else if (m.phase == Phase::Running) deadline = m.drainDeadline;
    if (deadline <= now) late.push_back(id);
    else next = std::min(next, deadline);
  }
  pool.nextTimeouts = next;
  for (auto& id : late) {
    auto it = pool.machines.find(id);
    if (it == pool.machines.end()) continue;
    Machine& m = it->second;
    if (m.phase == Phase::Booting) {
      std::string why = "runner did not connect within boot_timeout " + formatDuration(L.bootTimeout);
      bootFailed(pool, id, why, now);
      stopMachine(pool, m, why);
    } else {
      stopMachine(pool, m, "still running " + formatDuration(L.shutdownTimeout) + " after drain");
      broker_.dropRunner(id, "its machine was stopped: it did not leave within shutdown_timeout");
    }
  }
}

// Grow for demand and warm slots; keep min. O(1): the core keeps the counts.
void Scaler::grow(Managed& pool, const Pool& p, TimePoint now) {
  pool.demand = false;
  pool.nextGrowth = TimePoint::max();
  const PoolLimits& L = pool.config.limits;
  PoolView v = broker_.view(p);
  uint32_t booting = pool.booting;
  uint32_t wanted = 0;
  if (!broker_.shuttingDown()) {
    // A single-use runner takes one job, whatever its max_concurrency: it covers one slot of demand.
    const int64_t perRunner = L.singleUse ? 1 : L.maxConcurrency;
    int64_t deficit = int64_t(v.waiting) + L.warmSlots - v.freeSlots - int64_t(booting) * perRunner;
    wanted = deficit > 0 ? static_cast<uint32_t>((deficit + perRunner - 1) / perRunner) : 0;
    if (v.waiting > 0) pool.idledBelowMin = false;
    if (v.ready + booting < L.min && !pool.idledBelowMin) wanted = std::max(wanted, L.min - (v.ready + booting));
    uint32_t machines = v.ready + booting + v.draining;
    uint32_t room = L.max > machines ? L.max - machines : 0;
    wanted = std::min(wanted, room);
    // While boots fail, one probe at a time: none while one is still booting.
    if (pool.consecutiveFailures > 0) wanted = booting > 0 ? 0 : std::min(wanted, 1u);
    if (wanted > 0 && now < pool.nextBootAt) {
      pool.nextGrowth = pool.nextBootAt;  // the backoff ends then: look again, on time
      wanted = 0;
    }
    for (uint32_t i = 0; i < wanted; ++i) boot(pool, now);
    booting += wanted;
    pool.demand = false;  // boot() marks it; what it changed is accounted for above
  }

  // Boots keep failing and nothing can run the waiting jobs: tell their callers now, rather
  // than let them wait out their deadlines. Jobs arriving later wait for the next probe boot
  // (one backoff period at most) and fail with it if it fails too.
  bool failNow = pool.failWaiting;
  pool.failWaiting = false;
  // A failure the backend calls permanent (Fly's 422 for a rejected image, a 401) fails them at
  // once; transient ones after kFailuresBeforeBootFailed in a row. Probes go on either way (an
  // operator may fix the image), with backoff.
  bool hopeless = pool.lastFailurePermanent || pool.consecutiveFailures >= kFailuresBeforeBootFailed;
  if (failNow && hopeless && v.ready == 0 && booting == 0 && v.waiting > 0) {
    broker_.failQueued(pool.config.name, ErrorCode::BootFailed,
                       "pool '" + pool.config.name + "' cannot boot runners (" +
                           std::to_string(pool.consecutiveFailures) + " failures in a row): " + pool.lastBootError);
  }
}

// Shrink: drain idle runners, newest first; the `min` oldest use min_idle_shutdown_after. Walks
// the pool's runners when the earliest idle timer is due (or kIdleWalkMax passed).
void Scaler::shrinkIdle(Managed& pool, const Pool& p, TimePoint now) {
  const PoolLimits& L = pool.config.limits;
  TimePoint next = now + kIdleWalkMax;
  std::vector<const RunnerState*> readyRunners;
  for (const RunnerState* r : p.runners)
    if (r->phase == RunnerPhase::Ready) readyRunners.push_back(r);
  std::sort(readyRunners.begin(), readyRunners.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  uint32_t live = static_cast<uint32_t>(readyRunners.size());
  uint32_t freeSlots = broker_.view(p).freeSlots;
  for (size_t i = readyRunners.size(); i-- > 0;) {
    const RunnerState* r = readyRunners[i];
    if (r->used != 0) continue;  // never stop a busy runner (children hold slots too)
    bool isMin = i < L.min;
    Duration threshold = isMin ? L.minIdleShutdownAfter : L.idleShutdownAfter;
    if (threshold == kInfinite) continue;
    TimePoint expires = addSaturating(r->idleSince, threshold);
    if (now < expires) {
      next = std::min(next, expires);
      continue;
    }
    if (!isMin && live <= L.min) continue;
    if (freeSlots < r->slots + L.warmSlots && !isMin) continue;  // it is one of the warm slots
    auto m = pool.machines.find(r->id);
    if (m == pool.machines.end() || m->second.phase != Phase::Running) continue;
    std::string idle = "idle for " + formatDuration(std::chrono::duration_cast<Duration>(now - r->idleSince));
    logger("scaler")->info("pool={} runner={} {}: draining", pool.config.name, r->id, idle);
    m->second.drainDeadline = addSaturating(now, L.shutdownTimeout);
    pool.nextTimeouts = std::min(pool.nextTimeouts, m->second.drainDeadline);
    freeSlots -= std::min(freeSlots, r->slots);
    --live;
    if (isMin) pool.idledBelowMin = true;  // not replaced until there is work again
    broker_.drainRunner(r->id, L.shutdownTimeout, idle);
  }
  pool.nextIdleWalk = next;
}

void Scaler::boot(Managed& pool, TimePoint now) {
  const std::string& name = pool.config.name;
  Machine m;
  m.runnerId = name + "-" + randomHex(6);
  m.since = now;
  BootSpec spec;
  spec.pool = name;
  spec.runnerId = m.runnerId;
  spec.brokerId = brokerId_;
  spec.env = {{kEnvBroker, runnerEndpoint_},
              {kEnvPool, name},
              {kEnvRunnerId, m.runnerId},
              {kEnvBootToken, bootToken(name, m.runnerId)},
              {kEnvBrokerId, brokerId_},
              {kEnvConcurrency, std::to_string(pool.config.limits.maxConcurrency)}};
  if (keys_) {
    // A key pair for this runner alone, authorized until its machine is forgotten.
    CurveKeyPair minted = runnerKeys(name, m.runnerId);
    spec.env[kEnvSecretKey] = minted.secretKey;
    spec.env[kEnvServerKey] = keys_->publicKey();
    keys_->authorizeMinted(minted.publicKey, m.runnerId);
  }
  ++pool.boots;
  logger("scaler")->info("pool={} booting runner={} via {}", name, m.runnerId, pool.config.backend);
  std::string runnerId = m.runnerId;
  pool.machines.emplace(runnerId, std::move(m));
  ++pool.booting;
  pool.nextTimeouts = std::min(pool.nextTimeouts, addSaturating(now, pool.config.limits.bootTimeout));
  broker_.publish(msg::Event{.kind = EventKind::RunnerBooting, .pool = name, .runnerId = runnerId,
                             .message = "via the " + pool.config.backend + " backend"});
  Backend* backend = pool.backend.get();
  post(pool, [this, backend, spec, name, runnerId] {
    BootResult result = backend->boot(spec);
    complete([this, name, runnerId, result] {
      Managed* pool = managedFor(name);
      if (!pool) return;
      auto it = pool->machines.find(runnerId);
      if (!result.status.ok) {
        if (it != pool->machines.end() && it->second.phase == Phase::Booting)
          bootFailed(*pool, runnerId, result.status.message, clock_.now(), !result.status.retryable);
        if (it != pool->machines.end() && !it->second.hasHandle) forget(*pool, runnerId);
        return;
      }
      if (it == pool->machines.end()) {
        // Forgotten meanwhile (should not happen): stop it rather than leak it.
        Backend* backend = pool->backend.get();
        post(*pool, [backend, handle = result.handle] { backend->stop(handle); });
        return;
      }
      it->second.handle = result.handle;
      it->second.hasHandle = true;
      logger("scaler")->debug("pool={} runner={} machine={} started", name, runnerId, result.handle.machineId);
      if (it->second.phase == Phase::Stopping) {
        it->second.stopPosted = false;
        stopMachine(*pool, it->second, "abandoned while booting");
      }
    });
  });
}

void Scaler::bootFailed(Managed& pool, const std::string& runnerId, const std::string& why, TimePoint now,
                        bool permanent) {
  ++pool.consecutiveFailures;
  pool.lastFailurePermanent = permanent;
  pool.failWaiting = true;
  pool.lastBootError = why;
  Duration backoff = pool.bootBackoff.next();
  pool.nextBootAt = now + backoff;
  pool.demand = true;  // look again now (and at nextBootAt)
  ++pool.bootFailures;
  logger("scaler")->warn("pool={} runner={} boot failed ({} in a row): {}; next boot in {}", pool.config.name, runnerId,
                         pool.consecutiveFailures, why, formatDuration(backoff));
  broker_.publish(msg::Event{.kind = EventKind::BootFailed, .pool = pool.config.name, .runnerId = runnerId,
                             .message = why});
}

void Scaler::stopMachine(Managed& pool, Machine& m, const std::string& why) {
  if (m.phase != Phase::Stopping) setPhase(pool, m, Phase::Stopping, clock_.now());
  if (m.stopPosted) return;
  m.stopPosted = true;
  if (!m.hasHandle) return;  // boot() still running: stopped when it returns
  logger("scaler")->info("pool={} runner={} machine={} stopping: {}", pool.config.name, m.runnerId,
                         m.handle.machineId, why);
  Backend* backend = pool.backend.get();
  std::string name = pool.config.name, runnerId = m.runnerId;
  MachineHandle handle = m.handle;
  post(pool, [this, backend, handle, name, runnerId] {
    BackendStatus status = backend->stop(handle);
    complete([this, name, runnerId, status, handle] {
      if (!status.ok)
        logger("scaler")->error("pool={} machine={} could not be stopped: {} (the orphan sweep will retry)", name,
                                handle.machineId, status.message);
      if (Managed* pool = managedFor(name)) forget(*pool, runnerId);
    });
  });
}

void Scaler::sweepOrphans() {
  if (clock_.now() < adoptUntil_) {
    logger("scaler")->debug("orphan sweep deferred: runners of a previous broker run may still come back");
    return;
  }
  for (auto& [name, pool] : pools_) listMachines(*pool, true);
}

void Scaler::listMachines(Managed& managed, bool stopOrphans) {
  if (!managed.backend->supportsList()) return;
  Backend* backend = managed.backend.get();
  std::string poolName = managed.config.name;
  post(managed, [this, backend, poolName, stopOrphans] {
    ListResult listed = backend->list(brokerId_);
    complete([this, poolName, listed, stopOrphans] {
      Managed* pool = managedFor(poolName);
      if (!pool) return;
      if (!listed.status.ok) {
        logger("scaler")->warn("pool={} could not list machines: {}", poolName, listed.status.message);
        if (!stopOrphans) pool->needsHandles = true;  // try again on the next tick
        return;
      }
      for (const MachineHandle& h : listed.machines) {
        if (!h.pool.empty() && h.pool != poolName) continue;
        Machine* mine = nullptr;
        for (auto& [id, m] : pool->machines)
          if (id == h.runnerId || (m.hasHandle && m.handle.machineId == h.machineId)) mine = &m;
        if (mine) {
          if (!mine->hasHandle && mine->adopted) {
            mine->handle = h;
            mine->hasHandle = true;
            if (mine->phase == Phase::Stopping) {  // it left before we knew how to stop it
              mine->stopPosted = false;
              stopMachine(*pool, *mine, "adopted runner left");
            }
          }
          continue;
        }
        if (!stopOrphans) continue;
        logger("scaler")->warn("pool={} orphan machine={} (runner {}) has no live runner: stopping", poolName,
                               h.machineId, h.runnerId);
        Backend* backend = pool->backend.get();
        post(*pool, [backend, h] { backend->stop(h); });
      }
    });
  });
}

void Scaler::shutdown(bool keepMachines) {
  for (auto& [name, pool] : pools_) {
    for (auto& [id, m] : pool->machines) {
      if (keepMachines) continue;  // left for a successor broker to re-adopt
      broker_.drainRunner(id, pool->config.limits.shutdownTimeout, "the broker is shutting down");
      if (m.hasHandle && !m.stopPosted) {
        m.stopPosted = true;
        Backend* backend = pool->backend.get();
        post(*pool, [backend, handle = m.handle] { backend->stop(handle); });
      }
    }
    pool->executor.reset();  // finishes the stops, joins
    if (keys_)
      for (auto& [runnerId, m] : pool->machines) keys_->forgetMinted(runnerId);
    pool->machines.clear();
    pool->booting = 0;
  }
  std::lock_guard lock(completionsMutex_);
  completions_.clear();
}

// ---------------------------------------------------------------- listener

ErrorCode Scaler::admitRunner(const msg::Ready& ready, std::string_view key) {
  Managed* pool = managedFor(ready.pool);
  if (!pool) {
    // A static pool: any runner without CURVE; with it, one whose key is in runner_keys (a key
    // minted for a booted runner serves only its own pool and id).
    if (!keys_ || keys_->isStaticRunner(key)) return ErrorCode::None;
    logger("scaler")->warn("pool={} runner={} refused: key {} is not a static runner key (runner_keys)", ready.pool,
                           ready.runnerId, keyFingerprint(key));
    return ErrorCode::Unauthorized;
  }
  auto it = pool->machines.find(ready.runnerId);
  bool verified = sameSecret(bootToken(ready.pool, ready.runnerId), ready.token);
  // With CURVE a booted runner must also hold the key minted for its id: a token read from a
  // machine's environment or a log is not enough, nor is another runner's key.
  if (verified && keys_ && !sameSecret(runnerKeys(ready.pool, ready.runnerId).publicKey, key)) {
    logger("scaler")->warn("pool={} runner={} refused: key {} is not the one minted for it", ready.pool,
                           ready.runnerId, keyFingerprint(key));
    return ErrorCode::Unauthorized;
  }
  auto now = clock_.now();
  if (verified && it == pool->machines.end() && now < adoptUntil_) {
    // Booted by a previous run of this broker (same broker id and secret) and still alive.
    logger("scaler")->info("pool={} runner={} re-adopted from a previous broker run", ready.pool, ready.runnerId);
    Machine m;
    m.runnerId = ready.runnerId;
    m.phase = Phase::Running;
    m.since = now;
    m.adopted = true;
    if (keys_) keys_->authorizeMinted(std::string(key), ready.runnerId);  // it may reconnect after the window
    pool->machines.emplace(ready.runnerId, std::move(m));
    pool->demand = true;
    pool->needsHandles = true;
    return ErrorCode::None;
  }
  // A token admits its runner once: a runner that was lost is not let back in (its machine is
  // being stopped), and re-registrations of a connected runner are checked by the core.
  if (!verified || it == pool->machines.end() || it->second.phase != Phase::Booting) {
    logger("scaler")->warn("pool={} runner={} refused: not a runner this broker booted, or a wrong/used token",
                           ready.pool, ready.runnerId);
    return ErrorCode::Unauthorized;
  }
  pool->bootSeconds.observe(now - it->second.since);
  setPhase(*pool, it->second, Phase::Running, now);
  pool->consecutiveFailures = 0;
  pool->bootBackoff.reset();
  pool->lastFailurePermanent = false;
  pool->nextBootAt = TimePoint{};
  return ErrorCode::None;
}

void Scaler::runnerJoined(const RunnerState& runner) {
  if (Managed* pool = managedFor(runner.pool->name)) {
    pool->demand = true;
    pool->nextIdleWalk = TimePoint{};  // with one more runner, an idle one may go now
  }
}

void Scaler::runnerLeft(const RunnerState& runner, const std::string& why) {
  Managed* pool = managedFor(runner.pool->name);
  if (!pool) return;
  pool->demand = true;
  pool->nextIdleWalk = TimePoint{};
  auto it = pool->machines.find(runner.id);
  if (it == pool->machines.end()) return;
  stopMachine(*pool, it->second, "runner left: " + why);
}

void Scaler::demandChanged(const Pool& p) {
  Managed* pool = managedFor(p.name);
  if (!pool) return;
  pool->demand = true;
  // A slot was freed: a runner may have gone idle, and its idle timer starts now.
  const PoolLimits& L = pool->config.limits;
  Duration soonest = std::min(L.idleShutdownAfter, L.minIdleShutdownAfter);
  if (soonest != kInfinite) pool->nextIdleWalk = std::min(pool->nextIdleWalk, addSaturating(clock_.now(), soonest));
}

void Scaler::jobFinished(const RunnerState& runner) {
  if (!runner.singleUse || runner.phase != RunnerPhase::Ready) return;
  Managed* pool = managedFor(runner.pool->name);
  if (!pool) return;
  Duration grace = pool->config.limits.shutdownTimeout;
  auto it = pool->machines.find(runner.id);
  if (it != pool->machines.end()) {
    it->second.drainDeadline = addSaturating(clock_.now(), grace);
    pool->nextTimeouts = std::min(pool->nextTimeouts, it->second.drainDeadline);
  }
  logger("scaler")->info("pool={} runner={} single use: done, draining", runner.pool->name, runner.id);
  broker_.drainRunner(runner.id, grace, "single use: its job is done");
}

const metrics::Histogram* Scaler::bootSeconds(const std::string& pool) const {
  auto it = pools_.find(pool);
  return it == pools_.end() ? nullptr : &it->second->bootSeconds;
}

void Scaler::describe(const Pool& pool, msg::PoolStatus& status) const {
  auto it = pools_.find(pool.name);
  if (it == pools_.end()) return;
  const Managed& m = *it->second;
  status.min = m.config.limits.min;
  status.max = m.config.limits.max;
  status.boots = m.boots;
  status.bootFailures = m.bootFailures;
  for (auto& [id, machine] : m.machines) {
    if (machine.phase != Phase::Booting) continue;
    ++status.booting;
    status.runners.push_back(msg::RunnerStatus{id, "booting", 0, m.config.limits.maxConcurrency, 0, "", 0});
  }
}

ErrorCode Scaler::setPool(const msg::SetPool& request, std::string& why) {
  Managed* pool = managedFor(request.pool);
  if (!pool) {
    why = "pool '" + request.pool + "' has no scaler (it is not declared in the config file)";
    return ErrorCode::UnknownPool;
  }
  PoolLimits next = pool->config.limits;
  if (request.min >= 0) next.min = static_cast<uint32_t>(std::min<int64_t>(request.min, 100'000));
  if (request.max >= 0) next.max = static_cast<uint32_t>(std::min<int64_t>(request.max, 100'000));
  if (request.warmSlots >= 0) next.warmSlots = static_cast<uint32_t>(std::min<int64_t>(request.warmSlots, 1'000'000));
  if (next.max == 0) {
    why = "max must be at least 1";
    return ErrorCode::BadRequest;
  }
  if (next.min > next.max) {
    why = "min (" + std::to_string(next.min) + ") must not exceed max (" + std::to_string(next.max) + ")";
    return ErrorCode::BadRequest;
  }
  pool->config.limits = next;
  pool->demand = true;
  pool->nextIdleWalk = TimePoint{};
  std::string limits = "min=" + std::to_string(next.min) + " max=" + std::to_string(next.max) +
                       " warm_slots=" + std::to_string(next.warmSlots);
  logger("scaler")->info("pool={} limits changed: {}", request.pool, limits);
  broker_.publish(msg::Event{.kind = EventKind::PoolChanged, .pool = request.pool, .runnerId = {}, .message = limits});
  return ErrorCode::None;
}

}  // namespace flame
