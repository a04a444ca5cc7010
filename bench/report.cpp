#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace flame::bench {

namespace {
nlohmann::ordered_json optional(const std::optional<double>& v, int decimals) {
  if (!v) return nullptr;
  double scale = std::pow(10.0, decimals);
  return std::round(*v * scale) / scale;
}

std::string fixed(const std::optional<double>& v, int decimals) {
  if (!v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, *v);
  return buf;
}

std::string bytes(size_t n) {
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n / 1024) + "K";
  return std::to_string(n);
}
}  // namespace

void Row::setLoad(const LoadStats& stats) {
  jobsPerS = stats.jobsPerSecond();
  p50Us = stats.latency.quantile(0.50) / 1e3;
  p99Us = stats.latency.quantile(0.99) / 1e3;
  p999Us = stats.latency.quantile(0.999) / 1e3;
  completed = stats.completed;
  errors = stats.errors;
  seconds = stats.seconds;
  if (!stats.drained) extra["undrained"] = true;
  // Where the cores went (measured interval): CPU microseconds per completed job, per role.
  if (stats.completed > 0 && stats.seconds > 0) {
    auto perJob = [&](double cpuSeconds) { return std::round(cpuSeconds * 1e6 / stats.completed * 10) / 10; };
    const std::pair<const char*, double> roles[] = {
        {"cpu_broker_us", stats.cpu.broker},   {"cpu_broker_io_us", stats.cpu.brokerIo},
        {"cpu_runners_us", stats.cpu.runners}, {"cpu_runners_io_us", stats.cpu.runnersIo},
        {"cpu_echo_us", stats.cpu.echo},       {"cpu_echo_io_us", stats.cpu.echoIo},
        {"cpu_clients_us", stats.cpu.clients}, {"cpu_clients_io_us", stats.cpu.clientsIo},
        {"cpu_other_us", stats.cpu.other}};
    for (auto& [key, seconds] : roles)
      if (seconds > 0) extra[key] = perJob(seconds);
    extra["cores_used"] = std::round(stats.cpu.total() / stats.seconds * 100) / 100;
  }
}

std::string humanRate(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

nlohmann::ordered_json toJson(const Row& r) {
  nlohmann::ordered_json j;
  j["scenario"] = r.scenario;
  j["mode"] = r.mode;
  j["clients"] = r.clients;
  j["runners"] = r.runners;
  j["payload"] = r.payload;
  j["transport"] = r.transport;
  j["window"] = r.window;
  j["jobs_per_s"] = optional(r.jobsPerS, 0);
  j["p50_us"] = optional(r.p50Us, 1);
  j["p99_us"] = optional(r.p99Us, 1);
  j["p999_us"] = optional(r.p999Us, 1);
  j["ratio_to_ceiling"] = optional(r.ratioToCeiling, 3);
  j["completed"] = r.completed;
  j["errors"] = r.errors;
  j["seconds"] = std::round(r.seconds * 1000) / 1000;
  for (auto& [k, v] : r.extra.items()) j[k] = v;
  j["parts"] = r.parts;
  return j;
}

void printTable(std::FILE* out, const std::vector<Row>& rows) {
  std::fprintf(out, "%-8s %-9s %3s %5s %7s %-4s %5s %9s %9s %9s %9s %6s  %s\n", "scenario", "mode", "cli", "run",
               "payload", "tp", "win", "jobs/s", "p50 us", "p99 us", "p99.9 us", "xceil", "notes");
  for (auto& r : rows) {
    std::string notes;
    for (auto& [k, v] : r.extra.items()) {
      if (!notes.empty()) notes += " ";
      notes += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    }
    if (r.errors) {
      if (!notes.empty()) notes += " ";
      notes += "errors=";
      notes += std::to_string(r.errors);
    }
    std::fprintf(out, "%-8s %-9s %3u %5u %7s %-4s %5u %9s %9s %9s %9s %6s  %s\n", r.scenario.c_str(), r.mode.c_str(),
                 r.clients, r.runners, bytes(r.payload).c_str(), r.transport.c_str(), r.window,
                 r.jobsPerS ? humanRate(*r.jobsPerS).c_str() : "-", fixed(r.p50Us, 0).c_str(),
                 fixed(r.p99Us, 0).c_str(), fixed(r.p999Us, 0).c_str(), fixed(r.ratioToCeiling, 2).c_str(),
                 notes.c_str());
  }
  std::set<std::string> seen;
  for (auto& r : rows) {
    if (r.parts.empty() || !seen.insert(r.scenario + ": " + r.parts).second) continue;
  }
  if (!seen.empty()) std::fprintf(out, "\nwhat ran where:\n");
  for (auto& s : seen) std::fprintf(out, "  %s\n", s.c_str());
}

void printTargets(std::FILE* out, const std::vector<TargetCheck>& targets) {
  if (targets.empty()) return;
  std::fprintf(out, "\ntargets (issues 4, 9 and 10; 4 clients, 4 runners, 64 B, tcp, same run):\n");
  for (auto& t : targets)
    std::fprintf(out, "  %-4s  %-46s %s\n", t.pass ? "PASS" : "MISS", t.name.c_str(), t.measured.c_str());
}

}  // namespace flame::bench
