#include "bench/relay.h"

#include <charconv>
#include <deque>

#include "bench/socket_set.h"
#include "common/transport.h"

namespace flame::bench {

namespace {
constexpr int kBatch = 256;                 // messages per readiness, as in broker/server.cpp
constexpr size_t kMaxFrames = 8;            // [runner id][client id][""][header][payload] and margin
constexpr std::string_view kCredit = "credit ";
constexpr std::string_view kAck = "ok";
constexpr uint32_t kWakeTag = 0xFFFFFFFFu;

bool isCredit(const Frames& f, uint32_t& n) {
  if (f.size() != 2) return false;
  std::string_view s(static_cast<const char*>(f[1].data()), f[1].size());
  if (s.substr(0, kCredit.size()) != kCredit) return false;
  auto digits = s.substr(kCredit.size());
  return std::from_chars(digits.data(), digits.data() + digits.size(), n).ec == std::errc();
}
}  // namespace

RelayServer::RelayServer(Transport transport) {
  nameContext(ctx_, Role::Broker);
  clients_ = bindRouter(ctx_, bindEndpoint(transport, "relay-clients"));
  runners_ = bindRouter(ctx_, bindEndpoint(transport, "relay-runners"));
  clientsEndpoint_ = boundEndpoint(clients_);
  runnersEndpoint_ = boundEndpoint(runners_);
  thread_ = std::thread([this] {
    nameThread("broker");  // counted as the broker role (cpu.h)
    std::deque<std::string> credit;  // one entry per free slot: FIFO over the runners
    std::deque<Frames> waiting;      // client messages with no credit yet
    Frames in, out;
    bool truncated = false;
    auto toRunner = [&](const std::string& runner, Frames& clientMsg) {
      out.clear();
      out.emplace_back(runner.data(), runner.size());
      for (auto& f : clientMsg) out.push_back(std::move(f));
      sendFrames(runners_, out);
    };
    Reactor reactor;
    reactor.add(clients_, [&] {
      for (int i = 0; i < kBatch && recvFrames(clients_, in, kMaxFrames, truncated); ++i) {
        if (credit.empty()) {
          waiting.push_back(std::move(in));
          in = Frames();
          continue;
        }
        std::string runner = std::move(credit.front());
        credit.pop_front();
        toRunner(runner, in);
      }
    });
    reactor.add(runners_, [&] {
      for (int i = 0; i < kBatch && recvFrames(runners_, in, kMaxFrames, truncated); ++i) {
        std::string runner = in[0].to_string();
        uint32_t n = 0;
        if (isCredit(in, n)) {
          for (uint32_t k = 0; k < n; ++k) credit.push_back(runner);
          out.clear();
          out.emplace_back(runner.data(), runner.size());
          out.emplace_back(kAck.data(), kAck.size());
          sendFrames(runners_, out);
        } else if (in.size() >= 2) {
          out.clear();
          for (size_t k = 1; k < in.size(); ++k) out.push_back(std::move(in[k]));
          sendFrames(clients_, out);
          if (waiting.empty()) {
            credit.push_back(std::move(runner));
          } else {
            toRunner(runner, waiting.front());
            waiting.pop_front();
          }
        }
      }
    });
    while (!stopping_.load(std::memory_order_relaxed)) reactor.pollOnce(Duration(50));
  });
}

RelayServer::~RelayServer() {
  stopping_ = true;  // seen within one poll timeout (50 ms)
  thread_.join();
  clients_.close();
  runners_.close();
  removeIpcFile(clientsEndpoint_);
  removeIpcFile(runnersEndpoint_);
}

EchoRunners::EchoRunners(const std::string& endpoint, uint32_t runners, uint32_t creditEach)
    : endpoint_(endpoint), runners_(runners), credit_(creditEach), thread_([this] { loop(); }) {}

EchoRunners::~EchoRunners() = default;

bool EchoRunners::waitRegistered(Duration bound) { return thread_.waitReady(runners_, bound); }

void EchoRunners::loop() {
  nameThread("runners");
  zmq::context_t ctx;
  nameContext(ctx, Role::Runners);
  struct Echo {
    zmq::socket_t socket;
    bool creditSent = false;  // IMMEDIATE sockets refuse to queue before the connection is up
    bool acked = false;
  };
  std::vector<Echo> echoes;
  SocketSet set;
  set.addFd(thread_.wakeFd(), kWakeTag);
  for (uint32_t i = 0; i < runners_; ++i) {
    echoes.push_back(Echo{connectDealer(ctx, endpoint_)});
    set.add(echoes.back().socket, i);
  }
  const std::string credit = std::string(kCredit) + std::to_string(credit_);
  Frames frames;
  std::vector<uint32_t> ready;
  uint32_t unsent = runners_;
  while (!thread_.stopping()) {
    if (unsent > 0) {
      unsent = 0;
      for (uint32_t i = 0; i < echoes.size(); ++i) {
        if (echoes[i].creditSent) continue;
        echoes[i].creditSent = echoes[i].socket.send(zmq::buffer(credit), zmq::send_flags::dontwait).has_value();
        if (echoes[i].creditSent) set.touch(i);
        else ++unsent;
      }
    }
    set.wait(std::chrono::milliseconds(unsent > 0 ? 2 : 100), ready);
    for (uint32_t tag : ready) {
      if (tag == kWakeTag) continue;
      Echo& e = echoes[tag];
      bool truncated = false;
      do {
        while (recvFrames(e.socket, frames, kMaxFrames, truncated)) {
          if (!e.acked && frames.size() == 1 && frames[0].to_string_view() == kAck) {
            e.acked = true;
            thread_.markReady();
            continue;
          }
          sendFrames(e.socket, frames);
        }
      } while (SocketSet::drainable(e.socket));
    }
  }
}

}  // namespace flame::bench
