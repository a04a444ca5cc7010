#include "client/pending.h"

#include <algorithm>
#include <functional>

namespace flame {

namespace {
// std::*_heap build a max-heap: "greater" puts the earliest deadline on top.
constexpr auto kLater = std::greater<>();
}  // namespace

bool PendingTable::add(uint64_t requestId, PendingRequest& request) {
  if (closed_) return false;
  if (request.deadline != TimePoint::max()) {
    if (deadlines_.size() >= 64 && deadlines_.size() > 2 * (timed_ + 1)) {
      // Mostly stale: rebuild from the live entries (amortised O(1) per request).
      deadlines_.clear();
      for (auto& [id, r] : entries_)
        if (r.deadline != TimePoint::max()) deadlines_.emplace_back(r.deadline, id);
      std::make_heap(deadlines_.begin(), deadlines_.end(), kLater);
    }
    deadlines_.emplace_back(request.deadline, requestId);
    std::push_heap(deadlines_.begin(), deadlines_.end(), kLater);
    ++timed_;
  }
  if (request.kind == RequestKind::Stop) stopsByChild_.emplace(request.childId, requestId);
  entries_.emplace(requestId, std::move(request));
  return true;
}

std::optional<PendingRequest> PendingTable::take(uint64_t requestId) {
  auto it = entries_.find(requestId);
  if (it == entries_.end()) return std::nullopt;
  PendingRequest request = std::move(it->second);
  entries_.erase(it);
  if (request.deadline != TimePoint::max()) --timed_;  // its heap entry is now stale
  if (request.kind == RequestKind::Stop) {
    auto [first, last] = stopsByChild_.equal_range(request.childId);
    for (auto s = first; s != last; ++s) {
      if (s->second == requestId) {
        stopsByChild_.erase(s);
        break;
      }
    }
  }
  return request;
}

std::vector<PendingTable::Entry> PendingTable::takeStopsOf(uint64_t childId) {
  std::vector<uint64_t> ids;
  auto [first, last] = stopsByChild_.equal_range(childId);
  for (auto s = first; s != last; ++s) ids.push_back(s->second);
  std::sort(ids.begin(), ids.end());  // oldest first, for a predictable completion order
  std::vector<Entry> out;
  for (uint64_t id : ids) {
    if (auto request = take(id)) out.emplace_back(id, std::move(*request));
  }
  return out;
}

std::optional<PendingTable::Entry> PendingTable::takeUnaddressedStop(uint64_t childIdHint) {
  uint64_t id = 0;
  if (auto hinted = stopsByChild_.find(childIdHint);
      childIdHint != 0 && hinted != stopsByChild_.end()) {
    id = hinted->second;
  } else if (stopsByChild_.size() == 1) {
    id = stopsByChild_.begin()->second;
  } else {
    return std::nullopt;
  }
  auto request = take(id);
  if (!request) return std::nullopt;
  return Entry{id, std::move(*request)};
}

void PendingTable::dropStaleDeadlines() {
  while (!deadlines_.empty()) {
    auto [when, id] = deadlines_.front();
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.deadline == when) return;
    std::pop_heap(deadlines_.begin(), deadlines_.end(), kLater);
    deadlines_.pop_back();
  }
}

std::vector<PendingTable::Entry> PendingTable::takeExpired(TimePoint now) {
  std::vector<Entry> out;
  for (;;) {
    dropStaleDeadlines();
    if (deadlines_.empty() || deadlines_.front().first > now) break;
    uint64_t id = deadlines_.front().second;
    std::pop_heap(deadlines_.begin(), deadlines_.end(), kLater);
    deadlines_.pop_back();
    if (auto request = take(id)) out.emplace_back(id, std::move(*request));
  }
  return out;
}

TimePoint PendingTable::nextDeadline() {
  dropStaleDeadlines();
  return deadlines_.empty() ? TimePoint::max() : deadlines_.front().first;
}

std::vector<PendingTable::Entry> PendingTable::close() {
  closed_ = true;
  return takeAll();
}

std::vector<PendingTable::Entry> PendingTable::takeAll() {
  std::vector<Entry> out;
  out.reserve(entries_.size());
  for (auto& [id, request] : entries_) out.emplace_back(id, std::move(request));
  std::sort(out.begin(), out.end(),
            [](const Entry& a, const Entry& b) { return a.first < b.first; });
  entries_.clear();
  deadlines_.clear();
  timed_ = 0;
  stopsByChild_.clear();
  return out;
}

bool PendingTable::contains(uint64_t requestId) const {
  return entries_.count(requestId) != 0;
}

bool PendingTable::empty() const {
  return entries_.empty();
}

size_t PendingTable::size() const {
  return entries_.size();
}

}  // namespace flame
