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
      r->functions = {i % 5 == 0 ? "rare" : "common"};
      index.update(*r);
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
    }
    size_t accepting = 0;
    for (auto& r : runners) accepting += r->acceptsWork();
    CHECK(index.size() == accepting);
  }
}
