// FakeBackend: an in-memory Backend for tests of the scaler and the broker (leveldb's memenv and
// fault-injection fakes). Header-only. Machines are entries in a table; boot() and stop() are
// recorded; failures are injected on command; boots can be held "in flight" until released.
//
// Thread-safe: the scaler calls it from its backend thread while the test inspects it.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace flame::testing {

class FakeBackend : public Backend {
 public:
  // A machine the fake believes exists.
  struct Machine {
    MachineHandle handle;
    std::string brokerId;
  };

  FakeBackend() = default;
  // Releases held boots so no thread stays blocked in boot().
  ~FakeBackend() override { releaseBoots(); }

  std::string kind() const override { return "fake"; }

  // Records the call; fails if a failure is queued (or all boots fail), otherwise creates
  // machine "fake-<n>" (n counts successful boots from 1). While boots are held, blocks until
  // releaseBoots() (bounded by kHoldLimit, a failure bound only).
  BootResult boot(const BootSpec& spec) override {
    std::unique_lock lock(mutex_);
    boots_.push_back(spec);
    if (holdBoots_) {
      ++bootsInFlight_;
      changed_.notify_all();
      changed_.wait_for(lock, kHoldLimit, [&] { return !holdBoots_; });
      --bootsInFlight_;
    }
    BootResult result;
    if (!bootFailures_.empty()) {
      result.status = bootFailures_.front();
      bootFailures_.pop_front();
    } else if (failAllBoots_) {
      result.status = *failAllBoots_;
    }
    if (result.status.ok) {
      result.handle =
          MachineHandle{"fake-" + std::to_string(++machineCounter_), spec.runnerId, spec.pool};
      machines_[result.handle.machineId] = Machine{result.handle, spec.brokerId};
    }
    changed_.notify_all();
    return result;
  }

  // Records the call; fails if a stop failure is queued; otherwise forgets the machine (stopping
  // an unknown machine is ok, as the interface requires).
  BackendStatus stop(const MachineHandle& machine) override {
    std::lock_guard lock(mutex_);
    stops_.push_back(machine);
    BackendStatus status;
    if (!stopFailures_.empty()) {
      status = stopFailures_.front();
      stopFailures_.pop_front();
    } else {
      machines_.erase(machine.machineId);
    }
    changed_.notify_all();
    return status;
  }

  ListResult list(const std::string& brokerId) override {
    std::lock_guard lock(mutex_);
    ++listCalls_;
    ListResult result;
    if (listFailure_) {
      result.status = *listFailure_;
      return result;
    }
    for (const auto& [id, machine] : machines_) {
      if (machine.brokerId == brokerId) result.machines.push_back(machine.handle);
    }
    return result;
  }
  bool supportsList() const override {
    std::lock_guard lock(mutex_);
    return supportsList_;
  }

  // --- fault injection -------------------------------------------------------------------------

  // The next `count` boots fail with this status (queued after failures already queued).
  void failNextBoots(int count, bool retryable,
                     const std::string& message = "injected boot failure") {
    std::lock_guard lock(mutex_);
    for (int i = 0; i < count; ++i)
      bootFailures_.push_back(BackendStatus::failure(message, retryable));
  }
  // Every boot fails until clearFailures() (queued failures are used first).
  void failAllBoots(bool retryable, const std::string& message = "injected boot failure") {
    std::lock_guard lock(mutex_);
    failAllBoots_ = BackendStatus::failure(message, retryable);
  }
  void failNextStops(int count, bool retryable,
                     const std::string& message = "injected stop failure") {
    std::lock_guard lock(mutex_);
    for (int i = 0; i < count; ++i)
      stopFailures_.push_back(BackendStatus::failure(message, retryable));
  }
  void failList(bool retryable, const std::string& message = "injected list failure") {
    std::lock_guard lock(mutex_);
    listFailure_ = BackendStatus::failure(message, retryable);
  }
  void clearFailures() {
    std::lock_guard lock(mutex_);
    bootFailures_.clear();
    stopFailures_.clear();
    failAllBoots_.reset();
    listFailure_.reset();
  }
  void setSupportsList(bool supports) {
    std::lock_guard lock(mutex_);
    supportsList_ = supports;
  }

  // --- slow boots ------------------------------------------------------------------------------

  // From now on boot() blocks (after recording the spec) until releaseBoots().
  void holdBoots() {
    std::lock_guard lock(mutex_);
    holdBoots_ = true;
  }
  void releaseBoots() {
    std::lock_guard lock(mutex_);
    holdBoots_ = false;
    changed_.notify_all();
  }
  // Waits (up to `timeout`, a failure bound) until `count` boots are blocked in boot().
  bool waitForBootsInFlight(int count,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return bootsInFlight_ >= count; });
  }
  // Waits (up to `timeout`) until boot() was called at least `count` times in total.
  bool waitForBoots(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return boots_.size() >= count; });
  }
  bool waitForStops(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return stops_.size() >= count; });
  }

  // --- the world outside -----------------------------------------------------------------------

  // A machine appears that this fake did not boot (an orphan of an earlier broker run).
  void addMachine(const MachineHandle& handle, const std::string& brokerId) {
    std::lock_guard lock(mutex_);
    machines_[handle.machineId] = Machine{handle, brokerId};
  }
  // A machine disappears without stop() (it crashed, the provider reclaimed it).
  void vanish(const std::string& machineId) {
    std::lock_guard lock(mutex_);
    machines_.erase(machineId);
  }

  // --- inspection ------------------------------------------------------------------------------

  // Every boot() call in order, failed ones included.
  std::vector<BootSpec> boots() const {
    std::lock_guard lock(mutex_);
    return boots_;
  }
  // Every stop() call in order, failed ones included.
  std::vector<MachineHandle> stops() const {
    std::lock_guard lock(mutex_);
    return stops_;
  }
  size_t bootCount() const {
    std::lock_guard lock(mutex_);
    return boots_.size();
  }
  size_t stopCount() const {
    std::lock_guard lock(mutex_);
    return stops_.size();
  }
  int listCalls() const {
    std::lock_guard lock(mutex_);
    return listCalls_;
  }
  // Machines booted (or added) and not stopped or vanished.
  std::vector<MachineHandle> alive() const {
    std::lock_guard lock(mutex_);
    std::vector<MachineHandle> out;
    for (const auto& [id, machine] : machines_) out.push_back(machine.handle);
    return out;
  }
  bool isAlive(const std::string& machineId) const {
    std::lock_guard lock(mutex_);
    return machines_.count(machineId) > 0;
  }

  // A held boot gives up after this long, so a broken test fails instead of hanging.
  static constexpr std::chrono::seconds kHoldLimit{10};

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<BootSpec> boots_;
  std::vector<MachineHandle> stops_;
  std::map<std::string, Machine> machines_;
  std::deque<BackendStatus> bootFailures_;
  std::deque<BackendStatus> stopFailures_;
  std::optional<BackendStatus> failAllBoots_;
  std::optional<BackendStatus> listFailure_;
  bool supportsList_ = true;
  bool holdBoots_ = false;
  int bootsInFlight_ = 0;
  int listCalls_ = 0;
  int machineCounter_ = 0;
};

// A FakeBackend whose boots all fail until clearFailures(): for "no runner can ever come".
class FailingBackend : public FakeBackend {
 public:
  explicit FailingBackend(bool retryable = false,
                          const std::string& message = "injected boot failure") {
    failAllBoots(retryable, message);
  }
};

}  // namespace flame::testing
