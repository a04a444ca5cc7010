#include "bench/lean_runners.h"

#include <unistd.h>

#include <variant>

#include "bench/harness.h"
#include "bench/socket_set.h"
#include "common/codec.h"
#include "common/transport.h"

namespace flame::bench {

namespace {
constexpr uint32_t kWakeTag = 0xFFFFFFFFu;
// Runner messages have at most [header][payload]; one more frame means a bug somewhere.
constexpr size_t kMaxFrames = 3;

std::atomic<uint32_t> farmSeq{0};

std::string runnerId(uint32_t farm, uint32_t index) {
  return "lean-" + std::to_string(getpid()) + "-" + std::to_string(farm) + "-" + std::to_string(index);
}
}  // namespace

RunnerFarm::RunnerFarm(FarmOptions options) : options_(std::move(options)), thread_([this] { loop(); }) {}

RunnerFarm::~RunnerFarm() = default;

bool RunnerFarm::waitWelcomed(Duration bound) { return thread_.waitReady(options_.runners, bound); }

void RunnerFarm::noteUnexpected(const std::string& what) {
  unexpected_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (firstUnexpected_.empty()) firstUnexpected_ = what;
}

std::string RunnerFarm::failure() const { return thread_.failure(); }

std::string RunnerFarm::firstUnexpected() const {
  std::lock_guard lock(mutex_);
  return firstUnexpected_;
}

void RunnerFarm::loop() {
  nameThread("runners");
  zmq::context_t ctx;
  nameContext(ctx, Role::Runners);
  // Default is 1023 sockets per context; a farm may hold thousands of runners.
  ctx.set(zmq::ctxopt::max_sockets, static_cast<int>(options_.runners) + 64);

  struct Lean {
    zmq::socket_t socket;
    std::string id;
    bool readySent = false;  // IMMEDIATE sockets refuse to queue before the connection is up
    bool welcomed = false;
    bool left = false;
  };
  std::vector<Lean> runners;
  runners.reserve(options_.runners);
  SocketSet set;
  set.addFd(thread_.wakeFd(), kWakeTag);

  auto ready = [&](Lean& r) {
    msg::Ready m;
    m.runnerId = r.id;
    m.pool = options_.pool;
    m.slots = options_.slotsPerRunner;
    m.functions = options_.functions;
    m.pid = static_cast<uint32_t>(getpid());
    m.host = "bench";
    r.readySent = r.socket.send(encode(m), zmq::send_flags::dontwait).has_value();
  };
  const uint32_t farm = farmSeq++;
  uint32_t unsent = options_.runners;
  for (uint32_t i = 0; i < options_.runners; ++i) {
    runners.push_back(
        Lean{connectDealer(ctx, options_.endpoint, {}, options_.curve ? &*options_.curve : nullptr), runnerId(farm, i)});
    set.add(runners.back().socket, i);
  }
  auto markWelcomed = [&](Lean& r) {
    if (r.welcomed) return;
    r.welcomed = true;
    thread_.markReady();
  };
  auto leave = [&](Lean& r) {
    if (r.left) return;
    r.left = true;
    r.socket.send(encode(msg::Leaving{"flame-bench done", true}), zmq::send_flags::dontwait);
  };

  Frames frames;
  std::vector<uint32_t> readyTags;
  const auto interval = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.heartbeatInterval);
  auto nextBeat = std::chrono::steady_clock::now() + interval;
  const auto tick = std::chrono::milliseconds(std::min<int64_t>(100, options_.heartbeatInterval.count()));

  auto serve = [&](Lean& r) {
    bool truncated = false;
    do {
      while (recvFrames(r.socket, frames, kMaxFrames, truncated)) {
        auto d = decode(frames[0]);
        if (!d.ok()) {
          noteUnexpected("undecodable: " + d.error);
          continue;
        }
        if (auto* job = std::get_if<msg::Job>(&*d.message)) {
          Frames out;
          out.push_back(encode(msg::JobDone{job->jobId, ErrorCode::None, {}}));
          if (frames.size() > 1) out.push_back(std::move(frames[1]));
          else out.emplace_back();
          sendFrames(r.socket, out);
          completed_.fetch_add(1, std::memory_order_relaxed);
        } else if (std::holds_alternative<msg::Welcome>(*d.message)) {
          if (options_.leaveAfterWelcome) leave(r);
          markWelcomed(r);
        } else if (std::holds_alternative<msg::Heartbeat>(*d.message)) {
          // the broker is alive; nothing to do
        } else if (auto* err = std::get_if<msg::Error>(&*d.message)) {
          noteUnexpected("error " + std::string(errorCodeName(err->code)) + ": " + err->message);
          if (err->code == ErrorCode::UnknownPeer && !r.left) {
            ready(r);
            if (!r.readySent) ++unsent;
          }
        } else if (std::holds_alternative<msg::Drain>(*d.message)) {
          noteUnexpected("drain");
          leave(r);
        } else {
          noteUnexpected("message kind " + std::to_string(d.message->index()));  // cancelJob: jobs end at once
        }
      }
    } while (SocketSet::drainable(r.socket));
  };

  while (!thread_.stopping()) {
    if (unsent > 0) {
      unsent = 0;
      for (uint32_t i = 0; i < runners.size(); ++i) {
        if (runners[i].readySent) continue;
        ready(runners[i]);
        if (runners[i].readySent) set.touch(i);
        else ++unsent;
      }
    }
    set.wait(unsent > 0 ? std::chrono::milliseconds(2) : tick, readyTags);
    for (uint32_t tag : readyTags) {
      if (tag == kWakeTag) continue;
      serve(runners[tag]);
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= nextBeat) {
      nextBeat = now + interval;
      uint64_t ms = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
      for (uint32_t i = 0; i < runners.size(); ++i) {
        // Only registered runners: a heartbeat that overtook a retried ready would be answered
        // with unknown_peer.
        if (runners[i].left || !runners[i].welcomed) continue;
        runners[i].socket.send(encode(msg::Heartbeat{ms, static_cast<uint32_t>(options_.heartbeatInterval.count())}),
                               zmq::send_flags::dontwait);
        set.touch(i);  // a send may consume the socket's notification (see SocketSet)
      }
    }
  }
  for (auto& r : runners) leave(r);
  // Give the leaving messages a moment to reach the broker (bounded linger), then close.
  for (auto& r : runners) r.socket.set(zmq::sockopt::linger, 200);
}

}  // namespace flame::bench
