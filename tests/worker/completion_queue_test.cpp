// CompletionQueue wakes its reader only for the first completion of a run: no completion may
// ever be left without a wake-up, whatever the interleaving of posts and takeAll().
#include <catch2/catch.hpp>

#include <poll.h>

#include <thread>
#include <vector>

#include "worker/completion_queue.h"

using namespace flame;

TEST_CASE("completions posted from many threads all reach a reader that sleeps on the descriptor",
          "[worker][completion_queue]") {
  CompletionQueue queue;
  constexpr int kThreads = 4, kEach = 20'000;
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([&queue, t] {
      for (int i = 0; i < kEach; ++i) queue.post(JobOutcome{static_cast<uint64_t>(t) * kEach + i, {}});
    });
  std::vector<int> seen(kThreads * kEach, 0);
  size_t received = 0;
  bool stalled = false;
  while (received < seen.size()) {
    // The reader only takes after the descriptor says so, as the runner's loop does; a lost
    // wake-up leaves completions queued and this poll times out (a bound, not a delay).
    pollfd p{queue.fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) {
      stalled = true;
      break;
    }
    for (auto& c : queue.takeAll()) {
      ++seen[c.jobId];
      ++received;
    }
  }
  for (auto& t : producers) t.join();
  REQUIRE_FALSE(stalled);
  CHECK(received == seen.size());
  for (int n : seen) REQUIRE(n == 1);
}
