// A pool: its FIFO queue of waiting jobs, its runners indexed for placement, and counters.
// Plain data plus two small helper types; BrokerCore owns every Pool and drives them.
#pragma once

#include <cstdint>
#include <algorithm>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker/job.h"
#include "broker/metrics.h"
#include "broker/options.h"

namespace flame {

enum class RunnerPhase : uint8_t { Ready, Draining };

struct RunnerState;
struct RunnerGroup;
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
  std::string key;        // CURVE: the key of its first ready: every later ready must present it
  RunnerPhase phase = RunnerPhase::Ready;
  bool singleUse = false;  // takes one job in its life, then is drained (pool option single_use)
  uint64_t started = 0;    // jobs dispatched to it
  std::unordered_set<std::string> functions;
  std::vector<JobId> jobs;  // running here, unordered (Job::runnerPos indexes it)
  TimePoint lastSeen{};
  TimePoint idleSince{};  // when `used` last became 0
  uint32_t pid = 0;
  std::string host;
  // Its group and position in the pool's RunnerIndex (maintained by RunnerIndex only).
  RunnerGroup* group = nullptr;
  bool indexed = false;
  RunnerIndexMap::iterator indexPos{};
  bool acceptsWork() const {
    return phase == RunnerPhase::Ready && used < slots && !(singleUse && started > 0);
  }
};

// FIFO of job ids, each with its arrival order (`order`: later pushBack is larger, pushFront
// is smaller than everything). Removal from the middle (timeout, cancel) is lazy: the owner
// erases the job and calls forget(), which keeps size() exact; the stale id is dropped when it
// reaches the head (popStale()).
class JobQueue {
 public:
  void pushBack(JobId id, int64_t order) { ids_.push_back({id, order}); ++live_; }
  void pushFront(JobId id, int64_t order) { ids_.push_front({id, order}); ++live_; }
  // The job left the queue some other way than popFront (it must still be in ids_).
  void forget() {
    if (--live_ == 0) ids_.clear();  // all that is left is stale
  }
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // The id at the head, which may be stale (the owner checks it and calls popStale()).
  // Only valid when !empty() (stale ids never outlive the live ones behind them).
  JobId peekRaw() const { return ids_.front().first; }
  int64_t headOrder() const { return ids_.front().second; }
  // Removes a stale head id (one that was forget()-ed).
  void popStale() { ids_.pop_front(); }
  // Removes the live head id.
  void popFront() { ids_.pop_front(); --live_; }

 private:
  std::deque<std::pair<JobId, int64_t>> ids_;
  size_t live_ = 0;
};

