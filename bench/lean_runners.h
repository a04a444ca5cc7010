// RunnerFarm: many lean protocol-level runners driven by one thread. Each runner is a DEALER
// on the broker's runner endpoint that speaks docs/PROTOCOL.md directly through common/codec.h:
// `ready` with its slots and functions, `heartbeat` every interval, and for every `job` an
// immediate `jobDone` (code none) whose result frame is the job's payload frame (an echo).
// No handler threads, no queues: what is measured is the broker, not a runner runtime.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "common/clock.h"
#include "common/transport.h"

namespace flame::bench {

struct FarmOptions {
  std::string endpoint;          // the broker's runner endpoint
  std::string pool = "bench";
  std::vector<std::string> functions{"noop"};
  uint32_t runners = 1;
  uint32_t slotsPerRunner = 1;   // announced in ready (credit)
  Duration heartbeatInterval{1000};
  // After its welcome each runner says leaving{exiting=true} and stops: leaves behind a pool
  // with no runners, where jobs wait (the memory scenario).
  bool leaveAfterWelcome = false;
  // CURVE (issue 10): every runner connects as a CURVE client with these keys (the broker's
  // public key and the runners' pair, listed in its runner_keys). None: plaintext.
  std::optional<CurveClient> curve;
};

class RunnerFarm {
 public:
  // Starts the farm's thread, which connects every runner and sends its ready.
  explicit RunnerFarm(FarmOptions options);
  // Each runner says leaving{exiting=true}; then the thread is joined and sockets closed.
  ~RunnerFarm();
  RunnerFarm(const RunnerFarm&) = delete;
  RunnerFarm& operator=(const RunnerFarm&) = delete;

  // Waits until every runner got its welcome (or, with leaveAfterWelcome, has left), up to
  // `bound`. Thread-safe. Returns false on timeout or if the farm failed (see failure()).
  bool waitWelcomed(Duration bound);
  // Jobs answered so far. Thread-safe.
  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  // Messages the broker sent that the farm did not expect (errors, drains). Thread-safe.
  uint64_t unexpected() const { return unexpected_.load(std::memory_order_relaxed); }
  // The first of them, described ("error unknown_peer: ..."). Thread-safe.
  std::string firstUnexpected() const;
  // Why the farm's thread stopped early (empty while it runs normally). Thread-safe.
  std::string failure() const;

 private:
  void loop();
  void noteUnexpected(const std::string& what);

  FarmOptions options_;
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> unexpected_{0};
  mutable std::mutex mutex_;
  std::string firstUnexpected_;  // guarded by mutex_
  PeerThread thread_;            // last: runs loop() (a runner is ready when welcomed)
};

}  // namespace flame::bench
