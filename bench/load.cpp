#include "bench/load.h"

#include <zmq.hpp>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <variant>
#include <vector>

#include "bench/harness.h"
#include "bench/socket_set.h"
#include "common/codec.h"
#include "common/transport.h"

namespace flame::bench {

namespace {
// requestId = (generation << kSlotBits) | slot: a reply finds its slot in O(1), and a stale or
// foreign id never matches (the generation differs).
constexpr unsigned kSlotBits = 20;
constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
// [""][header][payload]; anything longer is counted as an error.
constexpr size_t kMaxFrames = 4;
constexpr int64_t kNsPerMs = 1'000'000;

struct Slot {
  uint64_t requestId = 0;  // 0 = free
  int64_t sentNs = 0;
};

struct Conn {
  zmq::socket_t socket;
  std::vector<Slot> slots;
  std::vector<uint32_t> free;
  uint64_t generation = 0;
  uint32_t outstanding = 0;
  bool handshakeSent = false;
  bool connected = false;  // a heartbeat came back
};

int64_t toNs(Duration d) {
  if (d == kInfinite) return std::numeric_limits<int64_t>::max() / 4;
  return static_cast<int64_t>(d.count()) * kNsPerMs;
}
}  // namespace

LoadGenerator::LoadGenerator(LoadOptions options) : options_(std::move(options)) {
  if (options_.clients == 0 || options_.window == 0) throw std::invalid_argument("clients and window must be >= 1");
  if (options_.window > kSlotMask) throw std::invalid_argument("window too large");
}

LoadStats LoadGenerator::run(const LoadPlan& plan) {
  LoadStats stats;
  zmq::context_t ctx;
  nameContext(ctx, Role::Clients);
  std::vector<Conn> conns(options_.clients);
  SocketSet set;
  for (uint32_t i = 0; i < conns.size(); ++i) {
    Conn& c = conns[i];
    c.socket = connectDealer(ctx, options_.endpoint, {}, options_.curve ? &*options_.curve : nullptr);
    c.slots.resize(options_.window);
    for (uint32_t s = options_.window; s-- > 0;) c.free.push_back(s);
    set.add(c.socket, i);
  }
  const std::string payload(options_.payload, 'x');
  const Mode mode = options_.kind == LoadKind::Cast ? Mode::Cast : Mode::Call;
  const uint32_t intervalMs = static_cast<uint32_t>(options_.heartbeatInterval.count());

  auto sendHeartbeat = [&](Conn& c) {
    Frames f;
    f.emplace_back();
    f.push_back(encode(msg::Heartbeat{static_cast<uint64_t>(nowNs() / kNsPerMs), intervalMs}));
    return sendFrames(c.socket, f) == SendStatus::Ok;
  };

  int64_t warmEnd = 0, measureEnd = 0, lastReply = 0;
  bool issuing = false;

  auto sendOne = [&](Conn& c) {
    uint32_t slot = c.free.back();
    c.free.pop_back();
    uint64_t id = (++c.generation << kSlotBits) | slot;
    int64_t t = nowNs();
    Frames f;
    f.reserve(3);
    f.emplace_back();
    f.push_back(encode(msg::Submit{id, mode, options_.pool, options_.function, options_.timeoutMs, false, 0,
                                   options_.link}));
    if (!payload.empty()) f.emplace_back(payload.data(), payload.size());
    if (sendFrames(c.socket, f) != SendStatus::Ok) {
      // The window is far below the send high-water mark: this is a bench bug, not load.
      throw std::runtime_error("client send queue full (window above the high-water mark?)");
    }
    c.slots[slot] = Slot{id, t};
    ++c.outstanding;
    ++stats.sent;
  };
  auto mayIssue = [&] { return issuing && (options_.maxJobs == 0 || stats.sent < options_.maxJobs); };

  Frames frames;
  auto serve = [&](Conn& c) {
    bool truncated = false;
    do {
      while (recvFrames(c.socket, frames, kMaxFrames, truncated)) {
        int64_t t = nowNs();
        if (frames.size() < 2 || truncated) {
          ++stats.errors;
          continue;
        }
        auto d = decode(frames[1]);
        if (!d.ok()) {
          ++stats.errors;
          continue;
        }
        uint64_t id = 0;
        bool success = false;
        const Message& m = *d.message;
        if (auto* r = std::get_if<msg::Result>(&m)) {
          id = r->requestId;
          success = options_.kind == LoadKind::Call;
        } else if (auto* a = std::get_if<msg::Accepted>(&m)) {
          id = a->requestId;
          success = options_.kind == LoadKind::Cast;
        } else if (auto* s = std::get_if<msg::Submit>(&m)) {
          id = s->requestId;
          success = options_.kind == LoadKind::Echo;
        } else if (auto* e = std::get_if<msg::Error>(&m)) {
          id = e->requestId;
        } else if (std::holds_alternative<msg::Heartbeat>(m)) {
          c.connected = true;
          continue;
        } else {
          continue;
        }
        uint64_t slot = id & kSlotMask;
        if (slot >= c.slots.size() || c.slots[slot].requestId != id || id == 0) {
          ++stats.errors;  // a reply to nothing we sent
          continue;
        }
        int64_t latency = t - c.slots[slot].sentNs;
        c.slots[slot].requestId = 0;
        c.free.push_back(static_cast<uint32_t>(slot));
        --c.outstanding;
        ++stats.replies;
        lastReply = t;
        if (!success) {
          ++stats.errors;
        } else if (t >= warmEnd && t < measureEnd) {
          ++stats.completed;
          stats.latency.record(static_cast<uint64_t>(latency));
        }
        if (mayIssue()) sendOne(c);
      }
    } while (SocketSet::drainable(c.socket));
  };

  // Handshake: every client gets a heartbeat answered before any load (IMMEDIATE sockets refuse
  // to queue until connected, so the heartbeat is retried until it can be sent).
  std::vector<uint32_t> ready;
  int64_t connectDeadline = nowNs() + toNs(plan.connectBound);
  for (;;) {
    bool all = true;
    for (uint32_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      if (c.connected) continue;
      all = false;
      if (!c.handshakeSent && sendHeartbeat(c)) {
        c.handshakeSent = true;
        set.touch(i);
      }
    }
    if (all) break;
    if (nowNs() > connectDeadline) throw std::runtime_error("cannot reach " + options_.endpoint);
    set.wait(std::chrono::milliseconds(2), ready);
    for (uint32_t tag : ready) serve(conns[tag]);
  }

  const int64_t start = nowNs();
  warmEnd = start + toNs(plan.warmup);
  measureEnd = plan.measure == kInfinite ? std::numeric_limits<int64_t>::max() : warmEnd + toNs(plan.measure);
  issuing = true;
  for (uint32_t i = 0; i < conns.size(); ++i) {
    while (mayIssue() && !conns[i].free.empty()) sendOne(conns[i]);
    set.touch(i);
  }

  const int64_t beatNs = toNs(options_.heartbeatInterval);
  const bool beats = options_.link && options_.kind != LoadKind::Echo;
  int64_t nextBeat = start + beatNs, nextProgress = start + 500 * kNsPerMs;
  int64_t drainDeadline = std::numeric_limits<int64_t>::max();
  lastReply = start;
  // CPU per role over the measured interval (sampled when it starts and ends, within 10 ms).
  enum class CpuPhase { Before, During, Done } cpuPhase = CpuPhase::Before;
  RoleCpu cpuStart;
  for (;;) {
    int64_t now = nowNs();
    if (cpuPhase == CpuPhase::Before && now >= warmEnd) {
      cpuStart = sampleRoleCpu();
      cpuPhase = CpuPhase::During;
    }
    if (cpuPhase == CpuPhase::During && now >= measureEnd) {
      stats.cpu = sampleRoleCpu() - cpuStart;
      cpuPhase = CpuPhase::Done;
    }
    uint64_t outstanding = 0;
    for (auto& c : conns) outstanding += c.outstanding;
    if (issuing && (now >= measureEnd || (options_.maxJobs != 0 && stats.sent >= options_.maxJobs))) {
      issuing = false;
      drainDeadline = now + toNs(plan.drainBound);
    }
    if (issuing && now - lastReply > toNs(plan.drainBound)) {
      issuing = false;  // the peer stopped answering: give up rather than hang
      drainDeadline = now;
    }
    if (!issuing && outstanding == 0) break;
    if (!issuing && now > drainDeadline) {
      stats.drained = false;
      break;
    }
    if (beats && now >= nextBeat) {
      nextBeat = now + beatNs;
      for (uint32_t i = 0; i < conns.size(); ++i) {
        sendHeartbeat(conns[i]);
        set.touch(i);
      }
    }
    if (plan.onProgress && now >= nextProgress) {
      nextProgress = now + 500 * kNsPerMs;
      plan.onProgress(stats.replies);
    }
    set.wait(std::chrono::milliseconds(10), ready);
    for (uint32_t tag : ready) serve(conns[tag]);
  }
  if (cpuPhase == CpuPhase::During) stats.cpu = sampleRoleCpu() - cpuStart;
  int64_t end = plan.measure == kInfinite ? lastReply : measureEnd;
  stats.seconds = std::max<int64_t>(0, end - warmEnd) / 1e9;
  return stats;
}

}  // namespace flame::bench
