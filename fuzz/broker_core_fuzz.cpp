// Fuzzes the broker's semantic handling of untrusted peers: a real BrokerCore (manual clock,
// an Outbox that sends nothing) driven by a sequence of steps (steps.h) — multipart messages
// from up to 8 client and 8 runner connections, time passing, sends failing, and the scaler's
// drain/failQueued calls.
//
// Each message goes through broker/inbound.h, as in BrokerServer: the frame-shape checks, then
// decode() with the broker's DecodeLimits, then onClient/onRunner (or onClientInvalid/
// onRunnerInvalid).
//
// Checked after every step, beyond "no crash, no sanitizer report, no exception":
// - everything the core sends decodes, and is a kind its receiver accepts (clients get
//   result/error/accepted/placed/childExited/stopped/statusReply/heartbeat/subscribed/event; runners get
//   welcome/job/cancelJob/heartbeat/error/drain);
// - no runner uses more slots than it has; the queues never hold more jobs than exist.
// At the end, after every peer has been silent for longer than any deadline: no runner is
// left, every job still known to the core is in a queue (none leaked out of all of them), and
// a broker that began shutting down holds no job at all (its shutdown completes).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "broker/broker_core.h"
#include "broker/inbound.h"
#include "common/codec.h"
#include "common/log.h"
#include "fuzz/steps.h"

namespace {

using namespace flame;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "broker_core_fuzz: %s\n", what.c_str());
  std::abort();
}

bool clientKind(const Message& m) {
  return std::holds_alternative<msg::Result>(m) || std::holds_alternative<msg::Error>(m) ||
         std::holds_alternative<msg::Accepted>(m) || std::holds_alternative<msg::Placed>(m) ||
         std::holds_alternative<msg::ChildExited>(m) || std::holds_alternative<msg::Stopped>(m) ||
         std::holds_alternative<msg::StatusReply>(m) || std::holds_alternative<msg::Heartbeat>(m) ||
         std::holds_alternative<msg::Subscribed>(m) || std::holds_alternative<msg::Event>(m);
}
bool runnerKind(const Message& m) {
  return std::holds_alternative<msg::Welcome>(m) || std::holds_alternative<msg::Job>(m) ||
         std::holds_alternative<msg::CancelJob>(m) || std::holds_alternative<msg::Heartbeat>(m) ||
         std::holds_alternative<msg::Error>(m) || std::holds_alternative<msg::Drain>(m);
}

// Checks and drops everything; remembers the dispatches accepted since the last loop
// iteration, which BrokerServer would report through onUndeliverable() if the flush failed.
class CheckingOutbox final : public Outbox {
 public:
  SendStatus toClient(const std::string& client, zmq::message_t header, zmq::message_t* payload,
                      JobId) override {
    check(header, true);
    if (payload) *payload = zmq::message_t();
    return SendStatus::Ok;
  }
  SendStatus toRunner(const std::string& routingId, zmq::message_t header, zmq::message_t* payload,
                      JobId dispatch) override {
    if (unreachable.count(routingId)) return SendStatus::Unreachable;
    check(header, false);
    if (dispatch != 0) accepted[routingId].push_back(dispatch);
    if (payload) *payload = zmq::message_t();
    return SendStatus::Ok;
  }

  std::set<std::string> unreachable;
  std::map<std::string, std::vector<JobId>> accepted;

 private:
  static void check(const zmq::message_t& header, bool toClient) {
    DecodeResult d = decode(header);
    if (!d.ok()) fail("the core sent an undecodable header: " + d.error);
    if (toClient ? !clientKind(*d.message) : !runnerKind(*d.message))
      fail(std::string("the core sent a message kind ") + std::to_string(d.message->index()) + " to a " +
           (toClient ? "client" : "runner"));
  }
};

// Frames as recvFrames() leaves them: the routing id, then at most `max` - 1 of the sent frames;
// `truncated` when more were sent.
Frames received(const std::string& routingId, const std::vector<std::string>& sent, size_t max, bool& truncated) {
  Frames frames;
  frames.emplace_back(routingId.data(), routingId.size());
  for (size_t i = 0; i < sent.size() && frames.size() < max; ++i) frames.emplace_back(sent[i].data(), sent[i].size());
  truncated = sent.size() + 1 > max;
  return frames;
}

