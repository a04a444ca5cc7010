// KubernetesBackend: one Pod per runner through the Kubernetes API (in-cluster by default).
//
//   boot  POST   /api/v1/namespaces/{ns}/pods                 restartPolicy Never, labelled
//   stop  DELETE /api/v1/namespaces/{ns}/pods/{name}          (404 = already gone = ok)
//   list  GET    /api/v1/namespaces/{ns}/pods?labelSelector=flame/broker-id=<id>
//
// Pods carry labels flame/pool, flame/broker-id, flame/runner-id (values sanitised to DNS-1123
// labels) and the same keys as annotations with the exact values, which list() reports. When the
// broker's own pod is known, runner pods get an ownerReference to it, so deleting the broker's
// pod garbage-collects its runners.
// The service-account token file is re-read before every request (projected tokens rotate).
// Retries 429/5xx and timeouts/connection failures; 409 on create ("already exists"), 401, 403
// and other 4xx fail at once with the API's message. A 409 on a *retried* create means an earlier
// attempt created the pod (its answer was lost): that boot succeeds.
//
// Thread-safety: calls are serialised by an internal mutex.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "backends/backend.h"
#include "backends/http.h"
#include "backends/retry.h"
#include "common/clock.h"

namespace flame {

struct KubernetesOptions {
  std::string apiServer = "https://kubernetes.default.svc";
  std::string namespace_;  // empty: read from namespacePath
  std::string namespacePath = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  std::string tokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token";  // empty: no auth
  std::string caPath = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";  // empty: system CAs
  bool insecureSkipTlsVerify = false;
  std::string image;                       // required
  std::map<std::string, std::string> env;  // extra runner env; the spec's FLAME_* win
  std::string cpu;     // resources requests = limits, e.g. "500m"; empty: omitted
  std::string memory;  // e.g. "512Mi"; empty: omitted
  std::map<std::string, std::string> labels;  // extra pod labels (flame/* keys are ours)
  std::string serviceAccount;                 // serviceAccountName; empty: the namespace default
  std::string ownerPodName;                   // empty: $POD_NAME
  std::string ownerPodUid;          // empty: $POD_UID; both name and uid needed for ownerReferences
  Duration requestTimeout{30'000};  // per HTTP attempt
  int maxRetries = 5;
  Duration retryBase{200};
  Duration retryMax{5000};
  std::function<void(Duration)> sleeper;  // empty: really sleeps (tests inject a recorder)
};

// A DNS-1123 label from any text: lowercase, [a-z0-9-], starting and ending alphanumeric, at
// most 63 characters. Texts that had to be shortened get a hash suffix so that distinct long ids
// stay distinct. Never empty ("x" for text with no usable character).
std::string dnsLabel(std::string_view text);

class KubernetesBackend final : public Backend {
 public:
  // Never throws for bad options: problems are reported by configStatus() and every call
  // fails with that (non-retryable) status.
  explicit KubernetesBackend(KubernetesOptions options);
  ~KubernetesBackend() override;

  // ok, or why the options cannot work (no image, no namespace).
  const BackendStatus& configStatus() const { return configStatus_; }
  // The namespace in use (after reading namespacePath).
  const std::string& namespaceName() const { return options_.namespace_; }

  std::string kind() const override { return "kubernetes"; }
  // machineId = pod name (dnsLabel(spec.runnerId)).
  BootResult boot(const BootSpec& spec) override;
  BackendStatus stop(const MachineHandle& machine) override;
  ListResult list(const std::string& brokerId) override;
  bool supportsList() const override { return true; }

 private:
  http::Request baseRequest(std::string method, std::string path) const;
  // Sets the Authorization header from the token file, read now.
  BackendStatus authorize(http::Request& request) const;

  KubernetesOptions options_;
  BackendStatus configStatus_;
  Sleeper sleeper_;
  RetryPolicy retry_;
  std::mutex mutex_;
  http::Client client_;  // guarded by mutex_
};

}  // namespace flame
