#include "tests/chaos/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace flame::chaos {

std::unique_ptr<ChildProcess> ChildProcess::start(const std::vector<std::string>& argv, const std::string& logFile,
                                                  const std::string& netns) {
  int logFd = ::open(logFile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (logFd < 0) throw std::runtime_error("cannot open log " + logFile + ": " + std::strerror(errno));
  int nsFd = -1;
  if (!netns.empty()) {
    std::string path = "/run/netns/" + netns;
    nsFd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsFd < 0) {
      ::close(logFd);
      throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    }
  }
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Dies with the driver, even if the driver is SIGKILLed (e.g. by a ctest timeout).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    dup2(logFd, 1);
    dup2(logFd, 2);
    if (nsFd >= 0 && setns(nsFd, CLONE_NEWNET) != 0) {
      dprintf(2, "setns %s failed: %s\n", netns.c_str(), strerror(errno));
      _exit(126);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // A new process group: a terminal ^C reaches the driver only, which then cleans up.
    setpgid(0, 0);
    execv(cargv[0], cargv.data());
    dprintf(2, "exec %s failed: %s\n", cargv[0], strerror(errno));
    _exit(127);
  }
  ::close(logFd);
  if (nsFd >= 0) ::close(nsFd);
  std::unique_ptr<ChildProcess> p(new ChildProcess());
  p->pid_ = pid;
  p->logFile_ = logFile;
  p->pidFd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  return p;
}

ChildProcess::~ChildProcess() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
  }
  if (pidFd_ >= 0) ::close(pidFd_);
}

void ChildProcess::signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::waitExit(Millis bound) {
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + bound;
  for (;;) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      return status_;
    }
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (pidFd_ >= 0) {
      pollfd pfd{pidFd_, POLLIN, 0};
      poll(&pfd, 1, static_cast<int>(left.count()));  // readable once it has exited
    } else {
      std::this_thread::sleep_for(std::min(left, Millis(10)));  // no pidfd (old kernel): poll
    }
  }
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

std::vector<std::string> grepTail(const std::string& file, const std::vector<std::string>& needles, size_t maxLines) {
  std::ifstream in(file);
  std::deque<std::string> kept;
  std::string line;
  while (std::getline(in, line)) {
    bool hit = needles.empty();
    for (auto& n : needles)
      if (line.find(n) != std::string::npos) hit = true;
    if (!hit) continue;
    kept.push_back(line);
    if (kept.size() > maxLines) kept.pop_front();
  }
  return {kept.begin(), kept.end()};
}

std::string flameBinary(const std::string& name) {
  if (const char* dir = std::getenv("FLAME_BIN_DIR")) return std::string(dir) + "/" + name;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto candidate = self.parent_path().parent_path() / "bin" / name;
    if (std::filesystem::exists(candidate, ec)) return candidate.string();
  }
  return "./bin/" + name;
}

}  // namespace flame::chaos
