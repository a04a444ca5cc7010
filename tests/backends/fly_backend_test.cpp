// FlyBackend against a local fake Machines API.
#include "backends/fly_backend.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>

#include "backends/fake_api_server.h"
#include "backends/fake_fly_api.h"
#include "backends/local_files.h"

using namespace flame;
using namespace flame::testing;
using json = nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr const char* kMachinesPath = "/v1/apps/myapp/machines";
constexpr const char* kMachinePath = R"(/v1/apps/myapp/machines/([^/]+))";

FlyOptions baseOptions(const FakeApiServer& server, RecordingSleeper& sleeper) {
  FlyOptions options;
  options.apiBase = server.baseUrl();
  options.app = "myapp";
  options.token = "secret-token";
  options.image = "registry.fly.io/myapp:v1";
  options.requestTimeout = milliseconds(5000);
  options.maxRetries = 3;
  options.retryBase = milliseconds(200);
  options.retryMax = milliseconds(5000);
  options.createRatePerSecond = 0;  // no client-side limit unless a test wants it
  options.sleeper = sleeper.sleeper();
  return options;
}

BootSpec spec(const std::string& runnerId = "thumbs-1") {
  BootSpec s;
  s.pool = "thumbs";
  s.runnerId = runnerId;
  s.brokerId = "broker-a";
  s.env = {{kEnvBroker, "tcp://127.0.0.2:5556"}, {kEnvBootToken, "one-time"}};
  return s;
}

Reply created(const std::string& id) {
  return Reply{200, json{{"id", id}, {"region", "ams"}}.dump(), {}};
}

}  // namespace

TEST_CASE("fly create sends the machine config field by field", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, created("m-1")));
  server.start();
  RecordingSleeper sleeper;
  FlyOptions options = baseOptions(server, sleeper);
  options.region = "ams";
  options.cpuKind = "performance";
  options.cpus = 2;
  options.memoryMb = 2048;
  options.gpuKind = "a100-pcie-40gb";
  options.env = {{"EXTRA", "1"}, {kEnvPool, "config-cannot-override"}};
  FlyBackend fly(options);
  REQUIRE(fly.configStatus().ok);

  BootResult result = fly.boot(spec());
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "m-1");
  CHECK(result.handle.runnerId == "thumbs-1");
  CHECK(result.handle.pool == "thumbs");

  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].authorization == "Bearer secret-token");
  CHECK(requests[0].contentType == "application/json");
  json body = json::parse(requests[0].body);
  CHECK(body["name"] == "thumbs-1");
  CHECK(body["region"] == "ams");
  const json& config = body["config"];
  CHECK(config["image"] == "registry.fly.io/myapp:v1");
  CHECK(config["guest"]["cpu_kind"] == "performance");
  CHECK(config["guest"]["cpus"] == 2);
  CHECK(config["guest"]["memory_mb"] == 2048);
  CHECK(config["guest"]["gpu_kind"] == "a100-pcie-40gb");
  CHECK(config["auto_destroy"] == true);
  CHECK(config["restart"]["policy"] == "no");
  CHECK(config["env"]["EXTRA"] == "1");
  CHECK(config["env"][kEnvPool] == "thumbs");
  CHECK(config["env"][kEnvRunnerId] == "thumbs-1");
  CHECK(config["env"][kEnvBrokerId] == "broker-a");
  CHECK(config["env"][kEnvBroker] == "tcp://127.0.0.2:5556");
  CHECK(config["env"][kEnvBootToken] == "one-time");
  CHECK(config["metadata"]["flame_pool"] == "thumbs");
  CHECK(config["metadata"]["flame_broker_id"] == "broker-a");
  CHECK(config["metadata"]["flame_runner_id"] == "thumbs-1");
  CHECK(sleeper.waits->empty());
}

TEST_CASE("fly create omits empty region and gpu kind", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, created("m-2")));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  REQUIRE(fly.boot(spec()).status.ok);
  json body = json::parse(server.requests().at(0).body);
  CHECK_FALSE(body.contains("region"));
  CHECK_FALSE(body["config"]["guest"].contains("gpu_kind"));
  CHECK_FALSE(body["config"]["guest"].contains("gpus"));
  CHECK_FALSE(body["config"].contains("init"));
  CHECK(body["config"]["metadata"].size() == 3);  // flame's tags only
  CHECK(body["config"]["guest"]["cpu_kind"] == "shared");
  CHECK(body["config"]["guest"]["cpus"] == 1);
  CHECK(body["config"]["guest"]["memory_mb"] == 256);
}

