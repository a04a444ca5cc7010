// Prometheus metrics (issue 11): the exposition text (broker/metrics.h), the core's counters
// where the events happen (manual clock, recording outbox), the rendered broker text, and the
// HTTP endpoint on a loopback port the OS chooses.
#include <catch2/catch.hpp>

#include <httplib.h>

#include <string>

#include "broker/broker.h"
#include "broker/metrics.h"
#include "broker/metrics_server.h"
#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;

namespace {
bool contains(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }
}  // namespace

TEST_CASE("metrics text: HELP, TYPE, labels and escaped label values", "[broker][metrics]") {
  metrics::TextWriter w;
  w.family("flame_x_total", "counter", "A help\\text\nwith a newline.");
  w.sample("flame_x_total", {{"pool", "a\"b\\c\nd"}, {"mode", "call"}}, 3);
  w.sample("flame_x_total", {}, 0.25);
  CHECK(w.text() ==
        "# HELP flame_x_total A help\\\\text\\nwith a newline.\n"
        "# TYPE flame_x_total counter\n"
        "flame_x_total{pool=\"a\\\"b\\\\c\\nd\",mode=\"call\"} 3\n"
        "flame_x_total 0.25\n");
  CHECK(metrics::escapeLabelValue("plain") == "plain");
  CHECK(metrics::formatValue(0.0025) == "0.0025");
  CHECK(metrics::formatValue(1e300 * 1e300) == "+Inf");
  CHECK(metrics::formatValue(12345678) == "12345678");
}

TEST_CASE("histogram: cumulative buckets with inclusive bounds, +Inf, sum and count", "[broker][metrics]") {
  metrics::Histogram h{0.1, 1, 10};
  for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0}) h.observe(v);
  h.observe(Duration(2500));  // 2.5 s
  CHECK(h.count() == 7);
  CHECK(h.sum() == Approx(59.15));
  metrics::TextWriter w;
  w.histogram("t_seconds", {{"pool", "p"}}, h);
  CHECK(w.text() ==
        "t_seconds_bucket{pool=\"p\",le=\"0.1\"} 2\n"
        "t_seconds_bucket{pool=\"p\",le=\"1\"} 4\n"
        "t_seconds_bucket{pool=\"p\",le=\"10\"} 6\n"
        "t_seconds_bucket{pool=\"p\",le=\"+Inf\"} 7\n"
        "t_seconds_sum{pool=\"p\"} " + metrics::formatValue(h.sum()) + "\n"
        "t_seconds_count{pool=\"p\"} 7\n");
  CHECK(std::stod(metrics::formatValue(h.sum())) == h.sum());  // the shortest text that reads back exactly
}

TEST_CASE("metrics address: host:port split and loopback check", "[broker][metrics]") {
  std::string host;
  int port = -1;
  CHECK(splitHostPort("127.0.0.1:9464", host, port));
  CHECK((host == "127.0.0.1" && port == 9464));
  CHECK(splitHostPort("[::1]:0", host, port));
  CHECK((host == "::1" && port == 0));
  CHECK_FALSE(splitHostPort("9464", host, port));
  CHECK_FALSE(splitHostPort("::1:9464", host, port));
  CHECK_FALSE(splitHostPort("host:99999", host, port));
  CHECK(isLoopbackHost("127.0.0.1"));
  CHECK(isLoopbackHost("localhost"));
  CHECK_FALSE(isLoopbackHost("0.0.0.0"));
  CHECK_FALSE(isLoopbackHost("127.evil.example"));
}

TEST_CASE("metrics config: a non-loopback address needs allow_plaintext", "[broker][metrics][config]") {
  CHECK(parseConfig("[broker]\nmetrics = \"127.0.0.1:9464\"\n").metrics == "127.0.0.1:9464");
  CHECK_NOTHROW(checkPlaintextExposure(parseConfig("[broker]\nmetrics = \"127.0.0.1:0\"\n")));
  CHECK_THROWS_AS(checkPlaintextExposure(parseConfig("[broker]\nmetrics = \"0.0.0.0:9464\"\n")), ConfigError);
  CHECK_THROWS_AS(checkPlaintextExposure(parseConfig("[broker]\nmetrics = \"nonsense\"\n")), ConfigError);
  auto allowed = checkPlaintextExposure(parseConfig("[broker]\nmetrics = \"0.0.0.0:9464\"\nallow_plaintext = true\n"));
  CHECK(allowed.size() == 1);
  BrokerOverrides flags;
  flags.metrics = "127.0.0.1:1234";
  CHECK(parseConfig("", "flags", flags).metrics == "127.0.0.1:1234");
}

