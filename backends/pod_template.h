// The user's own pod template for KubernetesBackend (issue 12): a JSON file holding either a Pod
// manifest ({"apiVersion": "v1", "kind": "Pod", "metadata": ..., "spec": ...}) or just a PodSpec
// ({"containers": [...], ...}). JSON, not YAML: flame has no YAML library; convert a YAML
// manifest with `kubectl create --dry-run=client -o json -f pod.yaml` or `yq -o json`.
//
// flame keeps everything in the template (node selectors, tolerations, affinity,
// imagePullSecrets, volumes and mounts, resources such as limits["nvidia.com/gpu"], extra
// containers, labels, annotations) and fills in what it owns; see buildRunnerPod().
//
// The runner container is the one named "runner", else the first.
//
// Pure functions: no logging, never throw; a bad template is a failed BackendStatus naming the
// file and what is wrong.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "backends/backend.h"

namespace flame::k8s {

struct PodTemplate {
  BackendStatus status;         // failed (not retryable): unreadable, not JSON, wrong shape
  nlohmann::json pod;           // a Pod manifest: {"metadata": {...}, "spec": {...}} (objects)
  bool runnerHasImage = false;  // the runner container names its own image
};

// Reads and checks `path`. At most 1 MiB. Checked: valid JSON; an object; a "kind", if any, is
// "Pod"; metadata (if any) an object with string-valued labels/annotations; spec an object with
// a non-empty "containers" array of objects; the runner container's env (if any) an array and
// its resources (if any) an object with object requests/limits.
PodTemplate loadPodTemplate(const std::string& path);

// The template used without a pod_template file: one container named "runner".
PodTemplate defaultPodTemplate();

// What flame owns in a runner pod.
struct RunnerPodFill {
  std::string name;                                // metadata.name
  std::map<std::string, std::string> labels;       // over the template's (ours last)
  std::map<std::string, std::string> annotations;  // over the template's
  std::optional<nlohmann::json> ownerReference;    // replaces the template's ownerReferences
  std::string image;  // the runner container's image when the template has none
  std::map<std::string, std::string> env;  // set by name over the template's entries
  std::string cpu, memory;                 // when set: resources requests = limits for cpu / memory
  std::string serviceAccount;              // when set: serviceAccountName
};

// The pod to create: the template with flame's parts filled in. metadata.name is `fill.name`;
// generateName, namespace, uid, resourceVersion and creationTimestamp are removed (the pod is
// created in the backend's namespace under the runner's name); ownerReferences are flame's (the
// owner, or none: an owner named in a template could garbage-collect runner pods behind the
// broker's back); restartPolicy is "Never" (a runner that exits is done). In the runner
// container: the image is set if the template gives none, env entries with the names in
// `fill.env` are replaced (others kept, in order), cpu/memory set requests and limits
// (other resources such as nvidia.com/gpu kept).
nlohmann::json buildRunnerPod(const PodTemplate& podTemplate, const RunnerPodFill& fill);

}  // namespace flame::k8s
