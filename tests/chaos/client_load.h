// ClientLoad: several flame::Client instances, one per thread, sending a seeded random mix of
// calls (some idempotent with retries), casts and places (+ stop) to the broker while faults
// are injected, and recording every request and answer in the RequestLedger.
//
// Lifecycle: start() -> stop() (no new requests) -> waitDrained(bound) (in-flight requests
// answered, children stopped; bounded) -> [ledger.closeBooks()] -> finish(bound) (each thread
// destroys its Client, which answers anything left with shutting_down, and is joined).
// Every wait inside is bounded; finish() returns false if a thread is stuck (then it is
// detached, and the run is failed).
//
// Threading: the public methods are called from one (the driver's) thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/chaos/ledger.h"

namespace flame::chaos {

struct LoadOptions {
  std::string broker;  // client endpoint
  std::string pool = "chaos";
  int clients = 4;
  int maxInFlight = 8;                       // async calls per client
  std::chrono::milliseconds heartbeat{200};  // client heartbeat interval
  uint32_t liveness = 5;
  uint64_t seed = 1;
};

class ClientLoad {
 public:
  ClientLoad(LoadOptions options, RequestLedger& ledger);
  ~ClientLoad();
  void start();
  void stop();
  // True when every thread drained within `bound`.
  bool waitDrained(std::chrono::milliseconds bound);
  // True when every thread ended within `bound`.
  bool finish(std::chrono::milliseconds bound);
  size_t stuckThreads() const { return stuck_; }

 private:
  void runClient(int index);

  LoadOptions options_;
  RequestLedger& ledger_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  int drained_ = 0, finished_ = 0;
  bool release_ = false;
  size_t stuck_ = 0;
};

}  // namespace flame::chaos
