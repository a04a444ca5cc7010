// Retries end to end (issue 12, item 9), with the real flame-broker, flame-worker and flame CLI on
// loopback: a function that fails twice and then works is answered after two retries with
// backoff; without retries its first failure is the answer; with too few, the last one is; the
// broker's status counts every retry.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include "client/client.h"
#include "tests/integration/process_harness.h"

using namespace flame;
using namespace flame::test;

namespace {

struct CliRun {
  int exitCode = -1;
  std::string output;
};

CliRun runCli(const std::string& clients, std::vector<std::string> args) {
  std::vector<std::string> argv{binary("flame"), "--broker", clients};
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = Process::start(argv);
  auto status = process->waitExit(Millis(30000));
  CliRun run;
  run.output = process->output();
  if (status && WIFEXITED(*status)) run.exitCode = WEXITSTATUS(*status);
  return run;
}

}  // namespace

TEST_CASE("retries: a flaky function succeeds after retries with backoff, and each retry is counted", "[integration][retries]") {
  auto broker = BrokerProcess::start({"--heartbeat-interval", "200ms"});
  auto worker = Process::start({binary("flame-worker"), "--broker", broker.runners, "--pool", "retry",
                                "--concurrency", "2", "--enable-test-functions"});
  ClientOptions options;
  options.broker = broker.clients;
  Client client(options);
  auto retried = [&]() -> std::optional<uint64_t> {
    auto st = client.status(Duration(2000));
    if (!st) return std::nullopt;
    for (auto& p : st.value().pools)
      if (p.name == "retry" && !p.runners.empty()) return p.retried;
    return std::nullopt;
  };
  REQUIRE(eventually([&] { return retried().has_value(); }, Millis(10000)));

  // Fails twice, then answers: three attempts, the last one 50 ms x 2 after the second.
  auto ok = runCli(broker.clients, {"call", "--retries", "3", "--retry-on", "handler_error", "--retry-backoff", "50ms",
                                    "retry", "flaky", "2:worked"});
  INFO(ok.output);
  CHECK(ok.exitCode == 0);
  CHECK(ok.output.find("worked") != std::string::npos);
  CHECK(retried() == 2u);

  // Without retries the first failure is the answer.
  auto once = runCli(broker.clients, {"call", "retry", "flaky", "1:never"});
  INFO(once.output);
  CHECK(once.exitCode != 0);
  CHECK(once.output.find("handler_error") != std::string::npos);
  CHECK(once.output.find("flaky: failure 1 of 1") != std::string::npos);
  CHECK(retried() == 2u);

  // Too few retries: the last attempt's failure is the answer.
  auto short_ = runCli(broker.clients, {"call", "--retries", "1", "--retry-on", "handler_error", "retry", "flaky",
                                        "5:late"});
  INFO(short_.output);
  CHECK(short_.exitCode != 0);
  CHECK(short_.output.find("flaky: failure 2 of 5") != std::string::npos);
  CHECK(retried() == 3u);
}
