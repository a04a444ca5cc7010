#include "backends/kubernetes_api.h"

#include <cctype>
#include <cstdint>
#include <cstdio>

#include "backends/api_json.h"

namespace flame {

namespace {

constexpr size_t kMaxLabel = 63;

uint32_t fnv1a(std::string_view text) {
  uint32_t hash = 2166136261u;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash;
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

}  // namespace flame

namespace flame::k8s {

namespace {

using api::Json;

std::optional<Pod> decodePod(const Json& value) {
  const Json* metadata = api::objectField(value, "metadata");
  if (metadata == nullptr) return std::nullopt;
  Pod pod;
  pod.name = api::stringField(*metadata, "name");
  if (pod.name.empty()) return std::nullopt;
  pod.uid = api::stringField(*metadata, "uid");
  // Any non-null deletionTimestamp means "being deleted"; its exact form does not matter.
  auto deletion = metadata->find("deletionTimestamp");
  pod.deleting = deletion != metadata->end() && !deletion->is_null();
  pod.labels = api::stringMapField(*metadata, "labels");
  pod.annotations = api::stringMapField(*metadata, "annotations");
  if (const Json* status = api::objectField(value, "status")) {
    pod.phase = api::stringField(*status, "phase");
    pod.reason = api::stringField(*status, "reason");
    pod.message = api::stringField(*status, "message");
    if (const Json* statuses = api::arrayField(*status, "containerStatuses")) {
      for (const Json& entry : *statuses) {
        if (!entry.is_object()) continue;
        ContainerStatus container;
        container.name = api::stringField(entry, "name");
        if (const Json* state = api::objectField(entry, "state")) {
          if (const Json* terminated = api::objectField(*state, "terminated")) {
            container.terminated = true;
            container.exitCode = api::intField(*terminated, "exitCode");
            container.terminatedReason = api::stringField(*terminated, "reason");
          }
          if (const Json* waiting = api::objectField(*state, "waiting")) {
            container.waitingReason = api::stringField(*waiting, "reason");
            container.waitingMessage = api::stringField(*waiting, "message");
          }
        }
        pod.containers.push_back(std::move(container));
      }
    }
  }
  return pod;
}

std::string describeContainer(const ContainerStatus& container) {
  std::string text = "container " + (container.name.empty() ? "?" : container.name);
  if (container.terminated) {
    text += " terminated";
    if (container.exitCode) text += " with exit code " + std::to_string(*container.exitCode);
    if (!container.terminatedReason.empty()) text += " (" + container.terminatedReason + ")";
  } else {
    text += " cannot start: " + container.waitingReason;
    if (!container.waitingMessage.empty()) text += ": " + container.waitingMessage;
  }
  return text;
}

// Waiting reasons the kubelet never recovers from by itself. ImagePullBackOff and ErrImagePull
// are not here: a registry that is briefly unreachable would fail boots that boot_timeout covers.
bool cannotEverStart(const ContainerStatus& container) {
  return container.waitingReason == "InvalidImageName" ||
         container.waitingReason == "ErrImageNeverPull";
}

}  // namespace

std::string Pod::tag(const std::string& key) const {
  auto annotation = annotations.find(key);
  if (annotation != annotations.end() && !annotation->second.empty()) return annotation->second;
  auto label = labels.find(key);
  return label == labels.end() ? std::string() : label->second;
}

PodAnswer parsePod(std::string_view body) {
  PodAnswer answer;
  auto json = api::parseJson(body);
  if (!json) {
    answer.status = BackendStatus::failure("answer is not JSON", true);
    return answer;
  }
  auto pod = decodePod(*json);
  if (!pod) {
    answer.status = BackendStatus::failure("answer is not a Pod (no metadata.name)", true);
    return answer;
  }
  answer.pod = std::move(*pod);
  return answer;
}

PodListAnswer parsePodList(std::string_view body) {
  PodListAnswer answer;
  auto json = api::parseJson(body);
  const Json* items = nullptr;
  if (json && json->is_object()) {
    auto it = json->find("items");
    if (it != json->end() && (it->is_array() || it->is_null())) items = &*it;
  }
  if (items == nullptr) {
    answer.status = BackendStatus::failure("answer is not a PodList", true);
    return answer;
  }
  if (items->is_null()) return answer;
  for (const Json& item : *items) {
    if (auto pod = decodePod(item))
      answer.pods.push_back(std::move(*pod));
    else
      ++answer.skipped;
  }
  return answer;
}

std::optional<std::string> endedDescription(const Pod& pod) {
  std::string containers;
  for (const auto& container : pod.containers) {
    if (container.terminated || cannotEverStart(container)) {
      if (!containers.empty()) containers += "; ";
      containers += describeContainer(container);
    }
  }
  std::string text;
  if (pod.phase == "Failed" || pod.phase == "Succeeded") {
    text = "pod phase " + pod.phase;
    if (!pod.reason.empty()) text += " (" + pod.reason + ")";
    if (!pod.message.empty()) text += ": " + pod.message;
  } else if (!containers.empty()) {
    text = "pod phase " + (pod.phase.empty() ? std::string("unknown") : pod.phase);
  } else if (pod.deleting) {
    return std::string("pod is being deleted");
  } else {
    return std::nullopt;
  }
  if (!containers.empty()) text += ", " + containers;
  return text;
}

bool belongsTo(const Pod& pod, std::string_view brokerId, std::string_view runnerId) {
  auto exact = [&](const char* key) {
    auto it = pod.annotations.find(key);
    return it == pod.annotations.end() ? std::optional<std::string>() : it->second;
  };
  auto label = [&](const char* key) {
    auto it = pod.labels.find(key);
    return it == pod.labels.end() ? std::string() : it->second;
  };
  auto brokerAnnotation = exact(kKeyBrokerId);
  auto runnerAnnotation = exact(kKeyRunnerId);
  bool brokerMatches = brokerAnnotation ? *brokerAnnotation == brokerId
                                        : label(kKeyBrokerId) == dnsLabel(brokerId);
  bool runnerMatches = runnerAnnotation ? *runnerAnnotation == runnerId
                                        : label(kKeyRunnerId) == dnsLabel(runnerId);
  return brokerMatches && runnerMatches;
}

}  // namespace flame::k8s
