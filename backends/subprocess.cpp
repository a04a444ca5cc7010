#include "backends/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

extern char** environ;

namespace flame::proc {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::map<std::string, std::string> currentEnvironment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    auto eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

std::optional<std::string> findExecutable(const std::string& name, const std::string& pathList) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) return name;
  size_t start = 0;
  while (start <= pathList.size()) {
    size_t end = pathList.find(':', start);
    if (end == std::string::npos) end = pathList.size();
    std::string dir = pathList.substr(start, end - start);
    if (dir.empty()) dir = ".";  // an empty PATH element means the current directory
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::string describeWaitStatus(int waitStatus) {
  if (WIFEXITED(waitStatus)) return "exit status " + std::to_string(WEXITSTATUS(waitStatus));
  if (WIFSIGNALED(waitStatus)) {
    int sig = WTERMSIG(waitStatus);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "wait status " + std::to_string(waitStatus);
}

bool CommandResult::succeeded() const {
  return started && !timedOut && WIFEXITED(waitStatus) && WEXITSTATUS(waitStatus) == 0;
}

namespace {

SpawnResult spawnFailure(int error, std::string message) {
  SpawnResult result;
  result.error = error;
  result.message = std::move(message);
  return result;
}

// Everything the child needs, prepared before fork(): after fork() in a multithreaded process
// only async-signal-safe calls are allowed, so no allocation happens in the child.
struct ChildPlan {
  std::string path;
  std::vector<std::string> argvStorage;
  std::vector<std::string> envStorage;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

[[noreturn]] void runChild(const ChildPlan& plan, const SpawnRequest& request, pid_t parentPid,
                           int devNull, int outWrite, int errWrite, int statusWrite, int maxFd) {
  if (request.newProcessGroup) ::setpgid(0, 0);
  if (request.dieWithParent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died between fork() and prctl(); then we were re-parented already
    // and the death signal will never come.
    if (::getppid() != parentPid) ::_exit(127);
  }
  // Signal dispositions set to "ignore" and the signal mask survive execve: a broker that
  // ignores SIGPIPE or blocks signals in its threads must not hand that to its runners.
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);
  }
  ::dup2(devNull, STDIN_FILENO);
  if (outWrite >= 0) ::dup2(outWrite, STDOUT_FILENO);
  if (errWrite >= 0) ::dup2(errWrite, STDERR_FILENO);
  // Do not leak the broker's sockets and files into runners: everything above stderr becomes
  // close-on-exec (the status pipe already is, and must stay open until execve).
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < maxFd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // kernels before 5.11
  }
  ::execve(plan.path.c_str(), plan.argv.data(), plan.envp.data());
  int error = errno;
  ssize_t ignored = ::write(statusWrite, &error, sizeof error);
  (void)ignored;
  ::_exit(127);
}

bool makePipe(UniqueFd& readEnd, UniqueFd& writeEnd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  readEnd.reset(fds[0]);
  writeEnd.reset(fds[1]);
  return true;
}

}  // namespace

