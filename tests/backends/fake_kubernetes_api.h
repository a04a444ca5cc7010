// A stateful fake of the Kubernetes Pods API (namespace flame-ns) for the KubernetesBackend
// tests, written from the API reference rather than from our client: pods by name, 409
// AlreadyExists Status objects, label selectors of the form key=value, and the misbehaviours the
// backend must survive (a create that answers after the client gave up, a read that lags a
// create). Serves on 127.0.0.1 with an OS-chosen port (FakeApiServer).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "backends/fake_api_server.h"

namespace flame::testing {

class FakeKubernetesApi {
 public:
  static constexpr const char* kPods = "/api/v1/namespaces/flame-ns/pods";
  static constexpr const char* kPod = R"(/api/v1/namespaces/flame-ns/pods/([^/]+))";

  struct Quirks {
    // The create is carried out at once but answered only after this long.
    std::chrono::milliseconds createDelay{0};
    // The next `readLag` GETs of a single pod answer 404 for pods created since (a read served
    // by a lagging cache).
    int readLag = 0;
    // The next `lostAnswers` creates are carried out but answered 503 (a gateway that lost the
    // API server's answer).
    int lostAnswers = 0;
  };

  // The server's handler threads use the members below: stop them first (members are
  // destroyed in reverse order, so server_, declared first, would otherwise go last).
  ~FakeKubernetesApi() { server_.stop(); }
  FakeKubernetesApi() {
    auto& http = server_.server();
    http.Post(kPods, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      create(request, response);
    });
    http.Get(kPods, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      list(request, response);
    });
    http.Get(kPod, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      std::lock_guard lock(mutex_);
      std::string name = request.matches[1];
      bool lagging = quirks.readLag > 0 && fresh_.count(name);
      if (lagging) --quirks.readLag;
      auto it = pods_.find(name);
      if (it == pods_.end() || lagging) return notFound(response, name);
      response.set_content(it->second.dump(), "application/json");
    });
    http.Delete(kPod, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      std::lock_guard lock(mutex_);
      std::string name = request.matches[1];
      auto it = pods_.find(name);
      if (it == pods_.end()) return notFound(response, name);
      response.set_content(it->second.dump(), "application/json");
      pods_.erase(it);
    });
  }

  Quirks quirks;

  void start() { server_.start(); }
  FakeApiServer& server() { return server_; }
  std::string baseUrl() const { return server_.baseUrl(); }

  size_t count(const std::string& method, const std::string& path) const {
    size_t n = 0;
    for (const auto& r : server_.requests()) n += r.method == method && r.path == path;
    return n;
  }
  size_t creates() const { return count("POST", kPods); }
  size_t reads(const std::string& name) const {
    return count("GET", std::string(kPods) + "/" + name);
  }

  // A pod put in place by someone else, with these annotations (and their labels).
  void add(const std::string& name, const std::map<std::string, std::string>& annotations) {
    std::lock_guard lock(mutex_);
    nlohmann::json pod = {{"apiVersion", "v1"},
                          {"kind", "Pod"},
                          {"metadata", {{"name", name}, {"annotations", annotations}}},
                          {"spec", {{"containers", nlohmann::json::array()}}}};
    finish(pod);
    pods_[name] = pod;
  }
  // Sets status.phase and, with an exit code, the runner container's terminated state.
  void setPhase(const std::string& name, const std::string& phase,
                std::optional<int> exitCode = std::nullopt, const std::string& reason = "Error") {
    std::lock_guard lock(mutex_);
    auto& status = pods_.at(name)["status"];
    status["phase"] = phase;
    if (exitCode) {
      status["containerStatuses"] = nlohmann::json::array(
          {{{"name", "runner"},
            {"ready", false},
            {"restartCount", 0},
            {"state",
             {{"terminated",
               {{"exitCode", *exitCode}, {"reason", reason}, {"finishedAt", "2024-05-01T10:01:00Z"}}}}}}});
    }
  }
  void setWaiting(const std::string& name, const std::string& reason, const std::string& message) {
    std::lock_guard lock(mutex_);
    pods_.at(name)["status"]["containerStatuses"] = nlohmann::json::array(
        {{{"name", "runner"},
          {"ready", false},
          {"state", {{"waiting", {{"reason", reason}, {"message", message}}}}}}});
  }
  void setDeleting(const std::string& name) {
    std::lock_guard lock(mutex_);
    pods_.at(name)["metadata"]["deletionTimestamp"] = "2024-05-01T10:02:00Z";
  }
  void remove(const std::string& name) {
    std::lock_guard lock(mutex_);
    pods_.erase(name);
  }
  // The pod as stored (what the create sent, plus uid, namespace and status), if it exists.
  std::optional<nlohmann::json> pod(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = pods_.find(name);
    if (it == pods_.end()) return std::nullopt;
    return it->second;
  }
  bool exists(const std::string& name) const {
    std::lock_guard lock(mutex_);
    return pods_.count(name) > 0;
  }

 private:
  static void notFound(httplib::Response& response, const std::string& name) {
    response.status = 404;
    response.set_content(
        nlohmann::json{{"kind", "Status"},
                       {"apiVersion", "v1"},
                       {"status", "Failure"},
                       {"message", "pods \"" + name + "\" not found"},
                       {"reason", "NotFound"},
                       {"code", 404}}
            .dump(),
        "application/json");
  }

  void finish(nlohmann::json& pod) {
    pod["metadata"]["uid"] = "uid-" + std::to_string(++uids_);
    pod["metadata"]["namespace"] = "flame-ns";
    pod["metadata"]["creationTimestamp"] = "2024-05-01T10:00:00Z";
    pod["status"] = {{"phase", "Pending"}, {"qosClass", "BestEffort"}};
  }

  void create(const httplib::Request& request, httplib::Response& response) {
    auto pod = nlohmann::json::parse(request.body, nullptr, false);
    if (!pod.is_object() || !pod.contains("metadata") || !pod["metadata"].contains("name")) {
      response.status = 422;
      response.set_content(R"({"kind":"Status","reason":"Invalid","message":"name required"})",
                           "application/json");
      return;
    }
    // Validation the API server does for every pod (a subset): each container needs a name and
    // an image, and an object's namespace, if given, must be the one in the URL.
    std::string invalid;
    const auto& containers = pod.value("spec", nlohmann::json::object())
                                 .value("containers", nlohmann::json::array());
    if (containers.empty()) invalid = "spec.containers: Required value";
    for (size_t i = 0; i < containers.size(); ++i) {
      for (const char* field : {"name", "image"}) {
        if (!containers[i].contains(field) || !containers[i][field].is_string() ||
            containers[i][field].get<std::string>().empty())
          invalid = "spec.containers[" + std::to_string(i) + "]." + field + ": Required value";
      }
    }
    if (!invalid.empty()) {
      response.status = 422;
      response.set_content(
          nlohmann::json{{"kind", "Status"}, {"reason", "Invalid"}, {"message", invalid}}.dump(),
          "application/json");
      return;
    }
    if (pod["metadata"].contains("namespace") && pod["metadata"]["namespace"] != "flame-ns") {
      response.status = 400;
      response.set_content(
          R"({"kind":"Status","reason":"BadRequest","message":"the namespace of the provided object does not match the namespace sent on the request"})",
          "application/json");
      return;
    }
    std::string name = pod["metadata"]["name"];
    {
      std::lock_guard lock(mutex_);
      if (pods_.count(name)) {
        response.status = 409;
        response.set_content(nlohmann::json{{"kind", "Status"},
                                            {"apiVersion", "v1"},
                                            {"status", "Failure"},
                                            {"message", "pods \"" + name + "\" already exists"},
                                            {"reason", "AlreadyExists"},
                                            {"details", {{"name", name}, {"kind", "pods"}}},
                                            {"code", 409}}
                                 .dump(),
                             "application/json");
        return;
      }
      finish(pod);
      pods_[name] = pod;
      fresh_.insert(name);
    }
    if (quirks.createDelay > std::chrono::milliseconds(0)) server_.waitGate(quirks.createDelay);
    {
      std::lock_guard lock(mutex_);
      if (quirks.lostAnswers > 0) {
        --quirks.lostAnswers;
        response.status = 503;
        response.set_content(R"({"kind":"Status","message":"etcd leader changed"})",
                             "application/json");
        return;
      }
    }
    response.status = 201;
    response.set_content(pod.dump(), "application/json");
  }

  void list(const httplib::Request& request, httplib::Response& response) {
    std::string selector = request.get_param_value("labelSelector");
    std::string key = selector.substr(0, selector.find('='));
    std::string value = selector.find('=') == std::string::npos
                            ? std::string()
                            : selector.substr(selector.find('=') + 1);
    std::lock_guard lock(mutex_);
    auto items = nlohmann::json::array();
    for (const auto& [name, pod] : pods_) {
      const auto& labels = pod["metadata"].value("labels", nlohmann::json::object());
      if (!selector.empty() && !(labels.contains(key) && labels[key] == value)) continue;
      items.push_back(pod);
    }
    response.set_content(
        nlohmann::json{{"kind", "PodList"}, {"apiVersion", "v1"}, {"items", items}}.dump(),
        "application/json");
  }

  FakeApiServer server_;
  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json> pods_;  // by name
  std::set<std::string> fresh_;
  int uids_ = 0;
};

}  // namespace flame::testing
