// IdMap: 64-bit id -> 64-bit id, open addressing with linear probing and backward-shift
// deletion. A client session maps its outstanding request ids to jobs with it: one insert and
// one erase per job, with no allocation (std::unordered_map allocated a node for each) and the
// probe usually within one cache line. Capacity doubles at half full and never shrinks (a
// session's map is as large as its peak number of requests in flight).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flame {

class IdMap {
 public:
  // The value for `key`, or nullptr.
  const uint64_t* find(uint64_t key) const {
    if (size_ == 0) return nullptr;
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.key == key) return &s.value;
    }
  }
  bool contains(uint64_t key) const { return find(key) != nullptr; }

  // Adds key -> value. Returns false (and changes nothing) if `key` is present.
  bool insert(uint64_t key, uint64_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = home(key);
    for (; slots_[i].used; i = (i + 1) & mask_)
      if (slots_[i].key == key) return false;
    slots_[i] = Slot{key, value, true};
    ++size_;
    return true;
  }

  // Removes `key`. Returns whether it was present.
  bool erase(uint64_t key) {
    if (size_ == 0) return false;
    size_t i = home(key);
    for (;; i = (i + 1) & mask_) {
      if (!slots_[i].used) return false;
      if (slots_[i].key == key) break;
    }
    // Backward shift: move later entries of the probe run into the hole, so no tombstones.
    for (size_t j = (i + 1) & mask_; slots_[j].used; j = (j + 1) & mask_) {
      size_t want = home(slots_[j].key);
      // Entry j may move to the hole i if its home is not in the cyclic range (i, j].
      bool between = i <= j ? (want > i && want <= j) : (want > i || want <= j);
      if (!between) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].used = false;
    --size_;
    return true;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Calls f(key, value) for every entry. The map must not change during the call.
  template <class F>
  void forEach(F&& f) const {
    for (const Slot& s : slots_)
      if (s.used) f(s.key, s.value);
  }

 private:
  struct Slot {
    uint64_t key = 0;
    uint64_t value = 0;
    bool used = false;
  };
  size_t home(uint64_t key) const {
    // Fibonacci hashing: spreads sequential and slot-shaped ids over the table.
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    size_t capacity = old.empty() ? 8 : old.size() * 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    shift_ = 64;
    for (size_t c = capacity; c > 1; c >>= 1) --shift_;
    size_ = 0;
    for (const Slot& s : old)
      if (s.used) insert(s.key, s.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t size_ = 0;
};

}  // namespace flame
