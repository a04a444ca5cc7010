// KubernetesBackend against a local fake Pods API.
#include "backends/kubernetes_backend.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/fake_api_server.h"

using namespace flame;
using namespace flame::testing;
using json = nlohmann::json;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPodsPath = "/api/v1/namespaces/flame-ns/pods";
constexpr const char* kPodPath = R"(/api/v1/namespaces/flame-ns/pods/([^/]+))";

// A temporary directory holding the service-account files, removed at the end.
struct SecretsDir {
  fs::path dir;
  SecretsDir() {
    char pattern[] = "/tmp/flame-k8s-XXXXXX";
    dir = ::mkdtemp(pattern);
    write("namespace", "flame-ns\n");
    write("token", "token-one\n");
  }
  ~SecretsDir() { fs::remove_all(dir); }
  void write(const std::string& name, const std::string& text) const {
    // Write a new file and rename it over the old one, like the kubelet's atomic writer.
    fs::path tmp = dir / (name + ".tmp");
    std::ofstream(tmp) << text;
    fs::rename(tmp, dir / name);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

KubernetesOptions baseOptions(const FakeApiServer& server, const SecretsDir& secrets,
                              RecordingSleeper& sleeper) {
  ::unsetenv("POD_NAME");
  ::unsetenv("POD_UID");
  KubernetesOptions options;
  options.apiServer = server.baseUrl();
  options.namespacePath = secrets.path("namespace");
  options.tokenPath = secrets.path("token");
  options.caPath = "";
  options.image = "ghcr.io/acme/app:1";
  options.requestTimeout = milliseconds(5000);
  options.maxRetries = 3;
  options.retryBase = milliseconds(100);
  options.retryMax = milliseconds(2000);
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

Reply podCreated(const std::string& name) {
  return Reply{201, json{{"kind", "Pod"}, {"metadata", {{"name", name}}}}.dump(), {}};
}

std::string envValue(const json& env, const std::string& name) {
  for (const auto& entry : env) {
    if (entry["name"] == name) return entry["value"];
  }
  return "<missing>";
}

}  // namespace

TEST_CASE("dnsLabel makes DNS-1123 labels", "[backends][kubernetes]") {
  CHECK(dnsLabel("thumbs-1") == "thumbs-1");
  CHECK(dnsLabel("Thumbs_Runner.7F3A") == "thumbs-runner-7f3a");
  CHECK(dnsLabel("--a__b--") == "a-b");
  CHECK(dnsLabel("") == "x");
  CHECK(dnsLabel("___") == "x");
  CHECK(dnsLabel("caf\xc3\xa9") == "caf");
  std::string longA(100, 'a');
  std::string longB = longA + "b";
  CHECK(dnsLabel(longA).size() == 63);
  CHECK(dnsLabel(longB).size() == 63);
  CHECK(dnsLabel(longA) != dnsLabel(longB));
  CHECK(dnsLabel(longA) == dnsLabel(longA));
  for (const std::string& text : {longA, longB, std::string("A.b_c-D")}) {
    std::string label = dnsLabel(text);
    CHECK(std::isalnum(static_cast<unsigned char>(label.front())));
    CHECK(std::isalnum(static_cast<unsigned char>(label.back())));
    for (char c : label) CHECK(((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'));
  }
}

TEST_CASE("kubernetes create posts a labelled pod field by field", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, podCreated("thumbs-runner-7f3a")));
  server.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  options.env = {{"EXTRA", "1"}, {kEnvRunnerId, "config-cannot-override"}};
  options.cpu = "500m";
  options.memory = "256Mi";
  options.labels = {{"team", "media"}};
  options.serviceAccount = "runner-sa";
  options.ownerPodName = "broker-0";
  options.ownerPodUid = "1234-uid";
  KubernetesBackend k8s(options);
  REQUIRE(k8s.configStatus().ok);
  CHECK(k8s.namespaceName() == "flame-ns");

  BootResult result = k8s.boot(spec("Thumbs_Runner.7F3A"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "thumbs-runner-7f3a");
  CHECK(result.handle.runnerId == "Thumbs_Runner.7F3A");
  CHECK(result.handle.pool == "thumbs");

  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].authorization == "Bearer token-one");
  CHECK(requests[0].contentType == "application/json");
  json pod = json::parse(requests[0].body);
  CHECK(pod["apiVersion"] == "v1");
  CHECK(pod["kind"] == "Pod");
  const json& metadata = pod["metadata"];
  CHECK(metadata["name"] == "thumbs-runner-7f3a");
  CHECK(metadata["labels"]["flame/pool"] == "thumbs");
  CHECK(metadata["labels"]["flame/broker-id"] == "broker-a");
  CHECK(metadata["labels"]["flame/runner-id"] == "thumbs-runner-7f3a");
  CHECK(metadata["labels"]["team"] == "media");
  CHECK(metadata["annotations"]["flame/runner-id"] == "Thumbs_Runner.7F3A");
  REQUIRE(metadata["ownerReferences"].size() == 1);
  const json& owner = metadata["ownerReferences"][0];
  CHECK(owner["apiVersion"] == "v1");
  CHECK(owner["kind"] == "Pod");
  CHECK(owner["name"] == "broker-0");
  CHECK(owner["uid"] == "1234-uid");
  CHECK(owner["controller"] == false);
  CHECK(owner["blockOwnerDeletion"] == false);
  const json& podSpec = pod["spec"];
  CHECK(podSpec["restartPolicy"] == "Never");
  CHECK(podSpec["serviceAccountName"] == "runner-sa");
  REQUIRE(podSpec["containers"].size() == 1);
  const json& container = podSpec["containers"][0];
  CHECK(container["name"] == "runner");
  CHECK(container["image"] == "ghcr.io/acme/app:1");
  CHECK(envValue(container["env"], "EXTRA") == "1");
  CHECK(envValue(container["env"], kEnvRunnerId) == "Thumbs_Runner.7F3A");
  CHECK(envValue(container["env"], kEnvPool) == "thumbs");
  CHECK(envValue(container["env"], kEnvBrokerId) == "broker-a");
  CHECK(envValue(container["env"], kEnvBroker) == "tcp://127.0.0.2:5556");
  CHECK(envValue(container["env"], kEnvBootToken) == "one-time");
  CHECK(container["resources"]["requests"]["cpu"] == "500m");
  CHECK(container["resources"]["requests"]["memory"] == "256Mi");
  CHECK(container["resources"]["limits"]["cpu"] == "500m");
  CHECK(container["resources"]["limits"]["memory"] == "256Mi");
}

TEST_CASE("kubernetes owner comes from POD_NAME/POD_UID and is omitted when unknown",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, podCreated("thumbs-1")));
  server.start();
  RecordingSleeper sleeper;
  {
    KubernetesBackend k8s(baseOptions(server, secrets, sleeper));  // unsets POD_NAME/POD_UID
    REQUIRE(k8s.boot(spec()).status.ok);
  }
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  ::setenv("POD_NAME", "broker-env", 1);
  ::setenv("POD_UID", "uid-env", 1);
  KubernetesBackend fromEnv(options);
  ::unsetenv("POD_NAME");
  ::unsetenv("POD_UID");
  REQUIRE(fromEnv.boot(spec()).status.ok);

  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  json first = json::parse(requests[0].body);
  CHECK_FALSE(first["metadata"].contains("ownerReferences"));
  CHECK_FALSE(first["spec"].contains("serviceAccountName"));
  CHECK_FALSE(first["spec"]["containers"][0].contains("resources"));
  json second = json::parse(requests[1].body);
  CHECK(second["metadata"]["ownerReferences"][0]["name"] == "broker-env");
  CHECK(second["metadata"]["ownerReferences"][0]["uid"] == "uid-env");
}

