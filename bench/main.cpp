// flame-bench: parses flags, runs one scenario (or all), prints a table or JSON lines, and
// optionally a plot. Everything it measures lives in the other files of bench/.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include "bench/plot.h"
#include "bench/report.h"
#include "bench/scale.h"
#include "bench/scenarios/scenarios.h"
#include "bench/settings.h"
#include "common/log.h"

namespace {

using flame::bench::Rows;
using flame::bench::Settings;
using flame::Duration;

std::string loadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string today() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
  return buf;
}

Duration seconds(double s) { return Duration(static_cast<int64_t>(s * 1000)); }

void applySmoke(Settings& s) {
  s.smoke = true;
  s.duration = Duration(150);
  s.warmup = Duration(50);
  s.window = 100;
  s.clients = {4};
  s.runners = {4};
  s.payloads = {64};
  s.fanoutRunners = {1, 1000};
  s.fanoutInFlight = 1000;
  s.libraryConcurrency = 4;
  s.burstJobs = 12;
  s.burstJobMs = 10;
  s.poolMax = 2;
  s.poolConcurrency = 2;
  s.idleShutdown = Duration(300);
  s.memoryQueued = {0, 20'000};
  s.scaleRunners = 1'000;
  s.scaleSessions = 10'000;
  s.scaleJobs = 30'000;
  s.repeat = 1;
}

Rows run(const std::string& scenario, const Settings& s, flame::bench::Progress& p,
         std::vector<flame::bench::TargetCheck>& targets) {
  using namespace flame::bench;
  if (scenario == "headline") return runHeadline(s, p, targets);
  if (scenario == "ceiling") return runCeiling(s, p);
  if (scenario == "call") return runCall(s, p);
  if (scenario == "relay") return runRelay(s, p);
  if (scenario == "core") return runCore(s, p);
  if (scenario == "cast") return runCast(s, p);
  if (scenario == "fanout") return runFanout(s, p);
  if (scenario == "library") return runLibrary(s, p);
  if (scenario == "elastic") return runElastic(s, p);
  if (scenario == "memory") return runMemory(s, p);
  if (scenario == "scale") return runScale(s, p, targets);
  if (scenario == "curve") return runCurve(s, p, targets);
  if (scenario == "metrics") return runMetrics(s, p, targets);
  Rows all;
  for (auto* sc : {"core", "call", "relay", "cast", "fanout", "library", "elastic", "memory", "scale", "curve"}) {
    Rows r = run(sc, s, p, targets);
    all.insert(all.end(), r.begin(), r.end());
  }
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace flame::bench;
  CLI::App app{
      "flame-bench: flame's throughput, latency and elasticity, each next to the bare ZeroMQ ceiling measured "
      "in the same run. See bench/README.md."};
  Settings s;
  std::string scenario = "headline", plotFile, logLevel = "error";
  bool json = false, smoke = false, quiet = false;
  double duration = 2.0, warmup = 0.3;
  uint32_t idleMs = 1000;
  std::vector<std::string> transports;
  app.add_option("scenario", scenario,
                 "headline | ceiling | call | relay | core | cast | fanout | library | elastic | memory | scale | "
                 "curve | metrics | all")
      ->check(CLI::IsMember({"headline", "ceiling", "call", "relay", "core", "cast", "fanout", "library", "elastic",
                             "memory", "scale", "curve", "metrics", "all"}))
      ->capture_default_str();
  app.add_flag("--json", json, "one JSON object per measurement on stdout (the rest goes to stderr)");
  app.add_flag("--smoke", smoke, "CI: every measurement ~0.2 s with small sizes; no thresholds");
  app.add_option("--duration", duration, "measured seconds per measurement")->capture_default_str();
  app.add_option("--warmup", warmup, "unmeasured seconds before each measurement")->capture_default_str();
  app.add_option("--plot", plotFile, "also draw throughput and latency percentiles to this PNG (needs gnuplot)");
  app.add_option("--window", s.window, "requests in flight per client, pipelined")->capture_default_str()
      ->check(CLI::Range(1u, 50'000u));  // below the sockets' 100k high-water mark
  app.add_option("--mode", s.modes, "sync and/or pipelined (ceiling and call matrix)")
      ->check(CLI::IsMember({"sync", "pipelined"}))->capture_default_str();
  app.add_option("--clients", s.clients, "client counts (call matrix)")->capture_default_str();
  app.add_option("--runners", s.runners, "runner counts (call matrix)")->capture_default_str();
  app.add_option("--payload", s.payloads, "payload sizes in bytes (call matrix)")->capture_default_str();
  app.add_option("--transport", transports, "tcp and/or ipc [tcp ipc]")->check(CLI::IsMember({"tcp", "ipc"}));
  app.add_option("--fanout-runners", s.fanoutRunners, "pool sizes for fanout")->capture_default_str();
  app.add_option("--fanout-in-flight", s.fanoutInFlight, "jobs in flight in fanout (over 4 clients)")
      ->capture_default_str();
  app.add_option("--library-concurrency", s.libraryConcurrency, "slots of each flame::Runner (library path)")
      ->capture_default_str();
  app.add_option("--jobs", s.burstJobs, "elastic: jobs in the burst")->capture_default_str();
  app.add_option("--job-ms", s.burstJobMs, "elastic: milliseconds each job sleeps")->capture_default_str();
  app.add_option("--pool-max", s.poolMax, "elastic: the pool's max runners")->capture_default_str();
  app.add_option("--pool-concurrency", s.poolConcurrency, "elastic: slots per runner")->capture_default_str();
  app.add_option("--idle-shutdown", idleMs, "elastic: idle_shutdown_after in ms")->capture_default_str();
  app.add_option("--queued", s.memoryQueued, "memory: queued job counts to measure")->capture_default_str();
  app.add_option("--scale-runners", s.scaleRunners, "scale: registered runners (simulated, in-process)")
      ->capture_default_str()->check(CLI::Range(10u, 1'000'000u));
  app.add_option("--scale-sessions", s.scaleSessions, "scale: client sessions (simulated, in-process)")
      ->capture_default_str()->check(CLI::Range(4u, 10'000'000u));
  app.add_option("--scale-jobs", s.scaleJobs, "scale: calls per dispatch measurement")->capture_default_str()
      ->check(CLI::Range(uint64_t{1000}, uint64_t{100'000'000}));
  app.add_flag("--memory-in-process", s.memoryInProcess,
               "memory: diagnose with an in-process broker (this process's RSS) instead of flame-broker");
  bool noZeroCopy = false;
  app.add_flag("--no-zero-copy-recv", noZeroCopy, "memory --memory-in-process: ZMQ_ZERO_COPY_RECV=0 on the broker");
  app.add_option("--repeat", s.repeat, "headline, curve, metrics: run each measurement N times, keep the median")
      ->capture_default_str()->check(CLI::Range(1u, 9u));
  app.add_option("--bin-dir", s.binDir, "where flame-broker and flame-worker are [flame-bench's directory]");
  app.add_flag("--quiet", quiet, "no progress lines");
  app.add_option("--log-level", logLevel, "flame's own loggers (broker, runner, client)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  s.zeroCopyRecv = !noZeroCopy;
  s.duration = seconds(duration);
  s.warmup = seconds(warmup);
  s.idleShutdown = Duration(idleMs);
  if (!transports.empty()) {
    s.transports.clear();
    for (auto& t : transports) s.transports.push_back(t == "ipc" ? Transport::Ipc : Transport::Tcp);
  }
  if (smoke) applySmoke(s);
  if (s.binDir.empty()) s.binDir = executableDir();
  if (!flame::setLogLevel(logLevel)) {
    std::fprintf(stderr, "flame-bench: unknown --log-level '%s'\n", logLevel.c_str());
    return 2;
  }
  if (!plotFile.empty() && !gnuplotAvailable()) {
    std::fprintf(stderr, "flame-bench: --plot needs gnuplot on PATH (Debian: apt-get install gnuplot-nox)\n");
    return 2;
  }

  std::FILE* info = json ? stderr : stdout;
  const unsigned cores = std::thread::hardware_concurrency();
  const std::string started = today(), loadBefore = loadAverage();
  std::fprintf(info, "flame-bench %s%s: %s, nproc %u, load average %s\n", scenario.c_str(), smoke ? " --smoke" : "",
               started.c_str(), cores, loadBefore.c_str());
  std::fflush(info);

  Progress progress;
  size_t planned = plannedMeasurements(scenario, s);
  if (scenario == "scale" || scenario == "all") planned += scaleMeasurements(s);
  double estimate = static_cast<double>(planned) * static_cast<double>((s.duration + s.warmup).count()) / 1000;
  progress.enable(!quiet && (estimate > 3 || scenario == "elastic" || scenario == "memory" || scenario == "scale" ||
                  scenario == "all"));
  progress.setTty(isatty(2));
  progress.setTotal(planned);

  Rows rows;
  std::vector<TargetCheck> targets;
  try {
    rows = run(scenario, s, progress, targets);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flame-bench: %s\n", e.what());
    return 1;
  }

  if (json) {
    for (auto& r : rows) {
      auto j = toJson(r);
      j["nproc"] = cores;
      std::printf("%s\n", j.dump().c_str());
    }
  } else {
    std::printf("\n");
    printTable(stdout, rows);
  }
  printTargets(info, targets);
  std::fprintf(info, "\nload average at the end: %s (absolute figures drift with load; compare ratios)\n",
               loadAverage().c_str());
  if (!plotFile.empty()) {
    try {
      plotRows(rows, plotFile, "flame-bench " + scenario + " - " + started + " - nproc " + std::to_string(cores));
      std::fprintf(info, "plot written to %s\n", plotFile.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flame-bench: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}
