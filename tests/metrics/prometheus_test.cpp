// A real scraper (issue 11, item 2): flame-broker --metrics on a loopback port the OS chooses,
// a static flame-worker, a burst of calls; then
//   (a) two scrapes of /metrics differ by exactly the burst in the expected counters,
//   (b) `promtool check metrics` accepts the text,
//   (c) Debian's `prometheus` server, started on a free loopback port with a generated config
//       that scrapes the broker every second, returns the broker's own value of a counter
//       through its HTTP query API.
// Every wait is bounded; every process is ours and stopped by pid (Process). Exit 77 (ctest:
// skipped) only when prometheus or promtool is not installed (scripts/install-deps.sh installs
// them).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "client/client.h"
#include "tests/integration/process_harness.h"

using namespace flame;
using namespace flame::test;
namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
}

std::optional<std::string> findProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return std::nullopt;
}

// A loopback port free right now: bound by the OS, then released for prometheus to take
// (prometheus cannot report a port 0 it chose).
int freeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::pair<std::string, int> hostPort(const std::string& address) {
  size_t colon = address.rfind(':');
  return {address.substr(0, colon), std::stoi(address.substr(colon + 1))};
}

std::string scrape(const std::string& address) {
  auto [host, port] = hostPort(address);
  httplib::Client http(host, port);
  http.set_connection_timeout(5, 0);
  http.set_read_timeout(5, 0);
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) throw std::runtime_error("scrape of " + address + " failed");
  return res->body;
}

// The value of the sample whose name and labels are exactly `series` (as the text spells them).
std::optional<double> sampleValue(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line))
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

double valueOr0(const std::string& text, const std::string& series) { return sampleValue(text, series).value_or(-1); }

