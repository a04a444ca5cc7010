// memory: the RSS of a real flame-broker process holding 0, 100k and 1M queued jobs.
//
// The pool has no runner, so jobs stay queued: a lean runner registers pool "mem" and leaves at
// once (the pool outlives it). Jobs are casts (answered with `accepted` as soon as they are
// queued, which paces the filling client) with an infinite timeout and link = false, so
// nothing expires and no client liveness is involved. Each step's count is checked against the
// broker's own status (queued) before RSS is read from /proc/<pid>/status.
#include <unistd.h>

#include <thread>

#include "bench/broker_process.h"
#include "bench/lean_runners.h"
#include "bench/load.h"
#include "bench/scenarios/scenarios.h"
#include "client/client.h"

namespace flame::bench {

namespace {
constexpr const char* kPool = "mem";
constexpr size_t kPayload = 64;
constexpr uint32_t kFillWindow = 2000;

std::optional<uint64_t> queued(Client& client) {
  auto st = client.status(Duration(5000));
  if (!st) return std::nullopt;
  for (auto& p : st->pools)
    if (p.name == kPool) return p.queued;
  return std::nullopt;
}

// Waits (bounded) until the broker reports `want` queued jobs in the pool.
bool waitQueued(Client& client, uint64_t want, Duration bound) {
  auto until = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < until) {
    auto q = queued(client);
    if (q && *q == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}
}  // namespace

Rows runMemory(const Settings& settings, Progress& progress) {
  ScratchDir scratch;
  // Either a real flame-broker process (the figure that counts) or, for diagnosis, an
  // in-process broker whose context options we control (then RSS is this whole process's).
  BrokerProcess process;
  std::unique_ptr<BrokerThread> thread;
  std::string clientsEndpoint, runnersEndpoint;
  pid_t pid = getpid();
  if (settings.memoryInProcess) {
    thread = std::make_unique<BrokerThread>(Transport::Tcp, BrokerOptions{}, settings.zeroCopyRecv);
    clientsEndpoint = thread->clientsEndpoint();
    runnersEndpoint = thread->runnersEndpoint();
  } else {
    process = startBrokerProcess(settings.binDir, scratch.path(),
                                 {"--clients", "tcp://127.0.0.1:*", "--runners", "tcp://127.0.0.1:*", "--log-level", "warn"});
    clientsEndpoint = process.clients;
    runnersEndpoint = process.runners;
    pid = process.process->pid();
  }
  {
    FarmOptions f;
    f.endpoint = runnersEndpoint;
    f.pool = kPool;
    f.leaveAfterWelcome = true;
    RunnerFarm farm(f);
    if (!farm.waitWelcomed(Duration(10'000))) throw std::runtime_error("memory: the registering runner got no welcome " + farm.failure());
  }
  Client status(ClientOptions{clientsEndpoint});
  if (!waitQueued(status, 0, Duration(10'000))) throw std::runtime_error("memory: pool 'mem' did not appear");
  // Let the broker settle (allocator, first connections) before the baseline.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const uint64_t base = residentBytes(pid).value_or(0);

  Rows rows;
  std::vector<uint64_t> counts = settings.memoryQueued;
  std::sort(counts.begin(), counts.end());
  uint64_t have = 0;
  for (uint64_t want : counts) {
    std::string what = "memory queued=" + std::to_string(want);
    auto t0 = std::chrono::steady_clock::now();
    if (want > have) {
      LoadOptions o;
      o.endpoint = clientsEndpoint;
      o.kind = LoadKind::Cast;
      o.clients = 1;
      o.window = kFillWindow;
      o.payload = kPayload;
      o.pool = kPool;
      o.timeoutMs = kInfiniteMs;
      o.link = false;
      o.maxJobs = want - have;
      LoadPlan plan;
      plan.warmup = Duration(0);
      plan.measure = kInfinite;
      plan.drainBound = Duration(30'000);
      if (progress.enabled())
        plan.onProgress = [&progress, what, have](uint64_t n) {
          progress.live(what + ": " + std::to_string(have + n) + " queued");
        };
      LoadStats stats = LoadGenerator(o).run(plan);
      if (stats.errors > 0 || !stats.drained)
        throw std::runtime_error(what + ": " + std::to_string(stats.errors) + " casts were refused");
      have = want;
    }
    if (!waitQueued(status, want, Duration(30'000)))
      throw std::runtime_error(what + ": the broker does not report " + std::to_string(want) + " queued jobs");
    const uint64_t rss = residentBytes(pid).value_or(0);
    double fillSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    Row row;
    row.scenario = "memory";
    row.mode = "queued";
    row.payload = kPayload;
    row.window = kFillWindow;
    row.clients = 1;
    row.seconds = fillSeconds;
    row.extra["queued"] = want;
    row.extra["rss_mib"] = std::round(static_cast<double>(rss) / (1 << 20) * 10) / 10;
    if (want > 0) {
      double perJob = (static_cast<double>(rss) - static_cast<double>(base)) / static_cast<double>(want);
      row.extra["bytes_per_job"] = std::round(perJob);
      row.extra["bytes_per_job_beyond_payload"] = std::round(perJob - static_cast<double>(kPayload));
    }
    if (settings.memoryInProcess) {
      row.extra["broker"] = settings.zeroCopyRecv ? "in-process" : "in-process, ZMQ_ZERO_COPY_RECV=0";
      row.parts = "DIAGNOSIS: in-process broker thread, RSS of the whole flame-bench process; lean cast client";
    } else {
      row.parts = "a real flame-broker process (RSS from /proc/<pid>/status); lean cast client in-process";
    }
    progress.finished(what, "RSS " + row.extra["rss_mib"].dump() + " MiB" +
                                (want ? ", " + row.extra["bytes_per_job"].dump() + " B/job" : std::string()));
    rows.push_back(row);
  }
  return rows;
}

}  // namespace flame::bench
