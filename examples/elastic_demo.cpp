// flame-demo: README's first command. Starts flame-broker with examples/demo.toml (the local
// `process` backend, min 0), sends a burst of calls through flame::Client, and prints the pool
// growing under the burst and shrinking back to zero runners once idle.
#include <CLI/CLI.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "client/client.h"
#include "client/status_format.h"
#include "common/log.h"

extern char** environ;

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string selfDir() {
  char buf[4096] = {};
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string path(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return path.substr(0, path.rfind('/'));
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct PoolSnapshot {
  uint32_t ready = 0, booting = 0, draining = 0, slotsUsed = 0, slotsTotal = 0, queued = 0;
  uint64_t boots = 0;
};

PoolSnapshot view(flame::Client& client, const std::string& pool) {
  PoolSnapshot v;
  auto st = client.status(flame::Duration(2000));
  if (!st) return v;
  for (auto& p : st.value().pools) {
    if (p.name != pool) continue;
    v.queued = p.queued;
    v.slotsUsed = p.slotsUsed;
    v.slotsTotal = p.slotsTotal;
    v.boots = p.boots;
    for (auto& r : p.runners) {
      if (r.state == "ready") ++v.ready;
      else if (r.state == "booting") ++v.booting;
      else ++v.draining;
    }
  }
  return v;
}

// The status lines (main thread) and the events (the client's I/O thread) share stdout.
std::mutex outputMutex;

void printLine(double t, const PoolSnapshot& v, int done, int total) {
  std::string bar(v.ready + v.draining, '#');
  bar += std::string(v.booting, '+');
  std::lock_guard lock(outputMutex);
  std::printf("  t=%5.1fs  runners %-6s ready %u  booting %u  draining %u  slots %2u/%-2u  queued %2u  done %2d/%d\n", t,
              bar.c_str(), v.ready, v.booting, v.draining, v.slotsUsed, v.slotsTotal, v.queued, done, total);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flame-demo: a burst of jobs on an elastic pool of local runner processes"};
  std::string config = FLAME_DEMO_CONFIG;
  int jobs = 24, sleepMs = 1000;
  bool events = true;
  app.add_option("--config", config, "broker config with a pool named 'demo'")->capture_default_str();
  app.add_option("--jobs", jobs, "calls in the burst")->check(CLI::Range(1, 10000))->capture_default_str();
  app.add_option("--sleep-ms", sleepMs, "how long each call works")->check(CLI::Range(0, 60000))->capture_default_str();
  app.add_flag("!--no-events", events, "do not print the pool's events (what `flame events --pool demo` shows)");
  CLI11_PARSE(app, argc, argv);
  flame::setLogLevel("warn");

  // The demo config names "flame-worker": use the one built next to this binary.
  std::string bin = selfDir();
  std::string text = readFile(config);
  if (text.empty()) {
    std::cerr << "flame-demo: cannot read " << config << "\n";
    return 2;
  }
  auto at = text.find("\"flame-worker\"");
  if (at != std::string::npos) text.replace(at, 14, "\"" + bin + "/flame-worker\"");
  char dir[] = "/tmp/flame-demo-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  std::string configPath = std::string(dir) + "/demo.toml", endpoints = std::string(dir) + "/endpoints.json";
  std::ofstream(configPath) << text;

  std::string brokerPath = bin + "/flame-broker";
  std::vector<std::string> args{brokerPath, "--config", configPath, "--endpoints-file", endpoints};
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t broker = 0;
  if (posix_spawn(&broker, brokerPath.c_str(), nullptr, nullptr, cargs.data(), environ) != 0) {
    std::cerr << "flame-demo: cannot start " << brokerPath << "\n";
    return 1;
  }
  auto stopBroker = [&] {
    kill(broker, SIGTERM);
    int st = 0;
    waitpid(broker, &st, 0);
    unlink(configPath.c_str());
    unlink(endpoints.c_str());
    rmdir(dir);
  };
  std::string clients;
  for (int i = 0; i < 200 && clients.empty(); ++i) {
    auto j = readFile(endpoints);
    if (!j.empty()) clients = nlohmann::json::parse(j).at("clients");
    else std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (clients.empty()) {
    std::cerr << "flame-demo: the broker did not start\n";
    stopBroker();
    return 1;
  }
  std::printf("flame-demo: broker pid %d on %s; pool 'demo': process backend, min 0, max 4, 2 slots per runner,\n"
              "            idle runners shut down after 2s\n",
              broker, clients.c_str());
  std::printf("sending a burst of %d calls (each sleeps %d ms on a runner)...\n", jobs, sleepMs);

  flame::ClientOptions co;
  co.broker = clients;
  flame::Client client(co);
  // The scaler's and broker's events, as `flame events --pool demo` prints them from another
  // terminal: the pool growing from zero under the burst and shrinking back.
  flame::Subscription subscription;
  if (events) {
    auto subscribed = client.subscribe("demo", [](const flame::msg::Event& e) {
      std::lock_guard lock(outputMutex);
      std::printf("  event %s\n", flame::formatEventLine(e).c_str());
      std::fflush(stdout);
    });
    if (subscribed) subscription = std::move(subscribed.value());
    else std::printf("flame-demo: no events: %s\n", subscribed.error().toString().c_str());
  }
  flame::CallOptions options;
  options.timeout = flame::Duration(120000);
  auto start = SteadyClock::now();
  auto seconds = [&] { return std::chrono::duration<double>(SteadyClock::now() - start).count(); };
  std::vector<std::future<flame::CallResult>> calls;
  for (int i = 0; i < jobs; ++i) calls.push_back(client.callAsync("demo", "sleep", std::to_string(sleepMs), options));

  int done = 0, failed = 0;
  uint32_t peak = 0;
  std::vector<bool> seen(calls.size());
  while (done < jobs && seconds() < 180) {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (seen[i] || calls[i].wait_for(std::chrono::seconds(0)) != std::future_status::ready) continue;
      seen[i] = true;
      ++done;
      auto r = calls[i].get();
      if (!r) {
        ++failed;
        std::lock_guard lock(outputMutex);
        std::printf("  call %zu failed: %s\n", i, r.error().toString().c_str());
      }
    }
    auto v = view(client, "demo");
    peak = std::max(peak, v.ready + v.booting + v.draining);
    printLine(seconds(), v, done, jobs);
    if (done < jobs) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  double burst = seconds();
  {
    std::lock_guard lock(outputMutex);
    std::printf("all %d calls answered in %.1f s (%d failed); peak %u runners\n", jobs, burst, failed, peak);
    std::printf("waiting for idle runners to shut down...\n");
  }
  PoolSnapshot v;
  while (seconds() < burst + 60) {
    v = view(client, "demo");
    printLine(seconds(), v, done, jobs);
    if (v.ready + v.booting + v.draining == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  subscription.cancel();
  bool zero = v.ready + v.booting + v.draining == 0;
  std::printf(zero ? "pool is back to zero runners (%llu booted in all). done.\n"
                   : "pool did not shrink to zero (%llu booted in all)\n",
              static_cast<unsigned long long>(v.boots));
  stopBroker();
  return failed == 0 && zero ? 0 : 1;
}
