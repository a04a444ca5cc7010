// FlyBackend against a local fake Machines API.
#include "backends/fly_backend.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "backends/fake_api_server.h"

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
  int status = GENERATE(409, 412, 422, 429, 500, 502, 503);
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
  int status = GENERATE(400, 401, 403, 404);
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
