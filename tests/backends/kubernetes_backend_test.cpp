// KubernetesBackend against a local fake Pods API.
#include "backends/kubernetes_backend.h"

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/fake_api_server.h"
#include "backends/fake_kubernetes_api.h"
#include "backends/local_files.h"

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

void clearOwnerEnv() {
  for (const char* name : {"POD_NAME", "POD_UID", "POD_NAMESPACE", "FLAME_POD_NAME",
                           "FLAME_POD_UID", "FLAME_POD_NAMESPACE"})
    ::unsetenv(name);
}

KubernetesOptions baseOptions(const std::string& apiServer, const SecretsDir& secrets,
                              RecordingSleeper& sleeper) {
  clearOwnerEnv();
  KubernetesOptions options;
  options.apiServer = apiServer;
  options.namespacePath = secrets.path("namespace");
  options.tokenPath = secrets.path("token");
  options.caPath = "";
  options.image = "ghcr.io/acme/app:1";
  options.requestTimeout = milliseconds(5000);
  options.maxRetries = 3;
  options.retryBase = milliseconds(100);
  options.retryMax = milliseconds(2000);
  options.watchInterval = std::chrono::hours(1);  // rounds run by watchOnce() only
  options.sleeper = sleeper.sleeper();
  return options;
}

KubernetesOptions baseOptions(const FakeApiServer& server, const SecretsDir& secrets,
                              RecordingSleeper& sleeper) {
  return baseOptions(server.baseUrl(), secrets, sleeper);
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

TEST_CASE("kubernetes create: 409 for a pod that is not this boot's is a non-retryable "
          "'already exists'",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.start();
  api.add("thumbs-1", {{"flame/broker-id", "broker-b"}, {"flame/runner-id", "thumbs-1"}});
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(api.baseUrl(), secrets, sleeper));
  BootResult result = k8s.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("already exists"));
  CHECK_THAT(result.status.message, Catch::Contains("not this boot's (broker=broker-b"));
  CHECK(api.creates() == 1);
  CHECK(api.reads("thumbs-1") == 1);
}

TEST_CASE("kubernetes create: 409 after a failed attempt adopts the pod it created",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.quirks.lostAnswers = 1;  // the first create is carried out, its answer replaced by a 503
  api.quirks.readLag = 1;  // the read before the retry misses the fresh pod
  api.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(api.baseUrl(), secrets, sleeper));
  BootResult result = k8s.boot(spec("thumbs-7"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "thumbs-7");
  CHECK(result.handle.runnerId == "thumbs-7");
  CHECK(api.creates() == 2);
  CHECK(api.reads("thumbs-7") == 2);  // before the retry (lagging), after the 409
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

// ---- Issue #8 item 14: ownerReferences ---------------------------------------------------------

TEST_CASE("kubernetes owner: FLAME_POD_* win over POD_*, never across namespaces",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, podCreated("thumbs-1")));
  server.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  ::setenv("POD_NAME", "plain-name", 1);
  ::setenv("POD_UID", "plain-uid", 1);
  ::setenv("FLAME_POD_NAME", "broker-7d9f", 1);
  ::setenv("FLAME_POD_UID", "5f1c-uid", 1);
  {
    KubernetesBackend sameNamespace(options);
    CHECK(sameNamespace.setsOwnerReference());
    REQUIRE(sameNamespace.boot(spec()).status.ok);
  }
  ::setenv("FLAME_POD_NAMESPACE", "flame-system", 1);  // the broker runs elsewhere
  {
    KubernetesBackend otherNamespace(options);
    CHECK_FALSE(otherNamespace.setsOwnerReference());
    REQUIRE(otherNamespace.boot(spec()).status.ok);
  }
  clearOwnerEnv();

  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  json first = json::parse(requests[0].body);
  REQUIRE(first["metadata"]["ownerReferences"].size() == 1);
  CHECK(first["metadata"]["ownerReferences"][0]["name"] == "broker-7d9f");
  CHECK(first["metadata"]["ownerReferences"][0]["uid"] == "5f1c-uid");
  // A cross-namespace owner would make the garbage collector delete the pod at once.
  json second = json::parse(requests[1].body);
  CHECK_FALSE(second["metadata"].contains("ownerReferences"));
}

