// IdMap against std::unordered_map under random inserts and erases (backward-shift deletion
// is where open addressing goes wrong).
#include <catch2/catch.hpp>

#include <random>
#include <unordered_map>

#include "broker/id_map.h"

using namespace flame;

TEST_CASE("IdMap agrees with std::unordered_map under random inserts and erases", "[broker][id_map]") {
  std::mt19937_64 rng(7);
  IdMap map;
  std::unordered_map<uint64_t, uint64_t> model;
  // Small key spaces force long probe runs and wrap-around; the large one mimics request ids.
  for (uint64_t space : {16ull, 1000ull, ~0ull}) {
    for (int step = 0; step < 50'000; ++step) {
      uint64_t key = space == ~0ull ? rng() : rng() % space;
      switch (rng() % 3) {
        case 0: {
          uint64_t value = rng();
          bool inserted = map.insert(key, value);
          CHECK(inserted == model.emplace(key, value).second);
          break;
        }
        case 1:
          CHECK(map.erase(key) == (model.erase(key) == 1));
          break;
        default: {
          const uint64_t* found = map.find(key);
          auto it = model.find(key);
          REQUIRE((found != nullptr) == (it != model.end()));
          if (found) CHECK(*found == it->second);
        }
      }
      REQUIRE(map.size() == model.size());
    }
    // Every entry is still reachable, and forEach sees exactly the model.
    size_t seen = 0;
    map.forEach([&](uint64_t k, uint64_t v) {
      ++seen;
      auto it = model.find(k);
      REQUIRE(it != model.end());
      CHECK(it->second == v);
    });
    CHECK(seen == model.size());
    for (auto& [k, v] : model) {
      REQUIRE(map.find(k) != nullptr);
      CHECK(*map.find(k) == v);
    }
  }
  for (auto& [k, v] : model) CHECK(map.erase(k));
  CHECK(map.empty());
  CHECK(map.find(0) == nullptr);
}