int run() {
  auto prometheus = findProgram("prometheus");
  auto promtool = findProgram("promtool");
  if (!prometheus || !promtool) {
    std::printf("SKIP: prometheus/promtool not installed (Debian package `prometheus`; scripts/install-deps.sh)\n");
    return 77;
  }
  fs::path tmp = fs::temp_directory_path() / ("flame-prom-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmp};

  // The broker, its metrics address read from the endpoints line.
  auto broker = Process::start({binary("flame-broker"), "--clients", "tcp://127.0.0.1:*", "--runners",
                                "tcp://127.0.0.1:*", "--metrics", "127.0.0.1:0", "--endpoints-file", "-",
                                "--heartbeat-interval", "200ms"});
  auto line = broker->waitForLine("\"metrics\"", Millis(10000));
  if (!line) {
    std::printf("broker did not start:\n%s\n", broker->output().c_str());
    return 1;
  }
  auto endpoints = nlohmann::json::parse(line->substr(line->find('{')));
  std::string clients = endpoints.at("clients"), runners = endpoints.at("runners"), metrics = endpoints.at("metrics");
  std::printf("broker: clients %s, metrics http://%s/metrics\n", clients.c_str(), metrics.c_str());

  auto worker = Process::start({binary("flame-worker"), "--broker", runners, "--pool", "m", "--concurrency", "4",
                                "--enable-test-functions"});
  check(broker->waitForLine("pool=m runner=", Millis(10000)).has_value() &&
            eventually([&] { return broker->output().find(" ready:") != std::string::npos; }, Millis(10000)),
        "a static runner of pool m is ready");

  const std::string okCalls = "flame_broker_jobs_finished_total{pool=\"m\",mode=\"call\",outcome=\"ok\"}";
  const std::string submitted = "flame_broker_jobs_submitted_total{pool=\"m\",mode=\"call\"}";
  const std::string failedCalls = "flame_broker_jobs_finished_total{pool=\"m\",mode=\"call\",outcome=\"handler_error\"}";
  const std::string queued = "flame_broker_job_queue_seconds_count{pool=\"m\"}";
  const std::string received = "flame_broker_payload_received_bytes_total{pool=\"m\"}";

  std::string before = scrape(metrics);

  // The burst: 200 pipelined calls of 16 bytes each (echo returns them), and 3 that fail.
  constexpr int kCalls = 200, kFailing = 3;
  {
    ClientOptions o;
    o.broker = clients;
    Client client(o);
    std::vector<std::future<CallResult>> calls;
    for (int i = 0; i < kCalls; ++i) calls.push_back(client.callAsync("m", "echo", "0123456789abcdef"));
    for (int i = 0; i < kFailing; ++i) calls.push_back(client.callAsync("m", "fail", "on purpose"));
    int ok = 0, failed = 0;
    for (auto& f : calls) {
      if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) break;
      auto r = f.get();
      (r ? ok : failed)++;
    }
    check(ok == kCalls && failed == kFailing, "burst: " + std::to_string(ok) + " ok, " + std::to_string(failed) + " failed");
  }
  std::string after = scrape(metrics);

  // (a) The two scrapes differ by the burst.
  auto delta = [&](const std::string& series) { return valueOr0(after, series) - valueOr0(before, series); };
  check(delta(submitted) == kCalls + kFailing, "jobs_submitted_total{mode=call} grew by " + std::to_string(delta(submitted)));
  check(delta(okCalls) == kCalls, "jobs_finished_total{outcome=ok} grew by " + std::to_string(delta(okCalls)));
  check(valueOr0(after, failedCalls) == kFailing, "jobs_finished_total{outcome=handler_error} is " +
                                                      std::to_string(valueOr0(after, failedCalls)));
  check(delta(queued) == kCalls + kFailing, "job_queue_seconds_count grew by " + std::to_string(delta(queued)));
  check(delta(received) == kCalls * 16 * 2 + kFailing * 10,
        "payload_received_bytes_total grew by " + std::to_string(delta(received)) + " (payloads and results)");
  check(valueOr0(after, "flame_broker_runners{pool=\"m\",state=\"ready\"}") == 1, "one ready runner");
  check(valueOr0(after, "flame_broker_slots_capacity{pool=\"m\"}") == 4, "4 slots in total");

  // (b) promtool accepts the exposition text.
  fs::path text = tmp / "metrics.txt";
  std::ofstream(text) << after;
  auto lint = Process::start({"/bin/sh", "-c", *promtool + " check metrics < '" + text.string() + "'"});
  auto lintStatus = lint->waitExit(Millis(30000));
  check(lintStatus && WIFEXITED(*lintStatus) && WEXITSTATUS(*lintStatus) == 0,
        "promtool check metrics" + (lint->output().empty() ? std::string() : ":\n" + lint->output()));

  // (c) A real Prometheus scrapes the broker every second; its query API returns our value.
  int port = freeLoopbackPort();
  fs::path config = tmp / "prometheus.yml";
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        << "scrape_configs:\n  - job_name: flame\n    static_configs:\n      - targets: ['"
                        << metrics << "']\n";
  auto server = Process::start({*prometheus, "--config.file=" + config.string(),
                                "--storage.tsdb.path=" + (tmp / "data").string(),
                                "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"});
  httplib::Client api("127.0.0.1", port);
  api.set_connection_timeout(2, 0);
  api.set_read_timeout(5, 0);
  auto query = [&](const std::string& promql) -> std::optional<double> {
    auto res = api.Get("/api/v1/query", httplib::Params{{"query", promql}}, httplib::Headers{});
    if (!res || res->status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
    auto& result = j["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
  };
  double expected = valueOr0(scrape(metrics), okCalls);  // no traffic since: stable
  std::optional<double> seen;
  bool matched = eventually(
      [&] {
        seen = query(okCalls);
        return seen && *seen == expected;
      },
      Millis(30000), Millis(250));
  check(matched, "prometheus query " + okCalls + " = " + (seen ? std::to_string(*seen) : "nothing") +
                     ", broker says " + std::to_string(expected));
  auto up = query("up{job=\"flame\"}");
  check(up && *up == 1, "prometheus: up{job=\"flame\"} = 1");
  auto p99 = query("histogram_quantile(0.99, sum by (pool, le) (flame_broker_job_queue_seconds_bucket))");
  check(p99.has_value(), "prometheus: histogram_quantile over flame_broker_job_queue_seconds_bucket answers");
  if (!matched) std::printf("prometheus output:\n%s\n", server->output().c_str());

  server->signal(SIGTERM);
  check(server->waitExit(Millis(15000)).has_value(), "prometheus stopped on SIGTERM");
  worker->signal(SIGTERM);
  worker->waitExit(Millis(10000));
  broker->signal(SIGTERM);
  check(broker->waitExit(Millis(15000)).has_value(), "broker stopped on SIGTERM");
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::printf("FAILED: %s\n", e.what());
    return 1;
  }
}