TEST_CASE("kubernetes owner is omitted when the broker's namespace is unknown",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, podCreated("thumbs-1")));
  server.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  options.namespace_ = "flame-ns";
  options.namespacePath = secrets.path("no-such-file");  // not running in a pod
  options.ownerPodName = "broker-0";
  options.ownerPodUid = "1234-uid";
  KubernetesBackend k8s(options);
  CHECK_FALSE(k8s.setsOwnerReference());
  REQUIRE(k8s.boot(spec()).status.ok);
  CHECK_FALSE(json::parse(server.requests().at(0).body)["metadata"].contains("ownerReferences"));

  options.ownerPodNamespace = "flame-ns";  // told explicitly
  KubernetesBackend told(options);
  CHECK(told.setsOwnerReference());
}

// ---- Issue #8 item 10: idempotent creates ----------------------------------------------------

TEST_CASE("kubernetes create answered after the request timeout is found before it is retried",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.quirks.createDelay = milliseconds(1500);
  api.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(api.baseUrl(), secrets, sleeper);
  options.requestTimeout = milliseconds(300);
  KubernetesBackend k8s(options);
  BootResult result = k8s.boot(spec("Thumbs_7F3A"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "thumbs-7f3a");
  CHECK(result.handle.runnerId == "Thumbs_7F3A");
  CHECK(api.creates() == 1);
  CHECK(api.reads("thumbs-7f3a") == 1);
}

TEST_CASE("kubernetes create answered after the request timeout, retry refused with 409: boot "
          "adopts the pod",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.quirks.createDelay = milliseconds(1500);
  api.quirks.readLag = 1;
  api.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(api.baseUrl(), secrets, sleeper);
  options.requestTimeout = milliseconds(300);
  KubernetesBackend k8s(options);
  BootResult result = k8s.boot(spec("thumbs-1"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "thumbs-1");
  CHECK(api.creates() == 2);
  CHECK(api.reads("thumbs-1") == 2);
}

TEST_CASE("kubernetes create: a timed-out create whose name another broker holds is not adopted",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  // The create times out; its retry is refused: the name is held by another broker's pod.
  auto posts = std::make_shared<std::atomic<int>>(0);
  server.server().Post(kPodsPath,
                       [&, posts](const httplib::Request& request, httplib::Response& response) {
                         server.record(request);
                         if ((*posts)++ == 0) {
                           server.waitGate(milliseconds(1500));
                           response.status = 201;
                           return;
                         }
                         response.status = 409;
                         response.set_content(
                             R"({"kind":"Status","reason":"AlreadyExists","message":"exists"})",
                             "application/json");
                       });
  json foreign = {{"kind", "Pod"},
                  {"metadata",
                   {{"name", "thumbs-1"},
                    {"annotations",
                     {{"flame/broker-id", "broker-b"}, {"flame/runner-id", "thumbs-1"}}}}},
                  {"status", {{"phase", "Running"}}}};
  server.server().Get(kPodPath, server.scripted({}, Reply{200, foreign.dump(), {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(server, secrets, sleeper);
  options.requestTimeout = milliseconds(300);
  options.maxRetries = 1;
  KubernetesBackend k8s(options);
  BootResult result = k8s.boot(spec("thumbs-1"));
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("not this boot's (broker=broker-b"));
  CHECK(posts->load() == 2);
}

TEST_CASE("kubernetes create: our pod that already failed is not adopted",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.start();
  api.add("thumbs-1", {{"flame/broker-id", "broker-a"}, {"flame/runner-id", "thumbs-1"}});
  api.setPhase("thumbs-1", "Failed", 127, "ContainerCannotRun");
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(api.baseUrl(), secrets, sleeper));
  BootResult result = k8s.boot(spec("thumbs-1"));
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("already ended"));
  CHECK_THAT(result.status.message, Catch::Contains("exit code 127"));
}

// ---- Issue #8 item 13: pods that end by themselves --------------------------------------------

TEST_CASE("kubernetes watcher reports a pod that failed, once", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(api.baseUrl(), secrets, sleeper));
  BootResult booted = k8s.boot(spec("thumbs-1"));
  BootResult other = k8s.boot(spec("thumbs-2"));
  REQUIRE(booted.status.ok);
  REQUIRE(other.status.ok);
  api.setPhase("thumbs-2", "Running");

  k8s.watchOnce();
  CHECK(k8s.reapExited().empty());

  api.setPhase("thumbs-1", "Failed", 1);
  k8s.watchOnce();
  auto exited = k8s.reapExited();
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == "thumbs-1");
  CHECK(exited[0].machine.runnerId == "thumbs-1");
  CHECK(exited[0].machine.pool == "thumbs");
  CHECK_THAT(exited[0].description, Catch::Contains("Failed"));
  CHECK_THAT(exited[0].description, Catch::Contains("exit code 1"));
  CHECK(k8s.reapExited().empty());
  k8s.watchOnce();
  CHECK(k8s.reapExited().empty());
  // One list per round; the listed pods are not read one by one.
  CHECK(api.count("GET", FakeKubernetesApi::kPods) == 3);
  CHECK(api.reads("thumbs-1") == 0);
}

TEST_CASE("kubernetes watcher reports pods deleted, being deleted or unable to start",
          "[backends][kubernetes]") {
  std::string how = GENERATE("deleted", "deleting", "invalid image", "succeeded");
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(api.baseUrl(), secrets, sleeper));
  REQUIRE(k8s.boot(spec("thumbs-1")).status.ok);
  std::string expected;
  if (how == "deleted") {
    api.remove("thumbs-1");
    expected = "not found";
  } else if (how == "deleting") {
    api.setDeleting("thumbs-1");
    expected = "being deleted";
  } else if (how == "invalid image") {
    api.setWaiting("thumbs-1", "InvalidImageName", "couldn't parse image reference \"ghcr.io/A\"");
    expected = "InvalidImageName";
  } else {
    api.setPhase("thumbs-1", "Succeeded", 0, "Completed");
    expected = "Succeeded";
  }
  k8s.watchOnce();
  auto exited = k8s.reapExited();
  REQUIRE(exited.size() == 1);
  CHECK_THAT(exited[0].description, Catch::Contains(expected));
}