TEST_CASE("kubernetes re-reads the rotating token before every request", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, podCreated("thumbs-1")));
  server.server().Delete(kPodPath, server.scripted({}, Reply{200, R"({"kind":"Pod"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  BootResult booted = k8s.boot(spec());
  REQUIRE(booted.status.ok);
  secrets.write("token", "token-two");
  REQUIRE(k8s.stop(booted.handle).ok);

  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].authorization == "Bearer token-one");
  CHECK(requests[1].method == "DELETE");
  CHECK(requests[1].path == "/api/v1/namespaces/flame-ns/pods/thumbs-1");
  CHECK(requests[1].authorization == "Bearer token-two");
}

TEST_CASE("kubernetes fails without sending when the token file is missing",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, podCreated("thumbs-1")));
  server.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  options.tokenPath = secrets.path("no-such-token");
  KubernetesBackend k8s(options);
  BootResult result = k8s.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("token"));
  CHECK(server.requestCount() == 0);
}

TEST_CASE("kubernetes create: 409 is a non-retryable 'already exists'", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(
      kPodsPath,
      server.scripted(
          {},
          Reply{
              409,
              R"({"kind":"Status","message":"pods \"thumbs-1\" already exists","reason":"AlreadyExists"})",
              {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  BootResult result = k8s.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("already exists"));
  CHECK(server.requestCount() == 1);
}

TEST_CASE("kubernetes create: 409 after a failed attempt means the earlier attempt created it",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(
      kPodsPath, server.scripted({Reply{503, R"({"message":"etcd leader changed"})", {}}},
                                 Reply{409, R"({"kind":"Status","reason":"AlreadyExists"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  BootResult result = k8s.boot(spec("thumbs-7"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "thumbs-7");
  CHECK(server.requestCount() == 2);
}

TEST_CASE("kubernetes 401/403 are not retried and carry the API's message",
          "[backends][kubernetes]") {
  int status = GENERATE(401, 403, 422);
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(
      kPodsPath,
      server.scripted({},
                      Reply{status, R"({"kind":"Status","message":"pods is forbidden: no"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  BootResult result = k8s.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("pods is forbidden: no"));
  CHECK(server.requestCount() == 1);
  CHECK(sleeper.waits->empty());
}

TEST_CASE("kubernetes retries 429 and 5xx", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(
      kPodsPath, server.scripted({Reply{429, R"({"message":"slow down"})", {{"Retry-After", "1"}}},
                                  Reply{500, R"({"message":"etcd"})", {}}},
                                 podCreated("thumbs-1")));
  server.server().Get(kPodsPath,
                      server.scripted({}, Reply{503, R"({"message":"unavailable"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  REQUIRE(k8s.boot(spec()).status.ok);
  CHECK(*sleeper.waits == std::vector<milliseconds>{milliseconds(1000), milliseconds(200)});

  sleeper.waits->clear();
  ListResult listed = k8s.list("broker-a");
  CHECK_FALSE(listed.status.ok);
  CHECK(listed.status.retryable);
  CHECK_THAT(listed.status.message, Catch::Contains("unavailable"));
  CHECK(sleeper.waits->size() == 3);
  CHECK(server.requestCount() == 3 + 4);
}

TEST_CASE("kubernetes stop treats 404 as already gone", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Delete(
      kPodPath, server.scripted({}, Reply{404, R"({"kind":"Status","reason":"NotFound"})", {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  CHECK(k8s.stop(MachineHandle{"thumbs-1", "thumbs-1", "thumbs"}).ok);
  CHECK(server.requestCount() == 1);
}

TEST_CASE("kubernetes list selects by broker label and reports exact ids",
          "[backends][kubernetes]") {
  json pods = {
      {"kind", "PodList"},
      {"items",
       json::array({
           {{"metadata",
             {{"name", "thumbs-runner-7f3a"},
              {"labels",
               {{"flame/broker-id", "broker-a"},
                {"flame/pool", "thumbs"},
                {"flame/runner-id", "thumbs-runner-7f3a"}}},
              {"annotations",
               {{"flame/broker-id", "broker-a"},
                {"flame/pool", "thumbs"},
                {"flame/runner-id", "Thumbs_Runner.7F3A"}}}}}},
           {{"metadata",
             {{"name", "other"},
              {"labels", {{"flame/broker-id", "broker-a"}}},
              {"annotations", {{"flame/broker-id", "Broker-A"}}}}}},  // same label, other broker
           {{"metadata",
             {{"name", "labels-only"},
              {"labels", {{"flame/broker-id", "broker-a"}, {"flame/pool", "video"}}}}}},
           {{"spec", {}}},
       })},
  };
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Get(kPodsPath, server.scripted({}, Reply{200, pods.dump(), {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  ListResult result = k8s.list("broker-a");
  REQUIRE(result.status.ok);
  REQUIRE(result.machines.size() == 2);
  CHECK(result.machines[0].machineId == "thumbs-runner-7f3a");
  CHECK(result.machines[0].runnerId == "Thumbs_Runner.7F3A");
  CHECK(result.machines[0].pool == "thumbs");
  CHECK(result.machines[1].machineId == "labels-only");
  CHECK(result.machines[1].pool == "video");
  auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].param("labelSelector") == "flame/broker-id=broker-a");
  CHECK(requests[0].authorization == "Bearer token-one");
}

TEST_CASE("kubernetes create that times out fails retryable without hanging",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath,
                       [&](const httplib::Request& request, httplib::Response& response) {
                         server.record(request);
                         server.waitGate(milliseconds(20'000));  // released by the test at the end
                         response.status = 201;
                       });
  server.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  options.requestTimeout = milliseconds(300);
  options.maxRetries = 0;
  KubernetesBackend k8s(options);
  auto started = std::chrono::steady_clock::now();
  BootResult result = k8s.boot(spec());
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  server.releaseGate();
}

TEST_CASE("kubernetes options are validated at construction", "[backends][kubernetes]") {
  SecretsDir secrets;
  RecordingSleeper sleeper;
  KubernetesOptions options;
  options.apiServer = "http://127.0.0.1:1";
  options.namespacePath = secrets.path("missing");
  options.tokenPath = secrets.path("token");
  options.image = "img";
  options.sleeper = sleeper.sleeper();
  KubernetesBackend noNamespace(options);
  CHECK_FALSE(noNamespace.configStatus().ok);
  CHECK_THAT(noNamespace.configStatus().message, Catch::Contains("namespace"));
  CHECK_FALSE(noNamespace.boot(spec()).status.ok);

  options.namespace_ = "explicit";
  options.image.clear();
  KubernetesBackend noImage(options);
  CHECK_FALSE(noImage.configStatus().ok);
  CHECK(noImage.namespaceName() == "explicit");
}
