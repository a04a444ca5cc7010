#include "bench/harness.h"

#include <httplib.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace flame::bench {

const char* transportName(Transport t) { return t == Transport::Tcp ? "tcp" : "ipc"; }

std::string bindEndpoint(Transport t, const std::string& role) {
  if (t == Transport::Tcp) return "tcp://127.0.0.1:*";
  static std::atomic<int> seq{0};
  return "ipc:///tmp/flame-bench-" + std::to_string(getpid()) + "-" + std::to_string(seq++) + "-" + role;
}

void removeIpcFile(const std::string& endpoint) {
  constexpr std::string_view kPrefix = "ipc://";
  if (endpoint.rfind(kPrefix, 0) != 0) return;
  ::unlink(endpoint.substr(kPrefix.size()).c_str());
}

BenchKeys BenchKeys::generate() {
  return BenchKeys{generateCurveKeyPair(), generateCurveKeyPair(), generateCurveKeyPair()};
}

std::unique_ptr<KeyRing> BenchKeys::keyRing() const {
  return std::make_unique<KeyRing>(server, std::vector<AllowedKey>{{client.publicKey, "bench-clients"}},
                                   std::vector<AllowedKey>{{runner.publicKey, "bench-runners"}},
                                   std::vector<AllowedKey>{});
}

BrokerThread::BrokerThread(Transport transport, BrokerOptions options, bool zeroCopyRecv, const BenchKeys* curve,
                           bool metrics) {
  // ZMQ_ZERO_COPY_RECV (10) is declared only under the draft API, but libzmq 4.3.4 honours it
  // (ZEROMQ-NOTES.md).
  constexpr int kZeroCopyRecv = 10;
  if (!zeroCopyRecv) zmq_ctx_set(ctx_.handle(), kZeroCopyRecv, 0);
  options.clientsEndpoint = bindEndpoint(transport, "clients");
  options.runnersEndpoint = bindEndpoint(transport, "runners");
  nameContext(ctx_, Role::Broker);
  if (curve) {
    // As flame::Broker does (broker/broker.cpp): the ZAP handler first (the endpoints enforce
    // their ZAP domain, so a handshake with no handler bound would be refused).
    keys_ = curve->keyRing();
    zap_ = std::make_unique<ZapHandler>(ctx_, *keys_, clock_);
  }
  server_ = std::make_unique<BrokerServer>(ctx_, options, clock_, keys_.get());
  server_->core().setKeyRing(keys_.get());
  if (metrics) metrics_ = std::make_unique<MetricsServer>("127.0.0.1:0", [server = server_.get()] { server->wake(); });
  thread_ = std::thread([this] {
    nameThread("broker");
    BrokerServer::Hooks hooks;
    auto publish = [this] { metrics_->publish(renderBrokerMetrics(server_->core(), nullptr, {"bench", "bench"})); };
    // Handshakes are answered on the broker's own loop, like flame-broker's (Hooks::setup).
    hooks.setup = [this, publish](Reactor& reactor) {
      if (zap_) reactor.add(zap_->socket(), [this] { zap_->onReadable(); });
      if (metrics_) reactor.every(Duration(250), publish);  // as flame::Broker::run
    };
    if (metrics_) hooks.onTick = [this, publish] {
      if (metrics_->freshWanted()) publish();
    };
    server_->run(hooks);
  });
  if (metrics_) {
    scraper_ = std::thread([this] {
      nameThread("scraper");
      std::string address = metrics_->boundAddress();
      httplib::Client http("127.0.0.1", std::stoi(address.substr(address.rfind(':') + 1)));
      while (!stopScraping_) {
        http.Get("/metrics");  // 10x a 1 s scrape interval: the worst case, not the usual
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the scrape period, not a wait for an event
      }
    });
  }
}

BrokerThread::~BrokerThread() {
  stopScraping_ = true;
  if (scraper_.joinable()) scraper_.join();
  server_->stop();
  thread_.join();
  std::string clients = server_->clientsEndpoint(), runners = server_->runnersEndpoint();
  server_.reset();
  removeIpcFile(clients);
  removeIpcFile(runners);
}

std::unique_ptr<ChildProcess> ChildProcess::start(const std::vector<std::string>& argv, const std::string& logFile,
                                                  std::chrono::milliseconds termGrace) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  // Everything the child needs is built before fork(): after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log = ::open(logFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) throw std::runtime_error("cannot open " + logFile + ": " + std::strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    ::close(log);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  ::close(log);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  child->pid_ = pid;
  child->termGrace_ = termGrace;
  return child;
}

ChildProcess::~ChildProcess() { terminate(); }

bool ChildProcess::running() {
  if (reaped_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

void ChildProcess::terminate() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  auto until = std::chrono::steady_clock::now() + termGrace_;
  // Bounded: at most termGrace of 10 ms polls, then SIGKILL (which cannot be ignored).
  while (std::chrono::steady_clock::now() < until) {
    if (!running()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
}

std::optional<uint64_t> residentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return std::nullopt;
}

std::string executableDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return ".";
  return exe.parent_path().string();
}

ScratchDir::ScratchDir() {
  std::string tmpl = "/tmp/flame-bench-" + std::to_string(getpid()) + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = buf.data();
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

PeerThread::PeerThread(std::function<void()> body) {
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeFd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::thread([this, body = std::move(body)] {
    // The thread boundary: a failure (say, out of descriptors) is reported through
    // waitReady() and failure() instead of ending the process.
    try {
      body();
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      failure_ = e.what();
      cv_.notify_all();
    }
  });
}

PeerThread::~PeerThread() {
  stopping_ = true;
  uint64_t one = 1;
  (void)!write(wakeFd_, &one, sizeof one);
  thread_.join();
  close(wakeFd_);
}

void PeerThread::markReady() {
  std::lock_guard lock(mutex_);
  ++ready_;
  cv_.notify_all();
}

bool PeerThread::waitReady(uint32_t count, Duration bound) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, bound, [&] { return ready_ >= count || !failure_.empty(); });
  return ready_ >= count;
}

std::string PeerThread::failure() const {
  std::lock_guard lock(mutex_);
  return failure_;
}

void nameThread(const char* name) { pthread_setname_np(pthread_self(), name); }

void nameContext(zmq::context_t& ctx, Role role) {
  ctx.set(zmq::ctxopt::thread_name_prefix, static_cast<int>(role));
}

void raiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

}  // namespace flame::bench