void checkInvariants(const BrokerCore& core) {
  size_t queued = 0;
  for (const auto& pool : core.status(0).pools) {
    queued += pool.queued;
    for (const auto& r : pool.runners)
      if (r.slotsUsed > r.slotsTotal)
        fail("runner " + r.runnerId + " uses " + std::to_string(r.slotsUsed) + " of " +
             std::to_string(r.slotsTotal) + " slots");
  }
  if (queued > core.jobCount())
    fail("queues hold " + std::to_string(queued) + " jobs but the core has " + std::to_string(core.jobCount()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setLogLevel("off");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  BrokerOptions options;
  options.heartbeatInterval = Duration(1000);
  options.liveness = 3;
  options.maxPayloadBytes = 256;  // small enough for the fuzzer to reach payload_too_large
  DecodeLimits limits;
  limits.maxHeaderBytes = options.maxHeaderBytes;

  ManualClock clock;
  CheckingOutbox outbox;
  BrokerCore core(options, clock, outbox);
  PoolSettings declared;
  declared.maxQueue = 4;
  declared.defaultTimeout = Duration(5000);
  core.declarePool(fuzz::kDeclaredPool, declared);

  // Loop iterations: what the Outbox accepted has been flushed by the next one.
  auto tickOnce = [&] {
    outbox.accepted.clear();
    core.tick();
  };
  // Time passing normally: the socket loop comes round at least once per heartbeat interval.
  auto pass = [&](Duration d) {
    do {
      Duration step = std::min(d, options.heartbeatInterval);
      clock.advance(step);
      d -= step;
      tickOnce();
    } while (d > Duration(0));
  };
  // The broker process did not run for `d` (the core credits that time to its peers).
  auto stall = [&](Duration d) {
    clock.advance(d);
    tickOnce();
  };

  std::vector<std::string> readyIds;
  fuzz::StepReader reader(data, size);
  fuzz::Step step;
  while (reader.next(step)) {
    const std::string client = std::string("c") + static_cast<char>(step.peer % 8);
    const std::string runner = std::string("r") + static_cast<char>(step.peer % 8);
    switch (step.op) {
      case fuzz::Op::Client: {
        bool truncated = false;
        Frames frames = received(client, step.frames, kMaxClientFrames, truncated);
        deliverFromClient(core, limits, frames, truncated);
        break;
      }
      case fuzz::Op::Runner: {
        bool truncated = false;
        Frames frames = received(runner, step.frames, kMaxRunnerFrames, truncated);
        // Remember who said ready, for the drain step.
        if (frames.size() >= 2 && !truncated) {
          DecodeResult d = decode(frames[1], limits);
          if (d.ok())
            if (auto* ready = std::get_if<msg::Ready>(&*d.message)) readyIds.push_back(ready->runnerId);
        }
        deliverFromRunner(core, limits, frames, truncated);
        break;
      }
      case fuzz::Op::Tick:
        if (step.value & 0x8000)
          stall(Duration(int64_t(step.value & 0x7fff) * 16));
        else
          pass(Duration(step.value));
        break;
      case fuzz::Op::Undeliverable: {
        std::vector<JobId> lost;
        lost.swap(outbox.accepted[runner]);
        core.onUndeliverable(runner, lost, "fuzz: its connection is gone");
        break;
      }
      case fuzz::Op::Unreachable:
        if (!outbox.unreachable.erase(runner)) outbox.unreachable.insert(runner);
        break;
      case fuzz::Op::Drain:
        if (!readyIds.empty())
          if (RunnerState* r = core.findRunner(readyIds[step.peer % readyIds.size()]))
            core.drainRunner(r->id, Duration(step.value), "fuzz: drained");
        break;
      case fuzz::Op::FailQueued:
        core.failQueued(fuzz::kDeclaredPool, ErrorCode::BootFailed, "fuzz: boot failed");
        break;
      case fuzz::Op::Shutdown: core.beginShutdown(); break;
      case fuzz::Op::AbortAll: core.abortAll("fuzz: second SIGTERM"); break;
      case fuzz::Op::kCount: break;
    }
    checkInvariants(core);
  }

  // Every peer falls silent: past the liveness window (normal ticks), then past every finite
  // deadline (the longest is 2^32-2 ms, ~50 days; stepped over as a stall), then a bit more.
  pass(options.livenessWindow() + 2 * options.heartbeatInterval);
  stall(Duration(int64_t(60) * 24 * 3600 * 1000));
  pass(options.livenessWindow() + 2 * options.heartbeatInterval);
  checkInvariants(core);
  size_t runners = 0, queued = 0;
  for (const auto& pool : core.status(0).pools) {
    runners += pool.runners.size();
    queued += pool.queued;
  }
  if (runners != 0) fail(std::to_string(runners) + " runners survived 60 days of silence");
  if (queued != core.jobCount())
    fail("with no runner left, " + std::to_string(core.jobCount()) + " jobs exist but " + std::to_string(queued) +
         " are queued");
  if (core.shuttingDown() && core.jobCount() != 0)
    fail("shutdown never completes: no runner left, " + std::to_string(core.jobCount()) + " jobs held");
  return 0;
}