TEST_CASE("kubernetes watcher does not report a pod the backend stopped",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(api.baseUrl(), secrets, sleeper));
  BootResult booted = k8s.boot(spec("thumbs-1"));
  REQUIRE(booted.status.ok);
  REQUIRE(k8s.stop(booted.handle).ok);
  CHECK_FALSE(api.exists("thumbs-1"));
  k8s.watchOnce();
  CHECK(k8s.reapExited().empty());
}

TEST_CASE("kubernetes watcher thread notices a pod that failed while booting",
          "[backends][kubernetes][watch]") {
  SecretsDir secrets;
  FakeKubernetesApi api;
  api.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(api.baseUrl(), secrets, sleeper);
  options.watchInterval = milliseconds(20);
  auto k8s = std::make_unique<KubernetesBackend>(options);
  REQUIRE(k8s->boot(spec("thumbs-1")).status.ok);
  api.setPhase("thumbs-1", "Failed", 2);
  std::vector<ExitedMachine> exited;
  CHECK(flame::test::waitFor([&] {
    for (auto& e : k8s->reapExited()) exited.push_back(e);
    return !exited.empty();
  }));
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == "thumbs-1");
  auto started = std::chrono::steady_clock::now();
  k8s.reset();
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(1000));
}

// ---- Malformed answers -------------------------------------------------------------------------

