#include "backends/fly_backend.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "backends/runner_env.h"
#include "common/log.h"

namespace flame {

namespace {

using json = nlohmann::json;

std::shared_ptr<spdlog::logger> log() { return logger("backend.fly"); }

// Fly answers these when a request may work later: 408 timeout, 409/412 a conflicting or
// outdated machine state, 422 capacity/placement problems, 429 rate limited, 5xx.
bool retryableStatus(long status) {
  return status == 408 || status == 409 || status == 412 || status == 422 || status == 429 ||
         (status >= 500 && status <= 599);
}

bool isSuccess(long status) { return status >= 200 && status <= 299; }

// The (logged) failure of a request that did not succeed: retryable per Fly's transient
// statuses or transport errors, with the API's own error message when it gave one.
BackendStatus failureOf(const std::string& what, const HttpOutcome& outcome) {
  const auto& response = outcome.response;
  bool retryable =
      response.answered() ? retryableStatus(response.status) : isRetryableTransport(response.error);
  auto status = BackendStatus::failure(
      describeOutcome(what, outcome,
                      response.answered() ? apiErrorMessage(response.body, {"error", "message"}) : ""),
      retryable);
  log()->error("{}", status.message);
  return status;
}

std::string stringField(const json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json* objectField(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

std::string stripTrailingSlash(std::string text) {
  while (!text.empty() && text.back() == '/') text.pop_back();
  return text;
}

}  // namespace

FlyBackend::FlyBackend(FlyOptions options)
    : options_(std::move(options)),
      ownedClock_(options_.clock == nullptr ? std::make_unique<SteadyClock>() : nullptr),
      clock_(options_.clock != nullptr ? options_.clock : ownedClock_.get()),
      sleeper_(options_.sleeper ? options_.sleeper : realSleeper()),
      retry_{options_.maxRetries, options_.retryBase, options_.retryMax},
      createBucket_(options_.createRatePerSecond, options_.createBurst, *clock_) {
  options_.apiBase = stripTrailingSlash(options_.apiBase);
  if (options_.token.empty()) {
    if (const char* fromEnv = std::getenv("FLY_API_TOKEN")) options_.token = fromEnv;
  }
  std::string problem;
  if (options_.apiBase.empty())
    problem = "api base URL is empty";
  else if (options_.app.empty())
    problem = "app is required";
  else if (options_.image.empty())
    problem = "image is required";
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
  if (!problem.empty()) {
    configStatus_ = BackendStatus::failure("fly backend: " + problem, false);
    log()->error("{}", configStatus_.message);
  }
}

FlyBackend::~FlyBackend() = default;

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
        {"metadata",
         {{"flame_pool", spec.pool},
          {"flame_broker_id", spec.brokerId},
          {"flame_runner_id", spec.runnerId}}}}},
  };
  if (!options_.region.empty()) body["region"] = options_.region;

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
  HttpOutcome outcome = performWithRetry(client_, std::move(request), retry_, sleeper_,
                                         retryableStatus, rateLimit, *log(), what);
  const auto& response = outcome.response;
  if (!response.answered() || !isSuccess(response.status)) {
    result.status = failureOf(what, outcome);
    return result;
  }
  auto answer = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  std::string machineId = stringField(answer, "id");
  if (machineId.empty()) {
    // Fly accepted something but we cannot tell which machine: it is tagged, so the orphan
    // sweep (list) finds it; the boot itself may be retried.
    result.status = BackendStatus::failure(
        what + ": HTTP " + std::to_string(response.status) + " without a machine id in the answer",
        true);
    log()->error("{}", result.status.message);
    return result;
  }
  result.handle = MachineHandle{machineId, spec.runnerId, spec.pool};
  log()->info("pool={} runner={} created machine={} region={}", spec.pool, spec.runnerId, machineId,
              stringField(answer, "region"));
  return result;
}

BackendStatus FlyBackend::stop(const MachineHandle& machine) {
  if (!configStatus_.ok) return configStatus_;
  if (machine.machineId.empty()) return BackendStatus::success();
  std::lock_guard lock(mutex_);
  http::Request request =
      baseRequest("DELETE", "/machines/" + http::urlEncode(machine.machineId) + "?force=true");
  std::string what = "fly destroy machine=" + machine.machineId + " runner=" + machine.runnerId;
  HttpOutcome outcome = performWithRetry(client_, std::move(request), retry_, sleeper_,
                                         retryableStatus, nullptr, *log(), what);
  const auto& response = outcome.response;
  if (response.answered() && (isSuccess(response.status) || response.status == 404)) {
    log()->info("pool={} runner={} destroyed machine={}{}", machine.pool, machine.runnerId,
                machine.machineId, response.status == 404 ? " (already gone)" : "");
    return BackendStatus::success();
  }
  return failureOf(what, outcome);
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
                                         retryableStatus, nullptr, *log(), what);
  const auto& response = outcome.response;
  if (!response.answered() || !isSuccess(response.status)) {
    result.status = failureOf(what, outcome);
    return result;
  }
  auto answer = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_array()) {
    result.status = BackendStatus::failure(what + ": answer is not a JSON array", true);
    log()->error("{}", result.status.message);
    return result;
  }
  for (const auto& machine : answer) {
    // Filter here too: the server-side metadata filter is a convenience, not a guarantee.
    const json* config = objectField(machine, "config");
    const json* metadata = config != nullptr ? objectField(*config, "metadata") : nullptr;
    if (metadata == nullptr || stringField(*metadata, "flame_broker_id") != brokerId) continue;
    std::string id = stringField(machine, "id");
    if (id.empty() || stringField(machine, "state") == "destroyed") continue;
    result.machines.push_back(MachineHandle{id, stringField(*metadata, "flame_runner_id"),
                                            stringField(*metadata, "flame_pool")});
  }
  return result;
}

}  // namespace flame
