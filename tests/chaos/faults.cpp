#include "tests/chaos/faults.h"

#include <signal.h>

#include <algorithm>

namespace flame::chaos {

Millis uniformMs(Rng& rng, int64_t lo, int64_t hi) {
  return Millis(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
}

std::vector<RunnerSlot*> healthyRunners(Cluster& cluster, size_t keepUp, TimePoint now) {
  std::vector<RunnerSlot*> up;
  for (auto& r : cluster.runners())
    if (r.state == RunnerSlot::State::Up && !(r.link && r.link->isCut()) && r.quietUntil <= now) up.push_back(&r);
  if (up.size() <= keepUp) return {};
  return up;
}

namespace {
template <class T>
T* pick(Rng& rng, const std::vector<T*>& from) {
  return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
}
std::string pidOf(const RunnerSlot& s) { return s.process ? std::to_string(s.process->pid()) : "?"; }
Millis livenessWindow(const Cluster& c) { return c.options().heartbeat * c.options().liveness; }
}  // namespace

// --- RunnerKiller ---

bool RunnerKiller::inject(Rng& rng, TimePoint now) {
  auto targets = healthyRunners(cluster_, 2, now);
  if (targets.empty()) return false;
  RunnerSlot* slot = pick(rng, targets);
  Pending p{slot, now + uniformMs(rng, 200, 1500), std::bernoulli_distribution(0.5)(rng)};
  log_("RunnerKiller: kill -9 runner " + slot->runnerId + " (" + slot->name() + ", pid " + pidOf(*slot) +
       "), restart in " + std::to_string((p.restartAt - now) / Millis(1)) + " ms with " +
       (p.newId ? "a new id" : "the same id"));
  slot->process->signal(SIGKILL);
  slot->process->waitExit(Millis(5000));
  slot->state = RunnerSlot::State::Killed;
  pending_.push_back(p);
  ++injected_;
  return true;
}

void RunnerKiller::restart(const Pending& p) {
  cluster_.startRunner(*p.slot, p.newId);
  p.slot->quietUntil = std::chrono::steady_clock::now() + kRecovery;
  log_("RunnerKiller: restarted " + p.slot->name() + " as " + p.slot->runnerId + " (pid " + pidOf(*p.slot) + ")");
}

void RunnerKiller::tick(TimePoint now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->restartAt <= now) {
      restart(*it);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

void RunnerKiller::healAll() {
  for (auto& p : pending_) restart(p);
  pending_.clear();
}

// --- Stopper ---

bool Stopper::inject(Rng& rng, TimePoint now) {
  auto targets = healthyRunners(cluster_, 2, now);
  if (targets.empty()) return false;
  RunnerSlot* slot = pick(rng, targets);
  auto window = livenessWindow(cluster_);
  Pending p{slot, now + window + uniformMs(rng, 200, 2000)};
  log_("Stopper: SIGSTOP runner " + slot->runnerId + " (" + slot->name() + ", pid " + pidOf(*slot) + ") for " +
       std::to_string((p.contAt - now) / Millis(1)) + " ms (liveness window " + std::to_string(window.count()) +
       " ms)");
  slot->process->signal(SIGSTOP);
  slot->state = RunnerSlot::State::Stopped;
  pending_.push_back(p);
  ++injected_;
  return true;
}

void Stopper::tick(TimePoint now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->contAt <= now) {
      it->slot->process->signal(SIGCONT);
      it->slot->state = RunnerSlot::State::Up;
      it->slot->quietUntil = now + kRecovery;
      log_("Stopper: SIGCONT runner " + it->slot->runnerId);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

void Stopper::healAll() {
  for (auto& p : pending_) {
    p.slot->process->signal(SIGCONT);
    p.slot->state = RunnerSlot::State::Up;
    log_("Stopper: SIGCONT runner " + p.slot->runnerId);
  }
  pending_.clear();
}

// --- LinkCutter ---

void LinkCutter::quiet(NetnsLink* link, TimePoint now) {
  for (auto& r : cluster_.runners())
    if (r.link == link) r.quietUntil = now + kRecovery;
}

bool LinkCutter::inject(Rng& rng, TimePoint now) {
  // Only links whose runner is healthy (not stopped, killed or just healed).
  auto healthy = healthyRunners(cluster_, 2, now);
  std::vector<NetnsLink*> targets;
  for (auto* r : healthy)
    if (r->link) targets.push_back(r->link);
  if (targets.empty()) return false;
  NetnsLink* link = pick(rng, targets);
  auto window = livenessWindow(cluster_);
  Pending p{link, now + uniformMs(rng, window.count() / 2, window.count() + 2500)};
  if (!link->cut()) {
    log_("LinkCutter: cutting " + link->netns() + " FAILED (see the run log); fault skipped");
    return false;
  }
  log_("LinkCutter: link of " + link->netns() + " down for " + std::to_string((p.restoreAt - now) / Millis(1)) +
       " ms");
  pending_.push_back(p);
  ++injected_;
  return true;
}

void LinkCutter::tick(TimePoint now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->restoreAt <= now) {
      bool ok = it->link->restore();
      quiet(it->link, now);
      log_("LinkCutter: link of " + it->link->netns() + (ok ? " up" : " restore FAILED"));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
}

void LinkCutter::healAll() {
  for (auto& p : pending_) {
    bool ok = p.link->restore();
    log_("LinkCutter: link of " + p.link->netns() + (ok ? " up" : " restore FAILED"));
  }
  pending_.clear();
}

// --- BrokerRestarter ---

bool BrokerRestarter::inject(Rng& rng, TimePoint now) {
  if (!cluster_.brokerUp() || restartAt_) return false;
  auto delay = uniformMs(rng, 100, 1000);
  log_("BrokerRestarter: kill -9 broker (pid " + std::to_string(cluster_.brokerPid()) + "), restart in " +
       std::to_string(delay.count()) + " ms on " + cluster_.clientsEndpoint() + " / " + cluster_.runnersEndpoint());
  cluster_.killBroker();
  restartAt_ = now + delay;
  ++injected_;
  return true;
}

void BrokerRestarter::restart() {
  restartAt_.reset();
  if (cluster_.restartBroker()) {
    log_("BrokerRestarter: broker restarted (pid " + std::to_string(cluster_.brokerPid()) + ", incarnation " +
         std::to_string(cluster_.brokerIncarnation()) + ")");
  } else {
    ++failedRestarts_;
    log_("BrokerRestarter: broker restart FAILED");
  }
}

void BrokerRestarter::tick(TimePoint now) {
  if (restartAt_ && *restartAt_ <= now) restart();
}

void BrokerRestarter::healAll() {
  if (restartAt_) restart();
}

// --- BrokerFreezer ---

bool BrokerFreezer::inject(Rng& rng, TimePoint now) {
  if (!cluster_.brokerUp() || contAt_) return false;
  auto window = livenessWindow(cluster_);
  auto freeze = window + uniformMs(rng, 50, 300);
  frozen_ = cluster_.brokerPid();
  log_("BrokerFreezer: SIGSTOP broker (pid " + std::to_string(frozen_) + ") for " + std::to_string(freeze.count()) +
       " ms (liveness window " + std::to_string(window.count()) + " ms)");
  ::kill(frozen_, SIGSTOP);
  contAt_ = now + freeze;
  ++injected_;
  return true;
}

void BrokerFreezer::tick(TimePoint now) {
  if (contAt_ && *contAt_ <= now) healAll();
}

void BrokerFreezer::healAll() {
  if (!contAt_) return;
  contAt_.reset();
  // Only the pid we stopped, and only while it is still our broker (not reaped and reused).
  if (cluster_.brokerUp() && cluster_.brokerPid() == frozen_) ::kill(frozen_, SIGCONT);
  log_("BrokerFreezer: SIGCONT broker (pid " + std::to_string(frozen_) + ")");
}

}  // namespace flame::chaos
