#include "backends/pod_template.h"

#include <fstream>

namespace flame::k8s {

namespace {

using json = nlohmann::json;

// A template is hand-written configuration: anything near this size is a mistake (a wrong path).
constexpr size_t kMaxTemplateBytes = 1 << 20;

// Index of the runner container: the one named "runner", else the first. `containers` is a
// non-empty array (checked by loadPodTemplate()).
size_t runnerIndex(const json& containers) {
  for (size_t i = 0; i < containers.size(); ++i) {
    const json& c = containers[i];
    if (c.is_object() && c.contains("name") && c["name"] == "runner") return i;
  }
  return 0;
}

// Empty when `parent[key]` is absent or an object of strings; else what is wrong.
std::string checkStringMap(const json& parent, const char* key, const std::string& where) {
  if (!parent.contains(key)) return {};
  const json& map = parent[key];
  if (!map.is_object()) return where + "." + key + " is not an object";
  for (const auto& [name, value] : map.items())
    if (!value.is_string()) return where + "." + key + "." + name + " is not a string";
  return {};
}

std::string checkShape(const json& pod) {
  if (pod.contains("kind") && pod["kind"] != "Pod")
    return "kind is " + pod["kind"].dump() + ", not \"Pod\"";
  if (pod.contains("metadata")) {
    const json& metadata = pod["metadata"];
    if (!metadata.is_object()) return "metadata is not an object";
    if (auto why = checkStringMap(metadata, "labels", "metadata"); !why.empty()) return why;
    if (auto why = checkStringMap(metadata, "annotations", "metadata"); !why.empty()) return why;
  }
  if (!pod.contains("spec") || !pod["spec"].is_object()) return "spec is missing or not an object";
  const json& spec = pod["spec"];
  if (!spec.contains("containers") || !spec["containers"].is_array() || spec["containers"].empty())
    return "spec.containers is missing or empty: the runner needs a container";
  const json& containers = spec["containers"];
  for (size_t i = 0; i < containers.size(); ++i)
    if (!containers[i].is_object())
      return "spec.containers[" + std::to_string(i) + "] is not an object";
  size_t runner = runnerIndex(containers);
  const json& container = containers[runner];
  std::string where = "spec.containers[" + std::to_string(runner) + "]";
  if (container.contains("image") && !container["image"].is_string())
    return where + ".image is not a string";
  if (container.contains("env")) {
    if (!container["env"].is_array()) return where + ".env is not an array";
    for (const json& entry : container["env"])
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string())
        return where + ".env has an entry without a name";
  }
  if (container.contains("resources")) {
    const json& resources = container["resources"];
    if (!resources.is_object()) return where + ".resources is not an object";
    for (const char* key : {"requests", "limits"})
      if (resources.contains(key) && !resources[key].is_object())
        return where + ".resources." + key + " is not an object";
  }
  return {};
}

PodTemplate failed(const std::string& path, const std::string& why) {
  PodTemplate result;
  result.status = BackendStatus::failure("pod_template " + path + ": " + why, false);
  return result;
}

}  // namespace

PodTemplate loadPodTemplate(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return failed(path, "cannot read the file");
  std::string text(kMaxTemplateBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxTemplateBytes)
    return failed(path, "larger than " + std::to_string(kMaxTemplateBytes) + " bytes");
  json document;
  try {
    document = json::parse(text);
  } catch (const json::parse_error& e) {
    // The decode boundary for this file: nlohmann reports syntax errors only by exception.
    return failed(path, std::string("not valid JSON (YAML is not read: convert it with "
                                    "`kubectl create --dry-run=client -o json -f FILE`): ") +
                            e.what());
  }
  if (!document.is_object()) return failed(path, "not a JSON object (a Pod or a PodSpec)");
  // A PodSpec alone (it has containers) or a Pod manifest (it has a spec).
  PodTemplate result;
  result.pod =
      document.contains("containers") ? json{{"spec", std::move(document)}} : std::move(document);
  if (std::string why = checkShape(result.pod); !why.empty()) return failed(path, why);
  const json& containers = result.pod["spec"]["containers"];
  const json& runner = containers[runnerIndex(containers)];
  result.runnerHasImage = runner.contains("image") && !runner["image"].get<std::string>().empty();
  return result;
}

PodTemplate defaultPodTemplate() {
  PodTemplate result;
  result.pod = {{"spec", {{"containers", json::array({{{"name", "runner"}}})}}}};
  return result;
}

json buildRunnerPod(const PodTemplate& podTemplate, const RunnerPodFill& fill) {
  json pod = podTemplate.pod;
  pod["apiVersion"] = "v1";
  pod["kind"] = "Pod";
  json& metadata = pod["metadata"];
  if (!metadata.is_object()) metadata = json::object();
  for (const char* key : {"generateName", "namespace", "uid", "resourceVersion",
                          "creationTimestamp", "managedFields", "ownerReferences"})
    metadata.erase(key);
  metadata["name"] = fill.name;
  for (const auto& [key, value] : fill.labels) metadata["labels"][key] = value;
  for (const auto& [key, value] : fill.annotations) metadata["annotations"][key] = value;
  if (fill.ownerReference) metadata["ownerReferences"] = json::array({*fill.ownerReference});

  json& spec = pod["spec"];
  spec["restartPolicy"] = "Never";
  if (!fill.serviceAccount.empty()) spec["serviceAccountName"] = fill.serviceAccount;
  pod.erase("status");

  json& containers = spec["containers"];
  json& container = containers[runnerIndex(containers)];
  if (!container.contains("name")) container["name"] = "runner";
  if (!podTemplate.runnerHasImage) container["image"] = fill.image;
  json env = json::array();
  if (container.contains("env")) {
    for (const json& entry : container["env"])
      if (!fill.env.count(entry["name"].get<std::string>())) env.push_back(entry);
  }
  for (const auto& [name, value] : fill.env) env.push_back({{"name", name}, {"value", value}});
  container["env"] = std::move(env);
  for (const auto& [key, value] : {std::pair{"cpu", fill.cpu}, std::pair{"memory", fill.memory}}) {
    if (value.empty()) continue;
    container["resources"]["requests"][key] = value;
    container["resources"]["limits"][key] = value;
  }
  return pod;
}

}  // namespace flame::k8s
