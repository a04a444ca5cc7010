// Decoders for the Kubernetes API's Pod and PodList answers (untrusted bytes) and the facts
// KubernetesBackend reads from them. Pure functions: no I/O, no logging, never throw; a malformed
// answer is a failed BackendStatus naming what was wrong. fuzz/kubernetes_answer_fuzz.cpp feeds
// them arbitrary bytes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"

namespace flame {

// A DNS-1123 label from any text: lowercase, [a-z0-9-], starting and ending alphanumeric, at
// most 63 characters. Texts that had to be shortened get a hash suffix so that distinct long ids
// stay distinct. Never empty ("x" for text with no usable character).
std::string dnsLabel(std::string_view text);

}  // namespace flame

namespace flame::k8s {

// Label and annotation keys KubernetesBackend puts on every pod it creates. Labels hold
// dnsLabel() forms (for selectors), annotations the exact values.
inline constexpr const char* kKeyPool = "flame/pool";
inline constexpr const char* kKeyBrokerId = "flame/broker-id";
inline constexpr const char* kKeyRunnerId = "flame/runner-id";

struct ContainerStatus {
  std::string name;
  bool terminated = false;       // state.terminated present
  std::optional<int> exitCode;   // state.terminated.exitCode
  std::string terminatedReason;  // "Error", "OOMKilled", "Completed"
  std::string waitingReason;     // state.waiting.reason: "ContainerCreating", "InvalidImageName"
  std::string waitingMessage;
};

struct Pod {
  std::string name;  // never empty in a decoded pod
  std::string uid;
  std::string phase;  // "Pending", "Running", "Succeeded", "Failed", "Unknown" ("" when absent)
  std::string reason;   // status.reason ("Evicted", ...)
  std::string message;  // status.message
  bool deleting = false;  // metadata.deletionTimestamp is set
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::vector<ContainerStatus> containers;  // status.containerStatuses

  // The annotation `key`, else the label `key` (pods labelled by older versions, or by hand).
  std::string tag(const std::string& key) const;
};

struct PodAnswer {
  BackendStatus status;  // failed (retryable): not a Pod object with metadata.name
  Pod pod;
};

struct PodListAnswer {
  BackendStatus status;  // failed (retryable): not an object with an "items" array (or null)
  std::vector<Pod> pods;
  size_t skipped = 0;  // items that were not pods with a name
};

// GET/POST .../pods/{name} answers.
PodAnswer parsePod(std::string_view body);
// GET .../pods answers ("items": null is an empty list).
PodListAnswer parsePodList(std::string_view body);

// Why this pod's runner no longer runs and will not (restartPolicy Never): phase Failed or
// Succeeded, a terminated container, a deletion in progress, or a container that can never
// start (InvalidImageName, ErrImageNeverPull). nullopt while it runs or may still start.
std::optional<std::string> endedDescription(const Pod& pod);

// Pod carries our tags for this broker and runner: the exact ids in the annotations, or (pods
// without annotations) their dnsLabel() forms in the labels.
bool belongsTo(const Pod& pod, std::string_view brokerId, std::string_view runnerId);

}  // namespace flame::k8s
