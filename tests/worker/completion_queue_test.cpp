// CompletionQueue wakes its reader only when it found the queue empty (armed): no outcome may
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
  std::vector<JobOutcome> batch;
  while (received < seen.size()) {
    queue.takeAll(batch);
    if (batch.empty()) {
      // Armed: the reader sleeps on the descriptor, as the runner's loop does; a lost wake-up
      // leaves outcomes queued and this poll times out (a bound, not a delay).
      pollfd p{queue.fd(), POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) {
        stalled = true;
        break;
      }
      queue.clearWake();
      continue;
    }
    for (auto& c : batch) {
      ++seen[c.jobId];
      ++received;
    }
    batch.clear();
  }
  for (auto& t : producers) t.join();
  REQUIRE_FALSE(stalled);
  CHECK(received == seen.size());
  for (int n : seen) REQUIRE(n == 1);
}

TEST_CASE("only a reader that found the queue empty is woken", "[worker][completion_queue]") {
  CompletionQueue queue;
  auto readable = [&] {
    pollfd p{queue.fd(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  };
  std::vector<JobOutcome> batch;
  queue.post(JobOutcome{1, {}});
  CHECK_FALSE(readable());  // the reader has not said it sleeps: it takes this before it does
  queue.takeAll(batch);
  REQUIRE(batch.size() == 1);
  batch.clear();
  queue.post(JobOutcome{2, {}});  // the reader is busy with job 1: no wake-up
  CHECK_FALSE(readable());
  queue.takeAll(batch);
  CHECK(batch.size() == 1);
  batch.clear();
  queue.takeAll(batch);  // nothing: armed
  CHECK(batch.empty());
  queue.post(JobOutcome{3, {}});
  CHECK(readable());
  queue.post(JobOutcome{4, {}});  // one wake-up is enough for both
  queue.clearWake();
  CHECK_FALSE(readable());
  queue.takeAll(batch);
  CHECK(batch.size() == 2);
  queue.wake();  // requests wake the reader whatever the queue holds
  CHECK(readable());
}
