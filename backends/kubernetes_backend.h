// KubernetesBackend: one Pod per runner through the Kubernetes API (in-cluster by default).
//
//   boot  POST   /api/v1/namespaces/{ns}/pods                 restartPolicy Never, labelled
//   stop  DELETE /api/v1/namespaces/{ns}/pods/{name}          (404 = already gone = ok)
//   list  GET    /api/v1/namespaces/{ns}/pods?labelSelector=flame/broker-id=<id>
//   watch GET    the same list every watchInterval (+ GET .../pods/{name} for one it leaves out)
//
// Pods are built from the user's pod template when one is given (KubernetesOptions::podTemplate).
// Pods carry labels flame/pool, flame/broker-id, flame/runner-id (values sanitised to DNS-1123
// labels) and the same keys as annotations with the exact values, which list() reports.
// Owner: when the broker's own pod is known (name and uid) and lives in the namespace the runner
// pods are created in, runner pods get an ownerReference to it, so deleting the broker's pod
// garbage-collects its runners. Never across namespaces: Kubernetes treats a cross-namespace
// owner as absent and would delete the runner pods at once.
// The service-account token file is re-read before every request (projected tokens rotate).
// Retries 429/5xx (Retry-After honoured) and timeouts/connection failures; 401, 403, 422 Invalid
// and other 4xx fail at once with the API's message.
//
// Creates are idempotent: the pod's name is dnsLabel(runner id), which the broker never reuses.
// Before retrying a create whose answer was lost (timeout, dropped connection, 5xx), and on a
// 409 AlreadyExists, boot() reads the pod by name; if it carries this broker's and runner's ids
// it is returned as the boot. A pod of that name that is not ours fails the boot (not retryable).
//
// reapExited(): a MachineWatcher polls the pods this backend booted and has not stopped; those
// in phase Failed/Succeeded, with a terminated container, being deleted, or gone (404) are
// reported once. Their pod objects stay for inspection until the orphan sweep deletes them.
//
// Thread-safety: boot/stop/list are serialised by an internal mutex; reapExited() takes only the
// watcher's short lock and may be called concurrently with them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "backends/http.h"
#include "backends/kubernetes_api.h"
#include "backends/machine_watcher.h"
#include "backends/pod_template.h"
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
  std::string image;  // required, unless the pod template's runner container names its image
  // A JSON file with the user's own Pod manifest or PodSpec (see backends/pod_template.h): node
  // selectors, tolerations, volumes, GPU limits... are kept; flame fills in the runner
  // container's image (if the template has none) and env, its labels, annotations, name,
  // restartPolicy Never and ownerReferences. Read once, at construction. Empty: no template.
  std::string podTemplate;
  std::map<std::string, std::string> env;  // extra runner env; the spec's FLAME_* win
  std::string cpu;     // resources requests = limits, e.g. "500m"; empty: omitted
  std::string memory;  // e.g. "512Mi"; empty: omitted
  std::map<std::string, std::string> labels;  // extra pod labels (flame/* keys are ours)
  std::string serviceAccount;                 // serviceAccountName; empty: the namespace default
  // The broker's own pod, owner of the runner pods. Empty: $FLAME_POD_NAME, else $POD_NAME (and
  // _UID, _NAMESPACE alike; set them with the downward API). The namespace falls back to the
  // service account's namespace file (the pod's own). An owner is set only when name and uid are
  // known and its namespace is known and equal to the runner pods' namespace.
  std::string ownerPodName;
  std::string ownerPodUid;
  std::string ownerPodNamespace;
  Duration requestTimeout{30'000};  // per HTTP attempt
  int maxRetries = 5;
  Duration retryBase{200};
  Duration retryMax{5000};
  // How often booted pods are checked for having ended by themselves (reapExited()).
  // 0 or kInfinite: not watched. One list request per round (per broker id), whatever the count.
  Duration watchInterval{2000};
  std::function<void(Duration)> sleeper;  // empty: really sleeps (tests inject a recorder)
};

class KubernetesBackend final : public Backend {
 public:
  // Never throws for bad options: problems are reported by configStatus() and every call
  // fails with that (non-retryable) status.
  explicit KubernetesBackend(KubernetesOptions options);
  ~KubernetesBackend() override;

  // ok, or why the options cannot work (no image, no namespace, a pod template that cannot be
  // read or has the wrong shape: the message names the file).
  const BackendStatus& configStatus() const { return configStatus_; }
  // The namespace in use (after reading namespacePath).
  const std::string& namespaceName() const { return options_.namespace_; }

  std::string kind() const override { return "kubernetes"; }
  // machineId = pod name (dnsLabel(spec.runnerId)).
  BootResult boot(const BootSpec& spec) override;
  // Stops watching the pod first: its end is then not reported by reapExited().
  BackendStatus stop(const MachineHandle& machine) override;
  ListResult list(const std::string& brokerId) override;
  bool supportsList() const override { return true; }
  std::vector<ExitedMachine> reapExited() override { return watcher_.reap(); }

  // Whether created pods get an ownerReference to the broker's pod (see KubernetesOptions).
  bool setsOwnerReference() const { return setsOwner_; }
  // One watch round now, on the calling thread (tests; the watcher thread does this every
  // watchInterval). Blocks for its HTTP requests.
  void watchOnce() { watcher_.pollOnce(); }

 private:
  struct PodLookup {
    enum class Kind { Found, NotFound, Failed } kind = Kind::Failed;
    k8s::Pod pod;     // when Found
    std::string why;  // when Failed
  };

  http::Request baseRequest(std::string method, std::string path) const;
  // Sets the Authorization header from the token file, read now.
  BackendStatus authorize(http::Request& request) const;
  // GET the pod by name: one request, no retries.
  PodLookup lookupPod(http::Client& client, const std::string& podName,
                      const std::atomic<bool>* cancel) const;
  BootResult adopt(const BootSpec& spec, const k8s::Pod& pod, const std::string& what,
                   const std::string& how);
  BootResult resolveAlreadyExists(const BootSpec& spec, const std::string& podName,
                                  const std::string& what, const HttpOutcome& outcome);
  // MachineWatcher's probe: runs on the watcher thread only.
  std::vector<ExitedMachine> probe(const std::vector<WatchedMachine>& watched);
  void noteProbeFailure(const std::string& what, const std::string& why);

  KubernetesOptions options_;
  BackendStatus configStatus_;
  k8s::PodTemplate template_;
  bool setsOwner_ = false;
  Sleeper sleeper_;
  RetryPolicy retry_;
  std::mutex mutex_;
  http::Client client_;       // guarded by mutex_
  http::Client watchClient_;  // the probe's own (it never waits for mutex_)
  int probeFailures_ = 0;     // in a row; probe thread only
  MachineWatcher watcher_;    // last: stopped first, before what its probe uses
};

}  // namespace flame
