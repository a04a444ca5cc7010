#include "backends/kubernetes_backend.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "backends/runner_env.h"
#include "common/log.h"

namespace flame {

namespace {

using json = nlohmann::json;

std::shared_ptr<spdlog::logger> log() { return logger("backend.kubernetes"); }

// 429 (API priority and fairness, with Retry-After) and 5xx are transient. 409 on create is
// AlreadyExists (resolved by boot()), 422 Invalid is a spec the API refuses, 401/403 need a human.
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

// The first of these environment variables that is set and not empty.
std::string fromEnv(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  return {};
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

std::string describeResponse(const http::Response& response) {
  return response.answered() ? "HTTP " + std::to_string(response.status) + ": " +
                                   apiErrorMessage(response.body, {"message", "error"})
                             : std::string(http::toString(response.error)) + ": " +
                                   response.errorMessage;
}

}  // namespace

KubernetesBackend::KubernetesBackend(KubernetesOptions options)
    : options_(std::move(options)),
      sleeper_(options_.sleeper ? options_.sleeper : realSleeper()),
      retry_{options_.maxRetries, options_.retryBase, options_.retryMax},
      watcher_(options_.watchInterval,
               [this](const std::vector<WatchedMachine>& watched) { return probe(watched); }) {
  options_.apiServer = stripTrailingSlash(options_.apiServer);
  // The namespace file is the service account's: the namespace of the pod we run in.
  std::string ownNamespace;
  if (!options_.namespacePath.empty()) {
    if (auto text = readFile(options_.namespacePath)) ownNamespace = trim(*text);
  }
  if (options_.namespace_.empty()) options_.namespace_ = ownNamespace;
  if (options_.ownerPodName.empty()) options_.ownerPodName = fromEnv({"FLAME_POD_NAME", "POD_NAME"});
  if (options_.ownerPodUid.empty()) options_.ownerPodUid = fromEnv({"FLAME_POD_UID", "POD_UID"});
  if (options_.ownerPodNamespace.empty())
    options_.ownerPodNamespace = fromEnv({"FLAME_POD_NAMESPACE", "POD_NAMESPACE"});
  if (options_.ownerPodNamespace.empty()) options_.ownerPodNamespace = ownNamespace;

  template_ = options_.podTemplate.empty() ? k8s::defaultPodTemplate()
                                           : k8s::loadPodTemplate(options_.podTemplate);
  std::string problem;
  if (options_.apiServer.empty())
    problem = "api server URL is empty";
  else if (!template_.status.ok)
    problem = template_.status.message;
  else if (options_.image.empty() && !template_.runnerHasImage)
    problem = options_.podTemplate.empty()
                  ? "image is required"
                  : "image is required: pod_template " + options_.podTemplate +
                        " gives the runner container no image";
  else if (options_.namespace_.empty())
    problem = "no namespace (set namespace or mount " + options_.namespacePath + ")";
  else if (options_.maxRetries < 0)
    problem = "max_retries must be >= 0";
  if (!problem.empty()) {
    configStatus_ = BackendStatus::failure("kubernetes backend: " + problem, false);
    log()->error("{}", configStatus_.message);
    return;
  }
  if (template_.runnerHasImage && !options_.image.empty())
    log()->warn("pod_template {} names the runner container's image: it is used, not image={}",
                options_.podTemplate, options_.image);

  // An owner in another namespace (or one we cannot place) would make the garbage collector
  // treat the owner as absent and delete every runner pod right after its creation.
  bool ownerKnown = !options_.ownerPodName.empty() && !options_.ownerPodUid.empty();
  if (ownerKnown && options_.ownerPodNamespace == options_.namespace_) {
    setsOwner_ = true;
    log()->info("runner pods in namespace={} are owned by the broker's pod {} (uid {})",
                options_.namespace_, options_.ownerPodName, options_.ownerPodUid);
  } else if (ownerKnown && options_.ownerPodNamespace.empty()) {
    log()->warn(
        "runner pods get no ownerReference: the namespace of the broker's pod {} is unknown "
        "(set FLAME_POD_NAMESPACE); the orphan sweep cleans up instead",
        options_.ownerPodName);
  } else if (ownerKnown) {
    log()->warn(
        "runner pods get no ownerReference: the broker's pod {} is in namespace '{}', runner "
        "pods in '{}' (owners cannot cross namespaces); the orphan sweep cleans up instead",
        options_.ownerPodName, options_.ownerPodNamespace, options_.namespace_);
  }
}

KubernetesBackend::~KubernetesBackend() { watcher_.stop(); }

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

