#include "broker/metrics_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "broker/broker_core.h"
#include "broker/metrics.h"
#include "broker/scaler.h"
#include "common/log.h"

namespace flame {

bool splitHostPort(const std::string& address, std::string& host, int& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) return false;
  host = address.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return false;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return false;  // a bare IPv6 address needs brackets
  }
  std::string digits = address.substr(colon + 1);
  if (digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  port = std::stoi(digits);
  return port <= 65535;
}

bool isLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  return host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
}

struct MetricsServer::Impl {
  httplib::Server http;
  std::thread thread;
  std::string bound;
  std::function<void()> wake;
  std::mutex mutex;
  std::condition_variable published;
  std::string text;        // guarded by mutex
  uint64_t generation = 0; // guarded by mutex: bumped by every publish
  std::atomic<bool> wanted{false};
};

MetricsServer::MetricsServer(const std::string& address, std::function<void()> wake)
    : impl_(std::make_unique<Impl>()) {
  std::string host;
  int port = 0;
  if (!splitHostPort(address, host, port)) throw std::runtime_error("metrics: '" + address + "' is not host:port");
  impl_->wake = std::move(wake);
  Impl* impl = impl_.get();
  impl->http.Get("/metrics", [impl](const httplib::Request&, httplib::Response& res) {
    std::unique_lock lock(impl->mutex);
    uint64_t seen = impl->generation;
    impl->wanted = true;
    if (impl->wake) impl->wake();
    // A fresh snapshot when the loop is responsive; else the last one (never waits long).
    impl->published.wait_for(lock, std::chrono::milliseconds(500), [&] { return impl->generation != seen; });
    res.set_content(impl->text, "text/plain; version=0.0.4; charset=utf-8");
  });
  impl->http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("flame-broker: metrics at /metrics\n", "text/plain");
  });
  int bound = port == 0 ? impl->http.bind_to_any_port(host) : (impl->http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) throw std::runtime_error("metrics: cannot bind " + address);
  impl->bound = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(bound);
  impl->thread = std::thread([impl] { impl->http.listen_after_bind(); });
  logger("broker")->info("metrics: Prometheus endpoint http://{}/metrics", impl->bound);
}

MetricsServer::~MetricsServer() {
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

const std::string& MetricsServer::boundAddress() const { return impl_->bound; }

void MetricsServer::publish(std::string text) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->text.swap(text);
    ++impl_->generation;
  }
  impl_->published.notify_all();
  // `text` (the old snapshot) is freed here, outside the lock.
}

bool MetricsServer::freshWanted() { return impl_->wanted.load(std::memory_order_relaxed) && impl_->wanted.exchange(false); }

// ---------------------------------------------------------------- rendering

namespace {
constexpr std::string_view kModeNames[] = {"call", "cast", "place"};

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}
}  // namespace

