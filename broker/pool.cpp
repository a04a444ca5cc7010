#include "broker/pool.h"

#include <algorithm>

namespace flame {

void RunnerIndex::join(RunnerState& r, const std::vector<std::string>& functions) {
  std::vector<std::string> sorted = functions;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  RunnerGroup* group = nullptr;
  for (auto& g : groups_)
    if (g->functions == sorted) group = g.get();
  if (!group) {
    groups_.push_back(std::make_unique<RunnerGroup>());
    group = groups_.back().get();
    group->functions = std::move(sorted);
    group->serves.insert(group->functions.begin(), group->functions.end());
  }
  ++group->members;
  r.group = group;
  update(r);
}

void RunnerIndex::leave(RunnerState& r) {
  erase(r);
  RunnerGroup* group = r.group;
  if (!group) return;
  r.group = nullptr;
  if (--group->members > 0) return;
  groups_.erase(std::find_if(groups_.begin(), groups_.end(), [&](auto& g) { return g.get() == group; }));
}

// A runner that can take work, with `used` slots taken: how many more jobs it can take. A
// single-use runner takes one job in its life, whatever its slots (it leaves the index then).
uint32_t RunnerIndex::freeSlotsOf(const RunnerState& r, uint32_t used) {
  return r.singleUse ? 1 : r.slots - used;
}

void RunnerIndex::update(RunnerState& r) {
  if (!r.group) return;  // not registered yet
  if (!r.acceptsWork()) return erase(r);
  RunnerIndexMap& map = r.group->map;
  std::pair<uint32_t, uint64_t> key{r.used, ~r.seq};
  if (r.indexed) {
    if (key == r.indexPos->first) return;
    freeSlots_ -= freeSlotsOf(r, r.indexPos->first.first);  // what it had
    freeSlots_ += freeSlotsOf(r, r.used);
    auto hint = std::next(r.indexPos);
    auto node = map.extract(r.indexPos);
    node.key() = key;
    r.indexPos = map.insert(hint, std::move(node));
  } else {
    r.indexPos = map.emplace(key, &r).first;
    r.indexed = true;
    ++available_;
    freeSlots_ += freeSlotsOf(r, r.used);
  }
}

void RunnerIndex::erase(RunnerState& r) {
  if (!r.indexed) return;
  freeSlots_ -= freeSlotsOf(r, r.indexPos->first.first);
  r.group->map.erase(r.indexPos);
  r.indexed = false;
  --available_;
}

RunnerState* RunnerIndex::pick(Placement placement, const std::string& function) const {
  RunnerState* best = nullptr;
  std::pair<uint32_t, uint64_t> bestKey{};
  for (auto& g : groups_) {
    if (g->map.empty() || !g->serves.count(function)) continue;
    // pack: the busiest (highest key); spread: the least busy (lowest key).
    auto& [key, runner] = placement == Placement::Pack ? *g->map.rbegin() : *g->map.begin();
    bool better = !best || (placement == Placement::Pack ? key > bestKey : key < bestKey);
    if (better) {
      best = runner;
      bestKey = key;
    }
  }
  return best;
}

}  // namespace flame
