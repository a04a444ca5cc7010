// JobTable: every live job by id, in a slab. An id is (generation << 32 | slot): lookup is an
// index and a generation compare (no hashing), a finished job's slot is reused without an
// allocation, and a stale id (a finished job's, or a made-up one) never matches (its
// generation differs). Addresses are stable while a job lives (std::deque never moves
// elements on growth), so a Job& stays valid across other jobs' creation and removal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "broker/job.h"

namespace flame {

class JobTable {
 public:
  // A new job, with `id` set and every other field at its default.
  Job& create() {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    }
    Entry& e = entries_[slot];
    e.live = true;
    e.job.id = (uint64_t{e.generation} << 32) | slot;
    ++live_;
    return e.job;
  }

  Job* find(JobId id) {
    uint64_t slot = id & 0xFFFFFFFFu;
    if (slot >= entries_.size()) return nullptr;
    Entry& e = entries_[slot];
    return e.live && e.job.id == id ? &e.job : nullptr;
  }
  const Job* find(JobId id) const { return const_cast<JobTable*>(this)->find(id); }

  // Ends a job: its slot is reset (payload and strings released) and reused later under a new
  // generation. `id` must be live.
  void erase(JobId id) {
    uint32_t slot = static_cast<uint32_t>(id & 0xFFFFFFFFu);
    Entry& e = entries_[slot];
    e.live = false;
    e.job = Job{};
    // Generation 0 is never used, so no id is ever 0 ("no job" on the wire).
    if (++e.generation == 0) e.generation = 1;
    free_.push_back(slot);
    --live_;
  }

  size_t size() const { return live_; }

  // Calls f(Job&) for every live job (slot order).
  template <class F>
  void forEach(F&& f) {
    for (auto& e : entries_)
      if (e.live) f(e.job);
  }

 private:
  struct Entry {
    uint32_t generation = 1;
    bool live = false;
    Job job;
  };
  std::deque<Entry> entries_;
  std::vector<uint32_t> free_;
  size_t live_ = 0;
};

}  // namespace flame