SpawnResult spawn(const SpawnRequest& request) {
  if (request.argv.empty() || request.argv[0].empty()) return spawnFailure(EINVAL, "empty command");

  ChildPlan plan;
  auto pathEnv = request.env.find("PATH");
  const char* ownPath = ::getenv("PATH");
  std::string pathList = pathEnv != request.env.end() ? pathEnv->second
                         : ownPath != nullptr         ? std::string(ownPath)
                                                      : std::string("/usr/local/bin:/usr/bin:/bin");
  auto resolved = findExecutable(request.argv[0], pathList);
  if (!resolved) return spawnFailure(ENOENT, "command not found: " + request.argv[0]);
  plan.path = *resolved;
  plan.argvStorage = request.argv;
  for (const auto& [name, value] : request.env) plan.envStorage.push_back(name + "=" + value);
  for (auto& arg : plan.argvStorage) plan.argv.push_back(arg.data());
  plan.argv.push_back(nullptr);
  for (auto& entry : plan.envStorage) plan.envp.push_back(entry.data());
  plan.envp.push_back(nullptr);

  UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devNull.valid())
    return spawnFailure(errno, std::string("open /dev/null: ") + std::strerror(errno));
  UniqueFd statusRead, statusWrite, outRead, outWrite, errRead, errWrite;
  if (!makePipe(statusRead, statusWrite))
    return spawnFailure(errno, std::string("pipe: ") + std::strerror(errno));
  if (request.captureOutput && (!makePipe(outRead, outWrite) || !makePipe(errRead, errWrite))) {
    return spawnFailure(errno, std::string("pipe: ") + std::strerror(errno));
  }

  long openMax = ::sysconf(_SC_OPEN_MAX);
  int maxFd = openMax > 0 && openMax < 65536 ? static_cast<int>(openMax) : 65536;
  pid_t parentPid = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return spawnFailure(errno, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    runChild(plan, request, parentPid, devNull.get(), outWrite.get(), errWrite.get(),
             statusWrite.get(), maxFd);
  }
  // Also set the group from the parent: whichever of parent and child runs first, the group
  // exists before anyone signals it. EACCES after the child's execve is harmless.
  if (request.newProcessGroup) ::setpgid(pid, pid);
  statusWrite.reset();
  outWrite.reset();
  errWrite.reset();

  // EOF on the close-on-exec status pipe means execve succeeded; an errno means it failed.
  int childErrno = 0;
  ssize_t got;
  do {
    got = ::read(statusRead.get(), &childErrno, sizeof childErrno);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof childErrno)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return spawnFailure(childErrno,
                        "cannot execute " + plan.path + ": " + std::strerror(childErrno));
  }

  SpawnResult result;
  result.pid = pid;
  if (request.captureOutput) {
    ::fcntl(outRead.get(), F_SETFL, ::fcntl(outRead.get(), F_GETFL) | O_NONBLOCK);
    ::fcntl(errRead.get(), F_SETFL, ::fcntl(errRead.get(), F_GETFL) | O_NONBLOCK);
    result.stdoutFd = std::move(outRead);
    result.stderrFd = std::move(errRead);
  }
  return result;
}

namespace {

// Reads what is available without blocking. Returns false at EOF or on error (fd closed).
bool drain(UniqueFd& fd, std::string& into, bool keepTail) {
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n > 0) {
      if (keepTail) {
        into.append(buffer, static_cast<size_t>(n));
        if (into.size() > kMaxCapture) into.erase(0, into.size() - kMaxCapture);
      } else if (into.size() < kMaxCapture) {
        into.append(buffer, std::min(static_cast<size_t>(n), kMaxCapture - into.size()));
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    fd.reset();
    return false;
  }
}

}  // namespace

CommandResult runCommand(SpawnRequest request, Duration timeout) {
  using SteadyTime = std::chrono::steady_clock;
  CommandResult result;
  request.captureOutput = true;
  request.newProcessGroup = true;  // so a timeout kills everything the command started
  SpawnResult child = spawn(request);
  if (!child.ok()) {
    result.spawnErrno = child.error;
    result.spawnError = child.message;
    return result;
  }
  result.started = true;
  auto deadline =
      timeout == kInfinite ? SteadyTime::time_point::max() : SteadyTime::now() + timeout;
  // Poll in short slices so that the exit of the command itself is noticed even when a
  // background process it started still holds the pipes open.
  constexpr auto kSlice = std::chrono::milliseconds(20);
  while (true) {
    pollfd fds[2];
    nfds_t count = 0;
    if (child.stdoutFd.valid()) fds[count++] = {child.stdoutFd.get(), POLLIN, 0};
    if (child.stderrFd.valid()) fds[count++] = {child.stderrFd.get(), POLLIN, 0};
    auto now = SteadyTime::now();
    if (now >= deadline) {
      ::kill(-child.pid, SIGKILL);
      ::kill(child.pid, SIGKILL);
      while (::waitpid(child.pid, &result.waitStatus, 0) < 0 && errno == EINTR) {
      }
      result.timedOut = true;
      break;
    }
    auto slice = std::min<SteadyTime::duration>(deadline - now, kSlice);
    int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(slice).count());
    if (count > 0) {
      ::poll(fds, count, ms);
    } else {
      ::poll(nullptr, 0, ms);
    }
    if (child.stdoutFd.valid()) drain(child.stdoutFd, result.out, false);
    if (child.stderrFd.valid()) drain(child.stderrFd, result.err, true);
    pid_t waited = ::waitpid(child.pid, &result.waitStatus, WNOHANG);
    if (waited == child.pid) {
      if (child.stdoutFd.valid()) drain(child.stdoutFd, result.out, false);
      if (child.stderrFd.valid()) drain(child.stderrFd, result.err, true);
      break;
    }
  }
  return result;
}

}  // namespace flame::proc
