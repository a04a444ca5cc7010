// A stateful fake of the Fly Machines API for the FlyBackend tests, written from Fly's API
// documentation rather than from our client: machines keyed by id with unique names, metadata
// filters on list, destroyed machines left out of lists, and the misbehaviours the backend must
// survive (a create that answers after the client gave up, a list that lags a create, a list
// that hangs). Serves on 127.0.0.1 with an OS-chosen port (FakeApiServer).
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

class FakeFlyApi {
 public:
  static constexpr const char* kMachines = "/v1/apps/myapp/machines";
  static constexpr const char* kMachine = R"(/v1/apps/myapp/machines/([^/]+))";

  // How the fake misbehaves; set before the first request.
  struct Quirks {
    // The create is carried out at once but answered only after this long (a slow API behind
    // a proxy): a client with a shorter timeout never sees the answer.
    std::chrono::milliseconds createDelay{0};
    // The next `listLag` list requests leave out machines created since the last list that
    // showed them (Fly's list is eventually consistent across regions).
    int listLag = 0;
    // The answer to a create whose name is taken.
    Reply nameTaken{409, R"({"error":"machine name already taken"})", {}};
    // List requests wait on the server's gate (released when the server stops).
    bool listsHang = false;
  };

  // The server's handler threads use the members below: stop them first (members are
  // destroyed in reverse order, so server_, declared first, would otherwise go last).
  ~FakeFlyApi() { server_.stop(); }
  FakeFlyApi() {
    auto& http = server_.server();
    http.Post(kMachines, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      create(request, response);
    });
    http.Get(kMachines, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      if (quirks.listsHang) server_.waitGate(std::chrono::milliseconds(20'000));
      list(request, response);
    });
    http.Get(kMachine, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      std::lock_guard lock(mutex_);
      auto it = machines_.find(request.matches[1]);
      if (it == machines_.end() || gone_.count(it->first)) return notFound(response);
      response.set_content(it->second.dump(), "application/json");
    });
    http.Delete(kMachine, [this](const httplib::Request& request, httplib::Response& response) {
      server_.record(request);
      std::lock_guard lock(mutex_);
      auto it = machines_.find(request.matches[1]);
      if (it == machines_.end() || gone_.count(it->first)) return notFound(response);
      it->second["state"] = "destroyed";
      response.set_content(R"({"ok":true})", "application/json");
    });
  }

  Quirks quirks;

  void start() { server_.start(); }
  FakeApiServer& server() { return server_; }
  std::string baseUrl() const { return server_.baseUrl(); }

  // Requests with this method and path.
  size_t count(const std::string& method, const std::string& path) const {
    size_t n = 0;
    for (const auto& r : server_.requests()) n += r.method == method && r.path == path;
    return n;
  }
  size_t creates() const { return count("POST", kMachines); }
  size_t lists() const { return count("GET", kMachines); }

  // Puts a machine in place as if created earlier (by someone, with these metadata).
  std::string add(const std::string& name, const std::string& state,
                  const std::map<std::string, std::string>& metadata) {
    std::lock_guard lock(mutex_);
    std::string id = nextId();
    machines_[id] = machineJson(id, name, state, metadata);
    return id;
  }
  // Moves a machine to `state`; with an exit code, adds the "exit" event Fly records.
  void setState(const std::string& id, const std::string& state,
                std::optional<int> exitCode = std::nullopt) {
    std::lock_guard lock(mutex_);
    auto& machine = machines_.at(id);
    machine["state"] = state;
    if (exitCode) {
      machine["events"] = nlohmann::json::array(
          {{{"type", "exit"},
            {"status", "stopped"},
            {"source", "flyd"},
            {"request", {{"exit_event", {{"exit_code", *exitCode}, {"oom_killed", false}}}}}},
           {{"type", "start"}, {"status", "started"}, {"source", "flyd"}}});
    }
  }
  // Destroyed and purged: left out of lists and 404 on GET.
  void purge(const std::string& id) {
    std::lock_guard lock(mutex_);
    gone_.insert(id);
  }
  std::string idOfName(const std::string& name) const {
    std::lock_guard lock(mutex_);
    for (const auto& [id, machine] : machines_)
      if (machine["name"] == name) return id;
    return {};
  }
  std::string stateOf(const std::string& id) const {
    std::lock_guard lock(mutex_);
    return machines_.at(id)["state"];
  }

 private:
  static void notFound(httplib::Response& response) {
    response.status = 404;
    response.set_content(R"({"error":"machine not found"})", "application/json");
  }

  std::string nextId() { return "e784" + std::to_string(1000 + machines_.size()); }

  static nlohmann::json machineJson(const std::string& id, const std::string& name,
                                    const std::string& state,
                                    const std::map<std::string, std::string>& metadata) {
    return {{"id", id},
            {"name", name},
            {"state", state},
            {"region", "ams"},
            {"instance_id", "01H" + id},
            {"private_ip", "fdaa:0:1::3"},
            {"config", {{"image", "registry.fly.io/myapp:v1"}, {"metadata", metadata}}},
            {"created_at", "2024-05-01T10:00:00Z"}};
  }

  void create(const httplib::Request& request, httplib::Response& response) {
    auto body = nlohmann::json::parse(request.body, nullptr, false);
    std::string name = body.is_object() && body.value("name", nlohmann::json()).is_string()
                           ? body["name"].get<std::string>()
                           : std::string();
    nlohmann::json machine;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, existing] : machines_) {
        if (!name.empty() && existing["name"] == name && existing["state"] != "destroyed" &&
            !gone_.count(id)) {
          response.status = quirks.nameTaken.status;
          response.set_content(quirks.nameTaken.body, "application/json");
          return;
        }
      }
      std::map<std::string, std::string> metadata;
      if (body.is_object() && body.contains("config") && body["config"].contains("metadata"))
        metadata = body["config"]["metadata"].get<std::map<std::string, std::string>>();
      std::string id = nextId();
      machine = machineJson(id, name, "created", metadata);
      machines_[id] = machine;
      fresh_.insert(id);
    }
    if (quirks.createDelay > std::chrono::milliseconds(0)) server_.waitGate(quirks.createDelay);
    response.set_content(machine.dump(), "application/json");
  }

  void list(const httplib::Request& request, httplib::Response& response) {
    std::lock_guard lock(mutex_);
    bool lagging = quirks.listLag > 0;
    if (lagging) --quirks.listLag;
    auto out = nlohmann::json::array();
    for (const auto& [id, machine] : machines_) {
      if (gone_.count(id) || machine["state"] == "destroyed") continue;
      if (lagging && fresh_.count(id)) continue;
      bool matches = true;
      for (const auto& [key, value] : request.params) {
        if (key.rfind("metadata.", 0) != 0) continue;
        const auto& metadata = machine["config"]["metadata"];
        std::string field = key.substr(9);
        matches = matches && metadata.contains(field) && metadata[field] == value;
      }
      if (matches) out.push_back(machine);
    }
    if (!lagging) fresh_.clear();
    response.set_content(out.dump(), "application/json");
  }

  FakeApiServer server_;
  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json> machines_;  // by id
  std::set<std::string> fresh_;                      // created since the last full list
  std::set<std::string> gone_;
};

}  // namespace flame::testing
