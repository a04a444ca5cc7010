#include "backends/machine_watcher.h"

#include <algorithm>
#include <utility>

namespace flame {

MachineWatcher::MachineWatcher(Duration interval, Probe probe)
    : enabled_(interval > Duration(0) && interval != kInfinite && probe != nullptr),
      interval_(interval),
      probe_(std::move(probe)) {}

MachineWatcher::~MachineWatcher() { stop(); }

void MachineWatcher::watch(const MachineHandle& machine, const std::string& brokerId) {
  if (!enabled_ || machine.machineId.empty()) return;
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  watched_[machine.machineId] = WatchedMachine{machine, brokerId};
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void MachineWatcher::forget(const std::string& machineId) {
  std::lock_guard lock(mutex_);
  watched_.erase(machineId);
  std::erase_if(exited_,
                [&](const ExitedMachine& e) { return e.machine.machineId == machineId; });
}

std::vector<ExitedMachine> MachineWatcher::reap() {
  std::lock_guard lock(mutex_);
  return std::exchange(exited_, {});
}

size_t MachineWatcher::watchedCount() const {
  std::lock_guard lock(mutex_);
  return watched_.size();
}

void MachineWatcher::pollOnce() {
  if (!enabled_) return;
  std::lock_guard round(probeMutex_);
  std::vector<WatchedMachine> snapshot;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, watched] : watched_) snapshot.push_back(watched);
  }
  if (snapshot.empty()) return;
  std::vector<ExitedMachine> ended = probe_(snapshot);
  std::lock_guard lock(mutex_);
  for (auto& exited : ended) {
    // Only machines still watched: one forgotten while the probe ran is being stopped by the
    // backend, and one reported twice by the probe is reported once.
    if (watched_.erase(exited.machine.machineId) == 0) continue;
    exited_.push_back(std::move(exited));
  }
}

void MachineWatcher::stop() {
  std::thread thread;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  wake_.notify_all();
  if (thread.joinable()) thread.join();
}

void MachineWatcher::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, interval_, [this] { return stopping_.load(); });
    if (stopping_) break;
    if (watched_.empty()) continue;
    lock.unlock();
    pollOnce();
    lock.lock();
  }
}

}  // namespace flame
