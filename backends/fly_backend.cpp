#include "backends/fly_backend.h"

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "backends/runner_env.h"
#include "common/log.h"

namespace flame {

namespace {

using json = nlohmann::json;

std::shared_ptr<spdlog::logger> log() { return logger("backend.fly"); }

// Which answers are worth repeating, from the Machines API docs and Fly's own answers on its
// forum (community.fly.io/t/409-conflict-error-from-machines-api/15555):
//   408, 429 (rate limited, with Retry-After), 5xx: transient for every call.
//   409: a lease held on the machine, or `current_version` outdated: transient for calls on an
//        existing machine. On create it means the name is taken: boot() resolves it by lookup.
//   412: a failed precondition (a volume in use by another machine; outdated version). Can clear
//        for calls on an existing machine; a create we send has no precondition to wait for.
//   422: the request is invalid (an image the API refuses, the org's machine limit, an app not
//        set up for machines): repeating it cannot help, a human must act. Never retried.
bool createRetryable(long status) {
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}
bool callRetryable(long status) {
  return createRetryable(status) || status == 409 || status == 412;
}

bool isSuccess(long status) { return status >= 200 && status <= 299; }

// The (logged) failure of a request that did not succeed: retryable per `retryable` or transport
// errors, with the API's own error message when it gave one.
BackendStatus failureOf(const std::string& what, const HttpOutcome& outcome,
                        bool (*retryable)(long)) {
  const auto& response = outcome.response;
  bool again =
      response.answered() ? retryable(response.status) : isRetryableTransport(response.error);
  auto status = BackendStatus::failure(
      describeOutcome(what, outcome,
                      response.answered() ? apiErrorMessage(response.body, {"error", "message"}) : ""),
      again);
  log()->error("{}", status.message);
  return status;
}

std::string stripTrailingSlash(std::string text) {
  while (!text.empty() && text.back() == '/') text.pop_back();
  return text;
}

// Lookups after a name conflict: Fly's list can lag a create by a moment (its state spreads
// between regions), so a machine that holds the name may show up only on a second look.
constexpr int kConflictLookups = 3;

}  // namespace

FlyBackend::FlyBackend(FlyOptions options)
    : options_(std::move(options)),
      ownedClock_(options_.clock == nullptr ? std::make_unique<SteadyClock>() : nullptr),
      clock_(options_.clock != nullptr ? options_.clock : ownedClock_.get()),
      sleeper_(options_.sleeper ? options_.sleeper : realSleeper()),
      retry_{options_.maxRetries, options_.retryBase, options_.retryMax},
      createBucket_(options_.createRatePerSecond, options_.createBurst, *clock_),
      watcher_(options_.watchInterval,
               [this](const std::vector<WatchedMachine>& watched) { return probe(watched); }) {
  options_.apiBase = stripTrailingSlash(options_.apiBase);
  // As FLAME does: a broker running on Fly boots its runners in its own app, from its own image,
  // unless told otherwise. Fly sets both variables on every machine.
  auto fromEnv = [](std::string& value, const char* name) {
    if (!value.empty()) return;
    if (const char* set = std::getenv(name)) value = set;
  };
  fromEnv(options_.token, "FLY_API_TOKEN");
  fromEnv(options_.app, "FLY_APP_NAME");
  fromEnv(options_.image, "FLY_IMAGE_REF");
  std::string reservedKey;
  for (const auto& [key, value] : options_.metadata)
    if (key.rfind(fly::kMetaPrefix, 0) == 0 && reservedKey.empty()) reservedKey = key;
  std::string problem;
  if (options_.apiBase.empty())
    problem = "api base URL is empty";
  else if (options_.app.empty())
    problem = "app is required (or run the broker on Fly, where FLY_APP_NAME is set)";
  else if (options_.image.empty())
    problem = "image is required (or run the broker on Fly, where FLY_IMAGE_REF is set)";
  else if (options_.token.empty())
    problem = "no API token (set token or FLY_API_TOKEN)";
  else if (options_.token.find_first_of("\r\n") != std::string::npos)
    problem = "API token contains a line break";
  else if (options_.cpus < 1)
    problem = "cpus must be >= 1";
  else if (options_.memoryMb < 1)
    problem = "memory_mb must be >= 1";
  else if (options_.maxRetries < 0)
    problem = "max_retries must be >= 0";
  else if (options_.gpus < 0)
    problem = "gpus must be >= 0";
  else if (options_.gpus > 0 && options_.gpuKind.empty())
    problem = "gpus needs gpu_kind (e.g. \"a100-pcie-40gb\"): Fly attaches GPUs of one kind";
  else if (!reservedKey.empty())
    problem = "metadata key '" + reservedKey + "' is flame's own (keys starting with '" +
              std::string(fly::kMetaPrefix) + "' are reserved)";
  if (!problem.empty()) {
    configStatus_ = BackendStatus::failure("fly backend: " + problem, false);
    log()->error("{}", configStatus_.message);
  }
}

FlyBackend::~FlyBackend() { watcher_.stop(); }

http::Request FlyBackend::baseRequest(std::string method, std::string path) const {
  http::Request request;
  request.method = std::move(method);
  request.url = options_.apiBase + "/v1/apps/" + http::urlEncode(options_.app) + path;
  request.headers = {"Authorization: Bearer " + options_.token, "Accept: application/json"};
  request.timeout = options_.requestTimeout;
  return request;
}

BootResult FlyBackend::boot(const BootSpec& spec) {
  BootResult result;
  if (!configStatus_.ok) {
    result.status = configStatus_;
    return result;
  }
  json guest = {
      {"cpu_kind", options_.cpuKind}, {"cpus", options_.cpus}, {"memory_mb", options_.memoryMb}};
  if (!options_.gpuKind.empty()) guest["gpu_kind"] = options_.gpuKind;
  if (options_.gpus > 0) guest["gpus"] = options_.gpus;
  // The user's metadata first, then flame's tags (the constructor refused clashing keys).
  json metadata = json::object();
  for (const auto& [key, value] : options_.metadata) metadata[key] = value;
  metadata[fly::kMetaPool] = spec.pool;
  metadata[fly::kMetaBrokerId] = spec.brokerId;
  metadata[fly::kMetaRunnerId] = spec.runnerId;
  json env = json::object();
  for (const auto& [name, value] : runnerEnvironment(spec, options_.env)) env[name] = value;
  json body = {
      {"name", spec.runnerId},
      {"config",
       {{"image", options_.image},
        {"guest", guest},
        {"env", env},
        {"auto_destroy", true},  // the machine is deleted when the runner exits
        {"restart", {{"policy", "no"}}},
        {"metadata", metadata}}},
  };
  if (!options_.region.empty()) body["region"] = options_.region;
  json init = json::object();
  if (!options_.initEntrypoint.empty()) init["entrypoint"] = options_.initEntrypoint;
  if (!options_.initCmd.empty()) init["cmd"] = options_.initCmd;
  if (!options_.initExec.empty()) init["exec"] = options_.initExec;
  if (!init.empty()) body["config"]["init"] = init;

  std::lock_guard lock(mutex_);
  http::Request request = baseRequest("POST", "/machines");
  request.headers.push_back("Content-Type: application/json");
  // Invalid UTF-8 in ids or env values is replaced, not thrown: boot() reports, never throws.
  request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string what = "fly create machine pool=" + spec.pool + " runner=" + spec.runnerId;
  // Every attempt, retries included, counts against Fly's create limit.
  auto rateLimit = [this, &what](http::Request&) {
    Duration wait = createBucket_.reserve();
    if (wait > Duration(0)) {
      log()->debug("{}: rate limited, waiting {}ms", what, wait.count());
      sleeper_(wait);
    }
    return BackendStatus::success();
  };
  // A create whose answer was lost may have been carried out: look before creating again.
  std::optional<fly::Machine> found;
  auto lookBeforeRetry = [&](const http::Response& failed) {
    if (!mayHaveBeenCarriedOut(failed)) return false;
    found = findOwnMachine(spec, what);
    return found.has_value();
  };
  HttpOutcome outcome =
      performWithRetry(client_, std::move(request), retry_, sleeper_, createRetryable, rateLimit,
                       *log(), what, lookBeforeRetry);
  if (outcome.settled) return adopt(spec, *found, what, "an attempt whose answer was lost created it");
  const auto& response = outcome.response;
  if (response.answered() && !isSuccess(response.status)) {
    std::string apiMessage = apiErrorMessage(response.body, {"error", "message"});
    if (fly::isNameConflict(response.status, apiMessage))
      return resolveNameConflict(spec, what, outcome, apiMessage);
  }
  if (!response.answered() || !isSuccess(response.status)) {
    result.status = failureOf(what, outcome, createRetryable);
    return result;
  }
  fly::MachineAnswer answer = fly::parseMachine(response.body);
  if (!answer.status.ok) {
    // Fly accepted something but we cannot tell which machine: it is tagged, so the orphan
    // sweep (list) finds it; the boot itself may be retried.
    result.status = BackendStatus::failure(what + ": HTTP " + std::to_string(response.status) +
                                               " without a machine id in the answer (" +
                                               answer.status.message + ")",
                                           true);
    log()->error("{}", result.status.message);
    return result;
  }
  result.handle = MachineHandle{answer.machine.id, spec.runnerId, spec.pool};
  log()->info("pool={} runner={} created machine={} region={}", spec.pool, spec.runnerId,
              answer.machine.id, answer.machine.region);
  watcher_.watch(result.handle, spec.brokerId);
  return result;
}

std::optional<fly::Machine> FlyBackend::findOwnMachine(const BootSpec& spec,
                                                       const std::string& what) {
  http::Request request = baseRequest(
      "GET", "/machines?metadata." + std::string(fly::kMetaRunnerId) + "=" +
                 http::urlEncode(spec.runnerId));
  http::Response response = client_.perform(request);
  if (!response.answered() || !isSuccess(response.status)) {
    log()->warn("{}: looking for the machine failed: {}", what,
                response.answered() ? "HTTP " + std::to_string(response.status)
                                    : std::string(http::toString(response.error)));
    return std::nullopt;
  }
  fly::MachineListAnswer answer = fly::parseMachineList(response.body);
  if (!answer.status.ok) {
    log()->warn("{}: looking for the machine failed: {}", what, answer.status.message);
    return std::nullopt;
  }
  // Filter here too: the server-side metadata filter is a convenience, not a guarantee. A live
  // machine wins over an ended one (a retried boot of a runner id never happens, but be exact).
  std::optional<fly::Machine> ended;
  for (auto& machine : answer.machines) {
    if (!machine.belongsTo(spec.brokerId, spec.runnerId)) continue;
    if (!fly::isEndedState(machine.state)) return std::move(machine);
    if (!ended) ended = std::move(machine);
  }
  return ended;
}

BootResult FlyBackend::adopt(const BootSpec& spec, const fly::Machine& machine,
                             const std::string& what, const std::string& how) {
  BootResult result;
  if (fly::isEndedState(machine.state)) {
    // Nothing to stop: auto_destroy removes it, and the orphan sweep would catch a leftover.
    result.status = BackendStatus::failure(
        what + ": " + how + " (machine=" + machine.id + "), but it already ended: " +
            fly::describeEnd(machine),
        true);
    log()->error("{}", result.status.message);
    return result;
  }
  result.handle = MachineHandle{machine.id, spec.runnerId, spec.pool};
  log()->warn("{}: {}: machine={} state={}", what, how, machine.id, machine.state);
  watcher_.watch(result.handle, spec.brokerId);
  return result;
}

BootResult FlyBackend::resolveNameConflict(const BootSpec& spec, const std::string& what,
                                           const HttpOutcome& outcome,
                                           const std::string& apiMessage) {
  // The name is the runner id, which the broker never reuses: the machine holding it was created
  // by an earlier attempt of this boot whose answer was lost (or by one that timed out in an
  // earlier call and is still tagged for us).
  for (int lookup = 1; lookup <= kConflictLookups; ++lookup) {
    if (lookup > 1) sleeper_(backoffDelay(retry_, lookup - 1));
    if (auto machine = findOwnMachine(spec, what))
      return adopt(spec, *machine, what, "the name is taken by a machine an earlier attempt created");
  }
  BootResult result;
  // Retryable: the scaler boots again under a new runner id. If the holder is ours after all, it
  // is tagged, and the orphan sweep stops it.
  result.status = BackendStatus::failure(
      describeOutcome(what, outcome, apiMessage) + "; no machine tagged broker=" + spec.brokerId +
          " runner=" + spec.runnerId + " found after " + std::to_string(kConflictLookups) +
          " lookups",
      true);
  log()->error("{}", result.status.message);
  return result;
}

BackendStatus FlyBackend::stop(const MachineHandle& machine) {
  if (!configStatus_.ok) return configStatus_;
  if (machine.machineId.empty()) return BackendStatus::success();
  watcher_.forget(machine.machineId);
  std::lock_guard lock(mutex_);
  http::Request request =
      baseRequest("DELETE", "/machines/" + http::urlEncode(machine.machineId) + "?force=true");
  std::string what = "fly destroy machine=" + machine.machineId + " runner=" + machine.runnerId;
  HttpOutcome outcome = performWithRetry(client_, std::move(request), retry_, sleeper_,
                                         callRetryable, nullptr, *log(), what);
  const auto& response = outcome.response;
  if (response.answered() && (isSuccess(response.status) || response.status == 404)) {
    log()->info("pool={} runner={} destroyed machine={}{}", machine.pool, machine.runnerId,
                machine.machineId, response.status == 404 ? " (already gone)" : "");
    return BackendStatus::success();
  }
  return failureOf(what, outcome, callRetryable);
}

ListResult FlyBackend::list(const std::string& brokerId) {
  ListResult result;
  if (!configStatus_.ok) {
    result.status = configStatus_;
    return result;
  }
  std::lock_guard lock(mutex_);
  http::Request request =
      baseRequest("GET", "/machines?metadata.flame_broker_id=" + http::urlEncode(brokerId));
  std::string what = "fly list machines broker=" + brokerId;
  HttpOutcome outcome = performWithRetry(client_, std::move(request), retry_, sleeper_,
                                         callRetryable, nullptr, *log(), what);
  const auto& response = outcome.response;
  if (!response.answered() || !isSuccess(response.status)) {
    result.status = failureOf(what, outcome, callRetryable);
    return result;
  }
  fly::MachineListAnswer answer = fly::parseMachineList(response.body);
  if (!answer.status.ok) {
    result.status = BackendStatus::failure(what + ": " + answer.status.message, true);
    log()->error("{}", result.status.message);
    return result;
  }
  for (const auto& machine : answer.machines) {
    // Filter here too: the server-side metadata filter is a convenience, not a guarantee.
    if (machine.meta(fly::kMetaBrokerId) != brokerId || machine.state == "destroyed") continue;
    result.machines.push_back(
        MachineHandle{machine.id, machine.meta(fly::kMetaRunnerId), machine.meta(fly::kMetaPool)});
  }
  return result;
}

void FlyBackend::noteProbeFailure(const std::string& what, const std::string& why) {
  // The first failure in a row is worth a warning; a provider that stays unreachable is not
  // worth one every watch_interval.
  if (probeFailures_++ == 0)
    log()->warn("{}: {} (watching continues; further failures at debug)", what, why);
  else
    log()->debug("{}: {}", what, why);
}

std::vector<ExitedMachine> FlyBackend::probe(const std::vector<WatchedMachine>& watched) {
  // Reads only: these requests do not count against the create limit (createBucket_), and a
  // round is one list request per broker id, plus one GET for each machine the list leaves out.
  std::vector<ExitedMachine> ended;
  std::map<std::string, std::vector<const WatchedMachine*>> byBroker;
  for (const auto& machine : watched) byBroker[machine.brokerId].push_back(&machine);
  auto request = [this](std::string path) {
    http::Request r = baseRequest("GET", std::move(path));
    r.cancel = watcher_.cancelFlag();
    return r;
  };
  bool failed = false;
  for (const auto& [brokerId, group] : byBroker) {
    std::string what = "fly watch machines broker=" + brokerId;
    http::Response response = watchClient_.perform(request(
        "/machines?metadata." + std::string(fly::kMetaBrokerId) + "=" + http::urlEncode(brokerId)));
    if (response.error == http::TransportError::Cancelled) return ended;
    if (!response.answered() || !isSuccess(response.status)) {
      failed = true;
      noteProbeFailure(what, response.answered() ? "HTTP " + std::to_string(response.status)
                                                 : http::toString(response.error));
      continue;
    }
    fly::MachineListAnswer listed = fly::parseMachineList(response.body);
    if (!listed.status.ok) {
      failed = true;
      noteProbeFailure(what, listed.status.message);
      continue;
    }
    std::map<std::string, const fly::Machine*> byId;
    for (const auto& machine : listed.machines) byId.emplace(machine.id, &machine);
    for (const WatchedMachine* entry : group) {
      const MachineHandle& handle = entry->machine;
      auto it = byId.find(handle.machineId);
      if (it != byId.end()) {
        if (fly::isEndedState(it->second->state))
          ended.push_back(ExitedMachine{handle, fly::describeEnd(*it->second)});
        continue;
      }
      // Left out of the list: destroyed (lists omit those), or too fresh to be listed yet.
      http::Response one =
          watchClient_.perform(request("/machines/" + http::urlEncode(handle.machineId)));
      if (one.error == http::TransportError::Cancelled) return ended;
      if (one.answered() && one.status == 404) {
        ended.push_back(ExitedMachine{handle, "machine not found (destroyed)"});
        continue;
      }
      fly::MachineAnswer machine = one.answered() && isSuccess(one.status)
                                       ? fly::parseMachine(one.body)
                                       : fly::MachineAnswer{};
      if (!one.answered() || !isSuccess(one.status) || !machine.status.ok) {
        failed = true;
        noteProbeFailure("fly watch machine=" + handle.machineId,
                         !one.answered()        ? http::toString(one.error)
                         : !machine.status.ok ? machine.status.message
                                              : "HTTP " + std::to_string(one.status));
        continue;
      }
      if (fly::isEndedState(machine.machine.state))
        ended.push_back(ExitedMachine{handle, fly::describeEnd(machine.machine)});
    }
  }
  if (!failed && probeFailures_ > 0) {
    log()->info("fly watch: the API answers again after {} failed requests", probeFailures_);
    probeFailures_ = 0;
  }
  for (const auto& exited : ended)
    log()->info("pool={} runner={} machine={} ended by itself: {}", exited.machine.pool,
                exited.machine.runnerId, exited.machine.machineId, exited.description);
  return ended;
}

}  // namespace flame
