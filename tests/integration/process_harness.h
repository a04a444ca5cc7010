// Real processes for integration tests: start a flame binary, read its merged stdout/stderr,
// wait for a line or for its exit with a bound (poll() on a pipe and on a pidfd: no sleeps),
// and kill it only by the pid we started. A Process left running is SIGKILLed and reaped by
// its destructor, so a failing test never leaks processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flame::test {

using Millis = std::chrono::milliseconds;

// Path of a flame executable: $FLAME_BIN_DIR/name (set by ctest), else ./bin/name.
std::string binary(const std::string& name);

class Process {
 public:
  // Starts argv[0] (a path) with the current environment plus `env`. Throws on failure.
  static std::unique_ptr<Process> start(const std::vector<std::string>& argv,
                                        const std::map<std::string, std::string>& env = {});
  ~Process();

  pid_t pid() const { return pid_; }
  // Waits until a line containing `needle` has been printed (stdout or stderr), up to `bound`.
  // Lines already read count. Returns the line.
  std::optional<std::string> waitForLine(const std::string& needle, Millis bound);
  // Waits up to `bound` for the process to exit; returns its wait status (decode with
  // WIFEXITED/WEXITSTATUS/WIFSIGNALED), or nullopt if it is still running.
  std::optional<int> waitExit(Millis bound);
  bool running();
  void signal(int sig);
  // Everything it printed so far (for failure messages).
  const std::string& output();

 private:
  Process() = default;
  void readAvailable();
  pid_t pid_ = -1;
  int outFd_ = -1;
  int pidFd_ = -1;
  std::optional<int> status_;
  std::string output_;
  size_t scanned_ = 0;  // lines before this offset were already matched against
};

// Polls `condition` until it holds or `bound` passes. For conditions on *another process's*
// state that emits no event we can wait on (e.g. a broker status); `step` is the polling
// interval, not a way of making time pass.
bool eventually(const std::function<bool()>& condition, Millis bound, Millis step = Millis(20));

// Writes a broker config file (a fresh /tmp path, returned): a [broker] section on OS-chosen
// loopback ports with a 200 ms heartbeat and liveness 3, then `body` (pools, ...). Throws on
// failure.
std::string writeBrokerConfig(const std::string& body);

// A broker started on OS-chosen loopback ports; endpoints read from its first stdout line.
struct BrokerProcess {
  std::unique_ptr<Process> process;
  std::string clients;
  std::string runners;
  static BrokerProcess start(const std::vector<std::string>& extraArgs = {});
};

}  // namespace flame::test
