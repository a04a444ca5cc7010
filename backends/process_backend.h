// ProcessBackend: the embedded default. Each "machine" is a child process of the broker on this
// host, running `command` with the runner environment.
//
// The child's stdin is /dev/null; its stdout and stderr are the broker's (runner logs land next
// to the broker's). Signal dispositions and the signal mask are reset to defaults, and file
// descriptors other than 0-2 are not inherited.
//
// Ownership: the backend owns every child it starts until it is stopped or reaped; it only ever
// signals pids it started and has not reaped yet (so a recycled pid is never hit). Children die
// with the broker (PR_SET_PDEATHSIG) and with the backend (the destructor stops them all).
// Requirement on the host process: nothing else may reap our children (no SIGCHLD = SIG_IGN,
// no waitpid(-1)); the broker calls reap() instead.
//
// Thread-safety: every method may be called from any thread (an internal mutex guards the child
// table; stop() waits without holding it). Because the parent-death signal is tied to the
// spawning *thread*, boot() must be called from a thread that lives as long as the runners (the
// scaler's backend thread).
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "common/clock.h"

namespace flame {

struct ProcessOptions {
  // argv of the runner; argv[0] is searched in PATH. Required.
  std::vector<std::string> command;
  // Added to the broker's own environment; the spec's FLAME_* variables win over these.
  std::map<std::string, std::string> extraEnv;
  // stop(): time between SIGTERM and SIGKILL.
  Duration stopGrace{5000};
};

// A child that exited on its own (or was killed by someone else), as reported by reap().
struct ExitedProcess {
  MachineHandle machine;
  int waitStatus = 0;       // raw waitpid status
  std::string description;  // "exit status 0", "killed by signal 9 (Killed)"
};

class ProcessBackend final : public Backend {
 public:
  explicit ProcessBackend(ProcessOptions options);
  // Stops every child still running (SIGTERM to all, one shared grace, then SIGKILL): no orphans.
  ~ProcessBackend() override;
  ProcessBackend(const ProcessBackend&) = delete;
  ProcessBackend& operator=(const ProcessBackend&) = delete;

  std::string kind() const override { return "process"; }

  // Spawns the command in its own process group with the current environment + extraEnv +
  // spec env. machineId is the pid. Fails (not retryable) when the command cannot be executed;
  // fork/pipe failures (resource exhaustion) are retryable.
  BootResult boot(const BootSpec& spec) override;

  // SIGTERM to the child's process group, waits up to stopGrace, then SIGKILL; reaps the child.
  // Unknown or already reaped pids are ok (idempotent); ids this backend did not start are never
  // signalled. Blocks up to stopGrace.
  BackendStatus stop(const MachineHandle& machine) override;

  // Children started for `brokerId` that are still running.
  ListResult list(const std::string& brokerId) override;
  bool supportsList() const override { return true; }

  // Reaps children that exited by themselves and returns them (each one once). Never blocks;
  // the broker calls it periodically instead of handling SIGCHLD. Leftover members of an exited
  // child's process group are SIGKILLed before the child is reaped.
  std::vector<ExitedProcess> reap();
  // reap(), in the Backend interface's terms.
  std::vector<ExitedMachine> reapExited() override;

  // Number of children started and not yet stopped or reaped.
  size_t childCount() const;

 private:
  struct Child {
    MachineHandle machine;
    std::string brokerId;
  };

  // Removes `pid` from the table and terminates it (TERM, grace, KILL, reap). Lock not held.
  void terminate(pid_t pid);

  ProcessOptions options_;
  mutable std::mutex mutex_;
  std::map<pid_t, Child> children_;  // guarded by mutex_
};

}  // namespace flame
