// FlyBackend: runners on Fly.io Machines (REST API, https://api.machines.dev).
//
//   boot  POST   /v1/apps/{app}/machines              auto_destroy, restart "no", tagged metadata
//   stop  DELETE /v1/apps/{app}/machines/{id}?force=true   (404 = already gone = ok)
//   list  GET    /v1/apps/{app}/machines?metadata.flame_broker_id={id}
//   watch GET    the same list every watchInterval (+ GET /machines/{id} for one it leaves out)
//
// Creates retry 408/429/5xx and timeouts/connection failures with exponential backoff
// (Retry-After honoured, capped at retryMax); 400/401/403/404/412/422 fail at once with the API's
// "error" (422 is an invalid request: an image the API refuses, the org's machine limit). Other
// calls also retry 409/412 (a lease held on the machine, a version that moved on).
// Creates go through a client-side token bucket (Fly limits machine creation per app).
//
// Creates are idempotent: the machine's name is the runner id, which the broker never reuses.
// Before retrying a create whose answer was lost (timeout, dropped connection, 5xx), and when a
// create is refused because the name is taken (409, or 422 "already taken"), boot() looks for a
// machine tagged with this broker's and runner's ids and, if there is one, returns it as the boot.
// Machines that were not found stay tagged, so list() finds them for the orphan sweep.
//
// reapExited(): a MachineWatcher polls the machines this backend booted and has not stopped;
// those in state stopped/destroying/destroyed/failed, or gone (404), are reported once.
//
// Thread-safety: boot/stop/list are serialised by an internal mutex; reapExited() takes only the
// watcher's short lock and may be called concurrently with them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/fly_api.h"
#include "backends/http.h"
#include "backends/machine_watcher.h"
#include "backends/retry.h"
#include "common/clock.h"

namespace flame {

struct FlyOptions {
  std::string apiBase = "https://api.machines.dev";
  std::string app;     // empty: $FLY_APP_NAME (set on Fly machines); missing in both: fails
  std::string token;   // empty: $FLY_API_TOKEN; missing in both: configStatus() fails
  std::string image;   // empty: $FLY_IMAGE_REF (the broker's own image on Fly); missing: fails
  std::string region;  // empty: Fly picks (field omitted)
  std::string cpuKind = "shared";
  int cpus = 1;
  int memoryMb = 256;
  std::string gpuKind;                     // empty: omitted
  // GPUs per machine, sent as guest.gpus next to gpu_kind. 0: not sent. > 0 needs gpuKind.
  int gpus = 0;
  // The machine config's init: entrypoint, cmd and exec each override the image's; empty: not sent.
  std::vector<std::string> initCmd;
  std::vector<std::string> initEntrypoint;
  std::vector<std::string> initExec;
  // Merged into the machine config's metadata. Keys starting with "flame_" are flame's own
  // (the broker, runner and pool tags that list() and the watcher select by): such a key here
  // is a configuration error, so a user's tag can never hide a machine from the orphan sweep.
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::string> env;  // extra runner env; the spec's FLAME_* win
  Duration requestTimeout{30'000};         // per HTTP attempt
  int maxRetries = 5;
  Duration retryBase{200};
  Duration retryMax{5000};
  double createRatePerSecond = 1.0;  // <= 0: no client-side limit
  int createBurst = 3;
  // How often booted machines are checked for having ended by themselves (reapExited()).
  // 0 or kInfinite: not watched. One list request per round (per broker id), whatever the count.
  Duration watchInterval{2000};
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
  // Stops watching the machine first: its end is then not reported by reapExited().
  BackendStatus stop(const MachineHandle& machine) override;
  ListResult list(const std::string& brokerId) override;
  bool supportsList() const override { return true; }
  std::vector<ExitedMachine> reapExited() override { return watcher_.reap(); }

  // One watch round now, on the calling thread (tests; the watcher thread does this every
  // watchInterval). Blocks for its HTTP requests.
  void watchOnce() { watcher_.pollOnce(); }

 private:
  http::Request baseRequest(std::string method, std::string path) const;
  // Our machine for this boot (tagged with its broker and runner ids), if the list shows one.
  // One request, no retries; caller holds mutex_.
  std::optional<fly::Machine> findOwnMachine(const BootSpec& spec, const std::string& what);
  // The boot result for a machine an earlier attempt created; starts watching it.
  BootResult adopt(const BootSpec& spec, const fly::Machine& machine, const std::string& what,
                   const std::string& how);
  BootResult resolveNameConflict(const BootSpec& spec, const std::string& what,
                                 const HttpOutcome& outcome, const std::string& apiMessage);
  // MachineWatcher's probe: runs on the watcher thread only.
  std::vector<ExitedMachine> probe(const std::vector<WatchedMachine>& watched);
  void noteProbeFailure(const std::string& what, const std::string& why);

  FlyOptions options_;
  BackendStatus configStatus_;
  std::unique_ptr<Clock> ownedClock_;  // when options_.clock is null
  const Clock* clock_;
  Sleeper sleeper_;
  RetryPolicy retry_;
  std::mutex mutex_;
  http::Client client_;       // guarded by mutex_
  TokenBucket createBucket_;  // guarded by mutex_
  http::Client watchClient_;  // the probe's own (it never waits for mutex_)
  int probeFailures_ = 0;     // in a row; probe thread only
  MachineWatcher watcher_;    // last: stopped first, before what its probe uses
};

}  // namespace flame
