// scale: see scale.h. Why it is built this way:
// - In-process simulated peers, because 110,000 ZeroMQ connections need 110,000 descriptors on
//   each side (and this machine's default limit is 1024): the broker's own cost is what the
//   targets are about, and that is BrokerCore plus the decode boundary, driven here exactly as
//   BrokerServer drives them (frames in, deliverFrom*(), tick() once per batch).
// - Memory is the heap's growth (every chunk in use, headers included, mmapped ones too)
//   divided by the count: precise to the byte, where RSS moves in pages and keeps freed memory.
// - Dispatch is measured in pairs (10 runners, then the full count, or the reverse), each pair
//   back to back, and the median of the pairs' ratios is judged: absolute rates drift on a
//   shared machine, ratios of neighbours much less.
#include "bench/scale.h"

#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/broker_process.h"
#include "bench/harness.h"
#include "bench/lean_runners.h"
#include "broker/broker_core.h"
#include "broker/inbound.h"
#include "common/codec.h"

namespace flame::bench {

namespace {

constexpr const char* kPool = "scale";
constexpr const char* kFunction = "thumbs";
constexpr size_t kPayload = 64;
constexpr uint32_t kSlotsPerRunner = 100;
constexpr uint32_t kSmallRunners = 10;
constexpr uint32_t kInFlight = kSmallRunners * kSlotsPerRunner;  // every slot of the small broker busy
constexpr uint32_t kActiveClients = 4;
constexpr uint64_t kRequestIds = 8192;  // cycled per client; far more than are ever in flight
constexpr uint64_t kBatch = 256;        // BrokerServer's batch: tick() once per this many messages
constexpr int kStepsPerSecond = 1000;   // sweep: loop iterations per simulated second (1 ms each)

const std::vector<std::string>& functions() {
  static const std::vector<std::string> f{"thumbs", "resize", "transcode", "noop"};
  return f;
}

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Bytes of heap in use: every malloc'ed chunk with its header, in all arenas, plus mmapped chunks
// (large bucket arrays are mmapped).
uint64_t heapInUse() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

uint64_t rss() { return residentBytes(getpid()).value_or(0); }

// A routing id as a ZeroMQ ROUTER makes them: a zero byte and a 32-bit counter.
std::string routingId(uint32_t n) {
  std::string id(5, '\0');
  for (int i = 0; i < 4; ++i) id[1 + i] = static_cast<char>((n >> (24 - 8 * i)) & 0xFF);
  return id;
}

std::string hex(uint64_t v, int digits) {
  static const char* d = "0123456789abcdef";
  std::string s(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0 && v; --i, v >>= 4) s[static_cast<size_t>(i)] = d[v & 15];
  return s;
}

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

zmq::message_t copyOf(const zmq::message_t& m) { return zmq::message_t(m.data(), m.size()); }

// A runner's ready as a booted one sends it: an id like the scaler's (`pool-` + 12 hex), a
// 64-hex boot token, four functions, a host name.
msg::Ready readyOf(uint32_t n) {
  msg::Ready r;
  r.runnerId = std::string(kPool) + "-" + hex(mix(n), 12);
  r.pool = kPool;
  r.slots = kSlotsPerRunner;
  r.functions = functions();
  for (int i = 0; i < 4; ++i) r.token += hex(mix(n * 4 + i + 1), 16);
  r.pid = 1000 + n;
  r.host = "machine-" + hex(mix(~uint64_t{n}), 10);
  return r;
}

// Counts and discards; keeps the jobs dispatched (connection, job) so the simulated runners can
// answer them in order.
class DiscardOutbox final : public Outbox {
 public:
  std::deque<std::pair<std::string, JobId>> dispatched;
  uint64_t toClients = 0, toRunners = 0;
  SendStatus toClient(const std::string&, zmq::message_t, zmq::message_t* payload, JobId) override {
    if (payload) *payload = zmq::message_t();
    ++toClients;
    return SendStatus::Ok;
  }
  SendStatus toRunner(const std::string& routingId, zmq::message_t, zmq::message_t* payload, JobId job) override {
    if (payload) *payload = zmq::message_t();
    ++toRunners;
    if (job != 0) dispatched.emplace_back(routingId, job);
    return SendStatus::Ok;
  }
};

// A runner's jobDone header for any job id: Cap'n Proto encodes a fixed-shape message with the id
// at a fixed offset, so one encoding with a sentinel id is patched per job (the runner's work,
// kept out of the broker's time). Checked by decoding a patched copy.
class JobDoneHeader {
 public:
  explicit JobDoneHeader(uint64_t instance) {
    constexpr uint64_t kSentinel = 0x5CA1AB1E0DDBA11Full;
    template_ = encode(msg::JobDone{kSentinel, ErrorCode::None, "", instance});
    auto* bytes = static_cast<const char*>(template_.data());
    for (size_t i = 0; i + 8 <= template_.size(); ++i) {
      uint64_t v;
      std::memcpy(&v, bytes + i, 8);
      if (v == kSentinel) {
        offset_ = i;
        break;
      }
    }
    constexpr JobId kProbe = 0x0000'1234'0000'5678ull;
    auto d = decode(make(kProbe));
    if (offset_ == kNone || !d.ok() || std::get<msg::JobDone>(*d.message).jobId != kProbe)
      throw std::runtime_error("scale: could not patch a jobDone header");
  }
  zmq::message_t make(JobId job) const {
    zmq::message_t m = copyOf(template_);
    if (offset_ != kNone) std::memcpy(static_cast<char*>(m.data()) + offset_, &job, 8);
    return m;
  }