  k8s::RunnerPodFill fill;
  fill.name = podName;
  fill.labels = options_.labels;
  fill.labels[k8s::kKeyPool] = dnsLabel(spec.pool);
  fill.labels[k8s::kKeyBrokerId] = dnsLabel(spec.brokerId);
  fill.labels[k8s::kKeyRunnerId] = podName;
  fill.annotations = {{k8s::kKeyPool, spec.pool},
                      {k8s::kKeyBrokerId, spec.brokerId},
                      {k8s::kKeyRunnerId, spec.runnerId}};
  if (setsOwner_) {
    fill.ownerReference = json{{"apiVersion", "v1"},
                               {"kind", "Pod"},
                               {"name", options_.ownerPodName},
                               {"uid", options_.ownerPodUid},
                               {"controller", false},
                               {"blockOwnerDeletion", false}};
  }
  fill.image = options_.image;
  fill.env = runnerEnvironment(spec, options_.env);
  fill.cpu = options_.cpu;
  fill.memory = options_.memory;
  fill.serviceAccount = options_.serviceAccount;
  json pod = k8s::buildRunnerPod(template_, fill);

  std::lock_guard lock(mutex_);
  http::Request request = baseRequest("POST", "/pods");
  request.headers.push_back("Content-Type: application/json");
  // Invalid UTF-8 in ids or env values is replaced, not thrown: boot() reports, never throws.
  request.body = pod.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string what = "kubernetes create pod=" + podName + " pool=" + spec.pool;
  // A create whose answer was lost may have been carried out: look before creating again.
  std::optional<k8s::Pod> found;
  auto lookBeforeRetry = [&](const http::Response& failed) {
    if (!mayHaveBeenCarriedOut(failed)) return false;
    PodLookup lookup = lookupPod(client_, podName, nullptr);
    if (lookup.kind != PodLookup::Kind::Found ||
        !k8s::belongsTo(lookup.pod, spec.brokerId, spec.runnerId))
      return false;
    found = std::move(lookup.pod);
    return true;
  };
  HttpOutcome outcome = performWithRetry(
      client_, std::move(request), retry_, sleeper_, retryableStatus,
      [this](http::Request& r) { return authorize(r); }, *log(), what, lookBeforeRetry);
  if (outcome.settled) return adopt(spec, *found, what, "an attempt whose answer was lost created it");
  if (outcome.prepareStatus.ok && outcome.response.answered() && outcome.response.status == 409)
    return resolveAlreadyExists(spec, podName, what, outcome);
  if (!outcome.prepareStatus.ok || !outcome.response.answered() ||
      !isSuccess(outcome.response.status)) {
    result.status = failureFrom(what, outcome);
    log()->error("{}", result.status.message);
    return result;
  }
  // The pod's name is the one we chose; the answer is read only to log what the API made of it.
  k8s::PodAnswer answer = k8s::parsePod(outcome.response.body);
  if (!answer.status.ok)
    log()->warn("{}: created, but the answer is odd: {}", what, answer.status.message);
  result.handle = MachineHandle{podName, spec.runnerId, spec.pool};
  log()->info("pool={} runner={} created pod={}", spec.pool, spec.runnerId, podName);
  watcher_.watch(result.handle, spec.brokerId);
  return result;
}

KubernetesBackend::PodLookup KubernetesBackend::lookupPod(http::Client& client,
                                                          const std::string& podName,
                                                          const std::atomic<bool>* cancel) const {
  PodLookup lookup;
  http::Request request = baseRequest("GET", "/pods/" + http::urlEncode(podName));
  request.cancel = cancel;
  if (BackendStatus auth = authorize(request); !auth.ok) {
    lookup.why = auth.message;
    return lookup;
  }
  http::Response response = client.perform(request);
  if (response.answered() && response.status == 404) {
    lookup.kind = PodLookup::Kind::NotFound;
    return lookup;
  }
  if (!response.answered() || !isSuccess(response.status)) {
    lookup.why = describeResponse(response);
    return lookup;
  }
  k8s::PodAnswer answer = k8s::parsePod(response.body);
  if (!answer.status.ok) {
    lookup.why = answer.status.message;
    return lookup;
  }
  lookup.kind = PodLookup::Kind::Found;
  lookup.pod = std::move(answer.pod);
  return lookup;
}

BootResult KubernetesBackend::adopt(const BootSpec& spec, const k8s::Pod& pod,
                                    const std::string& what, const std::string& how) {
  BootResult result;
  if (auto ended = k8s::endedDescription(pod)) {
    // The pod object stays (restartPolicy Never keeps it for its logs); it is tagged, so the
    // orphan sweep deletes it.
    result.status =
        BackendStatus::failure(what + ": " + how + ", but it already ended: " + *ended, true);
    log()->error("{}", result.status.message);
    return result;
  }
  result.handle = MachineHandle{pod.name, spec.runnerId, spec.pool};
  log()->warn("{}: {}: phase={}", what, how, pod.phase.empty() ? "unknown" : pod.phase);
  watcher_.watch(result.handle, spec.brokerId);
  return result;
}

BootResult KubernetesBackend::resolveAlreadyExists(const BootSpec& spec, const std::string& podName,
                                                   const std::string& what,
                                                   const HttpOutcome& outcome) {
  // The name is dnsLabel(runner id), which the broker never reuses: a pod holding it that carries
  // our tags was created by an earlier attempt of this boot whose answer was lost.
  BootResult result;
  PodLookup lookup = lookupPod(client_, podName, nullptr);
  std::string refused = failureFrom(what, outcome).message;
  switch (lookup.kind) {
    case PodLookup::Kind::Found:
      if (k8s::belongsTo(lookup.pod, spec.brokerId, spec.runnerId))
        return adopt(spec, lookup.pod, what, "the pod exists: an earlier attempt created it");
      result.status = BackendStatus::failure(
          refused + "; the pod is not this boot's (broker=" + lookup.pod.tag(k8s::kKeyBrokerId) +
              " runner=" + lookup.pod.tag(k8s::kKeyRunnerId) + ")",
          false);
      break;
    case PodLookup::Kind::NotFound:
      result.status =
          BackendStatus::failure(refused + "; the pod was gone when read back", true);
      break;
    case PodLookup::Kind::Failed:
      result.status =
          BackendStatus::failure(refused + "; reading the pod back failed: " + lookup.why, true);
      break;
  }
  log()->error("{}", result.status.message);
  return result;
}

BackendStatus KubernetesBackend::stop(const MachineHandle& machine) {
  if (!configStatus_.ok) return configStatus_;
  if (machine.machineId.empty()) return BackendStatus::success();
  watcher_.forget(machine.machineId);
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
  std::string selector = std::string(k8s::kKeyBrokerId) + "=" + dnsLabel(brokerId);
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
  k8s::PodListAnswer answer = k8s::parsePodList(response.body);
  if (!answer.status.ok) {
    result.status = BackendStatus::failure(what + ": " + answer.status.message, true);
    log()->error("{}", result.status.message);
    return result;
  }
  for (const auto& pod : answer.pods) {
    // The annotation holds the exact broker id; the label only its sanitised form.
    auto owner = pod.annotations.find(k8s::kKeyBrokerId);
    bool mine = owner == pod.annotations.end() || owner->second.empty()
                    ? pod.labels.count(k8s::kKeyBrokerId) &&
                          pod.labels.at(k8s::kKeyBrokerId) == dnsLabel(brokerId)
                    : owner->second == brokerId;
    if (!mine) continue;
    result.machines.push_back(
        MachineHandle{pod.name, pod.tag(k8s::kKeyRunnerId), pod.tag(k8s::kKeyPool)});
  }
  return result;
}

void KubernetesBackend::noteProbeFailure(const std::string& what, const std::string& why) {
  // The first failure in a row is worth a warning; an API server that stays unreachable is not
  // worth one every watch_interval.
  if (probeFailures_++ == 0)
    log()->warn("{}: {} (watching continues; further failures at debug)", what, why);
  else
    log()->debug("{}: {}", what, why);
}

std::vector<ExitedMachine> KubernetesBackend::probe(const std::vector<WatchedMachine>& watched) {
  std::vector<ExitedMachine> ended;
  std::map<std::string, std::vector<const WatchedMachine*>> byBroker;
  for (const auto& machine : watched) byBroker[machine.brokerId].push_back(&machine);
  const std::atomic<bool>* cancel = watcher_.cancelFlag();
  bool failed = false;
  for (const auto& [brokerId, group] : byBroker) {
    std::string what = "kubernetes watch pods broker=" + brokerId;
    std::string selector = std::string(k8s::kKeyBrokerId) + "=" + dnsLabel(brokerId);
    http::Request request = baseRequest("GET", "/pods?labelSelector=" + http::urlEncode(selector));
    request.cancel = cancel;
    if (BackendStatus auth = authorize(request); !auth.ok) {
      noteProbeFailure(what, auth.message);
      return ended;
    }
    http::Response response = watchClient_.perform(request);
    if (response.error == http::TransportError::Cancelled) return ended;
    k8s::PodListAnswer listed;
    if (!response.answered() || !isSuccess(response.status)) {
      failed = true;
      noteProbeFailure(what, describeResponse(response));
      continue;
    }
    listed = k8s::parsePodList(response.body);
    if (!listed.status.ok) {
      failed = true;
      noteProbeFailure(what, listed.status.message);
      continue;
    }
    std::map<std::string, const k8s::Pod*> byName;
    for (const auto& pod : listed.pods) byName.emplace(pod.name, &pod);
    for (const WatchedMachine* entry : group) {
      const MachineHandle& handle = entry->machine;
      auto it = byName.find(handle.machineId);
      if (it != byName.end()) {
        if (auto description = k8s::endedDescription(*it->second))
          ended.push_back(ExitedMachine{handle, *description});
        continue;
      }
      // Left out of the list: deleted by someone else, or relabelled. Read it by name.
      PodLookup lookup = lookupPod(watchClient_, handle.machineId, cancel);
      if (cancel->load()) return ended;
      if (lookup.kind == PodLookup::Kind::NotFound) {
        ended.push_back(ExitedMachine{handle, "pod not found (deleted)"});
      } else if (lookup.kind == PodLookup::Kind::Failed) {
        failed = true;
        noteProbeFailure("kubernetes watch pod=" + handle.machineId, lookup.why);
      } else if (auto description = k8s::endedDescription(lookup.pod)) {
        ended.push_back(ExitedMachine{handle, *description});
      }
    }
  }
  if (!failed && probeFailures_ > 0) {
    log()->info("kubernetes watch: the API answers again after {} failed requests",
                probeFailures_);
    probeFailures_ = 0;
  }
  for (const auto& exited : ended)
    log()->info("pool={} runner={} pod={} ended by itself: {}", exited.machine.pool,
                exited.machine.runnerId, exited.machine.machineId, exited.description);
  return ended;
}

}  // namespace flame
