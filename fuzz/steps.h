// The input format of broker_core_fuzz, shared with the seed generator (fuzz_seeds.cpp):
// a sequence of steps, each an op byte followed by its arguments. Lengths are little-endian;
// a step cut short by the end of the input is dropped.
//   client  peer n (len16 bytes)*n   a multipart message from client connection `peer`, as the
//                                   client ROUTER receives it after the routing id frame
//                                   ([empty delimiter][header][payload?] when well formed)
//   runner  peer n (len16 bytes)*n   the same from runner connection `peer` ([header][payload?])
//   tick    ms16                     time passes: the clock advances by ms in steps of at most one
//                                   heartbeat interval, with a tick() after each (as the socket
//                                   loop does); with the top bit set, the broker stalls instead:
//                                   one jump of (ms & 0x7fff) x 16 and a single tick()
//   undeliverable peer               the Outbox reports what it accepted for runner `peer` lost
//   unreachable peer                 toggle: sends to runner `peer` fail as Unreachable
//   drain   index grace16            the scaler drains the index-th runner that said ready
//   failQueued                       the scaler fails the queue of the declared pool
//   shutdown                         SIGTERM: beginShutdown()
//   abortAll                         a second SIGTERM: abortAll()
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace flame::fuzz {

enum class Op : uint8_t { Client, Runner, Tick, Undeliverable, Unreachable, Drain, FailQueued, Shutdown, AbortAll, kCount };

// The pool BrokerCore has declared up front (as from a config file) in broker_core_fuzz.
inline constexpr const char* kDeclaredPool = "declared";
inline constexpr size_t kMaxFramesPerStep = 6;  // more than the broker keeps, to reach its checks

struct Step {
  Op op = Op::Tick;
  uint8_t peer = 0;  // client/runner connection, or the runner index for drain
  uint16_t value = 0;  // tick ms, drain grace ms
  std::vector<std::string> frames;
};

// Reads steps from fuzzer input.
class StepReader {
 public:
  StepReader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  bool next(Step& step) {
    step = Step{};
    uint8_t op;
    if (!byte(op)) return false;
    step.op = static_cast<Op>(op % static_cast<uint8_t>(Op::kCount));
    switch (step.op) {
      case Op::Client:
      case Op::Runner: {
        uint8_t count;
        if (!byte(step.peer) || !byte(count)) return false;
        count %= kMaxFramesPerStep + 1;
        for (uint8_t i = 0; i < count; ++i) {
          uint16_t len;
          if (!u16(len)) return false;
          size_t take = std::min<size_t>(len, static_cast<size_t>(end_ - p_));
          step.frames.emplace_back(reinterpret_cast<const char*>(p_), take);
          p_ += take;
        }
        return true;
      }
      case Op::Tick: return u16(step.value);
      case Op::Undeliverable:
      case Op::Unreachable: return byte(step.peer);
      case Op::Drain: return byte(step.peer) && u16(step.value);
      case Op::FailQueued:
      case Op::Shutdown:
      case Op::AbortAll: return true;
      case Op::kCount: break;
    }
    return false;
  }

 private:
  bool byte(uint8_t& out) {
    if (p_ == end_) return false;
    out = *p_++;
    return true;
  }
  bool u16(uint16_t& out) {
    uint8_t lo, hi;
    if (!byte(lo) || !byte(hi)) return false;
    out = static_cast<uint16_t>(lo | (hi << 8));
    return true;
  }
  const uint8_t* p_;
  const uint8_t* end_;
};

// Writes steps (seed generator).
inline void appendU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}
inline std::string writeStep(const Step& step) {
  std::string out(1, static_cast<char>(step.op));
  switch (step.op) {
    case Op::Client:
    case Op::Runner:
      out.push_back(static_cast<char>(step.peer));
      out.push_back(static_cast<char>(step.frames.size()));
      for (auto& f : step.frames) {
        appendU16(out, static_cast<uint16_t>(f.size()));
        out += f;
      }
      break;
    case Op::Tick: appendU16(out, step.value); break;
    case Op::Undeliverable:
    case Op::Unreachable: out.push_back(static_cast<char>(step.peer)); break;
    case Op::Drain:
      out.push_back(static_cast<char>(step.peer));
      appendU16(out, step.value);
      break;
    case Op::FailQueued:
    case Op::Shutdown:
    case Op::AbortAll:
    case Op::kCount: break;
  }
  return out;
}

}  // namespace flame::fuzz
