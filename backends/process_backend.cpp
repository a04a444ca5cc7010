#include "backends/process_backend.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <thread>

#include "backends/runner_env.h"
#include "backends/subprocess.h"
#include "common/log.h"

namespace flame {

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(10);

std::shared_ptr<spdlog::logger> log() { return logger("backend.process"); }

// True when `pid` has exited (a zombie we have not reaped yet). Does not reap: while the zombie
// exists its pid, and so its process group id, cannot be reused, which makes signalling the
// group afterwards safe.
bool hasExited(pid_t pid) {
  siginfo_t info{};
  info.si_pid = 0;
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
    if (errno != EINTR) return true;  // ECHILD: not ours any more; treat as gone
  }
  return info.si_pid == pid;
}

int reapBlocking(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) break;
  }
  return status;
}

bool parsePid(const std::string& text, pid_t& pid) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 1) return false;
  pid = static_cast<pid_t>(value);
  return true;
}

// Waits until every pid in `pids` has exited or `grace` passed; returns those still running.
std::vector<pid_t> waitForExit(std::vector<pid_t> pids, Duration grace) {
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (true) {
    std::erase_if(pids, [](pid_t pid) { return hasExited(pid); });
    if (pids.empty() || std::chrono::steady_clock::now() >= deadline) return pids;
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace

ProcessBackend::ProcessBackend(ProcessOptions options) : options_(std::move(options)) {}

ProcessBackend::~ProcessBackend() {
  std::map<pid_t, Child> children;
  {
    std::lock_guard lock(mutex_);
    children.swap(children_);
  }
  if (children.empty()) return;
  // Stop them all at once so shutdown takes one grace period, not one per child.
  std::vector<pid_t> pids;
  for (const auto& [pid, child] : children) {
    ::kill(-pid, SIGTERM);
    pids.push_back(pid);
  }
  for (pid_t pid : waitForExit(pids, options_.stopGrace)) {
    log()->warn("runner={} pid={} ignored SIGTERM for {}ms, killing",
                children[pid].machine.runnerId, pid, options_.stopGrace.count());
  }
  for (pid_t pid : pids) {
    ::kill(-pid, SIGKILL);  // also sweeps leftovers of the group
    reapBlocking(pid);
  }
}

BootResult ProcessBackend::boot(const BootSpec& spec) {
  BootResult result;
  if (options_.command.empty()) {
    result.status = BackendStatus::failure("process backend: no command configured", false);
    return result;
  }
  proc::SpawnRequest request;
  request.argv = options_.command;
  request.env = proc::currentEnvironment();
  for (const auto& [name, value] : runnerEnvironment(spec, options_.extraEnv))
    request.env[name] = value;
  request.newProcessGroup = true;
  request.dieWithParent = true;

  proc::SpawnResult child = proc::spawn(request);
  if (!child.ok()) {
    // A command that cannot be executed will never work; fork/pipe failures are transient.
    bool retryable = child.error != ENOENT && child.error != EACCES && child.error != ENOEXEC &&
                     child.error != EINVAL && child.error != ENOTDIR;
    result.status = BackendStatus::failure("process backend: " + child.message, retryable);
    log()->error("pool={} runner={} boot failed: {}", spec.pool, spec.runnerId, child.message);
    return result;
  }
  result.handle = MachineHandle{std::to_string(child.pid), spec.runnerId, spec.pool};
  {
    std::lock_guard lock(mutex_);
    children_[child.pid] = Child{result.handle, spec.brokerId};
  }
  log()->info("pool={} runner={} started pid={}", spec.pool, spec.runnerId, child.pid);
  return result;
}

BackendStatus ProcessBackend::stop(const MachineHandle& machine) {
  pid_t pid = 0;
  if (!parsePid(machine.machineId, pid)) {
    // Not one of ours (we only hand out pids): nothing to stop.
    log()->warn("runner={} stop: machine id '{}' is not a pid", machine.runnerId,
                machine.machineId);
    return BackendStatus::success();
  }
  {
    std::lock_guard lock(mutex_);
    if (children_.erase(pid) == 0) return BackendStatus::success();  // reaped or never ours
  }
  terminate(pid);
  return BackendStatus::success();
}

void ProcessBackend::terminate(pid_t pid) {
  ::kill(-pid, SIGTERM);
  if (!waitForExit({pid}, options_.stopGrace).empty()) {
    log()->warn("pid={} ignored SIGTERM for {}ms, killing", pid, options_.stopGrace.count());
  }
  ::kill(-pid, SIGKILL);  // the child is a zombie at worst here: its group id is still ours
  int status = reapBlocking(pid);
  log()->info("pid={} stopped: {}", pid, proc::describeWaitStatus(status));
}

ListResult ProcessBackend::list(const std::string& brokerId) {
  ListResult result;
  std::lock_guard lock(mutex_);
  for (const auto& [pid, child] : children_) {
    if (child.brokerId == brokerId && !hasExited(pid)) result.machines.push_back(child.machine);
  }
  return result;
}

std::vector<ExitedProcess> ProcessBackend::reap() {
  std::vector<ExitedProcess> exited;
  std::lock_guard lock(mutex_);
  for (auto it = children_.begin(); it != children_.end();) {
    pid_t pid = it->first;
    if (!hasExited(pid)) {
      ++it;
      continue;
    }
    ::kill(-pid, SIGKILL);           // leftovers of its group: no orphans
    int status = reapBlocking(pid);  // does not block: the child has exited
    ExitedProcess gone{it->second.machine, status, proc::describeWaitStatus(status)};
    log()->info("pool={} runner={} pid={} exited: {}", gone.machine.pool, gone.machine.runnerId,
                pid, gone.description);
    exited.push_back(std::move(gone));
    it = children_.erase(it);
  }
  return exited;
}

size_t ProcessBackend::childCount() const {
  std::lock_guard lock(mutex_);
  return children_.size();
}

std::vector<ExitedMachine> ProcessBackend::reapExited() {
  std::vector<ExitedMachine> out;
  for (auto& p : reap()) out.push_back(ExitedMachine{p.machine, p.description});
  return out;
}

}  // namespace flame
