// A pool: its FIFO queue of waiting jobs, its runners indexed for placement, and counters.
// Plain data plus two small helper types; BrokerCore owns every Pool and drives them.
#pragma once

#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/job.h"
#include "broker/options.h"

namespace flame {

enum class RunnerPhase : uint8_t { Ready, Draining };

struct RunnerState;
// RunnerIndex's ordering: (used, ~seq), so the highest key is the busiest and, among equals,
// the oldest runner.
using RunnerIndexMap = std::map<std::pair<uint32_t, uint64_t>, RunnerState*>;

struct RunnerState {
  std::string id;
  std::string routingId;  // current connection (changes when the runner reconnects)
  Pool* pool = nullptr;
  uint64_t seq = 0;       // registration order, a stable tie-breaker for placement
  uint32_t slots = 0;
  uint32_t used = 0;      // slots taken by known jobs plus `phantom`
  uint32_t phantom = 0;   // slots busy with jobs it holds that this broker does not track for it
                          // (a previous broker's, or retried elsewhere); each jobDone of such a
                          // job gives one back
  std::string token;      // the credential of its first ready: every later ready must repeat it
  RunnerPhase phase = RunnerPhase::Ready;
  bool singleUse = false;  // takes one job in its life, then is drained (pool option single_use)
  uint64_t started = 0;    // jobs dispatched to it
  std::unordered_set<std::string> functions;
  std::vector<JobId> jobs;  // running here, unordered (Job::runnerPos indexes it)
  TimePoint lastSeen{};
  TimePoint idleSince{};  // when `used` last became 0
  uint32_t pid = 0;
  std::string host;
  // Position in the pool's RunnerIndex (maintained by RunnerIndex only).
  bool indexed = false;
  RunnerIndexMap::iterator indexPos{};
  bool acceptsWork() const {
    return phase == RunnerPhase::Ready && used < slots && !(singleUse && started > 0);
  }
};

// FIFO of job ids. Removal from the middle (timeout, cancel) is lazy: the owner erases the
// job and calls forget(), which keeps size() exact; the stale id is dropped when it reaches
// the head (popStale()).
class JobQueue {
 public:
  void pushBack(JobId id) { ids_.push_back(id); ++live_; }
  void pushFront(JobId id) { ids_.push_front(id); ++live_; }
  // The job left the queue some other way than popFront (it must still be in ids_).
  void forget() {
    if (--live_ == 0) ids_.clear();  // all that is left is stale
  }
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // The id at the head, which may be stale (the owner checks it and calls popStale()).
  // Only valid when !empty() (stale ids never outlive the live ones behind them).
  JobId peekRaw() const { return ids_.front(); }
  // Removes a stale head id (one that was forget()-ed).
  void popStale() { ids_.pop_front(); }
  // Removes the live head id.
  void popFront() { ids_.pop_front(); --live_; }

 private:
  std::deque<JobId> ids_;
  size_t live_ = 0;
};

// Runners of one pool that can take a job now, ordered by load, so that placement is
// O(log n) whatever the pool size (pack takes the busiest, spread the least busy).
class RunnerIndex {
 public:
  // Re-files `r` after its load or phase changed. A dispatch or a completion moves a runner's
  // key by one, which almost always leaves it where it was among the others: re-inserting the
  // same node (no allocation) with its old neighbour as the hint is then amortized O(1);
  // otherwise O(log n).
  void update(RunnerState& r) {
    if (!r.acceptsWork()) return erase(r);
    std::pair<uint32_t, uint64_t> key{r.used, ~r.seq};
    if (r.indexed) {
      if (key == r.indexPos->first) return;
      auto hint = std::next(r.indexPos);
      auto node = map_.extract(r.indexPos);
      node.key() = key;
      r.indexPos = map_.insert(hint, std::move(node));
    } else {
      r.indexPos = map_.emplace(key, &r).first;
      r.indexed = true;
    }
  }
  void erase(RunnerState& r) {
    if (!r.indexed) return;
    map_.erase(r.indexPos);
    r.indexed = false;
  }
  // The best runner for `placement` that serves `function`, or nullptr.
  RunnerState* pick(Placement placement, const std::string& function) const {
    if (placement == Placement::Pack) {
      for (auto it = map_.rbegin(); it != map_.rend(); ++it)
        if (it->second->functions.count(function)) return it->second;
    } else {
      for (auto& [key, r] : map_)
        if (r->functions.count(function)) return r;
    }
    return nullptr;
  }
  bool empty() const { return map_.empty(); }
  size_t size() const { return map_.size(); }

 private:
  RunnerIndexMap map_;
};

struct PoolCounters {
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t boots = 0;
  uint64_t bootFailures = 0;
};

struct Pool {
  std::string name;
  Placement placement = Placement::Pack;
  Duration defaultTimeout{30000};
  uint32_t maxQueue = 0;  // 0 = unlimited
  JobQueue queue;
  RunnerIndex available;
  std::unordered_set<RunnerState*> runners;
  std::unordered_map<std::string, uint32_t> functionRunners;  // function -> runners serving it
  PoolCounters counters;
};

}  // namespace flame
