#include "tests/integration/process_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

extern char** environ;

namespace flame::test {

std::string binary(const std::string& name) {
  const char* dir = std::getenv("FLAME_BIN_DIR");
  return std::string(dir ? dir : "./bin") + "/" + name;
}

std::unique_ptr<Process> Process::start(const std::vector<std::string>& argv,
                                        const std::map<std::string, std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> envStrings;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto key = kv.substr(0, kv.find('='));
    if (!env.count(key)) envStrings.push_back(kv);
  }
  for (auto& [k, v] : env) envStrings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envStrings) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    // Unblock what a parent test runner may have blocked, so SIGTERM works in the child.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(cargv[0], cargv.data(), cenv.data());
    dprintf(2, "exec %s failed: %s\n", cargv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  std::unique_ptr<Process> p(new Process());
  p->pid_ = pid;
  p->outFd_ = fds[0];
  p->pidFd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  return p;
}

Process::~Process() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
  }
  if (outFd_ >= 0) close(outFd_);
  if (pidFd_ >= 0) close(pidFd_);
}

void Process::readAvailable() {
  char buf[4096];
  for (;;) {
    ssize_t n = read(outFd_, buf, sizeof buf);
    if (n <= 0) return;
    output_.append(buf, static_cast<size_t>(n));
  }
}

const std::string& Process::output() {
  readAvailable();
  return output_;
}

std::optional<std::string> Process::waitForLine(const std::string& needle, Millis bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  size_t searchFrom = 0;
  for (;;) {
    readAvailable();
    auto hit = output_.find(needle, searchFrom);
    if (hit != std::string::npos) {
      auto start = output_.rfind('\n', hit);
      start = start == std::string::npos ? 0 : start + 1;
      auto end = output_.find('\n', hit);
      if (end != std::string::npos) return output_.substr(start, end - start);
    } else {
      auto lastNl = output_.rfind('\n');
      searchFrom = lastNl == std::string::npos ? 0 : lastNl;
    }
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{outFd_, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    }
    if (pfd.revents & POLLHUP && !(pfd.revents & POLLIN)) {
      readAvailable();
      if (output_.find(needle, searchFrom) == std::string::npos) return std::nullopt;
    }
  }
}

std::optional<int> Process::waitExit(Millis bound) {
  if (status_) return status_;
  if (pidFd_ >= 0) {
    pollfd pfd{pidFd_, POLLIN, 0};
    poll(&pfd, 1, static_cast<int>(bound.count()));
  }
  int st = 0;
  pid_t r = waitpid(pid_, &st, pidFd_ >= 0 ? WNOHANG : 0);
  if (r == pid_) status_ = st;
  readAvailable();
  return status_;
}

bool Process::running() { return !waitExit(Millis(0)).has_value(); }

void Process::signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

bool eventually(const std::function<bool()>& condition, Millis bound, Millis step) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);  // polling interval of an external condition
  }
}

BrokerProcess BrokerProcess::start(const std::vector<std::string>& extraArgs) {
  std::vector<std::string> argv{binary("flame-broker"), "--clients", "tcp://127.0.0.1:*", "--runners",
                                "tcp://127.0.0.1:*", "--endpoints-file", "-"};
  argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
  BrokerProcess b;
  b.process = Process::start(argv);
  auto line = b.process->waitForLine("\"clients\"", Millis(10000));
  if (!line) throw std::runtime_error("broker did not start: " + b.process->output());
  auto j = nlohmann::json::parse(line->substr(line->find('{')));
  b.clients = j.at("clients");
  b.runners = j.at("runners");
  return b;
}

std::string writeBrokerConfig(const std::string& body) {
  char path[] = "/tmp/flame-config-XXXXXX.toml";
  int fd = mkstemps(path, 5);
  if (fd < 0) throw std::runtime_error(std::string("cannot create a config file: ") + std::strerror(errno));
  std::string text = R"([broker]
clients = "tcp://127.0.0.1:*"
runners = "tcp://127.0.0.1:*"
heartbeat_interval = "200ms"
liveness = 3
)" + body;
  bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!written) throw std::runtime_error(std::string("cannot write ") + path);
  return path;
}

}  // namespace flame::test
