// The library path: flame::Client (callAsync with a completion callback, pipelined) and
// flame::Runner (a worker thread per running job), through an in-process broker. This is what
// an application gets; the lean protocol rows show what the broker itself can do.
#include <algorithm>
#include <atomic>
#include <optional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "bench/measure.h"
#include "client/client.h"
#include "worker/runner.h"

namespace flame::bench {

namespace {
constexpr const char* kLibraryParts =
    "flame::Client (callAsync, callbacks on its I/O thread) + flame::Runner (its fixed pool of worker threads); "
    "broker, runners and clients are in-process threads, each Client/Runner with its own ZeroMQ context";
constexpr Duration kSetupBound{20'000};
constexpr Duration kDrainBound{15'000};

// One client's pipelined loop. Its callbacks run on that client's I/O thread only, so the
// histogram needs no lock; outstanding_ (acq/rel) publishes it to the driver at the end.
class Pipeline {
 public:
  Pipeline(const std::string& endpoint, std::string payload)
      : payload_(std::move(payload)), client_(ClientOptions{endpoint}) {}

  void start(uint32_t window, int64_t warmEnd, int64_t measureEnd) {
    warmEnd_ = warmEnd;
    measureEnd_ = measureEnd;
    for (uint32_t i = 0; i < window; ++i) issue();
  }
  void stopIssuing() { issuing_ = false; }
  uint64_t outstanding() const { return outstanding_.load(std::memory_order_acquire); }
  uint64_t replies() const { return replies_.load(std::memory_order_relaxed); }
  const Histogram& latency() const { return latency_; }
  uint64_t completed() const { return completed_; }
  uint64_t errors() const { return errors_; }

 private:
  void issue() {
    outstanding_.fetch_add(1, std::memory_order_acq_rel);
    int64_t sent = nowNs();
    CallOptions options;
    options.timeout = Duration(30'000);
    client_.callAsync("bench", "noop", payload_, options, [this, sent](CallResult r) {
      int64_t t = nowNs();
      if (!r) ++errors_;
      else if (t >= warmEnd_ && t < measureEnd_) {
        ++completed_;
        latency_.record(static_cast<uint64_t>(t - sent));
      }
      replies_.fetch_add(1, std::memory_order_relaxed);
      if (issuing_.load(std::memory_order_relaxed)) issue();
      outstanding_.fetch_sub(1, std::memory_order_acq_rel);
    });
  }

  std::string payload_;
  int64_t warmEnd_ = 0, measureEnd_ = 0;
  std::atomic<bool> issuing_{true};
  std::atomic<uint64_t> outstanding_{0};
  std::atomic<uint64_t> replies_{0};
  Histogram latency_;
  uint64_t completed_ = 0, errors_ = 0;
  // Last, so it is destroyed first: ~Client fails what is outstanding through the callbacks,
  // which still find every other member alive.
  Client client_;
};
}  // namespace

Row measureLibrary(const Shape& shape, const Settings& settings, Progress& progress) {
  Row row;
  row.scenario = "library";
  row.mode = shape.mode;
  row.clients = shape.clients;
  row.runners = shape.runners;
  row.payload = shape.payload;
  row.transport = transportName(shape.transport);
  row.window = shape.window;
  std::string what = label("library", shape);

  BrokerThread broker(shape.transport);
  struct RunnerThread {
    std::unique_ptr<Runner> runner;
    std::thread thread;
  };
  std::vector<RunnerThread> runners;
  auto stopRunners = [&] {
    for (auto& r : runners) r.runner->requestStop();
    for (auto& r : runners)
      if (r.thread.joinable()) r.thread.join();
  };
  for (uint32_t i = 0; i < shape.runners; ++i) {
    RunnerOptions o;
    o.broker = broker.runnersEndpoint();
    o.pool = "bench";
    o.runnerId = "lib-runner-" + std::to_string(i);
    o.concurrency = settings.libraryConcurrency;
    auto runner = std::make_unique<Runner>(o);
    runner->handle("noop", [](JobContext& job) { return HandlerResult(job.payload()); });
    Runner* raw = runner.get();
    runners.push_back(RunnerThread{std::move(runner), std::thread([raw] { raw->run(); })});
  }

  try {
    // Registration is observed through the broker's status, as an operator would.
    {
      Client probe(ClientOptions{broker.clientsEndpoint()});
      auto until = std::chrono::steady_clock::now() + kSetupBound;
      uint32_t slots = 0;
      while (std::chrono::steady_clock::now() < until) {
        auto st = probe.status(Duration(2000));
        slots = 0;
        if (st)
          for (auto& p : st->pools)
            if (p.name == "bench") slots = p.slotsTotal;
        if (slots >= shape.runners * settings.libraryConcurrency) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (slots < shape.runners * settings.libraryConcurrency)
        throw std::runtime_error(what + ": flame::Runner threads did not register in time");
    }

    std::string payload(shape.payload, 'x');
    std::vector<std::unique_ptr<Pipeline>> pipes;
    for (uint32_t i = 0; i < shape.clients; ++i)
      pipes.push_back(std::make_unique<Pipeline>(broker.clientsEndpoint(), payload));
    int64_t start = nowNs();
    int64_t warmEnd = start + static_cast<int64_t>(settings.warmup.count()) * 1'000'000;
    int64_t measureEnd = warmEnd + static_cast<int64_t>(settings.duration.count()) * 1'000'000;
    for (auto& p : pipes) p->start(shape.window, warmEnd, measureEnd);
    // The driver only watches the clock (and samples CPU); the callbacks keep the windows full.
    std::optional<RoleCpu> cpuStart;
    RoleCpu cpu;
    while (nowNs() < measureEnd) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::clamp<int64_t>((measureEnd - nowNs()) / 1'000'000, 1, 20)));
      if (!cpuStart && nowNs() >= warmEnd) cpuStart = sampleRoleCpu();
      if (progress.enabled() && settings.duration + settings.warmup > Duration(3000)) {
        uint64_t n = 0;
        for (auto& p : pipes) n += p->replies();
        progress.live(what + ": " + std::to_string(n) + " replies");
      }
    }
    if (cpuStart) cpu = sampleRoleCpu() - *cpuStart;
    for (auto& p : pipes) p->stopIssuing();
    auto until = std::chrono::steady_clock::now() + kDrainBound;
    bool drained = false;
    while (!drained && std::chrono::steady_clock::now() < until) {
      drained = true;
      for (auto& p : pipes) drained = drained && p->outstanding() == 0;
      if (!drained) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    LoadStats stats;
    for (auto& p : pipes) {
      stats.latency.merge(p->latency());
      stats.completed += p->completed();
      stats.errors += p->errors();
    }
    stats.seconds = static_cast<double>(measureEnd - warmEnd) / 1e9;
    stats.drained = drained;
    stats.cpu = cpu;
    row.setLoad(stats);
    row.extra["runner_concurrency"] = settings.libraryConcurrency;
    // Destroying a Client with calls outstanding fails them at once, so teardown is bounded.
    pipes.clear();
  } catch (...) {
    stopRunners();
    throw;
  }
  stopRunners();
  row.parts = kLibraryParts;
  progress.finished(what, std::string(humanRate(row.jobsPerS.value_or(0))) + " jobs/s, p50 " +
                              std::to_string(static_cast<int64_t>(row.p50Us.value_or(0))) + " us");
  return row;
}

}  // namespace flame::bench