// A pool's waiting jobs: one FIFO per function, so that a job no free runner can serve does
// not hold back the jobs behind it that one can (docs/PROTOCOL.md, "Dispatch order"). Each entry
// carries its arrival order, and a requeued job goes back before everything, so the live head
// with the lowest order is the oldest job waiting. Dispatch looks at the heads only:
// O(functions waiting) per dispatched job, and one FIFO in the common case.
class PoolQueue {
 public:
  void pushBack(const std::string& function, JobId id) { fifo(function).pushBack(id, nextBack_++); ++size_; }
  void pushFront(const std::string& function, JobId id) { fifo(function).pushFront(id, nextFront_--); ++size_; }
  // A job of `function` left the queue some other way than popping (timeout, cancel, attach).
  void forget(const std::string& function) {
    auto it = byFunction_.find(function);
    if (it == byFunction_.end()) return;
    it->second.forget();
    --size_;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Dispatch. Takes the oldest live job whose function `pick(function)` finds a runner for
  // (a RunnerState*, nullptr if none), pops it and calls `send(runner, id)`; stops when no
  // waiting function has a runner, or when `send` returns false (the dispatch failed and the
  // owner re-dispatches: the queue may have changed under us). `isLive(id)` tells a waiting
  // job from a stale id.
  template <class IsLive, class Pick, class Send>
  void drain(IsLive&& isLive, Pick&& pick, Send&& send) {
    std::vector<const std::string*> blocked;  // functions nothing free serves, this round
    for (;;) {
      auto best = byFunction_.end();
      for (auto it = byFunction_.begin(); it != byFunction_.end();) {
        JobQueue& q = it->second;
        while (!q.empty() && !isLive(q.peekRaw())) q.popStale();
        if (q.empty()) {
          // Kept for the next job of that function (a FIFO that empties and refills with every
          // job would cost a map node and a deque block each time), unless there are many.
          it = byFunction_.size() > kKeptEmpty ? byFunction_.erase(it) : std::next(it);
          continue;
        }
        bool skip = std::find(blocked.begin(), blocked.end(), &it->first) != blocked.end();
        if (!skip && (best == byFunction_.end() || q.headOrder() < best->second.headOrder())) best = it;
        ++it;
      }
      if (best == byFunction_.end()) return;
      auto* runner = pick(best->first);
      if (!runner) {
        blocked.push_back(&best->first);
        continue;
      }
      JobId id = best->second.peekRaw();
      best->second.popFront();
      --size_;
      if (!send(*runner, id)) return;
    }
  }

 private:
  static constexpr size_t kKeptEmpty = 16;  // empty FIFOs kept for reuse (see drain())
  JobQueue& fifo(const std::string& function) { return byFunction_[function]; }

  std::unordered_map<std::string, JobQueue> byFunction_;  // only functions with waiting jobs
  size_t size_ = 0;
  int64_t nextBack_ = 0;    // arrival order of the next pushBack
  int64_t nextFront_ = -1;  // ... and of the next pushFront (before everything)
};

// Runners of one pool that can take a job now, ordered by load, so that placement is
// O(log n) whatever the pool size (pack takes the busiest, spread the least busy). Runners are
// grouped by the set of functions they serve (usually one group per pool: every runner of a
// pool runs the same code), each group with its own order, so pick() looks at the best runner
// of each group that serves the function: O(groups), never a scan over runners.
// Runners that serve the same functions (see RunnerIndex).
struct RunnerGroup {
  std::vector<std::string> functions;  // sorted, distinct
  std::unordered_set<std::string> serves;
  RunnerIndexMap map;  // its runners that can take a job now
  size_t members = 0;
};

class RunnerIndex {
 public:
  // Files `r` under the group of its function set. Call once, when it registers.
  void join(RunnerState& r, const std::vector<std::string>& functions);
  // Takes `r` out of its group (it leaves the pool).
  void leave(RunnerState& r);
  // Re-files `r` after its load or phase changed. A dispatch or a completion moves a runner's
  // key by one, which almost always leaves it where it was among the others: re-inserting the
  // same node (no allocation) with its old neighbour as the hint is then amortized O(1);
  // otherwise O(log n).
  void update(RunnerState& r);
  void erase(RunnerState& r);
  // The best runner for `placement` that serves `function` and can take a job, or nullptr.
  RunnerState* pick(Placement placement, const std::string& function) const;
  bool empty() const { return available_ == 0; }
  size_t size() const { return available_; }
  // Jobs the runners that can take work now would take (slots - used; 1 for a single-use runner).
  uint32_t freeSlots() const { return freeSlots_; }
  size_t groups() const { return groups_.size(); }

 private:
  static uint32_t freeSlotsOf(const RunnerState& r, uint32_t used);
  std::vector<std::unique_ptr<RunnerGroup>> groups_;
  size_t available_ = 0;
  uint32_t freeSlots_ = 0;
};

struct PoolCounters {
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t retried = 0;  // retries scheduled
};

struct Pool {
  std::string name;
  Placement placement = Placement::Pack;
  Duration defaultTimeout{30000};
  Duration castTimeout = kInfinite;
  Duration waitTimeout{40000};
  Duration retryBackoff{0};
  Duration retryBackoffMax{600'000};
  uint32_t maxQueue = 0;  // 0 = unlimited
  bool singleUse = false;  // its runners take one job each (pool option single_use)
  PoolQueue queue;
  RunnerIndex available;
  std::unordered_set<RunnerState*> runners;
  uint32_t draining = 0;  // how many of `runners` are draining
  std::unordered_map<std::string, uint32_t> functionRunners;  // function -> runners serving it
  PoolCounters counters;
  metrics::PoolMetrics metrics;  // Prometheus counters (broker/metrics.h)
  TimePoint queueFullEventAt{};  // the last queue_full event (at most one per second)
};

}  // namespace flame
