// Issue #8 end to end, with the real flame-broker and flame-worker on loopback: a broker that
// restarts while a runner is mid-job, a clean SIGTERM, a second SIGTERM, and oversized payloads.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include "client/client.h"
#include "tests/integration/process_harness.h"

using namespace flame;
using namespace flame::test;
using Clock_ = std::chrono::steady_clock;

namespace {

const std::vector<std::string> kFastBroker{"--heartbeat-interval", "200ms", "--liveness", "3"};

std::unique_ptr<Process> startWorker(const std::string& runners, const std::string& pool, int concurrency,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{binary("flame-worker"), "--broker", runners, "--pool", pool, "--concurrency",
                                std::to_string(concurrency)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Process::start(argv);
}

ClientOptions clientFor(const std::string& clients) {
  ClientOptions o;
  o.broker = clients;
  o.heartbeatInterval = Duration(200);
  o.liveness = 10;  // these tests are not about client liveness: no false alarm on a busy machine
  return o;
}

// Pool `pool`'s status as the broker sees it, or nullopt.
std::optional<msg::PoolStatus> poolStatus(Client& client, const std::string& pool) {
  auto st = client.status(Duration(2000));
  if (!st) return std::nullopt;
  for (auto& p : st.value().pools)
    if (p.name == pool) return p;
  return std::nullopt;
}

bool waitReadyRunners(Client& client, const std::string& pool, size_t n) {
  return eventually(
      [&] {
        auto p = poolStatus(client, pool);
        return p && p->runners.size() == n;
      },
      Millis(10000));
}

bool waitSlotsUsed(Client& client, const std::string& pool, uint32_t n) {
  return eventually(
      [&] {
        auto p = poolStatus(client, pool);
        return p && p->slotsUsed == n;
      },
      Millis(10000));
}

// The same endpoints again, once the kernel lets the ports be bound again.
BrokerProcess restartOn(const std::string& clients, const std::string& runners) {
  std::optional<BrokerProcess> started;
  bool ok = eventually(
      [&] {
        try {
          std::vector<std::string> argv{binary("flame-broker"), "--clients", clients, "--runners", runners,
                                        "--endpoints-file", "-"};
          argv.insert(argv.end(), kFastBroker.begin(), kFastBroker.end());
          BrokerProcess b;
          b.process = Process::start(argv);
          if (!b.process->waitForLine("\"clients\"", Millis(5000))) return false;  // bind failed: it exited
          b.clients = clients;
          b.runners = runners;
          started = std::move(b);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      Millis(10000), Millis(100));
  if (!ok) throw std::runtime_error("the broker could not be restarted on " + clients + " / " + runners);
  return std::move(*started);
}

// A broker with one runner of `pool`, and one call of `sleep ms` running on it.
struct BusyBroker {
  BusyBroker(const std::string& pool, int concurrency, const std::string& sleepMs)
      : broker(BrokerProcess::start(kFastBroker)),
        worker(startWorker(broker.runners, pool, concurrency)),
        client(clientFor(broker.clients)) {
    REQUIRE(waitReadyRunners(client, pool, 1));
    CallOptions o;
    o.timeout = Duration(60000);
    running = client.callAsync(pool, "sleep", sleepMs, o);
    REQUIRE(waitSlotsUsed(client, pool, 1));
  }
  BrokerProcess broker;
  std::unique_ptr<Process> worker;
  Client client;
  std::future<CallResult> running;
};

}  // namespace

TEST_CASE("after a broker restart, a new call whose job id an old running job had gets its own answer",
          "[integration][reliability]") {
  auto broker = BrokerProcess::start(kFastBroker);
  const std::string clients = broker.clients, runners = broker.runners;
  auto worker = startWorker(runners, "r", 2, {"--failsafe-after", "20s", "--log-level", "debug"});
  {
    Client client(clientFor(clients));
    REQUIRE(waitReadyRunners(client, "r", 1));
    // The first job of this broker run: a long sleep (job id J).
    CallOptions o;
    o.link = false;
    o.timeout = kInfinite;
    auto sleeping = client.callAsync("r", "sleep", "5000", o);
    REQUIRE(worker->waitForLine("function=sleep mode=call", Millis(10000)));  // the runner has it
    broker.process->signal(SIGKILL);
    REQUIRE(sleeping.wait_for(std::chrono::seconds(10)) == std::future_status::ready);  // broker_unreachable
  }
  broker.process->waitExit(Millis(5000));
  auto again = restartOn(clients, runners);
  Client client(clientFor(clients));
  REQUIRE(waitReadyRunners(client, "r", 1));  // re-registered, still running the old sleep
  CHECK(poolStatus(client, "r")->slotsUsed == 1);
  // The first job of the new run has id J too. It must get its own result, not the sleep's.
  CallOptions o;
  o.timeout = Duration(10000);
  auto r = client.call("r", "echo", "hello", o);
  REQUIRE(r);
  CHECK(r.value() == "hello");
  // And when the old sleep ends, its slot comes back: nothing leaks.
  CHECK(waitSlotsUsed(client, "r", 0));
  auto later = client.call("r", "echo", "still fine", o);
  REQUIRE(later);
  CHECK(later.value() == "still fine");
}

TEST_CASE("SIGTERM: running calls finish, new ones are refused, runners drain, the broker exits 0",
          "[integration][reliability]") {
  BusyBroker b("s", 2, "1500");
  auto& [broker, worker, client, running] = b;
  broker.process->signal(SIGTERM);
  REQUIRE(broker.process->waitForLine("shutting down: ", Millis(5000)));  // the loop's line, not the signal thread's
  auto refused = client.call("s", "echo", "too late", CallOptions{.timeout = Duration(5000)});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ErrorCode::ShuttingDown);
  REQUIRE(running.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto r = running.get();
  INFO((r ? std::string("ok") : r.error().toString()));
  CHECK(r.ok());  // the sleep finished within the grace and was answered
  auto status = broker.process->waitExit(Millis(10000));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  auto workerStatus = worker->waitExit(Millis(10000));  // drained by the broker
  REQUIRE(workerStatus);
  CHECK(WIFEXITED(*workerStatus));
  CHECK(WEXITSTATUS(*workerStatus) == 0);
  CHECK(worker->output().find("drain requested by the broker") != std::string::npos);
}

TEST_CASE("a second SIGTERM stops the broker at once, answering what it still holds",
          "[integration][reliability]") {
  BusyBroker b("s2", 1, "60000");
  auto& [broker, worker, client, running] = b;
  auto signalled = Clock_::now();
  broker.process->signal(SIGTERM);
  REQUIRE(broker.process->waitForLine("shutting down: ", Millis(5000)));  // the loop's line, not the signal thread's
  broker.process->signal(SIGTERM);
  REQUIRE(running.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto r = running.get();
  REQUIRE_FALSE(r);
  INFO(r.error().toString() << "\nbroker: " << broker.process->output());
  CHECK(r.error().code == ErrorCode::ShuttingDown);
  auto status = broker.process->waitExit(Millis(5000));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(Clock_::now() - signalled < std::chrono::seconds(5));  // not the 20 s grace
}

TEST_CASE("an oversized payload gets payload_too_large at once, not a dropped connection",
          "[integration][reliability]") {
  std::vector<std::string> args = kFastBroker;
  args.insert(args.end(), {"--max-payload", "100000"});
  auto broker = BrokerProcess::start(args);
  auto worker = startWorker(broker.runners, "big", 1);
  Client client(clientFor(broker.clients));
  REQUIRE(waitReadyRunners(client, "big", 1));
  CallOptions o;
  o.timeout = Duration(30000);
  // 20 x the limit: far beyond the broker's frame limit (2 x + 1 MiB), where libzmq would drop
  // the connection silently if it were sent.
  auto start = Clock_::now();
  auto r = client.call("big", "echo", std::string(2'000'000, 'x'), o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::PayloadTooLarge);
  CHECK(Clock_::now() - start < std::chrono::seconds(5));
  // Just over the limit (the broker checks it) and within it.
  auto over = client.call("big", "echo", std::string(100'001, 'x'), o);
  REQUIRE_FALSE(over);
  CHECK(over.error().code == ErrorCode::PayloadTooLarge);
  auto fits = client.call("big", "echo", std::string(100'000, 'x'), o);
  REQUIRE(fits);
  CHECK(fits.value().size() == 100'000);
}
