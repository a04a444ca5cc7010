// Cluster: the real processes under test — one flame-broker and a set of static flame-worker
// runners (some inside NetnsLink namespaces) — with the operations the fault injectors need:
// kill and restart the broker on the same endpoints, kill/restart/stop/continue a runner.
//
// The broker first binds port 0 (the OS chooses) and its actual endpoints are read back from
// --endpoints-file; every restart binds exactly those endpoints again. With namespaces, the
// runner endpoint is bound on the root side of the first veth pair (a private test address),
// and root-namespace runners reach that same address through the local route: a broker binds
// one runner endpoint, so "loopback and veth" is one address every runner can reach.
//
// Threading: not thread-safe; owned and used by the driver's main thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/chaos/child_process.h"
#include "tests/chaos/netns_link.h"

namespace flame::chaos {

struct ClusterOptions {
  std::string runDir;                 // logs and the endpoints file go here
  std::string pool = "chaos";
  int rootRunners = 4;                // runners in the root namespace
  std::vector<NetnsLink*> links;      // one more runner inside each link's namespace
  int concurrency = 3;                // slots per runner
  Millis heartbeat{200};
  int liveness = 3;
  Millis failsafe{8000};              // runners' --failsafe-after: longer than faults can add up to
  std::string runnerBindHost = "127.0.0.1";
};

struct RunnerSlot {
  enum class State { Up, Killed, Stopped };
  int index = 0;
  NetnsLink* link = nullptr;          // null: root namespace
  std::string runnerId;
  int generation = 0;                 // restarts so far
  State state = State::Up;
  // Left alone by the injectors until then: a runner just healed gets time to re-register, so
  // faults do not pile up past its failsafe (which would be its correct exit, not a finding).
  std::chrono::steady_clock::time_point quietUntil{};
  std::unique_ptr<ChildProcess> process;
  std::string name() const { return "r" + std::to_string(index) + (link ? "(netns)" : ""); }
};

struct ProcSample {
  long rssKb = -1;
  long fds = -1;
};
// VmRSS and open descriptors of `pid` (-1 when unreadable).
ProcSample sampleProcess(pid_t pid);

class Cluster {
 public:
  explicit Cluster(ClusterOptions options);
  ~Cluster();

  // Starts the broker on OS-chosen ports and every runner. Throws std::runtime_error.
  void start();

  // SIGKILLs the broker and reaps it.
  void killBroker();
  // Starts a broker on the same endpoints; retries while the ports are not yet free.
  // Returns false (with the reason printed) if it could not within its bound.
  bool restartBroker();
  // SIGTERM, then SIGKILL if it has not exited within `bound`. Returns how it exited.
  std::string stopBroker(Millis bound);
  bool brokerUp() const { return broker_ != nullptr; }
  pid_t brokerPid() const { return broker_ ? broker_->pid() : -1; }
  int brokerIncarnation() const { return incarnation_; }
  std::chrono::steady_clock::time_point brokerStartedAt() const { return brokerStartedAt_; }
  const std::string& clientsEndpoint() const { return clientsEndpoint_; }
  const std::string& runnersEndpoint() const { return runnersEndpoint_; }
  std::string brokerLog(int incarnation) const;
  int brokerIncarnations() const { return incarnation_ + 1; }

  std::vector<RunnerSlot>& runners() { return runners_; }
  // (Re)starts a runner's process; newId: a fresh runner id, else the slot's current one.
  void startRunner(RunnerSlot& slot, bool newId);
  const ClusterOptions& options() const { return options_; }

 private:
  std::unique_ptr<ChildProcess> launchBroker(const std::string& clients, const std::string& runners);

  ClusterOptions options_;
  std::unique_ptr<ChildProcess> broker_;
  int incarnation_ = -1;
  std::chrono::steady_clock::time_point brokerStartedAt_{};
  std::string clientsEndpoint_, runnersEndpoint_;
  std::vector<RunnerSlot> runners_;
};

}  // namespace flame::chaos
