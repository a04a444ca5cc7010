// Decoding Kubernetes Pod and PodList answers: real-looking answers, then malformed ones, which
// must give a clear error, never throw.
#include "backends/kubernetes_api.h"

#include <catch2/catch.hpp>
#include <string>

using namespace flame;

namespace {

constexpr const char* kFailedPod = R"({
  "kind": "Pod", "apiVersion": "v1",
  "metadata": {"name": "thumbs-7f3a", "namespace": "flame-ns", "uid": "6c1f-uid",
               "labels": {"flame/broker-id": "broker-a", "flame/runner-id": "thumbs-7f3a",
                          "flame/pool": "thumbs"},
               "annotations": {"flame/broker-id": "Broker_A", "flame/runner-id": "Thumbs_7F3A"}},
  "spec": {"restartPolicy": "Never", "containers": [{"name": "runner", "image": "ghcr.io/a:1"}]},
  "status": {"phase": "Failed", "reason": "OOMKilled", "message": "out of memory",
             "containerStatuses": [{"name": "runner", "ready": false, "restartCount": 0,
               "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}})";

}  // namespace

TEST_CASE("kubernetes parsePod reads a pod", "[backends][kubernetes][api]") {
  k8s::PodAnswer answer = k8s::parsePod(kFailedPod);
  REQUIRE(answer.status.ok);
  const k8s::Pod& pod = answer.pod;
  CHECK(pod.name == "thumbs-7f3a");
  CHECK(pod.uid == "6c1f-uid");
  CHECK(pod.phase == "Failed");
  CHECK_FALSE(pod.deleting);
  CHECK(pod.tag(k8s::kKeyRunnerId) == "Thumbs_7F3A");  // the annotation, exact
  CHECK(pod.tag(k8s::kKeyPool) == "thumbs");           // no annotation: the label
  REQUIRE(pod.containers.size() == 1);
  CHECK(pod.containers[0].terminated);
  CHECK(pod.containers[0].exitCode == 137);
  CHECK(k8s::belongsTo(pod, "Broker_A", "Thumbs_7F3A"));
  CHECK_FALSE(k8s::belongsTo(pod, "broker-a", "thumbs-7f3a"));  // annotations are exact
  auto ended = k8s::endedDescription(pod);
  REQUIRE(ended);
  CHECK(*ended ==
        "pod phase Failed (OOMKilled): out of memory, container runner terminated with exit "
        "code 137 (OOMKilled)");
}

TEST_CASE("kubernetes belongsTo falls back to labels for pods without annotations",
          "[backends][kubernetes][api]") {
  auto answer = k8s::parsePod(
      R"({"metadata":{"name":"p","labels":{"flame/broker-id":"broker-a","flame/runner-id":"thumbs-7f3a"}}})");
  REQUIRE(answer.status.ok);
  CHECK(k8s::belongsTo(answer.pod, "Broker_A", "Thumbs_7F3A"));
  CHECK_FALSE(k8s::belongsTo(answer.pod, "broker-b", "Thumbs_7F3A"));
  CHECK_FALSE(k8s::endedDescription(answer.pod));  // no status: may still start
}

TEST_CASE("kubernetes endedDescription: what counts as ended", "[backends][kubernetes][api]") {
  auto pod = [](const std::string& status, const std::string& extraMetadata = "") {
    auto answer = k8s::parsePod(R"({"metadata":{"name":"p")" + extraMetadata + "},\"status\":" +
                                status + "}");
    REQUIRE(answer.status.ok);
    return answer.pod;
  };
  CHECK_FALSE(k8s::endedDescription(pod(R"({"phase":"Pending"})")));
  CHECK_FALSE(k8s::endedDescription(pod(R"({"phase":"Running"})")));
  CHECK_FALSE(k8s::endedDescription(pod(
      R"({"phase":"Pending","containerStatuses":[{"name":"runner","state":{"waiting":{"reason":"ImagePullBackOff"}}}]})")));
  CHECK(k8s::endedDescription(pod(R"({"phase":"Succeeded"})")) == "pod phase Succeeded");
  CHECK(k8s::endedDescription(pod(R"({"phase":"Running"})", R"(,"deletionTimestamp":"2024-05-01T10:00:00Z")")) ==
        "pod is being deleted");
  CHECK(k8s::endedDescription(pod(
            R"({"phase":"Pending","containerStatuses":[{"name":"runner","state":{"waiting":{"reason":"InvalidImageName","message":"bad ref"}}}]})")) ==
        "pod phase Pending, container runner cannot start: InvalidImageName: bad ref");
  CHECK(k8s::endedDescription(pod(
            R"({"phase":"Running","containerStatuses":[{"name":"runner","state":{"terminated":{"exitCode":1,"reason":"Error"}}}]})")) ==
        "pod phase Running, container runner terminated with exit code 1 (Error)");
}

TEST_CASE("kubernetes parsePod rejects malformed answers with a clear error",
          "[backends][kubernetes][api]") {
  const char* bodies[] = {
      "",
      "null",
      "[]",
      "{}",
      R"({"metadata": []})",
      R"({"metadata": {"name": 5}})",
      R"({"metadata": {"name": ""}})",
      R"({"kind":"Pod","metadata":{"name":"p")",
      "<html><body><h1>403 Forbidden</h1></body></html>",
      "{\"metadata\":{\"name\":\"\xc3\x28\"}}",  // invalid UTF-8
  };
  for (const char* body : bodies) {
    INFO(body);
    k8s::PodAnswer answer = k8s::parsePod(body);
    CHECK_FALSE(answer.status.ok);
    CHECK(answer.status.retryable);
    CHECK_FALSE(answer.status.message.empty());
  }
}

TEST_CASE("kubernetes parsePod tolerates odd field types around a valid name",
          "[backends][kubernetes][api]") {
  auto answer = k8s::parsePod(
      R"({"metadata":{"name":"p","uid":1,"labels":[],"annotations":{"a":1,"b":"x"},"deletionTimestamp":null},
          "status":{"phase":3,"containerStatuses":[1,{"state":"x"},{"name":"r","state":{"terminated":{"exitCode":"1"}}}]}})");
  REQUIRE(answer.status.ok);
  const auto& pod = answer.pod;
  CHECK(pod.uid.empty());
  CHECK(pod.labels.empty());
  CHECK(pod.annotations.size() == 1);
  CHECK_FALSE(pod.deleting);
  CHECK(pod.phase.empty());
  REQUIRE(pod.containers.size() == 2);
  CHECK(pod.containers[1].terminated);
  CHECK_FALSE(pod.containers[1].exitCode);
  CHECK(k8s::endedDescription(pod) == "pod phase unknown, container r terminated");
}

TEST_CASE("kubernetes parsePodList keeps the pods and counts the rest",
          "[backends][kubernetes][api]") {
  auto answer = k8s::parsePodList(
      R"({"kind":"PodList","items":[{"metadata":{"name":"a"}},7,{"metadata":{}},{"metadata":{"name":"b"}}]})");
  REQUIRE(answer.status.ok);
  REQUIRE(answer.pods.size() == 2);
  CHECK(answer.pods[1].name == "b");
  CHECK(answer.skipped == 2);
  auto empty = k8s::parsePodList(R"({"kind":"PodList","items":null})");
  CHECK(empty.status.ok);
  CHECK(empty.pods.empty());

  for (const char* body : {"", "[]", "{}", R"({"items":{}})", R"({"items":"x"})",
                           R"({"items":[)", "<html>Bad Gateway</html>"}) {
    INFO(body);
    auto bad = k8s::parsePodList(body);
    CHECK_FALSE(bad.status.ok);
    CHECK_THAT(bad.status.message, Catch::Contains("not a PodList"));
  }
}
