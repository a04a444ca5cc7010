// flame-consumer: a small application that uses an installed flame (find_package(flame),
// <flame/client.h>, <flame/runner.h>). It serves a function as a runner of pool "consumer" on a
// thread, calls it as a client, and checks the answer.
//   flame-consumer CLIENT_ENDPOINT RUNNER_ENDPOINT     exit 0: the call came back right
#include <flame/client.h>
#include <flame/runner.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>

namespace {

// True once `pool` has a runner, polling the broker's status until `limit` (a static pool
// exists only once its first runner registered: a call before that gets unknown_pool).
bool waitForRunner(flame::Client& client, const std::string& pool, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (auto status = client.status(flame::Duration(1000))) {
      for (const auto& p : status.value().pools)
        if (p.name == pool && !p.runners.empty()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling interval, not a timer
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: flame-consumer CLIENT_ENDPOINT RUNNER_ENDPOINT\n";
    return 2;
  }
  flame::RunnerOptions ro;
  ro.broker = argv[2];
  ro.pool = "consumer";
  ro.failsafeAfter = flame::Duration(10000);
  flame::Runner runner(ro);
  runner.handle("reverse", [](flame::JobContext& job) -> flame::HandlerResult {
    std::string s(job.payload());
    std::reverse(s.begin(), s.end());
    return s;
  });
  std::thread serving([&runner] { runner.run(); });

  int rc = 1;
  {
    flame::ClientOptions co;
    co.broker = argv[1];
    flame::Client client(co);
    if (!waitForRunner(client, "consumer", std::chrono::seconds(10))) {
      std::cerr << "flame-consumer: no runner of pool consumer registered within 10 s\n";
    } else {
      flame::CallOptions options;
      options.timeout = flame::Duration(10000);
      auto r = client.call("consumer", "reverse", "installed flame", options);
      if (!r) {
        std::cerr << "flame-consumer: call failed: " << r.error().toString() << "\n";
      } else if (r.value() != "emalf dellatsni") {
        std::cerr << "flame-consumer: wrong answer '" << r.value() << "'\n";
      } else {
        std::cout << "flame-consumer: reverse('installed flame') = '" << r.value() << "'\n";
        rc = 0;
      }
    }
  }
  runner.requestStop();
  serving.join();
  return rc;
}
