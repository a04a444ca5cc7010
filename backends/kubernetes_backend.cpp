#include "backends/kubernetes_backend.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/runner_env.h"
#include "common/log.h"

namespace flame {

namespace {

using json = nlohmann::json;

std::shared_ptr<spdlog::logger> log() { return logger("backend.kubernetes"); }

constexpr const char* kLabelPool = "flame/pool";
constexpr const char* kLabelBrokerId = "flame/broker-id";
constexpr const char* kLabelRunnerId = "flame/runner-id";
constexpr size_t kMaxLabel = 63;

bool retryableStatus(long status) { return status == 429 || (status >= 500 && status <= 599); }
bool isSuccess(long status) { return status >= 200 && status <= 299; }

std::string trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return std::string(text);
}

// Reads a small file (token, namespace); at most kMaxSecretBytes.
std::optional<std::string> readFile(const std::string& path) {
  constexpr size_t kMaxSecretBytes = 64 * 1024;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text(kMaxSecretBytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

std::string stringField(const json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& objectField(const json& object, const char* key) {
  static const json kEmpty = json::object();
  if (!object.is_object()) return kEmpty;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : kEmpty;
}

uint32_t fnv1a(std::string_view text) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash;
}

std::string stripTrailingSlash(std::string text) {
  while (!text.empty() && text.back() == '/') text.pop_back();
  return text;
}

BackendStatus failureFrom(const std::string& what, const HttpOutcome& outcome) {
  const auto& response = outcome.response;
  bool retryable =
      outcome.prepareStatus.ok && (response.answered() ? retryableStatus(response.status)
                                                       : isRetryableTransport(response.error));
  std::string apiMessage =
      response.answered() ? apiErrorMessage(response.body, {"message", "error"}) : "";
  if (response.answered() && response.status == 409) apiMessage = "already exists: " + apiMessage;
  return BackendStatus::failure(describeOutcome(what, outcome, apiMessage), retryable);
}

}  // namespace

std::string dnsLabel(std::string_view text) {
  std::string label;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    char mapped = std::isalnum(u) && u < 0x80 ? static_cast<char>(std::tolower(u)) : '-';
    if (mapped == '-' && (label.empty() || label.back() == '-'))
      continue;  // no leading or double '-'
    label.push_back(mapped);
  }
  while (!label.empty() && label.back() == '-') label.pop_back();
  if (label.size() > kMaxLabel) {
    char suffix[10];
    std::snprintf(suffix, sizeof suffix, "-%08x", fnv1a(text));
    label.resize(kMaxLabel - 9);
    while (!label.empty() && label.back() == '-') label.pop_back();
    label += suffix;
  }
  if (label.empty()) label = "x";
  return label;
}

KubernetesBackend::KubernetesBackend(KubernetesOptions options)
    : options_(std::move(options)),
      sleeper_(options_.sleeper ? options_.sleeper : realSleeper()),
      retry_{options_.maxRetries, options_.retryBase, options_.retryMax} {
  options_.apiServer = stripTrailingSlash(options_.apiServer);
  if (options_.namespace_.empty() && !options_.namespacePath.empty()) {
    if (auto text = readFile(options_.namespacePath)) options_.namespace_ = trim(*text);
  }
  if (options_.ownerPodName.empty()) {
    if (const char* name = std::getenv("POD_NAME")) options_.ownerPodName = name;
  }
  if (options_.ownerPodUid.empty()) {
    if (const char* uid = std::getenv("POD_UID")) options_.ownerPodUid = uid;
  }
  std::string problem;
  if (options_.apiServer.empty())
    problem = "api server URL is empty";
  else if (options_.image.empty())
    problem = "image is required";
  else if (options_.namespace_.empty())
    problem = "no namespace (set namespace or mount " + options_.namespacePath + ")";
  else if (options_.maxRetries < 0)
    problem = "max_retries must be >= 0";
  if (!problem.empty()) {
    configStatus_ = BackendStatus::failure("kubernetes backend: " + problem, false);
    log()->error("{}", configStatus_.message);
  }
}

KubernetesBackend::~KubernetesBackend() = default;

http::Request KubernetesBackend::baseRequest(std::string method, std::string path) const {
  http::Request request;
  request.method = std::move(method);
  request.url =
      options_.apiServer + "/api/v1/namespaces/" + http::urlEncode(options_.namespace_) + path;
  request.headers = {"Accept: application/json"};
  request.timeout = options_.requestTimeout;
  request.caPath = options_.caPath;
  request.insecureSkipTlsVerify = options_.insecureSkipTlsVerify;
  return request;
}

BackendStatus KubernetesBackend::authorize(http::Request& request) const {
  std::erase_if(request.headers,
                [](const std::string& h) { return h.rfind("Authorization:", 0) == 0; });
  if (options_.tokenPath.empty()) return BackendStatus::success();
  auto token = readFile(options_.tokenPath);
  if (!token)
    return BackendStatus::failure("cannot read service account token " + options_.tokenPath, false);
  std::string value = trim(*token);
  if (value.empty() || value.find_first_of("\r\n") != std::string::npos) {
    return BackendStatus::failure(
        "service account token " + options_.tokenPath + " is empty or malformed", false);
  }
  request.headers.push_back("Authorization: Bearer " + value);
  return BackendStatus::success();
}

BootResult KubernetesBackend::boot(const BootSpec& spec) {
  BootResult result;
  if (!configStatus_.ok) {
    result.status = configStatus_;
    return result;
  }
  std::string podName = dnsLabel(spec.runnerId);

  json labels = json::object();
  for (const auto& [key, value] : options_.labels) labels[key] = value;
  labels[kLabelPool] = dnsLabel(spec.pool);
  labels[kLabelBrokerId] = dnsLabel(spec.brokerId);
  labels[kLabelRunnerId] = podName;
  json annotations = {
      {kLabelPool, spec.pool}, {kLabelBrokerId, spec.brokerId}, {kLabelRunnerId, spec.runnerId}};
  json metadata = {{"name", podName}, {"labels", labels}, {"annotations", annotations}};
  if (!options_.ownerPodName.empty() && !options_.ownerPodUid.empty()) {
    metadata["ownerReferences"] = json::array({{{"apiVersion", "v1"},
                                                {"kind", "Pod"},
                                                {"name", options_.ownerPodName},
                                                {"uid", options_.ownerPodUid},
                                                {"controller", false},
                                                {"blockOwnerDeletion", false}}});
  }
  json env = json::array();
  for (const auto& [name, value] : runnerEnvironment(spec, options_.env))
    env.push_back({{"name", name}, {"value", value}});
  json container = {{"name", "runner"}, {"image", options_.image}, {"env", env}};
  json quantities = json::object();
  if (!options_.cpu.empty()) quantities["cpu"] = options_.cpu;
  if (!options_.memory.empty()) quantities["memory"] = options_.memory;
  if (!quantities.empty())
    container["resources"] = {{"requests", quantities}, {"limits", quantities}};
  json podSpec = {{"restartPolicy", "Never"}, {"containers", json::array({container})}};
  if (!options_.serviceAccount.empty()) podSpec["serviceAccountName"] = options_.serviceAccount;
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", metadata}, {"spec", podSpec}};

  std::lock_guard lock(mutex_);
  http::Request request = baseRequest("POST", "/pods");
  request.headers.push_back("Content-Type: application/json");
  // Invalid UTF-8 in ids or env values is replaced, not thrown: boot() reports, never throws.
  request.body = pod.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string what = "kubernetes create pod=" + podName + " pool=" + spec.pool;
  HttpOutcome outcome = performWithRetry(
      client_, std::move(request), retry_, sleeper_, retryableStatus,
      [this](http::Request& r) { return authorize(r); }, *log(), what);
  // 409 on a retry: an earlier attempt (one that timed out, or whose answer was lost) created
  // the pod after all. The name is the runner id, which the broker never reuses, so it is ours.
  bool createdEarlier = outcome.prepareStatus.ok && outcome.response.answered() &&
                        outcome.response.status == 409 && outcome.attempts > 1;
  if (createdEarlier) {
    log()->warn("{}: already exists after {} attempts; an earlier attempt created it", what,
                outcome.attempts);
    result.handle = MachineHandle{podName, spec.runnerId, spec.pool};
    return result;
  }
  if (!outcome.prepareStatus.ok || !outcome.response.answered() ||
      !isSuccess(outcome.response.status)) {
    result.status = failureFrom(what, outcome);
    log()->error("{}", result.status.message);
    return result;
  }
  auto answer = json::parse(outcome.response.body, nullptr, /*allow_exceptions=*/false);
  std::string created = stringField(objectField(answer, "metadata"), "name");
  result.handle = MachineHandle{created.empty() ? podName : created, spec.runnerId, spec.pool};
  log()->info("pool={} runner={} created pod={}", spec.pool, spec.runnerId,
              result.handle.machineId);
  return result;
}

BackendStatus KubernetesBackend::stop(const MachineHandle& machine) {
  if (!configStatus_.ok) return configStatus_;
  if (machine.machineId.empty()) return BackendStatus::success();
  std::lock_guard lock(mutex_);
  http::Request request = baseRequest("DELETE", "/pods/" + http::urlEncode(machine.machineId));
  std::string what = "kubernetes delete pod=" + machine.machineId;
  HttpOutcome outcome = performWithRetry(
      client_, std::move(request), retry_, sleeper_, retryableStatus,
      [this](http::Request& r) { return authorize(r); }, *log(), what);
  const auto& response = outcome.response;
  if (outcome.prepareStatus.ok && response.answered() &&
      (isSuccess(response.status) || response.status == 404)) {
    log()->info("pool={} runner={} deleted pod={}{}", machine.pool, machine.runnerId,
                machine.machineId, response.status == 404 ? " (already gone)" : "");
    return BackendStatus::success();
  }
  auto status = failureFrom(what, outcome);
  log()->error("{}", status.message);
  return status;
}

ListResult KubernetesBackend::list(const std::string& brokerId) {
  ListResult result;
  if (!configStatus_.ok) {
    result.status = configStatus_;
    return result;
  }
  std::lock_guard lock(mutex_);
  std::string selector = std::string(kLabelBrokerId) + "=" + dnsLabel(brokerId);
  http::Request request = baseRequest("GET", "/pods?labelSelector=" + http::urlEncode(selector));
  std::string what = "kubernetes list pods broker=" + brokerId;
  HttpOutcome outcome = performWithRetry(
      client_, std::move(request), retry_, sleeper_, retryableStatus,
      [this](http::Request& r) { return authorize(r); }, *log(), what);
  const auto& response = outcome.response;
  if (!outcome.prepareStatus.ok || !response.answered() || !isSuccess(response.status)) {
    result.status = failureFrom(what, outcome);
    log()->error("{}", result.status.message);
    return result;
  }
  auto answer = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  auto items = answer.is_object() ? answer.find("items") : answer.end();
  if (!answer.is_object() || items == answer.end() || !(items->is_array() || items->is_null())) {
    result.status = BackendStatus::failure(what + ": answer is not a PodList", true);
    log()->error("{}", result.status.message);
    return result;
  }
  if (items->is_null()) return result;
  for (const auto& pod : *items) {
    const json& metadata = objectField(pod, "metadata");
    const json& podLabels = objectField(metadata, "labels");
    const json& podAnnotations = objectField(metadata, "annotations");
    std::string name = stringField(metadata, "name");
    if (name.empty()) continue;
    // The annotation holds the exact broker id; the label only its sanitised form.
    std::string owner = stringField(podAnnotations, kLabelBrokerId);
    bool mine = owner.empty() ? stringField(podLabels, kLabelBrokerId) == dnsLabel(brokerId)
                              : owner == brokerId;
    if (!mine) continue;
    std::string runnerId = stringField(podAnnotations, kLabelRunnerId);
    if (runnerId.empty()) runnerId = stringField(podLabels, kLabelRunnerId);
    std::string pool = stringField(podAnnotations, kLabelPool);
    if (pool.empty()) pool = stringField(podLabels, kLabelPool);
    result.machines.push_back(MachineHandle{name, runnerId, pool});
  }
  return result;
}

}  // namespace flame
