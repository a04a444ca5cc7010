// The library path: flame::Client and flame::Runner, through an in-process broker. This is what
// an application gets; the lean protocol rows show what the broker itself can do. Two mixed
// variants tell the two halves apart: flame::Client against lean runners ("library-client"), and
// lean clients against flame::Runner ("library-runner").
//
// Clients: pipelined = callAsync with a completion callback that issues the next call (on the
// client's I/O thread); sync = one application thread per client in a loop of blocking call()s
// (what an application that calls synchronously does, with its thread hand-over).
#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bench/lean_runners.h"
#include "bench/measure.h"
#include "client/client.h"
#include "worker/runner.h"

namespace flame::bench {

namespace {
constexpr Duration kSetupBound{20'000};
constexpr Duration kDrainBound{15'000};
constexpr Duration kCallTimeout{30'000};

// One flame::Client's load. Pipelined: callbacks run on the client's I/O thread only, so the
// histogram needs no lock; outstanding_ (acq/rel) publishes it to the driver at the end.
// Sync: one thread of its own issues blocking call()s; join() publishes its figures.
ClientOptions optionsFor(const std::string& endpoint, zmq::context_t& context) {
  ClientOptions o;
  o.broker = endpoint;
  o.context = &context;  // one ZeroMQ context for the clients, as the lean clients have
  return o;
}

class LibraryClient {
 public:
  LibraryClient(const std::string& endpoint, std::string payload, bool sync, zmq::context_t& context)
      : payload_(std::move(payload)), sync_(sync), client_(optionsFor(endpoint, context)) {}
  ~LibraryClient() { join(); }

  void start(uint32_t window, int64_t warmEnd, int64_t measureEnd) {
    warmEnd_ = warmEnd;
    measureEnd_ = measureEnd;
    if (sync_) {
      outstanding_.store(1, std::memory_order_release);
      thread_ = std::thread([this] { syncLoop(); });
      return;
    }
    for (uint32_t i = 0; i < window; ++i) issue();
  }
  void stopIssuing() { issuing_ = false; }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  uint64_t outstanding() const { return outstanding_.load(std::memory_order_acquire); }
  uint64_t replies() const { return replies_.load(std::memory_order_relaxed); }
  const Histogram& latency() const { return latency_; }
  uint64_t completed() const { return completed_; }
  uint64_t errors() const { return errors_; }

 private:
  void record(const CallResult& r, int64_t sent) {
    int64_t t = nowNs();
    if (!r) ++errors_;
    else if (t >= warmEnd_ && t < measureEnd_) {
      ++completed_;
      latency_.record(static_cast<uint64_t>(t - sent));
    }
    replies_.fetch_add(1, std::memory_order_relaxed);
  }

  void issue() {
    outstanding_.fetch_add(1, std::memory_order_acq_rel);
    int64_t sent = nowNs();
    client_.callAsync("bench", "noop", payload_, CallOptions{.timeout = kCallTimeout}, [this, sent](CallResult r) {
      record(r, sent);
      if (issuing_.load(std::memory_order_relaxed)) issue();
      outstanding_.fetch_sub(1, std::memory_order_acq_rel);
    });
  }

  void syncLoop() {
    while (issuing_.load(std::memory_order_relaxed)) {
      int64_t sent = nowNs();
      record(client_.call("bench", "noop", payload_, CallOptions{.timeout = kCallTimeout}), sent);
    }
    outstanding_.store(0, std::memory_order_release);
  }

  std::string payload_;
  bool sync_;
  int64_t warmEnd_ = 0, measureEnd_ = 0;
  std::atomic<bool> issuing_{true};
  std::atomic<uint64_t> outstanding_{0};
  std::atomic<uint64_t> replies_{0};
  Histogram latency_;
  uint64_t completed_ = 0, errors_ = 0;
  std::thread thread_;
  // Last, so it is destroyed first: ~Client fails what is outstanding through the callbacks,
  // which still find every other member alive.
  Client client_;
};

// flame::Runner threads serving "noop" (echo) in pool "bench".
class LibraryRunners {
 public:
  LibraryRunners(const std::string& endpoint, uint32_t count, uint32_t concurrency, bool inlineHandlers) {
    nameContext(context_, Role::Runners);
    for (uint32_t i = 0; i < count; ++i) {
      RunnerOptions o;
      o.broker = endpoint;
      o.pool = "bench";
      o.runnerId = "lib-runner-" + std::to_string(i);
      o.concurrency = concurrency;
      o.context = &context_;  // one ZeroMQ context for the runners, as the lean runners have
      auto runner = std::make_unique<Runner>(o);
      auto noop = [](JobContext& job) { return HandlerResult(job.payload()); };
      if (inlineHandlers) runner->handleInline("noop", noop);
      else runner->handle("noop", noop);
      Runner* raw = runner.get();
      entries_.push_back(Entry{std::move(runner), std::thread([raw] { raw->run(); })});
    }
  }
  ~LibraryRunners() {
    for (auto& e : entries_) e.runner->requestStop();
    for (auto& e : entries_)
      if (e.thread.joinable()) e.thread.join();
  }

 private:
  struct Entry {
    std::unique_ptr<Runner> runner;
    std::thread thread;
  };
  zmq::context_t context_;  // outlives the runners (declared before them)
  std::vector<Entry> entries_;
};

// Registration is observed through the broker's status, as an operator would.
bool waitForSlots(const std::string& clientsEndpoint, uint32_t slots) {
  Client probe(ClientOptions{clientsEndpoint});
  auto until = std::chrono::steady_clock::now() + kSetupBound;
  while (std::chrono::steady_clock::now() < until) {
    auto st = probe.status(Duration(2000));
    uint32_t total = 0;
    if (st)
      for (auto& p : st->pools)
        if (p.name == "bench") total = p.slotsTotal;
    if (total >= slots) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// flame::Client objects run for the settings' warmup + duration.
LoadStats runLibraryClients(const std::string& endpoint, const Shape& shape, const Settings& settings,
                            Progress& progress, const std::string& what) {
  bool sync = shape.mode == "sync";
  std::string payload(shape.payload, 'x');
  zmq::context_t context;  // outlives the clients (declared before them)
  nameContext(context, Role::Clients);
  std::vector<std::unique_ptr<LibraryClient>> clients;
  for (uint32_t i = 0; i < shape.clients; ++i)
    clients.push_back(std::make_unique<LibraryClient>(endpoint, payload, sync, context));
  int64_t start = nowNs();
  int64_t warmEnd = start + static_cast<int64_t>(settings.warmup.count()) * 1'000'000;
  int64_t measureEnd = warmEnd + static_cast<int64_t>(settings.duration.count()) * 1'000'000;
  for (auto& c : clients) c->start(shape.window, warmEnd, measureEnd);
  // The driver only watches the clock (and samples CPU); the clients keep their windows full.
  std::optional<RoleCpu> cpuStart;
  RoleCpu cpu;
  while (nowNs() < measureEnd) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::clamp<int64_t>((measureEnd - nowNs()) / 1'000'000, 1, 20)));
    if (!cpuStart && nowNs() >= warmEnd) cpuStart = sampleRoleCpu();
    if (progress.enabled() && settings.duration + settings.warmup > Duration(3000)) {
      uint64_t n = 0;
      for (auto& c : clients) n += c->replies();
      progress.live(what + ": " + std::to_string(n) + " replies");
    }
  }
  if (cpuStart) cpu = sampleRoleCpu() - *cpuStart;
  for (auto& c : clients) c->stopIssuing();
  auto until = std::chrono::steady_clock::now() + kDrainBound;
  bool drained = false;
  while (!drained && std::chrono::steady_clock::now() < until) {
    drained = true;
    for (auto& c : clients) drained = drained && c->outstanding() == 0;
    if (!drained) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& c : clients) c->join();
  LoadStats stats;
  for (auto& c : clients) {
    stats.latency.merge(c->latency());
    stats.completed += c->completed();
    stats.errors += c->errors();
  }
  stats.seconds = static_cast<double>(measureEnd - warmEnd) / 1e9;
  stats.drained = drained;
  stats.cpu = cpu;
  // Destroying a Client with calls outstanding fails them at once, so teardown is bounded.
  clients.clear();
  return stats;
}

const char* scenarioName(LibraryMix mix) {
  if (mix.client && mix.runner) return mix.inlineHandlers ? "library-inline" : "library";
  return mix.client ? "library-client" : "library-runner";
}

std::string partsOf(LibraryMix mix, bool sync) {
  std::string clients = !mix.client ? "lean protocol clients (DEALERs in one thread, codec.h)"
                        : sync      ? "flame::Client (blocking call() on one application thread per client)"
                                    : "flame::Client (callAsync, the next call issued from the completion on its I/O thread)";
  std::string runners = mix.runner && mix.inlineHandlers ? "flame::Runner (handleInline: the handler on its I/O thread)"
                        : mix.runner ? "flame::Runner (its handler threads)"
                                   : "lean protocol runners (one thread answering job with jobDone+payload)";
  return clients + " + " + runners +
         "; broker (flame::BrokerServer), runners and clients are in-process threads; the Clients share one ZeroMQ "
         "context and the Runners another (ClientOptions/RunnerOptions::context), as the lean peers do";
}
}  // namespace

Row measureLibrary(const Shape& shape, const Settings& settings, Progress& progress, LibraryMix mix) {
  if (shape.curve) throw std::invalid_argument("the library path has no CURVE variant in flame-bench yet");
  raiseFileLimit();
  Row row;
  row.scenario = scenarioName(mix);
  row.mode = shape.mode;
  row.clients = shape.clients;
  row.runners = shape.runners;
  row.payload = shape.payload;
  row.transport = transportName(shape.transport);
  row.window = shape.window;
  std::string what = label(row.scenario, shape);

  BrokerThread broker(shape.transport);
  std::unique_ptr<LibraryRunners> libraryRunners;
  std::unique_ptr<RunnerFarm> farm;
  if (mix.runner) {
    // Handler threads cost a thread per slot, so those runners have --library-concurrency slots;
    // inline handlers cost nothing per slot, so they get the lean runners' credit (same window).
    uint32_t slots = mix.inlineHandlers ? leanSlotsPerRunner(shape) : settings.libraryConcurrency;
    libraryRunners = std::make_unique<LibraryRunners>(broker.runnersEndpoint(), shape.runners, slots,
                                                      mix.inlineHandlers);
    if (!waitForSlots(broker.clientsEndpoint(), shape.runners * slots))
      throw std::runtime_error(what + ": flame::Runner threads did not register in time");
    row.extra["runner_concurrency"] = slots;
  } else {
    FarmOptions f;
    f.endpoint = broker.runnersEndpoint();
    f.runners = shape.runners;
    f.slotsPerRunner = leanSlotsPerRunner(shape);
    farm = std::make_unique<RunnerFarm>(f);
    if (!farm->waitWelcomed(kSetupBound))
      throw std::runtime_error(what + ": runners were not welcomed in time " + farm->failure());
    row.extra["slots_per_runner"] = f.slotsPerRunner;
  }

  if (mix.client) {
    row.setLoad(runLibraryClients(broker.clientsEndpoint(), shape, settings, progress, what));
  } else {
    LoadOptions o;
    o.endpoint = broker.clientsEndpoint();
    o.kind = LoadKind::Call;
    o.clients = shape.clients;
    o.window = shape.window;
    o.payload = shape.payload;
    LoadGenerator load(o);
    row.setLoad(load.run(planFor(settings)));
  }
  row.parts = partsOf(mix, shape.mode == "sync");
  progress.finished(what, std::string(humanRate(row.jobsPerS.value_or(0))) + " jobs/s, p50 " +
                              std::to_string(static_cast<int64_t>(row.p50Us.value_or(0))) + " us");
  return row;
}

}  // namespace flame::bench