TEST_CASE("kubernetes list with a malformed answer fails clearly", "[backends][kubernetes]") {
  std::string body =
      GENERATE(std::string(""), std::string("<html><body>503 Service Unavailable</body></html>"),
               std::string(R"({"kind":"PodList","items":{}})"), std::string(R"([{"metadata":{}}])"),
               std::string(R"({"kind":"PodList","items":[{"metadata":{"name":"a")"));
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Get(kPodsPath, server.scripted({}, Reply{200, body, {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  ListResult result = k8s.list("broker-a");
  CHECK_FALSE(result.status.ok);
  CHECK(result.status.retryable);
  CHECK_THAT(result.status.message, Catch::Contains("not a PodList"));
}

TEST_CASE("kubernetes list skips items of the wrong shape", "[backends][kubernetes]") {
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Get(
      kPodsPath,
      server.scripted({}, Reply{200,
                                R"({"kind":"PodList","items":[7, null, {"metadata":[]},
                                   {"metadata":{"name":3}},
                                   {"metadata":{"name":"ok-1","labels":"x",
                                    "annotations":{"flame/broker-id":"broker-a",
                                                   "flame/runner-id":{"x":1}}}}]})",
                                {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  ListResult result = k8s.list("broker-a");
  REQUIRE(result.status.ok);
  REQUIRE(result.machines.size() == 1);
  CHECK(result.machines[0].machineId == "ok-1");
  CHECK(result.machines[0].runnerId.empty());
}

TEST_CASE("kubernetes create with an odd success answer still boots the pod we named",
          "[backends][kubernetes]") {
  std::string body = GENERATE(std::string(""), std::string("<html>created</html>"),
                              std::string(R"({"metadata":{"name":["x"]}})"));
  SecretsDir secrets;
  FakeApiServer server;
  server.server().Post(kPodsPath, server.scripted({}, Reply{201, body, {}}));
  server.start();
  RecordingSleeper sleeper;
  KubernetesBackend k8s(baseOptions(server, secrets, sleeper));
  BootResult result = k8s.boot(spec("thumbs-1"));
  REQUIRE(result.status.ok);
  CHECK(result.handle.machineId == "thumbs-1");
}

// ---- Issue 12 item 11: the user's own pod template ---------------------------------------------

namespace {

// A GPU pod as a user would write it (here as `kubectl create --dry-run=client -o json` prints
// it): a sidecar, the runner container without an image, GPU limits, tolerations, a node
// selector, a pull secret and a volume. Some fields are flame's and must be replaced.
constexpr const char* kGpuTemplate = R"({
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "generateName": "gpu-",
    "namespace": "templates-ns",
    "labels": {"app": "gpu-runner", "flame/pool": "spoofed"},
    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u"}]
  },
  "spec": {
    "restartPolicy": "Always",
    "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "imagePullSecrets": [{"name": "regcred"}],
    "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
    "containers": [
      {"name": "log-shipper", "image": "fluent/fluent-bit:3"},
      {"name": "runner",
       "resources": {"limits": {"nvidia.com/gpu": 1}},
       "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": true}],
       "env": [{"name": "MODEL_DIR", "value": "/models"},
               {"name": "FLAME_POOL", "value": "spoofed"},
               {"name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]}
    ]
  }
})";

const json* envEntry(const json& env, const std::string& name) {
  for (const auto& entry : env)
    if (entry["name"] == name) return &entry;
  return nullptr;
}

}  // namespace

TEST_CASE("kubernetes pod template: a GPU pod keeps the user's spec and gets flame's parts",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  secrets.write("gpu-pod.json", kGpuTemplate);
  FakeKubernetesApi api;
  api.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(api.baseUrl(), secrets, sleeper);
  options.podTemplate = secrets.path("gpu-pod.json");
  options.env = {{"EXTRA", "1"}};
  options.cpu = "4";
  options.memory = "16Gi";
  options.labels = {{"team", "vision"}};
  options.ownerPodName = "broker-0";
  options.ownerPodUid = "1234-uid";
  KubernetesBackend k8s(options);
  REQUIRE(k8s.configStatus().ok);

  BootResult result = k8s.boot(spec("gpu-1"));
  REQUIRE(result.status.ok);  // the fake validates names, images and the namespace
  auto stored = api.pod("gpu-1");
  REQUIRE(stored);
  const json& pod = *stored;

  // The user's spec, kept.
  const json& podSpec = pod["spec"];
  CHECK(podSpec["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4");
  REQUIRE(podSpec["tolerations"].size() == 1);
  CHECK(podSpec["tolerations"][0]["key"] == "nvidia.com/gpu");
  CHECK(podSpec["tolerations"][0]["effect"] == "NoSchedule");
  CHECK(podSpec["imagePullSecrets"][0]["name"] == "regcred");
  CHECK(podSpec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "models");
  REQUIRE(podSpec["containers"].size() == 2);
  CHECK(podSpec["containers"][0]["name"] == "log-shipper");
  CHECK(podSpec["containers"][0]["image"] == "fluent/fluent-bit:3");
  CHECK_FALSE(podSpec["containers"][0].contains("env"));  // only the runner gets flame's env
  const json& runner = podSpec["containers"][1];
  CHECK(runner["name"] == "runner");
  CHECK(runner["resources"]["limits"]["nvidia.com/gpu"] == 1);
  CHECK(runner["volumeMounts"][0]["mountPath"] == "/models");
  CHECK(envEntry(runner["env"], "MODEL_DIR")->at("value") == "/models");
  CHECK(envEntry(runner["env"], "HF_TOKEN")->at("valueFrom")["secretKeyRef"]["name"] == "hf");
  CHECK(pod["metadata"]["labels"]["app"] == "gpu-runner");
  CHECK(pod["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] ==
        "false");

  // flame's parts, filled in or overriding the template's.
  CHECK(runner["image"] == "ghcr.io/acme/app:1");
  CHECK(runner["resources"]["requests"]["cpu"] == "4");
  CHECK(runner["resources"]["limits"]["cpu"] == "4");
  CHECK(runner["resources"]["limits"]["memory"] == "16Gi");
  CHECK(envValue(runner["env"], "EXTRA") == "1");
  CHECK(envValue(runner["env"], kEnvPool) == "thumbs");  // not the template's "spoofed"
  CHECK(envValue(runner["env"], kEnvRunnerId) == "gpu-1");
  CHECK(envValue(runner["env"], kEnvBrokerId) == "broker-a");
  CHECK(envValue(runner["env"], kEnvBroker) == "tcp://127.0.0.2:5556");
  CHECK(envValue(runner["env"], kEnvBootToken) == "one-time");
  size_t pools = 0;
  for (const auto& entry : runner["env"]) pools += entry["name"] == kEnvPool;
  CHECK(pools == 1);
  CHECK(podSpec["restartPolicy"] == "Never");
  const json& metadata = pod["metadata"];
  CHECK(metadata["name"] == "gpu-1");
  CHECK_FALSE(metadata.contains("generateName"));
  CHECK(metadata["namespace"] == "flame-ns");  // the template's was dropped; the fake set this
  CHECK(metadata["labels"]["flame/pool"] == "thumbs");
  CHECK(metadata["labels"]["flame/broker-id"] == "broker-a");
  CHECK(metadata["labels"]["flame/runner-id"] == "gpu-1");
  CHECK(metadata["labels"]["team"] == "vision");
  CHECK(metadata["annotations"]["flame/runner-id"] == "gpu-1");
  REQUIRE(metadata["ownerReferences"].size() == 1);
  CHECK(metadata["ownerReferences"][0]["name"] == "broker-0");

  // The pod is flame's like any other: listed, stopped.
  ListResult listed = k8s.list("broker-a");
  REQUIRE(listed.status.ok);
  REQUIRE(listed.machines.size() == 1);
  CHECK(listed.machines[0].runnerId == "gpu-1");
  CHECK(k8s.stop(result.handle).ok);
  CHECK_FALSE(api.exists("gpu-1"));
}

TEST_CASE("kubernetes pod template: a bare PodSpec naming the runner's image needs no image option",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  secrets.write("spec.json",
                R"({"nodeSelector": {"pool": "big"},
                    "containers": [{"name": "worker", "image": "ghcr.io/acme/gpu:2"}]})");
  FakeKubernetesApi api;
  api.start();
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions(api.baseUrl(), secrets, sleeper);
  options.image.clear();
  options.podTemplate = secrets.path("spec.json");
  KubernetesBackend k8s(options);
  REQUIRE(k8s.configStatus().ok);
  REQUIRE(k8s.boot(spec()).status.ok);
  auto pod = api.pod("thumbs-1");
  REQUIRE(pod);
  CHECK((*pod)["apiVersion"] == "v1");
  CHECK((*pod)["kind"] == "Pod");
  CHECK((*pod)["spec"]["nodeSelector"]["pool"] == "big");
  REQUIRE((*pod)["spec"]["containers"].size() == 1);
  const json& runner = (*pod)["spec"]["containers"][0];  // no "runner": the first container
  CHECK(runner["name"] == "worker");
  CHECK(runner["image"] == "ghcr.io/acme/gpu:2");
  CHECK(envValue(runner["env"], kEnvRunnerId) == "thumbs-1");
  CHECK_FALSE(runner.contains("resources"));

  // The template's image wins over a configured one.
  options.image = "ghcr.io/acme/app:1";
  KubernetesBackend both(options);
  REQUIRE(both.boot(spec("thumbs-2")).status.ok);
  CHECK(api.pod("thumbs-2")->at("spec")["containers"][0]["image"] == "ghcr.io/acme/gpu:2");
}

TEST_CASE("kubernetes pod template errors fail at construction, naming the file",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions("http://127.0.0.1:1", secrets, sleeper);
  struct Case {
    std::string text;  // empty: the file is not written
    std::string says;
  };
  Case c = GENERATE(
      Case{"", "cannot read the file"},
      Case{"apiVersion: v1\nkind: Pod\n", "not valid JSON (YAML is not read"},
      Case{"[1, 2]", "not a JSON object"},
      Case{R"({"kind": "Deployment", "spec": {"containers": [{"name": "a"}]}})", "not \"Pod\""},
      Case{R"({"metadata": {}})", "spec is missing"},
      Case{R"({"spec": {"containers": []}})", "spec.containers is missing or empty"},
      Case{R"({"containers": ["runner"]})", "spec.containers[0] is not an object"},
      Case{R"({"containers": [{"name": "runner", "env": {"A": "1"}}]})", ".env is not an array"},
      Case{R"({"containers": [{"name": "runner", "resources": {"limits": 1}}]})",
           "resources.limits is not an object"},
      Case{R"({"metadata": {"labels": {"a": 1}}, "spec": {"containers": [{"name": "r"}]}})",
           "metadata.labels.a is not a string"});
  INFO(c.text);
  if (!c.text.empty()) secrets.write("pod.json", c.text);
  options.podTemplate = secrets.path("pod.json");
  KubernetesBackend k8s(options);
  CHECK_FALSE(k8s.configStatus().ok);
  CHECK_THAT(k8s.configStatus().message, Catch::Contains("pod_template " + secrets.path("pod.json")));
  CHECK_THAT(k8s.configStatus().message, Catch::Contains(c.says));
  BootResult result = k8s.boot(spec());
  CHECK_FALSE(result.status.ok);
  CHECK_FALSE(result.status.retryable);
}

TEST_CASE("kubernetes pod template without a runner image needs the image option",
          "[backends][kubernetes]") {
  SecretsDir secrets;
  secrets.write("pod.json", R"({"containers": [{"name": "runner"}]})");
  RecordingSleeper sleeper;
  KubernetesOptions options = baseOptions("http://127.0.0.1:1", secrets, sleeper);
  options.image.clear();
  options.podTemplate = secrets.path("pod.json");
  KubernetesBackend k8s(options);
  CHECK_FALSE(k8s.configStatus().ok);
  CHECK_THAT(k8s.configStatus().message, Catch::Contains("image is required"));
  CHECK_THAT(k8s.configStatus().message, Catch::Contains(secrets.path("pod.json")));
}
