#include "tests/chaos/cluster.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

namespace flame::chaos {

namespace {
using SteadyClock = std::chrono::steady_clock;

// Polls for a file another process writes (an event we cannot wait on otherwise); `step` is
// the polling interval, `bound` the failure bound.
std::optional<std::string> waitForFile(const std::string& path, ChildProcess& writer, Millis bound) {
  auto deadline = SteadyClock::now() + bound;
  while (SteadyClock::now() < deadline) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) return line;
    if (writer.waitExit(Millis(20))) return std::nullopt;  // exited: it will never write it
  }
  return std::nullopt;
}
}  // namespace

ProcSample sampleProcess(pid_t pid) {
  ProcSample s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) s.rssKb = std::strtol(line.c_str() + 6, nullptr, 10);
  std::string fdDir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(fdDir.c_str())) {
    long n = 0;
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    s.fds = n;
  }
  return s;
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {}

Cluster::~Cluster() {
  // Runners first: SIGCONT any we stopped so SIGKILL is delivered promptly, then reap.
  for (auto& r : runners_)
    if (r.process) r.process->signal(SIGCONT);
  runners_.clear();
  broker_.reset();
}

std::string Cluster::brokerLog(int incarnation) const {
  return options_.runDir + "/broker-" + std::to_string(incarnation) + ".log";
}

std::unique_ptr<ChildProcess> Cluster::launchBroker(const std::string& clients, const std::string& runners) {
  ++incarnation_;
  std::string endpointsFile = options_.runDir + "/endpoints.json";
  std::filesystem::remove(endpointsFile);
  std::vector<std::string> argv{flameBinary("flame-broker"),
                                "--clients", clients,
                                "--runners", runners,
                                "--heartbeat-interval", std::to_string(options_.heartbeat.count()) + "ms",
                                "--liveness", std::to_string(options_.liveness),
                                "--default-timeout", "10s",
                                "--endpoints-file", endpointsFile};
  // Runners in network namespaces reach the broker on a veth address (one this test created).
  if (options_.runnerBindHost != "127.0.0.1") argv.push_back("--insecure");
  auto p = ChildProcess::start(argv, brokerLog(incarnation_));
  auto line = waitForFile(endpointsFile, *p, Millis(10000));
  if (!line) return nullptr;
  auto j = nlohmann::json::parse(*line);
  clientsEndpoint_ = j.at("clients");
  runnersEndpoint_ = j.at("runners");
  brokerStartedAt_ = SteadyClock::now();
  return p;
}

void Cluster::start() {
  broker_ = launchBroker("tcp://127.0.0.1:0", "tcp://" + options_.runnerBindHost + ":0");
  if (!broker_) throw std::runtime_error("the broker did not start; see " + brokerLog(incarnation_));
  int index = 0;
  for (int i = 0; i < options_.rootRunners; ++i) {
    RunnerSlot slot;
    slot.index = index++;
    runners_.push_back(std::move(slot));
  }
  for (auto* link : options_.links) {
    RunnerSlot slot;
    slot.index = index++;
    slot.link = link;
    runners_.push_back(std::move(slot));
  }
  for (auto& r : runners_) {
    r.runnerId = "r" + std::to_string(r.index);
    startRunner(r, false);
  }
}

void Cluster::startRunner(RunnerSlot& slot, bool newId) {
  if (slot.process) {
    slot.process->signal(SIGKILL);
    slot.process->waitExit(Millis(5000));
  }
  if (slot.generation > 0 && newId) slot.runnerId = "r" + std::to_string(slot.index) + "-g" + std::to_string(slot.generation);
  std::vector<std::string> argv{flameBinary("flame-worker"), "--broker", runnersEndpoint_, "--pool", options_.pool,
                                "--concurrency", std::to_string(options_.concurrency), "--runner-id", slot.runnerId,
                                "--failsafe-after", std::to_string(options_.failsafe.count()) + "ms",
                                "--cancel-grace", "2s", "--drain-grace", "2s"};
  std::string log = options_.runDir + "/runner-" + std::to_string(slot.index) + "-g" +
                    std::to_string(slot.generation) + ".log";
  slot.process = ChildProcess::start(argv, log, slot.link ? slot.link->netns() : "");
  slot.state = RunnerSlot::State::Up;
  ++slot.generation;
}

void Cluster::killBroker() {
  if (!broker_) return;
  broker_->signal(SIGKILL);
  broker_->waitExit(Millis(5000));
  broker_.reset();
}

bool Cluster::restartBroker() {
  if (broker_) return true;
  // The ports were just released by a killed process; a new bind can race the kernel's cleanup.
  for (int attempt = 0; attempt < 20; ++attempt) {
    broker_ = launchBroker(clientsEndpoint_, runnersEndpoint_);
    if (broker_) return true;
    std::this_thread::sleep_for(Millis(250));  // retry interval for a port still held
  }
  std::fprintf(stderr, "chaos: the broker could not be restarted on %s / %s; see %s\n", clientsEndpoint_.c_str(),
               runnersEndpoint_.c_str(), brokerLog(incarnation_).c_str());
  return false;
}

std::string Cluster::stopBroker(Millis bound) {
  if (!broker_) return "not running";
  broker_->signal(SIGTERM);
  auto st = broker_->waitExit(bound);
  std::string how;
  if (st) {
    how = "SIGTERM -> " + describeStatus(*st);
  } else {
    broker_->signal(SIGKILL);
    st = broker_->waitExit(Millis(5000));
    how = "did not exit within " + std::to_string(bound.count()) + " ms of SIGTERM; SIGKILL -> " +
          (st ? describeStatus(*st) : "still running");
  }
  broker_.reset();
  return how;
}

}  // namespace flame::chaos
