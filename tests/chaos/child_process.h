// ChildProcess: a real flame process started by the chaos driver. Its stdout and stderr go to a
// log file (never to a pipe nobody reads, which would freeze a chatty broker mid-run), it may
// be started inside a network namespace, it dies with the driver (PR_SET_PDEATHSIG), and it is
// signalled and reaped only by the pid we started. The destructor SIGKILLs and reaps a process
// still running, so a failing run never leaks processes.
//
// Threading: not thread-safe; the chaos driver owns every ChildProcess on its main thread (the
// death signal is tied to the thread that forked, which must outlive the child).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flame::chaos {

using Millis = std::chrono::milliseconds;

class ChildProcess {
 public:
  // Starts argv[0] (a path) with stdout+stderr appended to `logFile`. With a non-empty `netns`,
  // the child joins /run/netns/<netns> before exec. Throws std::runtime_error on failure.
  static std::unique_ptr<ChildProcess> start(const std::vector<std::string>& argv, const std::string& logFile,
                                             const std::string& netns = "");
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& logFile() const { return logFile_; }
  // Sends `sig` unless the process was already reaped.
  void signal(int sig);
  // Waits up to `bound` for the exit (pidfd poll); returns the wait status, or nullopt if it
  // still runs. Reaps the process.
  std::optional<int> waitExit(Millis bound);
  bool running() { return !waitExit(Millis(0)).has_value(); }

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int pidFd_ = -1;
  std::optional<int> status_;
  std::string logFile_;
};

// "exit 3" / "signal 9" for a wait status.
std::string describeStatus(int status);

// Last `maxLines` lines of `file` that contain any of `needles` (all lines if needles is empty).
std::vector<std::string> grepTail(const std::string& file, const std::vector<std::string>& needles, size_t maxLines);

// Path of a flame executable: $FLAME_BIN_DIR/name, else the directory of this executable's
// ../bin/name, else ./bin/name.
std::string flameBinary(const std::string& name);

}  // namespace flame::chaos
