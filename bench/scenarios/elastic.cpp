// elastic: a burst of K jobs on a `process` pool with min 0, through a real flame-broker
// process started with a generated TOML config; the pool's runners are real flame-worker
// processes booted by the broker's scaler. Reports time to the first result, time until all
// complete, runners booted (the pool's boot counter) and the peak seen, and how long after the
// last result the pool is back to zero runners (idle_shutdown_after + drain).
#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "bench/broker_process.h"
#include "bench/scenarios/scenarios.h"
#include "client/client.h"

namespace flame::bench {

namespace {
constexpr const char* kPool = "burst";

std::string toml(const Settings& s, const std::string& worker) {
  std::string t;
  t += "[broker]\n";
  t += "clients = \"tcp://127.0.0.1:*\"\n";
  t += "runners = \"tcp://127.0.0.1:*\"\n";
  t += "heartbeat_interval = \"1s\"\n";
  t += "log_level = \"warn\"\n";
  t += "orphan_sweep_interval = \"1h\"\n\n";
  t += std::string("[pools.") + kPool + "]\n";
  t += "backend = \"process\"\n";
  t += "min = 0\n";
  t += "max = " + std::to_string(s.poolMax) + "\n";
  t += "max_concurrency = " + std::to_string(s.poolConcurrency) + "\n";
  t += "idle_shutdown_after = \"" + std::to_string(s.idleShutdown.count()) + "ms\"\n";
  t += "boot_timeout = \"30s\"\n";
  t += "shutdown_timeout = \"2s\"\n";
  t += "timeout = \"120s\"\n";
  t += "max_queue = 0\n\n";
  t += std::string("[pools.") + kPool + ".process]\n";
  t += "command = [\"" + worker + "\", \"--log-level\", \"warn\"]\n";
  t += "stop_grace = \"2s\"\n";
  return t;
}

struct PoolView {
  uint32_t runners = 0;
  uint32_t booting = 0;
  uint64_t boots = 0;
  bool found = false;
};

PoolView view(Client& client) {
  PoolView v;
  auto st = client.status(Duration(5000));
  if (!st) return v;
  for (auto& p : st->pools)
    if (p.name == kPool) {
      v.runners = static_cast<uint32_t>(p.runners.size());
      v.booting = p.booting;
      v.boots = p.boots;
      v.found = true;
    }
  return v;
}

double msSince(std::chrono::steady_clock::time_point t0, std::chrono::steady_clock::time_point t) {
  return std::round(std::chrono::duration<double, std::milli>(t - t0).count() * 10) / 10;
}
}  // namespace

Rows runElastic(const Settings& settings, Progress& progress) {
  using Clock = std::chrono::steady_clock;
  ScratchDir scratch;
  std::string worker = requireBinary(settings.binDir, "flame-worker");
  std::string config = scratch.path() + "/flame.toml";
  std::ofstream(config) << toml(settings, worker);
  BrokerProcess broker = startBrokerProcess(settings.binDir, scratch.path(), {"--config", config});

  // Declared before the client: ~Client fails what is still outstanding through the callbacks,
  // which must find these alive.
  const uint32_t k = settings.burstJobs;
  std::mutex mutex;
  Clock::time_point first{}, last{};
  std::atomic<uint32_t> done{0}, failed{0};
  std::string firstError;

  Client client(ClientOptions{broker.clients});
  if (!view(client).found) throw std::runtime_error("elastic: the broker does not know pool 'burst'");
  CallOptions options;
  options.timeout = Duration(120'000);
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < k; ++i) {
    client.callAsync(kPool, "sleep", std::to_string(settings.burstJobMs), options, [&](CallResult r) {
      auto t = Clock::now();
      {
        std::lock_guard lock(mutex);
        if (first == Clock::time_point{}) first = t;
        last = t;
        if (!r && firstError.empty()) firstError = r.error().toString();
      }
      if (!r) failed.fetch_add(1);
      done.fetch_add(1);
    });
  }
  // Watch the pool while the burst runs: the peak number of runners (bounded wait).
  uint32_t peak = 0;
  const auto burstBound = t0 + std::chrono::seconds(150);
  while (done.load() < k && Clock::now() < burstBound) {
    PoolView v = view(client);
    peak = std::max(peak, v.runners);
    progress.live("elastic: " + std::to_string(done.load()) + "/" + std::to_string(k) + " done, " +
                  std::to_string(v.runners) + " runners, " + std::to_string(v.booting) + " booting");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (done.load() < k) throw std::runtime_error("elastic: the burst did not complete within 150 s");
  PoolView after = view(client);
  peak = std::max(peak, after.runners);

  // Back to zero: every runner idle for idle_shutdown_after, drained, stopped.
  std::optional<Clock::time_point> zeroAt;
  const auto zeroBound = Clock::now() + settings.idleShutdown + std::chrono::seconds(30);
  while (Clock::now() < zeroBound) {
    PoolView v = view(client);
    if (v.found && v.runners == 0 && v.booting == 0) {
      zeroAt = Clock::now();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  Row row;
  row.scenario = "elastic";
  row.mode = "burst";
  row.clients = 1;
  row.runners = settings.poolMax;
  row.payload = std::to_string(settings.burstJobMs).size();
  row.window = k;
  row.completed = done.load() - failed.load();
  row.errors = failed.load();
  double allMs = msSince(t0, last);
  row.seconds = allMs / 1000;
  row.jobsPerS = allMs > 0 ? k / (allMs / 1000) : 0;
  row.extra["jobs"] = k;
  row.extra["job_ms"] = settings.burstJobMs;
  row.extra["max_runners"] = settings.poolMax;
  row.extra["slots_per_runner"] = settings.poolConcurrency;
  row.extra["first_result_ms"] = msSince(t0, first);
  row.extra["all_done_ms"] = allMs;
  row.extra["runners_booted"] = after.boots;
  row.extra["peak_runners"] = peak;
  row.extra["idle_shutdown_after_ms"] = settings.idleShutdown.count();
  if (zeroAt) row.extra["back_to_zero_ms"] = msSince(last, *zeroAt);
  else row.extra["back_to_zero_ms"] = nullptr;
  if (!firstError.empty()) row.extra["first_error"] = firstError;
  row.parts = "a real flame-broker process (generated TOML, process backend) booting real flame-worker "
              "processes; flame::Client in-process";
  progress.finished("elastic burst of " + std::to_string(k),
                    "first result " + row.extra["first_result_ms"].dump() + " ms, all " +
                        row.extra["all_done_ms"].dump() + " ms, " + std::to_string(after.boots) +
                        " runners booted, back to zero " + row.extra["back_to_zero_ms"].dump() + " ms after");
  return {row};
}

}  // namespace flame::bench
