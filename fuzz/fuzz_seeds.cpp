// flame-fuzz-seeds SOURCE_DIR: writes the seed corpora under SOURCE_DIR/fuzz/corpus/ — valid
// encoded messages of every kind for codec_fuzz, short scenarios (ready, submit, jobDone,
// cancel, place/stop, status, setPool, bad frames, timeouts, lost runners) for
// broker_core_fuzz, and small configs for config_fuzz. The broker scenarios are played on a
// real BrokerCore while they are written, so the job ids in their jobDone/cancel/stop steps are
// the ones the core assigns. Deterministic: rerunning rewrites the same files.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "broker/broker_core.h"
#include "common/codec.h"
#include "common/log.h"
#include "fuzz/steps.h"

namespace fs = std::filesystem;
using namespace flame;

namespace {

std::string bytes(const zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }
template <class M>
std::string enc(const M& m) {
  return bytes(encode(m));
}

void writeFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// ---- message samples ----
msg::Submit submit(uint64_t request, Mode mode, const std::string& pool, const std::string& function,
                   uint32_t timeoutMs = 0, bool link = false, bool idempotent = false, uint8_t retries = 0) {
  msg::Submit s;
  s.requestId = request;
  s.mode = mode;
  s.pool = pool;
  s.function = function;
  s.timeoutMs = timeoutMs;
  s.link = link;
  s.idempotent = idempotent;
  s.retries = retries;
  return s;
}
msg::Ready ready(const std::string& id, const std::string& pool, uint32_t slots, std::vector<std::string> functions,
                 uint32_t busy = 0) {
  msg::Ready r;
  r.runnerId = id;
  r.pool = pool;
  r.slots = slots;
  r.functions = std::move(functions);
  r.token = "token";
  r.busy = busy;
  r.pid = 4242;
  r.host = "127.0.0.1";
  return r;
}
msg::JobDone jobDone(uint64_t job, ErrorCode code = ErrorCode::None, const std::string& message = "") {
  msg::JobDone d;
  d.jobId = job;
  d.code = code;
  d.message = message;
  return d;
}
msg::Error error(uint64_t request, ErrorCode code, const std::string& message, uint64_t job = 0) {
  msg::Error e;
  e.requestId = request;
  e.code = code;
  e.message = message;
  e.jobId = job;
  return e;
}
msg::StatusReply statusReply() {
  msg::StatusReply s;
  s.requestId = 9;
  msg::PoolStatus p;
  p.name = "thumbs";
  p.queued = 3;
  p.slotsUsed = 2;
  p.slotsTotal = 4;
  p.completed = 10;
  p.failed = 1;
  p.booting = 1;
  p.boots = 2;
  p.bootFailures = 1;
  p.min = 0;
  p.max = 4;
  msg::RunnerStatus r;
  r.runnerId = "thumbs-1";
  r.state = "ready";
  r.slotsUsed = 2;
  r.slotsTotal = 2;
  r.pid = 77;
  r.host = "127.0.0.1";
  r.idleMs = 0;
  p.runners.push_back(r);
  r.runnerId = "thumbs-2\xff";  // invalid UTF-8 must still render as JSON
  r.state = "draining";
  r.slotsUsed = 0;
  r.idleMs = 1500;
  p.runners.push_back(r);
  s.pools.push_back(p);
  s.pools.push_back(msg::PoolStatus{});
  s.pools.back().name = "empty";
  return s;
}

// ---- codec_fuzz: [role][header] ----
void codecSeeds(const fs::path& dir) {
  auto put = [&](uint8_t role, const std::string& name, const std::string& header) {
    writeFile(dir / (std::to_string(role) + "-" + name), std::string(1, static_cast<char>(role)) + header);
  };
  // 0: the broker's client endpoint.
  put(0, "submit-call", enc(submit(1, Mode::Call, "default", "echo", 500)));
  put(0, "submit-place-link", enc(submit(2, Mode::Place, "default", "sleep", 0, true)));
  put(0, "submit-cast-idempotent", enc(submit(3, Mode::Cast, "default", "echo", kInfiniteMs, false, true, 2)));
  put(0, "cancel", enc(msg::Cancel{1}));
  put(0, "stop-child", enc(msg::StopChild{(uint64_t{1} << 32) | 3}));
  put(0, "status-request", enc(msg::StatusRequest{4}));
  msg::SetPool set;
  set.requestId = 5;
  set.pool = "default";
  set.min = 1;
  set.max = 8;
  put(0, "set-pool", enc(set));
  put(0, "heartbeat", enc(msg::Heartbeat{}));
  put(0, "subscribe-all", enc(msg::Subscribe{7, ""}));
  put(0, "subscribe-pool", enc(msg::Subscribe{8, "default"}));
  msg::Submit retrying = submit(9, Mode::Call, "default", "fail", 500);
  retrying.splitBudget = true;
  retrying.retries = 3;
  retrying.retryHandlerError = true;
  retrying.retryTimeout = true;
  retrying.retryBackoffMs = 100;
  retrying.retryBackoffMaxMs = 1000;
  put(0, "submit-retrying", enc(retrying));
  put(0, "version-2", bytes(encodeWithVersion(msg::StatusRequest{6}, 2)));
  // 1: the broker's runner endpoint.
  put(1, "ready", enc(ready("runner-1", "default", 4, {"echo", "sleep", "fail"})));
  msg::Ready held = ready("runner-2", "default", 2, {"echo"}, 1);
  held.held.push_back(msg::HeldJob{(uint64_t{1} << 32) | 0, 12345});
  put(1, "ready-held", enc(held));
  put(1, "job-done", enc(jobDone((uint64_t{1} << 32) | 0)));
  put(1, "job-done-error", enc(jobDone((uint64_t{1} << 32) | 1, ErrorCode::HandlerError, "boom")));
  msg::Leaving leaving;
  leaving.reason = "idle";
  leaving.exiting = true;
  put(1, "leaving", enc(leaving));
  put(1, "heartbeat", enc(msg::Heartbeat{}));
  // 2: a runner reading the broker.
  msg::Welcome welcome;
  welcome.heartbeatIntervalMs = 1000;
  welcome.liveness = 3;
  put(2, "welcome", enc(welcome));
  put(2, "job", enc(msg::Job{(uint64_t{1} << 32) | 0, "echo", Mode::Call, 30000}));
  put(2, "job-place", enc(msg::Job{(uint64_t{2} << 32) | 5, "sleep", Mode::Place, kInfiniteMs}));
  put(2, "cancel-job", enc(msg::CancelJob{(uint64_t{1} << 32) | 0}));
  msg::Heartbeat beat;
  beat.sentMs = 1'000'000;
  beat.intervalMs = 1000;
  beat.instance = 0x1234567;
  put(2, "heartbeat", enc(beat));
  put(2, "error-unknown-peer", enc(error(0, ErrorCode::UnknownPeer, "unknown connection: send ready")));
  put(2, "error-unauthorized", enc(error(0, ErrorCode::Unauthorized, "bad boot token")));
  put(2, "drain", enc(msg::Drain{5000}));
  // 3: a client reading the broker.
  put(3, "result", enc(msg::Result{1, (uint64_t{1} << 32) | 0}));
  put(3, "error-timeout", enc(error(1, ErrorCode::Timeout, "deadline passed", 7)));
  put(3, "accepted", enc(msg::Accepted{3, (uint64_t{1} << 32) | 2}));
  msg::Placed placed;
  placed.requestId = 2;
  placed.childId = (uint64_t{1} << 32) | 1;
  placed.runnerId = "runner-1";
  put(3, "placed", enc(placed));
  msg::ChildExited exited;
  exited.childId = placed.childId;
  exited.code = ErrorCode::RunnerLost;
  exited.message = "runner lost";
  put(3, "child-exited", enc(exited));
  put(3, "stopped", enc(msg::Stopped{placed.childId}));
  put(3, "status-reply", enc(statusReply()));
  put(3, "heartbeat", enc(beat));
  put(3, "subscribed", enc(msg::Subscribed{7, 41}));
  msg::Event event;
  event.requestId = 7;
  event.seq = 42;
  event.timeMs = 1'796'000'000'000;
  event.kind = EventKind::JobRetried;
  event.pool = "default";
  event.message = "handler_error: boom";
  event.jobId = (uint64_t{1} << 32) | 3;
  event.attempt = 2;
  event.delayMs = 200;
  event.runners = 3;
  event.booting = 1;
  put(3, "event-job-retried", enc(event));
}

// ---- broker_core_fuzz: scenarios played on a real core while written ----
class LastJobs final : public Outbox {
 public:
  SendStatus toClient(const std::string&, zmq::message_t, zmq::message_t*, JobId) override { return SendStatus::Ok; }
  SendStatus toRunner(const std::string& routingId, zmq::message_t header, zmq::message_t*, JobId) override {
    auto d = decode(header);
    if (d.ok())
      if (auto* job = std::get_if<msg::Job>(&*d.message)) jobs[routingId].push_back(job->jobId);
    return SendStatus::Ok;
  }
  std::map<std::string, std::vector<JobId>> jobs;
};

class Scenario {
 public:
  Scenario() : core_(options(), clock_, outbox_) {
    PoolSettings declared;
    declared.maxQueue = 4;
    declared.defaultTimeout = Duration(5000);
    core_.declarePool(fuzz::kDeclaredPool, declared);
  }
  static BrokerOptions options() {
    BrokerOptions o;
    o.maxPayloadBytes = 256;
    return o;
  }
  // Raw frames (after the routing id) from client / runner `peer`.
  Scenario& clientFrames(uint8_t peer, std::vector<std::string> frames) { return message(fuzz::Op::Client, peer, frames); }
  Scenario& runnerFrames(uint8_t peer, std::vector<std::string> frames) { return message(fuzz::Op::Runner, peer, frames); }
  template <class M>
  Scenario& client(uint8_t peer, const M& m, const std::string& payload = "") {
    return clientFrames(peer, {"", enc(m), payload});
  }
  template <class M>
  Scenario& runner(uint8_t peer, const M& m, const std::string& payload = "") {
    return runnerFrames(peer, {enc(m), payload});
  }
  Scenario& tick(uint16_t ms) {
    fuzz::Step s;
    s.op = fuzz::Op::Tick;
    s.value = ms;
    out_ += fuzz::writeStep(s);
    if (ms & 0x8000) {
      clock_.advance(Duration(int64_t(ms & 0x7fff) * 16));
      core_.tick();
      return *this;
    }
    for (Duration left(ms); left > Duration(0);) {  // as broker_core_fuzz passes time
      Duration step = std::min(left, options().heartbeatInterval);
      clock_.advance(step);
      left -= step;
      core_.tick();
    }
    return *this;
  }
  Scenario& simple(fuzz::Op op, uint8_t peer = 0, uint16_t value = 0) {
    fuzz::Step s;
    s.op = op;
    s.peer = peer;
    s.value = value;
    out_ += fuzz::writeStep(s);
    if (op == fuzz::Op::Shutdown) core_.beginShutdown();
    if (op == fuzz::Op::AbortAll) core_.abortAll("seed");
    if (op == fuzz::Op::FailQueued) core_.failQueued(fuzz::kDeclaredPool, ErrorCode::BootFailed, "seed");
    return *this;
  }
  // The n-th job the core sent to runner `peer` so far (its id), or a made-up id.
  JobId job(uint8_t peer, size_t n = 0) {
    auto& list = outbox_.jobs[std::string("r") + static_cast<char>(peer % 8)];
    if (n < list.size()) return list[n];
    std::cerr << "flame-fuzz-seeds: warning: runner " << int(peer) << " got no job #" << n
              << " (a scenario no longer matches the core); using a made-up id\n";
    return 0xdeadbeef;
  }
  const std::string& bytes() const { return out_; }

