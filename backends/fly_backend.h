// FlyBackend: runners on Fly.io Machines (REST API, https://api.machines.dev).
//
//   boot  POST   /v1/apps/{app}/machines              auto_destroy, restart "no", tagged metadata
//   stop  DELETE /v1/apps/{app}/machines/{id}?force=true   (404 = already gone = ok)
//   list  GET    /v1/apps/{app}/machines?metadata.flame_broker_id={id}
//
// Retries 408/409/412/422/429/5xx and timeouts/connection failures with exponential backoff
// (Retry-After honoured, capped at retryMax); other 4xx fail at once with the API's "error".
// Creates go through a client-side token bucket (Fly limits machine creation per app).
// A create that timed out may still have succeeded on Fly's side: the machine is tagged with
// flame_broker_id / flame_runner_id metadata, so list() finds it for the orphan sweep.
//
// Thread-safety: calls are serialised by an internal mutex.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backends/backend.h"
#include "backends/http.h"
#include "backends/retry.h"
#include "common/clock.h"

namespace flame {

struct FlyOptions {
  std::string apiBase = "https://api.machines.dev";
  std::string app;     // required
  std::string token;   // empty: $FLY_API_TOKEN; missing in both: configStatus() fails
  std::string image;   // required
  std::string region;  // empty: Fly picks (field omitted)
  std::string cpuKind = "shared";
  int cpus = 1;
  int memoryMb = 256;
  std::string gpuKind;                     // empty: omitted
  std::map<std::string, std::string> env;  // extra runner env; the spec's FLAME_* win
  Duration requestTimeout{30'000};         // per HTTP attempt
  int maxRetries = 5;
  Duration retryBase{200};
  Duration retryMax{5000};
  double createRatePerSecond = 1.0;  // <= 0: no client-side limit
  int createBurst = 3;
  const Clock* clock = nullptr;           // not owned; nullptr: a SteadyClock owned by the backend
  std::function<void(Duration)> sleeper;  // empty: really sleeps (tests inject a recorder)
};

class FlyBackend final : public Backend {
 public:
  // Never throws for bad options: problems are reported by configStatus() and every call
  // fails with that (non-retryable) status.
  explicit FlyBackend(FlyOptions options);
  ~FlyBackend() override;

  // ok, or why the options cannot work (missing app, image or token, bad numbers).
  const BackendStatus& configStatus() const { return configStatus_; }

  std::string kind() const override { return "fly"; }
  // machineId = Fly machine id. Blocks for the rate limit, the request and its retries.
  BootResult boot(const BootSpec& spec) override;
  BackendStatus stop(const MachineHandle& machine) override;
  ListResult list(const std::string& brokerId) override;
  bool supportsList() const override { return true; }

 private:
  http::Request baseRequest(std::string method, std::string path) const;

  FlyOptions options_;
  BackendStatus configStatus_;
  std::unique_ptr<Clock> ownedClock_;  // when options_.clock is null
  const Clock* clock_;
  Sleeper sleeper_;
  RetryPolicy retry_;
  std::mutex mutex_;
  http::Client client_;       // guarded by mutex_
  TokenBucket createBucket_;  // guarded by mutex_
};

}  // namespace flame
