// RunnerIndex against a brute-force pick under random load changes (its nodes are re-filed in
// place with a hint, which must never leave one out of order).
#include <catch2/catch.hpp>

#include <memory>
#include <random>
#include <vector>

#include "broker/pool.h"

using namespace flame;

namespace {
// What pick() must return: among runners that accept work and serve `function`, the busiest
// (pack) or least busy (spread); ties go to the oldest runner (lowest seq) under pack, to the
// youngest under spread (either is fine for spread; the key order gives that one).
RunnerState* bruteForce(const std::vector<std::unique_ptr<RunnerState>>& runners, Placement placement,
                        const std::string& function) {
  RunnerState* best = nullptr;
  for (auto& r : runners) {
    if (!r->acceptsWork() || !r->functions.count(function)) continue;
    if (!best) {
      best = r.get();
      continue;
    }
    bool better = placement == Placement::Pack ? r->used > best->used : r->used < best->used;
    bool tieWins = placement == Placement::Pack ? r->seq < best->seq : r->seq > best->seq;
    if (better || (r->used == best->used && tieWins)) best = r.get();
  }
  return best;
}
}  // namespace

TEST_CASE("RunnerIndex picks what a full scan would, through random load changes", "[broker][pool]") {
  std::mt19937 rng(3);
  for (Placement placement : {Placement::Pack, Placement::Spread}) {
    RunnerIndex index;
    std::vector<std::unique_ptr<RunnerState>> runners;
    for (uint64_t i = 0; i < 50; ++i) {
      auto r = std::make_unique<RunnerState>();
      r->seq = i + 1;
      r->slots = 1 + rng() % 8;
      // Three groups: {common}, {common, rare}, {rare}: pick() must compare across groups.
      std::vector<std::string> serves = i % 5 == 0 ? std::vector<std::string>{"rare", "common"}
                                        : i % 7 == 0 ? std::vector<std::string>{"rare"}
                                                     : std::vector<std::string>{"common"};
      r->functions.insert(serves.begin(), serves.end());
      index.join(*r, serves);
      runners.push_back(std::move(r));
    }
    for (int step = 0; step < 20'000; ++step) {
      RunnerState& r = *runners[rng() % runners.size()];
      switch (rng() % 4) {
        case 0:
        case 1:
          if (r.used < r.slots) ++r.used;  // a dispatch
          break;
        case 2:
          if (r.used > 0) --r.used;  // a completion
          break;
        default:
          r.phase = r.phase == RunnerPhase::Ready ? RunnerPhase::Draining : RunnerPhase::Ready;
      }
      index.update(r);
      for (const char* f : {"common", "rare"}) REQUIRE(index.pick(placement, f) == bruteForce(runners, placement, f));
      uint32_t free = 0;
      for (auto& each : runners)
        if (each->acceptsWork()) free += each->slots - each->used;
      REQUIRE(index.freeSlots() == free);
    }
    size_t accepting = 0;
    for (auto& r : runners) accepting += r->acceptsWork();
    CHECK(index.size() == accepting);
    CHECK(index.groups() == 3);
    for (auto& r : runners) index.leave(*r);
    CHECK(index.size() == 0);
    CHECK(index.groups() == 0);
  }
}

TEST_CASE("a pool's queue hands out the oldest job a runner can serve, skipping blocked functions",
          "[broker][pool]") {
  PoolQueue queue;
  queue.pushBack("gpu", 1);
  queue.pushBack("cpu", 2);
  queue.pushBack("gpu", 3);
  queue.pushBack("cpu", 4);
  queue.pushFront("cpu", 5);  // requeued: the oldest of all
  RunnerState runner;
  std::vector<JobId> sent;
  auto live = [](JobId) { return true; };
  // Nothing serves gpu: the cpu jobs go, requeued one first; the gpu ones wait in order.
  queue.drain(live, [&](const std::string& f) { return f == "cpu" ? &runner : nullptr; },
              [&](RunnerState&, JobId id) {
                sent.push_back(id);
                return true;
              });
  CHECK(sent == std::vector<JobId>{5, 2, 4});
  CHECK(queue.size() == 2);
  // A stale id (the job left the queue some other way) is skipped and not counted.
  queue.forget("gpu");
  sent.clear();
  queue.drain([](JobId id) { return id != 1; }, [&](const std::string&) { return &runner; },
              [&](RunnerState&, JobId id) {
                sent.push_back(id);
                return true;
              });
  CHECK(sent == std::vector<JobId>{3});
  CHECK(queue.empty());
}

TEST_CASE("a failed send stops the drain at once", "[broker][pool]") {
  PoolQueue queue;
  for (JobId id = 1; id <= 3; ++id) queue.pushBack("f", id);
  RunnerState runner;
  int sends = 0;
  queue.drain([](JobId) { return true; }, [&](const std::string&) { return &runner; },
              [&](RunnerState&, JobId) { return ++sends < 2; });
  CHECK(sends == 2);
  CHECK(queue.size() == 1);
}
