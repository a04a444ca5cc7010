// MachineWatcher: how the API backends (fly, kubernetes) notice a machine that ended by itself,
// for Backend::reapExited(), without ever blocking its caller.
//
// The backend registers each machine it booted (watch) and unregisters each it stops (forget).
// A thread owned by the watcher wakes every `interval` and, when machines are watched, hands
// them to the backend's probe, which asks the provider (HTTP: may block) and returns those that
// ended. They are queued and handed out once by reap(), and no longer watched. reap(), watch()
// and forget() only take a short lock that is never held across a probe.
//
// The thread starts with the first watch() (a backend built only to validate a config starts
// none) and stops in stop() or the destructor: its wait is a condition variable, and probes
// should pass cancelFlag() to their HTTP requests so an exchange in flight ends within about a
// second.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "common/clock.h"

namespace flame {

struct WatchedMachine {
  MachineHandle machine;
  std::string brokerId;  // the BootSpec's, for providers that list by broker tag
};

class MachineWatcher {
 public:
  // Asks the provider about `machines` (at least one); returns those that ended, each with the
  // handle it was given and a description. Runs on one thread at a time (the watcher's, or
  // pollOnce()'s caller). A provider that cannot be reached returns {} and is asked again next
  // round.
  using Probe = std::function<std::vector<ExitedMachine>(const std::vector<WatchedMachine>&)>;

  // interval <= 0 or kInfinite: watching is off (watch() records nothing, no thread).
  MachineWatcher(Duration interval, Probe probe);
  ~MachineWatcher();
  MachineWatcher(const MachineWatcher&) = delete;
  MachineWatcher& operator=(const MachineWatcher&) = delete;

  bool enabled() const { return enabled_; }

  // Watches a booted machine (keyed by machineId; watching it again replaces the entry).
  void watch(const MachineHandle& machine, const std::string& brokerId);
  // Stops watching a machine and drops an unreported exit of it: the backend is stopping it, so
  // its end is no news.
  void forget(const std::string& machineId);
  // Machines found ended since the last call, each reported once. Never blocks on the provider.
  std::vector<ExitedMachine> reap();
  // Runs one round now on the calling thread (tests; the thread does the same every interval).
  void pollOnce();
  // Stops and joins the thread; later watch() calls record nothing. Idempotent.
  void stop();

  size_t watchedCount() const;
  // True once stop() began: for http::Request::cancel.
  const std::atomic<bool>* cancelFlag() const { return &stopping_; }

 private:
  void run();

  const bool enabled_;
  const Duration interval_;
  const Probe probe_;
  std::mutex probeMutex_;  // one round at a time (thread and pollOnce)
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  std::map<std::string, WatchedMachine> watched_;  // guarded by mutex_
  std::vector<ExitedMachine> exited_;              // guarded by mutex_
  std::thread thread_;                             // guarded by mutex_
};

}  // namespace flame