TEST_CASE("fly create retries 429 and honours Retry-After", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(
      kMachinesPath,
      server.scripted({Reply{429, R"({"error":"rate limited"})", {{"Retry-After", "2"}}},
                       Reply{429, R"({"error":"rate limited"})", {}},
                       Reply{429, R"({"error":"rate limited"})", {{"Retry-After", "60"}}}},
                      Reply{201, R"({"id":"m-429"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "m-429");
  CHECK(server.requestCount() == 4);
  // Retry-After 2s; then plain backoff (second retry: 2 * 200ms); then 60s capped at retryMax.
  CHECK(*sleeper.waits ==
        std::vector<milliseconds>{milliseconds(2000), milliseconds(400), milliseconds(5000)});
}

TEST_CASE("fly create retries transient statuses up to maxRetries, then fails retryable",
          "[backends][fly]") {
  int status = GENERATE(408, 429, 500, 502, 503);
  FakeApiServer server;
  server.server().Post(kMachinesPath,
                       server.scripted({}, Reply{status, R"({"error":"try later"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("HTTP " + std::to_string(status)));
  CHECK_THAT(result.status.message, Catch::Contains("try later"));
  CHECK(server.requestCount() == 4);  // 1 + maxRetries
  CHECK(*sleeper.waits ==
        std::vector<milliseconds>{milliseconds(200), milliseconds(400), milliseconds(800)});
}

TEST_CASE("fly create does not retry client errors and reports the API's message",
          "[backends][fly]") {
  int status = GENERATE(400, 401, 403, 404, 412, 422);
  FakeApiServer server;
  server.server().Post(kMachinesPath,
                       server.scripted({}, Reply{status, R"({"error":"token is not valid"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("token is not valid"));
  CHECK_THAT(result.status.message, Catch::Contains("HTTP " + std::to_string(status)));
  CHECK(server.requestCount() == 1);
  CHECK(sleeper.waits->empty());
}

TEST_CASE("fly create that is slow but within the timeout succeeds", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath,
                       [&](const httplib::Request& request, httplib::Response& response) {
                         server.record(request);
                         server.waitGate(milliseconds(300));  // nobody opens it: a 300ms delay
                         response.set_content(R"({"id":"m-slow"})", "application/json");
                       });
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "m-slow");
  CHECK(server.requestCount() == 1);
}

TEST_CASE("fly create that times out fails retryable without hanging", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath,
                       [&](const httplib::Request& request, httplib::Response& response) {
                         server.record(request);
                         server.waitGate(milliseconds(20'000));  // released by the test at the end
                         response.set_content(R"({"id":"m-late"})", "application/json");
                       });
  server.start();
  RecordingSleeper sleeper;
  FlyOptions options = baseOptions(server, sleeper);
  options.requestTimeout = milliseconds(300);
  options.maxRetries = 1;
  FlyBackend fly(options);
  auto started = std::chrono::steady_clock::now();
  BootResult result = fly.boot(spec());
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("timeout"));
  CHECK(elapsed < std::chrono::seconds(5));
  CHECK(elapsed >= milliseconds(600));  // two attempts of 300ms
  CHECK(*sleeper.waits == std::vector<milliseconds>{milliseconds(200)});
  server.releaseGate();
  CHECK(server.requestCount() == 2);
}

TEST_CASE("fly create against a closed port fails retryable", "[backends][fly]") {
  RecordingSleeper sleeper;
  FlyOptions options;
  options.apiBase = "http://127.0.0.1:1";
  options.app = "myapp";
  options.token = "t";
  options.image = "img";
  options.maxRetries = 0;
  options.createRatePerSecond = 0;
  options.sleeper = sleeper.sleeper();
  FlyBackend fly(options);
  BootResult result = fly.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("connection"));
}

TEST_CASE("fly stop deletes with force=true and treats 404 as gone", "[backends][fly]") {
  FakeApiServer server;
  server.server().Delete(kMachinePath,
                         server.scripted({Reply{200, R"({"ok":true})", {}}},
                                         Reply{404, R"({"error":"machine not found"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  MachineHandle machine{"m-9", "thumbs-9", "thumbs"};
  CHECK(fly.stop(machine).ok);
  CHECK(fly.stop(machine).ok);  // 404: already gone
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].method == "DELETE");
  CHECK(requests[0].path == "/v1/apps/myapp/machines/m-9");
  CHECK(requests[0].param("force") == "true");
  CHECK(requests[0].authorization == "Bearer secret-token");
  CHECK(sleeper.waits->empty());
}

TEST_CASE("fly stop retries server errors then fails retryable", "[backends][fly]") {
  FakeApiServer server;
  server.server().Delete(kMachinePath,
                         server.scripted({}, Reply{503, R"({"error":"unavailable"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyOptions options = baseOptions(server, sleeper);
  options.maxRetries = 2;
  FlyBackend fly(options);
  BackendStatus status = fly.stop(MachineHandle{"m-1", "r", "p"});
  CHECK_FALSE(status.ok);
  CHECK(status.retryable);
  CHECK_THAT(status.message, Catch::Contains("unavailable"));
  CHECK(server.requestCount() == 3);
}

TEST_CASE("fly list asks for the broker's metadata and filters client-side", "[backends][fly]") {
  json machines = json::array({
      {{"id", "m-1"},
       {"state", "started"},
       {"config",
        {{"metadata",
          {{"flame_broker_id", "broker-a"},
           {"flame_pool", "thumbs"},
           {"flame_runner_id", "thumbs-1"}}}}}},
      {{"id", "m-2"},
       {"state", "started"},
       {"config",
        {{"metadata",
          {{"flame_broker_id", "broker-b"},
           {"flame_pool", "thumbs"},
           {"flame_runner_id", "thumbs-2"}}}}}},
      {{"id", "m-3"}, {"state", "started"}, {"config", {{"image", "other"}}}},
      {{"id", "m-4"},
       {"state", "destroyed"},
       {"config",
        {{"metadata",
          {{"flame_broker_id", "broker-a"},
           {"flame_pool", "thumbs"},
           {"flame_runner_id", "thumbs-4"}}}}}},
      {{"id", "m-5"},
       {"state", "stopped"},
       {"config",
        {{"metadata",
          {{"flame_broker_id", "broker-a"},
           {"flame_pool", "video"},
           {"flame_runner_id", "video-5"}}}}}},
      "garbage",
  });
  FakeApiServer server;
  server.server().Get(kMachinesPath, server.scripted({}, Reply{200, machines.dump(), {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  CHECK(fly.supportsList());
  ListResult result = fly.list("broker-a");
  REQUIRE(result.status.ok);
  REQUIRE(result.machines.size() == 2);
  CHECK(result.machines[0].machineId == "m-1");
  CHECK(result.machines[0].runnerId == "thumbs-1");
  CHECK(result.machines[0].pool == "thumbs");
  CHECK(result.machines[1].machineId == "m-5");
  CHECK(result.machines[1].pool == "video");
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].param("metadata.flame_broker_id") == "broker-a");
  CHECK(requests[0].authorization == "Bearer secret-token");
}

TEST_CASE("fly list rejects an answer that is not a machine array", "[backends][fly]") {
  FakeApiServer server;
  server.server().Get(kMachinesPath,
                      server.scripted({}, Reply{200, "<html>proxy error</html>", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  ListResult result = fly.list("broker-a");
  CHECK_FALSE(result.status.ok);
  CHECK(result.machines.empty());
}

TEST_CASE("fly create without a machine id in the answer fails", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, Reply{200, "not json", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_THAT(result.status.message, Catch::Contains("machine id"));
}

TEST_CASE("fly creates are rate limited by a token bucket on the injected clock",
          "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, created("m")));
  server.start();
  ManualClock clock;
  RecordingSleeper sleeper;
  sleeper.onWait = [&clock](milliseconds d) { clock.advance(d); };
  FlyOptions options = baseOptions(server, sleeper);
  options.createRatePerSecond = 1.0;
  options.createBurst = 2;
  options.clock = &clock;
  FlyBackend fly(options);
  for (int i = 0; i < 5; ++i) REQUIRE(fly.boot(spec("thumbs-" + std::to_string(i))).status.ok);
  CHECK(server.requestCount() == 5);
  CHECK(*sleeper.waits ==
        std::vector<milliseconds>{milliseconds(1000), milliseconds(1000), milliseconds(1000)});

  // After a quiet period the burst is available again.
  clock.advance(milliseconds(10'000));
  sleeper.waits->clear();
  REQUIRE(fly.boot(spec("thumbs-a")).status.ok);
  REQUIRE(fly.boot(spec("thumbs-b")).status.ok);
  CHECK(sleeper.waits->empty());
}

TEST_CASE("fly options are validated at construction", "[backends][fly]") {
  ::unsetenv("FLY_API_TOKEN");
  ::unsetenv("FLY_IMAGE_REF");
  RecordingSleeper sleeper;
  FlyOptions options;
  options.apiBase = "http://127.0.0.1:1";
  options.app = "myapp";
  options.image = "img";
  options.sleeper = sleeper.sleeper();
  {
    FlyBackend fly(options);
    CHECK_FALSE(fly.configStatus().ok);
    CHECK_THAT(fly.configStatus().message, Catch::Contains("FLY_API_TOKEN"));
    BootResult result = fly.boot(spec());
    CHECK_FALSE(result.status.ok);
    CHECK_FALSE(result.status.retryable);
    CHECK_FALSE(fly.stop(MachineHandle{"m", "r", "p"}).ok);
    CHECK_FALSE(fly.list("b").status.ok);
  }
  ::setenv("FLY_API_TOKEN", "from-env", 1);
  {
    FlyBackend fly(options);
    CHECK(fly.configStatus().ok);
  }
  ::unsetenv("FLY_API_TOKEN");
  options.token = "t";
  options.image.clear();
  FlyBackend noImage(options);
  CHECK_FALSE(noImage.configStatus().ok);
  CHECK_THAT(noImage.configStatus().message, Catch::Contains("image"));
}

TEST_CASE("fly create with invalid UTF-8 in the environment does not throw", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, created("m-utf")));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootSpec s = spec();
  s.env["BROKEN"] = "caf\xff";
  BootResult result = fly.boot(s);
  REQUIRE(result.status.ok);
  json body = json::parse(server.requests().at(0).body);
  CHECK(body["config"]["env"]["BROKEN"] == "caf\xef\xbf\xbd");  // U+FFFD
}

// ---- Issue #8 item 12: which answers are transient ------------------------------------------

TEST_CASE("fly create: 422 is an invalid request, failed at once with the API's message",
          "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(
      kMachinesPath,
      server.scripted(
          {}, Reply{422,
                    R"({"error":"failed to launch VM: image registry.fly.io/myapp:nope not found"})",
                    {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("HTTP 422"));
  CHECK_THAT(result.status.message,
             Catch::Contains("image registry.fly.io/myapp:nope not found"));
  CHECK(server.requestCount() == 1);
  CHECK(sleeper.waits->empty());
}

TEST_CASE("fly stop retries a lease conflict (409/412) and then succeeds", "[backends][fly]") {
  int status = GENERATE(409, 412);
  FakeApiServer server;
  server.server().Delete(
      kMachinePath,
      server.scripted({Reply{status, R"({"error":"machine ID m-1 lease currently held"})", {}}},
                      Reply{200, R"({"ok":true})", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  CHECK(fly.stop(MachineHandle{"m-1", "thumbs-1", "thumbs"}).ok);
  CHECK(server.requestCount() == 2);
  CHECK(*sleeper.waits == std::vector<milliseconds>{milliseconds(200)});
}

// ---- Issue #8 item 10: idempotent creates ----------------------------------------------------

namespace {

FlyOptions fakeOptions(const FakeFlyApi& api, RecordingSleeper& sleeper) {
  FlyOptions options;
  options.apiBase = api.baseUrl();
  options.app = "myapp";
  options.token = "secret-token";
  options.image = "registry.fly.io/myapp:v1";
  options.requestTimeout = milliseconds(5000);
  options.maxRetries = 3;
  options.retryBase = milliseconds(200);
  options.retryMax = milliseconds(5000);
  options.createRatePerSecond = 0;
  options.watchInterval = std::chrono::hours(1);  // rounds run by watchOnce() only
  options.sleeper = sleeper.sleeper();
  return options;
}

}  // namespace

TEST_CASE("fly create answered after the request timeout, retry refused as name taken: boot "
          "adopts the machine the first attempt created",
          "[backends][fly]") {
  Reply nameTaken = GENERATE(Reply{409, R"({"error":"machine name already taken"})", {}},
                             Reply{422, R"({"error":"Name has already been taken"})", {}});
  FakeFlyApi api;
  api.quirks.createDelay = milliseconds(1500);
  api.quirks.listLag = 1;  // the look before the retry does not see the fresh machine yet
  api.quirks.nameTaken = nameTaken;
  api.start();
  RecordingSleeper sleeper;
  FlyOptions options = fakeOptions(api, sleeper);
  options.requestTimeout = milliseconds(300);
  FlyBackend fly(options);

  BootResult result = fly.boot(spec("thumbs-7f3a"));
  REQUIRE(result.status.ok);
  std::string created = api.idOfName("thumbs-7f3a");
  REQUIRE_FALSE(created.empty());
  CHECK(result.handle.machineId == created);
  CHECK(result.handle.runnerId == "thumbs-7f3a");
  CHECK(result.handle.pool == "thumbs");
  CHECK(api.creates() == 2);  // the lost one and the refused retry; no third machine
  CHECK(api.lists() == 2);    // the look before the retry (lagging) and the one after the 409
}

TEST_CASE("fly create whose answer was lost is found before it is retried", "[backends][fly]") {
  FakeFlyApi api;
  api.quirks.createDelay = milliseconds(1500);
  api.start();
  RecordingSleeper sleeper;
  FlyOptions options = fakeOptions(api, sleeper);
  options.requestTimeout = milliseconds(300);
  FlyBackend fly(options);

  BootResult result = fly.boot(spec("thumbs-1"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == api.idOfName("thumbs-1"));
  CHECK(api.creates() == 1);
  auto requests = api.server().requests();
  auto lookup = std::find_if(requests.begin(), requests.end(),
                             [](const RecordedRequest& r) { return r.method == "GET"; });
  REQUIRE(lookup != requests.end());
  CHECK(lookup->param("metadata.flame_runner_id") == "thumbs-1");
}

TEST_CASE("fly name conflict with a machine that is not this boot's is not adopted",
          "[backends][fly]") {
  FakeFlyApi api;
  api.start();
  // Same name, other broker (a name we would never pick twice, but the API may say otherwise).
  api.add("thumbs-1", "started",
          {{"flame_broker_id", "broker-b"}, {"flame_runner_id", "thumbs-1"}});
  RecordingSleeper sleeper;
  FlyBackend fly(fakeOptions(api, sleeper));
  BootResult result = fly.boot(spec("thumbs-1"));
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);  // the scaler boots again under a new runner id
  CHECK_THAT(result.status.message, Catch::Contains("already taken"));
  CHECK_THAT(result.status.message, Catch::Contains("no machine tagged broker=broker-a"));
  CHECK(api.creates() == 1);
  CHECK(api.lists() == 3);  // looked three times (a fresh machine may be listed late)
  CHECK(*sleeper.waits == std::vector<milliseconds>{milliseconds(200), milliseconds(400)});
}

TEST_CASE("fly name conflict with our machine that already ended fails the boot",
          "[backends][fly]") {
  FakeFlyApi api;
  api.start();
  std::string id = api.add("thumbs-1", "stopped",
                           {{"flame_broker_id", "broker-a"}, {"flame_runner_id", "thumbs-1"}});
  api.setState(id, "stopped", 3);
  RecordingSleeper sleeper;
  FlyBackend fly(fakeOptions(api, sleeper));
  BootResult result = fly.boot(spec("thumbs-1"));
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("already ended"));
  CHECK_THAT(result.status.message, Catch::Contains("exit code 3"));
}

// ---- Issue #8 item 13: machines that end by themselves ----------------------------------------

TEST_CASE("fly watcher reports a machine that stopped by itself, once", "[backends][fly]") {
  FakeFlyApi api;
  api.start();
  RecordingSleeper sleeper;
  FlyBackend fly(fakeOptions(api, sleeper));
  BootResult booted = fly.boot(spec("thumbs-1"));
  REQUIRE(booted.status.ok);
  BootResult other = fly.boot(spec("thumbs-2"));
  REQUIRE(other.status.ok);

  fly.watchOnce();
  CHECK(fly.reapExited().empty());  // both still starting

  api.setState(booted.handle.machineId, "stopped", 1);
  fly.watchOnce();
  auto exited = fly.reapExited();
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == booted.handle.machineId);
  CHECK(exited[0].machine.runnerId == "thumbs-1");
  CHECK(exited[0].machine.pool == "thumbs");
  CHECK_THAT(exited[0].description, Catch::Contains("stopped"));
  CHECK_THAT(exited[0].description, Catch::Contains("exit code 1"));
  CHECK(fly.reapExited().empty());  // reported once
  fly.watchOnce();
  CHECK(fly.reapExited().empty());  // and no longer watched
}

TEST_CASE("fly watcher reports a destroyed machine the list leaves out", "[backends][fly]") {
  std::string how = GENERATE("destroyed", "purged");
  FakeFlyApi api;
  api.start();
  RecordingSleeper sleeper;
  FlyBackend fly(fakeOptions(api, sleeper));
  BootResult booted = fly.boot(spec("thumbs-1"));
  REQUIRE(booted.status.ok);
  if (how == "destroyed")
    api.setState(booted.handle.machineId, "destroyed");  // GET still answers, state destroyed
  else
    api.purge(booted.handle.machineId);  // GET answers 404
  fly.watchOnce();
  auto exited = fly.reapExited();
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.runnerId == "thumbs-1");
  CHECK_THAT(exited[0].description, Catch::Contains("destroyed"));
  CHECK(api.count("GET", std::string(FakeFlyApi::kMachines) + "/" + booted.handle.machineId) == 1);
}

TEST_CASE("fly watcher does not report a machine the backend stopped", "[backends][fly]") {
  FakeFlyApi api;
  api.start();
  RecordingSleeper sleeper;
  FlyBackend fly(fakeOptions(api, sleeper));
  BootResult first = fly.boot(spec("thumbs-1"));
  BootResult second = fly.boot(spec("thumbs-2"));
  REQUIRE(first.status.ok);
  REQUIRE(second.status.ok);

  REQUIRE(fly.stop(first.handle).ok);
  CHECK(api.stateOf(first.handle.machineId) == "destroyed");
  fly.watchOnce();
  CHECK(fly.reapExited().empty());

  // Ended and noticed, but stopped before the scaler reaped it: not reported either.
  api.setState(second.handle.machineId, "stopped", 0);
  fly.watchOnce();
  REQUIRE(fly.stop(second.handle).ok);
  CHECK(fly.reapExited().empty());
}

TEST_CASE("fly watcher with watch_interval 0 watches nothing", "[backends][fly]") {
  FakeFlyApi api;
  api.start();
  RecordingSleeper sleeper;
  FlyOptions options = fakeOptions(api, sleeper);
  options.watchInterval = milliseconds(0);
  FlyBackend fly(options);
  BootResult booted = fly.boot(spec());
  REQUIRE(booted.status.ok);
  api.setState(booted.handle.machineId, "failed");
  fly.watchOnce();
  CHECK(fly.reapExited().empty());
  CHECK(api.lists() == 0);
}

TEST_CASE("fly watcher thread notices a machine that failed while booting",
          "[backends][fly][watch]") {
  FakeFlyApi api;
  api.start();
  RecordingSleeper sleeper;
  FlyOptions options = fakeOptions(api, sleeper);
  options.watchInterval = milliseconds(20);
  auto fly = std::make_unique<FlyBackend>(options);
  BootResult booted = fly->boot(spec());
  REQUIRE(booted.status.ok);
  api.setState(booted.handle.machineId, "failed");

  std::vector<ExitedMachine> exited;
  CHECK(flame::test::waitFor([&] {
    for (auto& e : fly->reapExited()) exited.push_back(e);
    return !exited.empty();
  }));
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == booted.handle.machineId);
  CHECK_THAT(exited[0].description, Catch::Contains("failed"));

  auto started = std::chrono::steady_clock::now();
  fly.reset();  // stops the watcher thread
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(1000));
}

TEST_CASE("fly watcher stops promptly while its request hangs", "[backends][fly][watch]") {
  FakeFlyApi api;
  api.quirks.listsHang = true;
  api.start();
  RecordingSleeper sleeper;
  FlyOptions options = fakeOptions(api, sleeper);
  options.watchInterval = milliseconds(10);
  options.requestTimeout = milliseconds(30'000);
  auto fly = std::make_unique<FlyBackend>(options);
  REQUIRE(fly->boot(spec()).status.ok);
  REQUIRE(flame::test::waitFor([&] { return api.lists() >= 1; }));
  auto started = std::chrono::steady_clock::now();
  fly.reset();
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(3000));
}

TEST_CASE("fly reapExited does not wait for a boot in flight", "[backends][fly][watch]") {
  FakeFlyApi api;
  api.quirks.createDelay = milliseconds(20'000);  // until the gate opens
  api.start();
  RecordingSleeper sleeper;
  FlyBackend fly(fakeOptions(api, sleeper));
  auto boot = std::async(std::launch::async, [&] { return fly.boot(spec()); });
  REQUIRE(flame::test::waitFor([&] { return api.creates() == 1; }));
  auto started = std::chrono::steady_clock::now();
  CHECK(fly.reapExited().empty());
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(500));
  api.server().releaseGate();
  CHECK(boot.get().status.ok);
}

// ---- Malformed answers -------------------------------------------------------------------------

TEST_CASE("fly create with a malformed success answer fails clearly", "[backends][fly]") {
  std::string body = GENERATE(std::string(""), std::string("<html><body>502 Bad Gateway</body></html>"),
                              std::string(R"({"id": 7, "state": "started"})"),
                              std::string(R"({"id":"e7841000","sta)"), std::string("[]"),
                              std::string("null"), std::string(R"({"id":""})"));
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, Reply{200, body, {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyBackend fly(baseOptions(server, sleeper));
  BootResult result = fly.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("without a machine id"));
  CHECK(fly.reapExited().empty());
}

TEST_CASE("fly list with a malformed answer fails clearly or skips bad entries",
          "[backends][fly]") {
  FakeApiServer server;
  server.server().Get(
      kMachinesPath,
      server.scripted(
          {Reply{200, R"({"machines":[]})", {}}, Reply{200, R"([{"id":"m-1","config":)", {}},
           Reply{200, "<!DOCTYPE html><title>Fly</title>", {}},
           Reply{200,
                 R"([1, "x", null, {"id": 5}, {"id":"m-2","config":{"metadata":"oops"}},
                     {"id":"m-3","config":{"metadata":{"flame_broker_id":"broker-a",
                      "flame_runner_id":["not","a","string"]}}}])",
                 {}}},
          Reply{200, "[]", {}}));
  server.start();
  RecordingSleeper sleeper;
  FlyOptions options = baseOptions(server, sleeper);
  FlyBackend fly(options);
  for (int i = 0; i < 3; ++i) {
    ListResult result = fly.list("broker-a");
    CHECK_FALSE(result.status.ok);
    CHECK_THAT(result.status.message, Catch::Contains("not a JSON array"));
  }
  ListResult mixed = fly.list("broker-a");
  REQUIRE(mixed.status.ok);
  REQUIRE(mixed.machines.size() == 1);  // m-3: ours, with an unreadable runner id
  CHECK(mixed.machines[0].machineId == "m-3");
  CHECK(mixed.machines[0].runnerId.empty());
}

TEST_CASE("fly create sends gpus, init and the user's metadata (issue 12)", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, created("m-gpu")));
  server.start();
  RecordingSleeper sleeper;
  FlyOptions options = baseOptions(server, sleeper);
  options.gpuKind = "l40s";
  options.gpus = 2;
  options.initEntrypoint = {"/bin/sh", "-c"};
  options.initCmd = {"flame-worker --gpu"};
  options.initExec = {"/usr/bin/tini", "--"};
  options.metadata = {{"team", "vision"}, {"cost_center", "42"}};
  FlyBackend fly(options);
  REQUIRE(fly.configStatus().ok);
  REQUIRE(fly.boot(spec()).status.ok);

  json config = json::parse(server.requests().at(0).body)["config"];
  CHECK(config["guest"]["gpu_kind"] == "l40s");
  CHECK(config["guest"]["gpus"] == 2);
  CHECK(config["init"]["entrypoint"] == json::array({"/bin/sh", "-c"}));
  CHECK(config["init"]["cmd"] == json::array({"flame-worker --gpu"}));
  CHECK(config["init"]["exec"] == json::array({"/usr/bin/tini", "--"}));
  CHECK(config["metadata"]["team"] == "vision");
  CHECK(config["metadata"]["cost_center"] == "42");
  CHECK(config["metadata"]["flame_broker_id"] == "broker-a");
  CHECK(config["metadata"]["flame_runner_id"] == "thumbs-1");
  CHECK(config["metadata"]["flame_pool"] == "thumbs");
}

TEST_CASE("fly gpus and metadata are validated at construction (issue 12)", "[backends][fly]") {
  RecordingSleeper sleeper;
  FlyOptions options;
  options.apiBase = "http://127.0.0.1:1";
  options.app = "myapp";
  options.image = "img";
  options.token = "t";
  options.sleeper = sleeper.sleeper();
  SECTION("gpus without gpu_kind") {
    options.gpus = 1;
    FlyBackend fly(options);
    CHECK_FALSE(fly.configStatus().ok);
    CHECK_THAT(fly.configStatus().message, Catch::Contains("gpus needs gpu_kind"));
    CHECK_FALSE(fly.boot(spec()).status.ok);
  }
  SECTION("negative gpus") {
    options.gpuKind = "a10";
    options.gpus = -1;
    FlyBackend fly(options);
    CHECK_THAT(fly.configStatus().message, Catch::Contains("gpus must be >= 0"));
  }
  SECTION("gpu_kind without gpus is fine: gpus is not sent") {
    options.gpuKind = "a10";
    FlyBackend fly(options);
    CHECK(fly.configStatus().ok);
  }
  SECTION("a metadata key of flame's own") {
    options.metadata = {{"team", "x"}, {"flame_broker_id", "someone-else"}};
    FlyBackend fly(options);
    CHECK_FALSE(fly.configStatus().ok);
    CHECK_THAT(fly.configStatus().message, Catch::Contains("'flame_broker_id' is flame's own"));
  }
}

TEST_CASE("fly app and image default to the broker's own on Fly (issue 12)", "[backends][fly]") {
  FakeApiServer server;
  server.server().Post(kMachinesPath, server.scripted({}, created("m-own")));
  server.start();
  RecordingSleeper sleeper;
  FlyOptions options = baseOptions(server, sleeper);
  options.app.clear();
  options.image.clear();
  ::unsetenv("FLY_APP_NAME");
  ::unsetenv("FLY_IMAGE_REF");
  {
    FlyBackend off(options);
    CHECK_THAT(off.configStatus().message, Catch::Contains("FLY_APP_NAME"));
  }
  ::setenv("FLY_APP_NAME", "myapp", 1);
  {
    FlyBackend off(options);
    CHECK_THAT(off.configStatus().message, Catch::Contains("FLY_IMAGE_REF"));
  }
  ::setenv("FLY_IMAGE_REF", "registry.fly.io/myapp:deployment-01H", 1);
  {
    FlyBackend onFly(options);
    REQUIRE(onFly.configStatus().ok);
    REQUIRE(onFly.boot(spec()).status.ok);  // posted to /v1/apps/myapp/machines
    CHECK(json::parse(server.requests().at(0).body)["config"]["image"] ==
          "registry.fly.io/myapp:deployment-01H");
  }
  // Set options win over the environment.
  options.image = "registry.fly.io/other:v2";
  {
    FlyBackend explicitImage(options);
    REQUIRE(explicitImage.boot(spec("thumbs-2")).status.ok);
    CHECK(json::parse(server.requests().at(1).body)["config"]["image"] ==
          "registry.fly.io/other:v2");
  }
  ::unsetenv("FLY_APP_NAME");
  ::unsetenv("FLY_IMAGE_REF");
}