TEST_CASE("the core counts submits, outcomes, queue and run time, bytes and lost runners", "[broker][metrics]") {
  Harness h;
  h.core.declarePool("p", PoolSettings{});
  h.submit("c1", 1, "p", "echo", "12345");  // waits 2 s for a runner
  h.advance(Duration(2000));
  auto r = h.ready("r1", "p", 1);
  auto jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  h.clock.advance(Duration(300));
  h.done(r, jobs[0].jobId, "abc");
  h.submit("c1", 2, "p", "echo", "", Mode::Cast);
  jobs = h.jobsFor(r);
  REQUIRE(jobs.size() == 1);
  h.done(r, jobs[0].jobId, "", ErrorCode::HandlerError, "boom");
  h.submit("c1", 3, "p", "echo");
  h.core.onClient("c1", msg::Cancel{3}, {});

  const metrics::PoolMetrics& m = h.core.findPool("p")->metrics;
  CHECK(m.submitted[0] == 2);  // call
  CHECK(m.submitted[1] == 1);  // cast
  CHECK(m.finished[0][0] == 1);  // call ok
  CHECK(m.finished[1][static_cast<size_t>(ErrorCode::HandlerError)] == 1);
  CHECK(m.finished[0][static_cast<size_t>(ErrorCode::Cancelled)] == 1);
  CHECK(m.queueSeconds.count() == 3);
  CHECK(m.queueSeconds.sum() == Approx(2.0));
  CHECK(m.runSeconds.count() == 2);
  CHECK(m.runSeconds.sum() == Approx(0.3));
  CHECK(m.bytesReceived == 5 + 3);
  CHECK(m.bytesSent == 5 + 3);
  CHECK(m.runnersLost == 0);

  // The cancelled job still runs on r1; r1 goes silent and is declared dead.
  h.advance(Duration(5000));
  CHECK(h.core.findRunner("r1") == nullptr);
  CHECK(h.core.findPool("p")->metrics.runnersLost == 1);

  std::string text = renderBrokerMetrics(h.core, nullptr, MetricsIdentity{"9.9.9", "b1"});
  CHECK(contains(text, "flame_broker_jobs_submitted_total{pool=\"p\",mode=\"call\"} 2\n"));
  CHECK(contains(text, "flame_broker_jobs_finished_total{pool=\"p\",mode=\"call\",outcome=\"ok\"} 1\n"));
  CHECK(contains(text, "flame_broker_jobs_finished_total{pool=\"p\",mode=\"cast\",outcome=\"handler_error\"} 1\n"));
  CHECK(contains(text, "flame_broker_jobs_finished_total{pool=\"p\",mode=\"call\",outcome=\"cancelled\"} 1\n"));
  CHECK(contains(text, "flame_broker_job_queue_seconds_count{pool=\"p\"} 3\n"));
  CHECK(contains(text, "flame_broker_runners_lost_total{pool=\"p\"} 1\n"));
  CHECK(contains(text, "flame_broker_runners{pool=\"p\",state=\"ready\"} 0\n"));
  CHECK(contains(text, "flame_broker_info{version=\"9.9.9\",instance=\""));
  CHECK(contains(text, "# TYPE flame_broker_job_run_seconds histogram\n"));
}

TEST_CASE("a broker with metrics serves /metrics on a port the OS chose", "[broker][metrics][integration]") {
  BrokerConfig config = parseConfig(
      "[broker]\nclients = \"tcp://127.0.0.1:*\"\nrunners = \"tcp://127.0.0.1:*\"\nmetrics = \"127.0.0.1:0\"\n");
  Broker broker(std::move(config));
  std::thread loop([&] { broker.run(); });
  std::string address = broker.metricsAddress();
  REQUIRE(address.rfind("127.0.0.1:", 0) == 0);
  httplib::Client http("127.0.0.1", std::stoi(address.substr(10)));
  http.set_read_timeout(5, 0);
  auto res = http.Get("/metrics");
  broker.stopNow();
  loop.join();
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(contains(res->body, "flame_broker_info{"));
  CHECK(contains(res->body, "flame_broker_client_sessions 0\n"));
}
