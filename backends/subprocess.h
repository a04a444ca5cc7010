// Child processes without a shell: fork + execve of an argv, shared by the process and exec
// backends. Nothing here installs a SIGCHLD handler or reaps children it did not start; callers
// own the pids they get and must reap them (waitpid) exactly once.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace flame::proc {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

struct SpawnRequest {
  // argv[0] without a '/' is searched in the PATH of `env` (else of this process). Not empty.
  std::vector<std::string> argv;
  // The child's complete environment (callers start from currentEnvironment()).
  std::map<std::string, std::string> env;
  // The child leads a new process group (pgid == pid), so the whole group can be signalled.
  bool newProcessGroup = true;
  // PR_SET_PDEATHSIG(SIGKILL): the child is killed when the *thread* that spawned it exits
  // (Linux ties the parent-death signal to the thread), so spawn from a long-lived thread.
  bool dieWithParent = false;
  // stdout and stderr go to pipes returned in SpawnResult; otherwise they are inherited.
  // stdin is always /dev/null.
  bool captureOutput = false;
};

struct SpawnResult {
  pid_t pid = -1;     // > 0 on success; the caller must reap it
  UniqueFd stdoutFd;  // read ends when captureOutput, non-blocking, close-on-exec
  UniqueFd stderrFd;
  int error = 0;        // errno of the failure (ENOENT for a missing command, ...)
  std::string message;  // human-readable failure
  bool ok() const { return pid > 0; }
};

// Starts a child. Returns once the child has exec'd (or failed to: then the child is already
// reaped and `error`/`message` say why). Thread-safe. Never throws for OS failures.
SpawnResult spawn(const SpawnRequest& request);

// This process's environment as a map.
std::map<std::string, std::string> currentEnvironment();

// Resolves `name` like execvp would against `pathList` (colon-separated). A name containing a
// '/' is returned unchanged. nullopt when no executable file is found.
std::optional<std::string> findExecutable(const std::string& name, const std::string& pathList);

// "exit status 3", "killed by signal 9 (Killed)".
std::string describeWaitStatus(int waitStatus);

struct CommandResult {
  bool started = false;  // false: spawn failed, see spawnError/spawnErrno
  int spawnErrno = 0;
  std::string spawnError;
  bool timedOut = false;   // the process group was SIGKILLed at the timeout
  int waitStatus = 0;      // raw waitpid status when started
  std::string out;         // first kMaxCapture bytes of stdout
  std::string err;         // last kMaxCapture bytes of stderr
  bool succeeded() const;  // started, not timed out, exited with status 0
};

inline constexpr size_t kMaxCapture = 64 * 1024;

// Runs a command to completion with captured output. Returns when the command's own process
// exits (a background grandchild that keeps the pipes open does not delay it) or, at `timeout`
// (real time), after SIGKILLing its process group. Thread-safe.
CommandResult runCommand(SpawnRequest request, Duration timeout);

}  // namespace flame::proc