 private:
  static constexpr size_t kNone = ~size_t{0};
  zmq::message_t template_;
  size_t offset_ = kNone;
};

// One broker and its simulated peers. Messages arrive as a ROUTER delivers them (routing id
// first; clients add an empty delimiter) and go through the server's decode boundary.
struct Sim {
  explicit Sim(const BrokerOptions& o) : core(o, clock, outbox), done(core.instance()) {
    limits.maxHeaderBytes = o.maxHeaderBytes;
  }
  ManualClock clock;
  DiscardOutbox outbox;
  BrokerCore core;
  JobDoneHeader done;
  DecodeLimits limits;
  Frames frames;
  const std::string result = std::string(kPayload, 'r');

  void fromRunner(const std::string& peer, zmq::message_t header, zmq::message_t payload = {}) {
    frames.clear();
    frames.emplace_back(peer.data(), peer.size());
    frames.push_back(std::move(header));
    if (payload.size() > 0) frames.push_back(std::move(payload));
    deliverFromRunner(core, limits, frames, false);
  }
  void fromClient(const std::string& peer, zmq::message_t header, zmq::message_t payload = {}) {
    frames.clear();
    frames.emplace_back(peer.data(), peer.size());
    frames.emplace_back();
    frames.push_back(std::move(header));
    if (payload.size() > 0) frames.push_back(std::move(payload));
    deliverFromClient(core, limits, frames, false);
  }
  // The oldest job dispatched is answered by its runner: jobDone + a 64 B result.
  void completeOldest() {
    auto [peer, job] = std::move(outbox.dispatched.front());
    outbox.dispatched.pop_front();
    fromRunner(peer, done.make(job), zmq::message_t(result.data(), result.size()));
  }
  void registerRunners(uint32_t first, uint32_t count, Progress* progress) {
    for (uint32_t n = first; n < first + count; ++n) {
      fromRunner(routingId(n), encode(readyOf(n)));
      if (progress && (n + 1) % 2000 == 0) progress->live("scale: " + std::to_string(n + 1) + " runners registered");
    }
    const Pool* pool = core.findPool(kPool);
    if (!pool || pool->runners.size() != first + count)
      throw std::runtime_error("scale: " + std::to_string(first + count) + " runners should be registered, the broker has " +
                               std::to_string(pool ? pool->runners.size() : 0));
  }
  size_t runnerCount() const { return core.findPool(kPool) ? core.findPool(kPool)->runners.size() : 0; }
};

BrokerOptions brokerOptions() {
  BrokerOptions o;  // the defaults flame-broker runs with: 1 s heartbeats, liveness 3, 30 s timeout
  return o;
}

std::vector<zmq::message_t> submitHeaders() {
  std::vector<zmq::message_t> submits;
  submits.reserve(kRequestIds);
  for (uint64_t i = 0; i < kRequestIds; ++i)
    submits.push_back(encode(msg::Submit{i + 1, Mode::Call, kPool, kFunction, 0, false, 0, false}));
  return submits;
}

// ---------------------------------------------------------------- memory

struct Growth {
  double heapPer = 0, rssPer = 0, usPer = 0;
};

Growth perItem(uint64_t heap0, uint64_t heap1, uint64_t rss0, uint64_t rss1, double seconds, uint64_t n) {
  Growth g;
  g.heapPer = (static_cast<double>(heap1) - static_cast<double>(heap0)) / static_cast<double>(n);
  g.rssPer = (static_cast<double>(rss1) - static_cast<double>(rss0)) / static_cast<double>(n);
  g.usPer = seconds * 1e6 / static_cast<double>(n);
  return g;
}

// ---------------------------------------------------------------- sweep

struct SecondFigures {
  double cpuMs = 0;                               // thread CPU over the whole simulated second
  double runnerMs = 0, clientMs = 0, tickMs = 0;  // thread CPU of each part, clock reads deducted
  double sweepMs = 0;                             // the dearest single tick(): the one that swept
  uint64_t toRunners = 0, toClients = 0;
};

// CPU time of one CLOCK_THREAD_CPUTIME_ID read (a system call in this VM, a few hundred ns),
// deducted from the parts the simulated second times with it.
double cpuClockReadSeconds() {
  constexpr int kReads = 2000;
  double t0 = threadCpuSeconds();
  for (int i = 0; i < kReads; ++i) (void)threadCpuSeconds();
  return (threadCpuSeconds() - t0) / (kReads + 1);
}

// One simulated second: every runner and every session heartbeats once, spread evenly over
// kStepsPerSecond loop iterations of 1 ms, each ending with tick() as BrokerServer's loop does
// (the sweep, due once per heartbeat interval, runs inside one of them). Each part is timed with
// the thread's CPU clock, so time the thread spends preempted on a shared machine is not counted.
SecondFigures simulateSecond(Sim& sim, uint32_t runners, uint32_t sessions, double readCost) {
  const auto runnerBeat = encode(msg::Heartbeat{0, 1000, sim.core.instance()});
  const auto clientBeat = encode(msg::Heartbeat{0, 1000});
  SecondFigures f;
  uint64_t runnersBefore = sim.outbox.toRunners, clientsBefore = sim.outbox.toClients;
  double inRunners = 0, inClients = 0, inTick = 0, worstTick = 0;
  const double start = threadCpuSeconds();
  double t0 = start;
  for (int step = 0; step < kStepsPerSecond; ++step) {
    sim.clock.advance(Duration(1));
    uint64_t r0 = uint64_t{runners} * step / kStepsPerSecond, r1 = uint64_t{runners} * (step + 1) / kStepsPerSecond;
    uint64_t c0 = uint64_t{sessions} * step / kStepsPerSecond, c1 = uint64_t{sessions} * (step + 1) / kStepsPerSecond;
    for (uint64_t r = r0; r < r1; ++r) sim.fromRunner(routingId(static_cast<uint32_t>(r)), copyOf(runnerBeat));
    double t1 = threadCpuSeconds();
    for (uint64_t c = c0; c < c1; ++c) sim.fromClient(routingId(static_cast<uint32_t>(c)), copyOf(clientBeat));
    double t2 = threadCpuSeconds();
    sim.core.tick();
    double t3 = threadCpuSeconds();
    inRunners += t1 - t0 - readCost;
    inClients += t2 - t1 - readCost;
    inTick += t3 - t2 - readCost;
    worstTick = std::max(worstTick, t3 - t2 - readCost);
    t0 = t3;
  }
  f.cpuMs = (t0 - start - 3 * kStepsPerSecond * readCost) * 1e3;
  f.runnerMs = std::max(0.0, inRunners) * 1e3;
  f.clientMs = std::max(0.0, inClients) * 1e3;
  f.tickMs = std::max(0.0, inTick) * 1e3;
  f.sweepMs = worstTick * 1e3;
  f.toRunners = sim.outbox.toRunners - runnersBefore;
  f.toClients = sim.outbox.toClients - clientsBefore;
  return f;
}

// ---------------------------------------------------------------- dispatch

// `jobs` calls from kActiveClients clients with kInFlight in flight: each submit is dispatched at
// once (a slot is always free), and once kInFlight are out the oldest is answered. Returns the
// thread's CPU seconds (a rate per busy core, not disturbed by time spent preempted on a shared
// machine); everything in flight is answered (untimed) before it returns.
double measureDispatch(Sim& sim, const std::vector<zmq::message_t>& submits, uint64_t jobs) {
  const std::string payload(kPayload, 'x');
  std::vector<std::string> clients;
  for (uint32_t c = 0; c < kActiveClients; ++c) clients.push_back(routingId(c));
  uint64_t results0 = sim.outbox.toClients;
  const double start = threadCpuSeconds();
  for (uint64_t i = 0; i < jobs; ++i) {
    if (i % kBatch == 0) sim.core.tick();
    sim.fromClient(clients[(i / kRequestIds) % kActiveClients], copyOf(submits[i % kRequestIds]),
                   zmq::message_t(payload.data(), payload.size()));
    if (sim.outbox.dispatched.size() >= kInFlight) sim.completeOldest();
  }
  double seconds = threadCpuSeconds() - start;
  while (!sim.outbox.dispatched.empty()) sim.completeOldest();
  if (sim.core.jobCount() != 0 || sim.outbox.toClients - results0 != jobs)
    throw std::runtime_error("scale: dispatch lost jobs (" + std::to_string(sim.core.jobCount()) + " still held, " +
                             std::to_string(sim.outbox.toClients - results0) + " results for " + std::to_string(jobs) +
                             " calls)");
  return seconds;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double round1(double v) { return std::round(v * 10) / 10; }
double round3(double v) { return std::round(v * 1000) / 1000; }

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
std::string kib(double bytes) { return fixed(bytes, 0) + " B"; }

const char* kParts =
    "in-process simulated peers, no sockets: one BrokerCore fed encoded messages through broker/inbound.h "
    "(decode counted), ManualClock, an outbox that counts and discards; times are this thread's CPU time "
    "(jobs/s = jobs per CPU second)";

Row baseRow(const std::string& mode, uint32_t clients, uint32_t runners) {
  Row row;
  row.scenario = "scale";
  row.mode = mode;
  row.clients = clients;
  row.runners = runners;
  row.payload = 0;
  row.transport = "none";
  row.parts = kParts;
  return row;
}

// ---------------------------------------------------------------- real sockets

// The cross-check with real connections: a flame-broker process, `count` lean runners (one
// DEALER each, RunnerFarm) registered over tcp loopback, then `count` client DEALERs that each
// make one call and stay connected. RSS of the broker process (from /proc) before and after
// each step, per connection: the core's state plus what libzmq keeps per connection.
Row measureRealSockets(const Settings& settings, Progress& progress, uint32_t count) {
  ScratchDir scratch;
  BrokerProcess broker = startBrokerProcess(
      settings.binDir, scratch.path(),
      {"--clients", "tcp://127.0.0.1:*", "--runners", "tcp://127.0.0.1:*", "--log-level", "warn"});
  const pid_t pid = broker.process->pid();
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  settle();
  const uint64_t rss0 = residentBytes(pid).value_or(0);

  FarmOptions f;
  f.endpoint = broker.runners;
  f.pool = kPool;
  f.functions = functions();
  f.runners = count;
  f.slotsPerRunner = 1;
  RunnerFarm farm(f);
  if (!farm.waitWelcomed(Duration(60'000)))
    throw std::runtime_error("scale: " + std::to_string(count) + " socket runners were not all welcomed " + farm.failure());
  settle();
  const uint64_t rss1 = residentBytes(pid).value_or(0);

  zmq::context_t ctx;
  std::vector<zmq::socket_t> clients;
  clients.reserve(count);
  const auto submit = encode(msg::Submit{1, Mode::Call, kPool, kFunction, 0, false, 0, false});
  const std::string payload(kPayload, 'x');
  for (uint32_t c = 0; c < count; ++c) {
    clients.push_back(connectDealer(ctx, broker.clients));
    clients.back().set(zmq::sockopt::rcvtimeo, 30'000);
  }
  // Each sends once its connection is up (the sockets queue nothing before: ZMQ_IMMEDIATE).
  for (auto& socket : clients) {
    zmq::pollitem_t item{static_cast<void*>(socket), 0, ZMQ_POLLOUT, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(10'000)) <= 0)
      throw std::runtime_error("scale: a socket client could not connect within 10 s");
    zmq::message_t frames[3] = {zmq::message_t(), copyOf(submit), zmq::message_t(payload.data(), payload.size())};
    if (sendFrames(socket, frames, 3) != SendStatus::Ok) throw std::runtime_error("scale: a socket client could not send");
  }
  uint32_t results = 0;
  for (auto& socket : clients) {
    zmq::message_t frame;
    std::vector<zmq::message_t> got;
    do {
      if (!socket.recv(frame)) throw std::runtime_error("scale: a socket client got no answer within 30 s");
      got.push_back(std::move(frame));
      frame = zmq::message_t();
    } while (got.back().more());
    if (got.size() >= 2) {
      auto d = decode(got[1]);
      if (d.ok() && std::holds_alternative<msg::Result>(*d.message)) ++results;
    }
  }
  if (results != count)
    throw std::runtime_error("scale: " + std::to_string(count - results) + " socket calls did not succeed");
  settle();
  const uint64_t rss2 = residentBytes(pid).value_or(0);

  Row row = baseRow("sockets", count, count);
  row.transport = "tcp";
  row.payload = kPayload;
  row.window = 1;
  row.completed = results;
  double perRunner = (static_cast<double>(rss1) - static_cast<double>(rss0)) / count;
  double perClient = (static_cast<double>(rss2) - static_cast<double>(rss1)) / count;
  row.extra["rss_bytes_per_runner_connection"] = std::round(perRunner);
  row.extra["rss_bytes_per_client_connection"] = std::round(perClient);
  row.extra["broker_rss_mib"] = round1(static_cast<double>(rss2) / (1 << 20));
  row.parts = "a real flame-broker process over tcp loopback (RSS from /proc/<pid>/status): lean runners "
              "(RunnerFarm, one DEALER each) and one DEALER per client session, each making one call";
  progress.finished("scale sockets runners=" + std::to_string(count),
                    "RSS " + kib(perRunner) + " per runner connection, " + kib(perClient) + " per client connection");
  return row;
}

}  // namespace

size_t scaleMeasurements(const Settings&) { return 8; }

std::vector<Row> runScale(const Settings& settings, Progress& progress, std::vector<TargetCheck>& targets) {
  const uint32_t R = settings.scaleRunners, S = std::max(settings.scaleSessions, kActiveClients);
  const uint64_t jobs = settings.scaleJobs;
  const int pairs = settings.smoke ? 1 : 5;
  const int measuredSeconds = settings.smoke ? 1 : 3;
  if (R < kSmallRunners) throw std::runtime_error("scale: --scale-runners must be at least 10");
  std::vector<Row> rows;

  // ---- memory: the big broker, built up from empty.
  Sim big(brokerOptions());
  const auto submits = submitHeaders();
  malloc_trim(0);
  uint64_t heap0 = heapInUse(), rss0 = rss();
  double t0 = threadCpuSeconds();
  big.registerRunners(0, R, &progress);
  double registerSeconds = threadCpuSeconds() - t0;
  uint64_t heap1 = heapInUse(), rss1 = rss();
  Growth perRunner = perItem(heap0, heap1, rss0, rss1, registerSeconds, R);
  {
    Row row = baseRow("runners", 0, R);
    row.seconds = registerSeconds;
    row.extra["heap_bytes_per_runner"] = std::round(perRunner.heapPer);
    row.extra["rss_bytes_per_runner"] = std::round(perRunner.rssPer);
    row.extra["us_per_ready"] = round1(perRunner.usPer);
    row.extra["sizeof_RunnerState"] = sizeof(RunnerState);
    row.extra["functions_per_runner"] = functions().size();
    row.extra["slots_per_runner"] = kSlotsPerRunner;
    progress.finished("scale runners=" + std::to_string(R),
                      kib(perRunner.heapPer) + " heap per idle runner (RSS " + kib(perRunner.rssPer) + ")");
    rows.push_back(row);
  }

  // Each session is a client that made one call (submit -> job -> jobDone -> result) and is now
  // idle: the state a session keeps after work (its request map has grown to its first size).
  uint64_t heap2 = heapInUse(), rss2 = rss();
  t0 = threadCpuSeconds();
  {
    const std::string payload(kPayload, 'x');
    for (uint32_t c = 0; c < S; ++c) {
      big.fromClient(routingId(c), copyOf(submits[0]), zmq::message_t(payload.data(), payload.size()));
      if (big.outbox.dispatched.empty()) throw std::runtime_error("scale: a session's call was not dispatched");
      big.completeOldest();
      if ((c + 1) % 20'000 == 0) progress.live("scale: " + std::to_string(c + 1) + " client sessions");
    }
  }
  double sessionSeconds = threadCpuSeconds() - t0;
  uint64_t heap3 = heapInUse(), rss3 = rss();
  if (big.core.clientSessionCount() != S || big.core.jobCount() != 0)
    throw std::runtime_error("scale: expected " + std::to_string(S) + " idle sessions, the broker has " +
                             std::to_string(big.core.clientSessionCount()));
  Growth perSession = perItem(heap2, heap3, rss2, rss3, sessionSeconds, S);
  // A session that never made a request (one heartbeat), on a broker of its own that is then
  // dropped: the floor of what a session costs.
  double freshPerSession = 0;
  {
    Sim fresh(brokerOptions());
    const auto beat = encode(msg::Heartbeat{0, 1000});
    uint64_t before = heapInUse();
    for (uint32_t c = 0; c < S; ++c) fresh.fromClient(routingId(c), copyOf(beat));
    freshPerSession = (static_cast<double>(heapInUse()) - static_cast<double>(before)) / S;
    if (fresh.core.clientSessionCount() != S) throw std::runtime_error("scale: heartbeat-only sessions were not kept");
  }

  {
    Row row = baseRow("sessions", S, R);
    row.seconds = sessionSeconds;
    row.extra["heap_bytes_per_session"] = std::round(perSession.heapPer);
    row.extra["heap_bytes_per_session_without_request"] = std::round(freshPerSession);
    row.extra["rss_bytes_per_session"] = std::round(perSession.rssPer);
    row.extra["us_per_first_call"] = round1(perSession.usPer);
    progress.finished("scale sessions=" + std::to_string(S),
                      kib(perSession.heapPer) + " heap per idle session (RSS " + kib(perSession.rssPer) + ")");
    rows.push_back(row);
  }
  targets.push_back({"issue 9: <= 4 KiB per idle runner (heap)",
                     kib(perRunner.heapPer) + " (" + std::to_string(R) + " runners, RSS " + kib(perRunner.rssPer) + ")",
                     perRunner.heapPer <= 4096});
  targets.push_back({"issue 9: <= 1 KiB per idle client session (heap)",
                     kib(perSession.heapPer) + " (" + std::to_string(S) + " sessions, RSS " + kib(perSession.rssPer) + ")",
                     perSession.heapPer <= 1024});

  // ---- heartbeats: simulated seconds in which every peer heartbeats once; the first warms up.
  {
    std::vector<SecondFigures> seconds;
    const double readCost = cpuClockReadSeconds();
    for (int s = 0; s < 1 + measuredSeconds; ++s) {
      SecondFigures f = simulateSecond(big, R, S, readCost);
      if (s > 0) seconds.push_back(f);
    }
    if (big.runnerCount() != R || big.core.clientSessionCount() != S)
      throw std::runtime_error("scale: peers were lost while heartbeating (" + std::to_string(big.runnerCount()) +
                               " runners, " + std::to_string(big.core.clientSessionCount()) + " sessions left)");
    // The median second by CPU.
    std::sort(seconds.begin(), seconds.end(), [](auto& a, auto& b) { return a.cpuMs < b.cpuMs; });
    const SecondFigures& f = seconds[seconds.size() / 2];
    Row row = baseRow("sweep", S, R);
    row.seconds = 1;
    row.extra["cpu_ms_per_s"] = round1(f.cpuMs);
    row.extra["share_of_a_core"] = round3(f.cpuMs / 1000);
    row.extra["runner_heartbeats_ms"] = round1(f.runnerMs);
    row.extra["client_heartbeats_ms"] = round1(f.clientMs);
    row.extra["tick_ms"] = round1(f.tickMs);
    row.extra["sweep_tick_ms"] = round1(f.sweepMs);
    row.extra["ns_per_runner_heartbeat"] = std::round(f.runnerMs * 1e6 / R);
    row.extra["ns_per_client_heartbeat"] = std::round(f.clientMs * 1e6 / S);
    row.extra["clock_read_ns"] = std::round(readCost * 1e9);
    row.extra["sent_to_runners"] = f.toRunners;
    row.extra["sent_to_clients"] = f.toClients;
    row.extra["heartbeats_in"] = uint64_t{R} + S;
    progress.finished("scale sweep", fixed(f.cpuMs, 1) + " ms CPU per simulated second (tick " + fixed(f.tickMs, 1) +
                                         " ms, the sweeping one " + fixed(f.sweepMs, 1) + " ms)");
    rows.push_back(row);
  }

  // ---- dispatch: 10 runners vs R, same jobs, same slots per runner, same jobs in flight.
  Sim small(brokerOptions());
  small.registerRunners(0, kSmallRunners, nullptr);
  for (Placement placement : {Placement::Pack, Placement::Spread}) {
    const bool pack = placement == Placement::Pack;
    for (Sim* sim : {&small, &big}) {
      sim->core.declarePool(kPool, PoolSettings{placement, Duration(30000), 0});
      measureDispatch(*sim, submits, std::max<uint64_t>(jobs / 2, 1000));  // warm-up, not counted
    }
    std::vector<double> smallRates, bigRates, ratios;
    for (int p = 0; p < pairs; ++p) {
      double sSmall = 0, sBig = 0;
      if (p % 2 == 0) {
        sSmall = measureDispatch(small, submits, jobs);
        sBig = measureDispatch(big, submits, jobs);
      } else {
        sBig = measureDispatch(big, submits, jobs);
        sSmall = measureDispatch(small, submits, jobs);
      }
      smallRates.push_back(static_cast<double>(jobs) / sSmall);
      bigRates.push_back(static_cast<double>(jobs) / sBig);
      ratios.push_back(sSmall / sBig);
    }
    double ratio = median(ratios);
    const std::string mode = pack ? "pack" : "spread";
    for (bool isBig : {false, true}) {
      double rate = median(isBig ? bigRates : smallRates);
      Row row = baseRow(mode, kActiveClients, isBig ? R : kSmallRunners);
      row.payload = kPayload;
      row.window = kInFlight / kActiveClients;
      row.jobsPerS = rate;
      row.completed = jobs;
      row.seconds = static_cast<double>(jobs) / rate;
      row.extra["ns_per_job"] = std::round(1e9 / rate);
      row.extra["slots_per_runner"] = kSlotsPerRunner;
      row.extra["in_flight"] = kInFlight;
      if (isBig) {
        row.extra["idle_sessions"] = S - kActiveClients;
        row.extra["vs_10_runners"] = round3(ratio);
        nlohmann::ordered_json all = nlohmann::ordered_json::array();
        for (double r : ratios) all.push_back(round3(r));
        row.extra["pair_ratios"] = all;
      }
      progress.finished("scale dispatch " + mode + " runners=" + std::to_string(row.runners),
                        humanRate(rate) + " jobs/s" + (isBig ? ", " + fixed(ratio, 3) + " x 10 runners" : ""));
      rows.push_back(row);
    }
    if (pack) {
      char measured[160];
      std::snprintf(measured, sizeof measured, "%.3f x (%s vs %s jobs/s; pairs", ratio,
                    humanRate(median(bigRates)).c_str(), humanRate(median(smallRates)).c_str());
      std::string m = measured;
      for (double r : ratios) m += " " + fixed(r, 3);
      m += ")";
      targets.push_back({"issue 9: dispatch at " + std::to_string(R) + " runners >= 0.8 x at 10", m, ratio >= 0.8});
    }
  }

  // ---- the same with real connections, at a count the descriptor limit allows.
  rows.push_back(measureRealSockets(settings, progress, settings.smoke ? 100 : 1000));
  return rows;
}

}  // namespace flame::bench