 private:
  Scenario& message(fuzz::Op op, uint8_t peer, const std::vector<std::string>& frames) {
    fuzz::Step s;
    s.op = op;
    s.peer = peer;
    s.frames = frames;
    out_ += fuzz::writeStep(s);
    // Play it on the core (well-formed messages only; the fuzzer's harness handles the rest).
    bool isClient = op == fuzz::Op::Client;
    size_t header = isClient ? 1 : 0;
    if (frames.size() > header && (!isClient || frames[0].empty())) {
      auto d = decode(frames[header].data(), frames[header].size());
      std::string id = std::string(isClient ? "c" : "r") + static_cast<char>(peer % 8);
      zmq::message_t payload;
      if (frames.size() > header + 1) payload = zmq::message_t(frames[header + 1].data(), frames[header + 1].size());
      if (d.ok() && isClient) core_.onClient(id, std::move(*d.message), std::move(payload));
      if (d.ok() && !isClient) core_.onRunner(id, std::move(*d.message), std::move(payload));
    }
    return *this;
  }

  ManualClock clock_;
  LastJobs outbox_;
  BrokerCore core_;
  std::string out_;
};

void brokerSeeds(const fs::path& dir) {
  auto put = [&](const std::string& name, const Scenario& s) { writeFile(dir / name, s.bytes()); };
  const std::string pool = fuzz::kDeclaredPool;
  {
    Scenario s;
    s.runner(0, ready("r-0", pool, 2, {"echo", "sleep"}));
    s.client(0, submit(1, Mode::Call, pool, "echo"), "hello");
    s.runner(0, jobDone(s.job(0)), "hello");
    s.client(0, submit(2, Mode::Call, pool, "echo", 0, false, false), "again");
    s.runner(0, jobDone(s.job(0, 1), ErrorCode::HandlerError, "boom"));
    put("call-echo", s);
  }
  {
    Scenario s;
    s.client(1, submit(1, Mode::Cast, pool, "sleep", 200), "100");
    s.runner(1, ready("r-1", pool, 1, {"sleep"}));
    s.tick(300);
    s.runner(1, jobDone(s.job(1), ErrorCode::Cancelled, "cancelled"));
    put("cast-timeout", s);
  }
  {
    Scenario s;
    s.runner(2, ready("r-2", pool, 1, {"sleep"}));
    s.client(2, submit(7, Mode::Place, pool, "sleep", 0, true), "600000");
    s.client(3, msg::StopChild{s.job(2)});
    s.runner(2, jobDone(s.job(2), ErrorCode::Cancelled, "stopped"));
    put("place-stop", s);
  }
  {
    Scenario s;
    s.client(0, submit(1, Mode::Call, pool, "echo"), "queued");
    s.client(0, msg::Cancel{1});
    s.client(0, msg::Cancel{99});
    s.client(0, msg::StatusRequest{2});
    msg::SetPool set;
    set.requestId = 3;
    set.pool = pool;
    set.max = 3;
    s.client(0, set);
    s.client(0, msg::Heartbeat{});
    s.simple(fuzz::Op::FailQueued);
    put("cancel-status-setpool", s);
  }
  {
    Scenario s;
    s.client(5, msg::Subscribe{1, ""});
    s.client(5, msg::Subscribe{2, pool});
    s.runner(4, ready("r-4", pool, 1, {"fail"}));
    msg::Submit retrying = submit(3, Mode::Call, pool, "fail", 1000);
    retrying.splitBudget = true;
    retrying.retries = 2;
    retrying.retryHandlerError = true;
    retrying.retryTimeout = true;
    retrying.retryBackoffMs = 100;
    s.client(6, retrying, "x");
    s.runner(4, jobDone(s.job(4), ErrorCode::HandlerError, "boom"));
    s.tick(150);
    s.client(5, msg::Cancel{2});
    s.tick(1000);
    put("subscribe-retry", s);
  }
  {
    Scenario s;
    s.runner(3, ready("r-3", "other", 2, {"echo"}));
    s.client(4, submit(1, Mode::Call, "other", "echo", 0, false, true, 2), "x");
    s.client(4, submit(2, Mode::Place, "other", "echo", 0, true), "y");
    s.runner(4, ready("r-4", "other", 2, {"echo"}));
    s.simple(fuzz::Op::Undeliverable, 3);
    s.tick(1000);
    s.runner(4, msg::Heartbeat{});
    s.tick(1000);
    s.runner(4, msg::Heartbeat{});
    s.tick(4800);  // r-3 goes silent past its liveness window
    s.tick(0x8000 | 2000);  // the broker stalls for 32 s: r-4 is credited that time
    s.runner(4, msg::Heartbeat{});
    put("lost-runner-retry", s);
  }
  {
    Scenario s;
    s.runner(5, ready("r-5", pool, 2, {"echo"}, 1));
    s.simple(fuzz::Op::Unreachable, 5);
    s.client(5, submit(1, Mode::Call, pool, "echo"), "lost");
    s.simple(fuzz::Op::Unreachable, 5);
    s.runner(5, ready("r-5", pool, 2, {"echo"}));
    s.simple(fuzz::Op::Drain, 0, 500);
    msg::Leaving leaving;
    leaving.reason = "drained";
    leaving.exiting = true;
    s.runner(5, leaving);
    put("unreachable-drain-leave", s);
  }
  {
    Scenario s;
    s.runner(7, ready("r-7", pool, 2, {"echo", "sleep"}));
    s.client(7, submit(1, Mode::Call, pool, "sleep"), "100");
    s.client(7, submit(2, Mode::Place, pool, "sleep", 0, true), "600000");
    s.client(7, submit(3, Mode::Call, pool, "echo"), "queued");
    s.simple(fuzz::Op::Shutdown);
    s.client(7, submit(4, Mode::Call, pool, "echo"), "refused");
    s.runner(7, jobDone(s.job(7)));
    s.tick(2000);
    s.simple(fuzz::Op::AbortAll);
    s.runner(7, jobDone(s.job(7, 1), ErrorCode::Cancelled, "stopped"));
    put("shutdown", s);
  }
  {
    Scenario s;
    s.clientFrames(6, {enc(submit(1, Mode::Call, pool, "echo"))});                    // no delimiter
    s.clientFrames(6, {"", enc(submit(2, Mode::Call, pool, "echo")), "p", "extra"});  // too many frames
    s.clientFrames(6, {"", "not a capnp message"});
    s.client(6, submit(3, Mode::Call, pool, "echo"), std::string(300, 'x'));         // payload too large
    s.client(6, submit(4, Mode::Call, "", "echo"));
    s.client(6, jobDone(1));                                                          // wrong endpoint
    s.runnerFrames(6, {});
    s.runnerFrames(6, {enc(msg::Heartbeat{})});                                       // before ready
    s.runnerFrames(6, {enc(jobDone(1)), "r", "extra"});
    s.runner(6, ready("", pool, 0, {}));
    s.runner(6, msg::Submit{});                                                       // wrong endpoint
    put("bad-frames", s);
  }
}

// ---- config_fuzz ----
void configSeeds(const fs::path& source, const fs::path& dir) {
  for (const char* name : {"flame.toml", "demo.toml"}) {
    std::ifstream in(source / "examples" / name, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!text.empty()) writeFile(dir / name, text);
  }
  writeFile(dir / "minimal.toml", "[pools.default]\n");
  writeFile(dir / "broker.toml",
            "[broker]\nclients = \"tcp://127.0.0.1:0\"\nrunners = \"tcp://127.0.0.1:0\"\n"
            "heartbeat_interval = \"250ms\"\nliveness = 4\nmax_payload_bytes = 1024\n"
            "default_timeout = \"infinity\"\nplacement = \"spread\"\nlog_level = \"debug\"\n");
  writeFile(dir / "exec.toml",
            "[pools.e]\nbackend = \"exec\"\nmin = 1\nmax = 3\nwarm_slots = 2\nidle_shutdown_after = \"5m\"\n"
            "[pools.e.exec]\nboot = [\"/bin/true\"]\n");
  writeFile(dir / "bad-max.toml", "[pools.p]\nmin = 3\nmax = 2\n");
  writeFile(dir / "bad-syntax.toml", "[pools.p\nmax = \n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: flame-fuzz-seeds SOURCE_DIR (writes SOURCE_DIR/fuzz/corpus/)\n";
    return 2;
  }
  setLogLevel("off");
  fs::path source = argv[1];
  fs::path corpus = source / "fuzz" / "corpus";
  codecSeeds(corpus / "codec_fuzz");
  brokerSeeds(corpus / "broker_core_fuzz");
  configSeeds(source, corpus / "config_fuzz");
  std::cout << "seeds written under " << corpus << "\n";
  return 0;
}