std::string renderBrokerMetrics(const BrokerCore& core, const Scaler* scaler, const MetricsIdentity& id) {
  using metrics::Labels;
  using metrics::PoolMetrics;
  msg::StatusReply status = core.status(0);
  metrics::TextWriter w;
  std::string instance = hex64(core.instance());
  w.family("flame_broker_info", "gauge", "Always 1; labels: flame's version, this run's instance id and the broker id.");
  w.sample("flame_broker_info", Labels{{"version", id.version}, {"instance", instance}, {"broker_id", id.brokerId}}, 1);
  w.family("flame_broker_client_sessions", "gauge", "Client connections the broker tracks (pending requests or linked children).");
  w.sample("flame_broker_client_sessions", {}, static_cast<double>(core.clientSessionCount()));

  std::vector<const Pool*> pools;
  for (auto& ps : status.pools) pools.push_back(core.findPool(ps.name));

  auto perPool = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    w.family(name, type, help);
    for (size_t i = 0; i < status.pools.size(); ++i)
      w.sample(name, Labels{{"pool", status.pools[i].name}}, static_cast<double>(value(status.pools[i], pools[i])));
  };
  perPool("flame_broker_queue_depth", "gauge", "Jobs waiting for a runner.",
          [](const msg::PoolStatus& s, const Pool*) { return s.queued; });
  perPool("flame_broker_slots_used", "gauge", "Slots of connected runners that hold a job.",
          [](const msg::PoolStatus& s, const Pool*) { return s.slotsUsed; });
  perPool("flame_broker_slots_capacity", "gauge", "Slots of connected runners (ready and draining).",
          [](const msg::PoolStatus& s, const Pool*) { return s.slotsTotal; });

  w.family("flame_broker_runners", "gauge", "Runners by state: booting (machine started, not connected yet), ready, draining.");
  for (auto& s : status.pools) {
    uint32_t ready = 0, draining = 0;
    for (auto& r : s.runners) {
      if (r.state == "ready") ++ready;
      else if (r.state == "draining") ++draining;
    }
    for (auto [state, n] : {std::pair<std::string_view, uint32_t>{"booting", s.booting}, {"ready", ready}, {"draining", draining}})
      w.sample("flame_broker_runners", Labels{{"pool", s.name}, {"state", state}}, n);
  }
  perPool("flame_broker_boots_total", "counter", "Machines the scaler asked its backend to boot.",
          [](const msg::PoolStatus& s, const Pool*) { return s.boots; });
  perPool("flame_broker_boot_failures_total", "counter",
          "Boots that failed (backend error, runner exited or did not connect within boot_timeout).",
          [](const msg::PoolStatus& s, const Pool*) { return s.bootFailures; });
  perPool("flame_broker_jobs_retried_total", "counter",
          "Retries scheduled (runner_lost for idempotent jobs; handler_error and timeout on request).",
          [](const msg::PoolStatus& s, const Pool*) { return s.retried; });
  perPool("flame_broker_runners_lost_total", "counter",
          "Runners that went away without being drained (missed heartbeats, lost connection, exited by themselves).",
          [](const msg::PoolStatus&, const Pool* p) { return p ? p->metrics.runnersLost : 0; });

  w.family("flame_broker_jobs_submitted_total", "counter", "Jobs accepted (queued), by mode.");
  for (size_t i = 0; i < pools.size(); ++i) {
    if (!pools[i]) continue;
    for (size_t m = 0; m < PoolMetrics::kModes; ++m)
      w.sample("flame_broker_jobs_submitted_total", Labels{{"pool", pools[i]->name}, {"mode", kModeNames[m]}},
               static_cast<double>(pools[i]->metrics.submitted[m]));
  }
  w.family("flame_broker_jobs_finished_total", "counter",
           "Jobs that got their final answer, by mode and outcome (ok, or the error code: timeout, runner_lost, ...).");
  for (size_t i = 0; i < pools.size(); ++i) {
    if (!pools[i]) continue;
    for (size_t m = 0; m < PoolMetrics::kModes; ++m) {
      for (size_t c = 0; c < PoolMetrics::kOutcomes; ++c) {
        uint64_t n = pools[i]->metrics.finished[m][c];
        // ok is always present (rate() needs the series from the start); errors once they happened.
        if (n == 0 && c != 0) continue;
        std::string_view outcome = c == 0 ? std::string_view("ok") : errorCodeName(static_cast<ErrorCode>(c));
        w.sample("flame_broker_jobs_finished_total",
                 Labels{{"pool", pools[i]->name}, {"mode", kModeNames[m]}, {"outcome", outcome}}, static_cast<double>(n));
      }
    }
  }
  auto histogramPerPool = [&](std::string_view name, std::string_view help, auto get) {
    w.family(name, "histogram", help);
    for (const Pool* p : pools)
      if (p) w.histogram(name, Labels{{"pool", p->name}}, get(*p));
  };
  histogramPerPool("flame_broker_job_queue_seconds", "Time from submit to dispatch to a runner.",
                   [](const Pool& p) -> const metrics::Histogram& { return p.metrics.queueSeconds; });
  histogramPerPool("flame_broker_job_run_seconds", "Time from dispatch until the runner reported the job done.",
                   [](const Pool& p) -> const metrics::Histogram& { return p.metrics.runSeconds; });
  if (scaler) {
    w.family("flame_broker_boot_seconds", "histogram", "Time from asking the backend to boot until the runner said ready.");
    for (auto& s : status.pools)
      if (const metrics::Histogram* h = scaler->bootSeconds(s.name)) w.histogram("flame_broker_boot_seconds", Labels{{"pool", s.name}}, *h);
  }
  perPool("flame_broker_payload_received_bytes_total", "counter", "Payload bytes received: submitted payloads and runners' results.",
          [](const msg::PoolStatus&, const Pool* p) { return p ? p->metrics.bytesReceived : 0; });
  perPool("flame_broker_payload_sent_bytes_total", "counter", "Payload bytes sent: jobs dispatched to runners and results forwarded to clients.",
          [](const msg::PoolStatus&, const Pool* p) { return p ? p->metrics.bytesSent : 0; });
  return w.take();
}

}  // namespace flame
