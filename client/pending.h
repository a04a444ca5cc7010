// The client's table of requests awaiting an answer from the broker. ClientCore adds entries
// and takes them out when an answer, a local deadline or a liveness failure resolves them.
// Each entry is taken exactly once, so each completion runs exactly once. No sockets here: the
// table is unit-tested on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "client/outcome.h"
#include "common/clock.h"
#include "common/messages.h"

namespace flame {

// The result of a call: the payload frame and the broker's job id.
struct CallReply {
  std::string payload;
  uint64_t jobId = 0;
};

// Everything that can resolve a pending request, before the public API turns it into the
// caller's Outcome type.
using Answer = std::variant<Failure, CallReply, msg::Accepted, msg::Placed, msg::Stopped, msg::StatusReply,
                            msg::Subscribed>;
// Receives a request's Answer, exactly once. (Not the worker's Completion, which is a job's
// outcome inside a runner.)
using AnswerHandler = std::function<void(Answer)>;
// Invoked once when a watched child ends (see ClientCore): nullopt when its function returned
// normally.
using ExitCallback = std::function<void(uint64_t childId, std::optional<Failure>)>;

// An event subscription's handlers (ClientCore): each event, and its end (exactly once, after
// the subscription was confirmed): cancelled, broker_unreachable, shutting_down, ...
using EventHandler = std::function<void(const msg::Event&)>;
using EndHandler = std::function<void(Failure)>;

// Subscribe waits for `subscribed` like any request; Unsubscribe never enters the table (it is
// how an API thread hands the core a cancel of a subscription).
enum class RequestKind : uint8_t { Call, Cast, Place, Stop, Status, SetPool, Subscribe, Unsubscribe };

struct PendingRequest {
  RequestKind kind = RequestKind::Call;
  bool link = false;     // submitted with link = true
  uint64_t childId = 0;  // Stop: the child being stopped
  // Local safety deadline; TimePoint::max() = none. At the deadline the request fails (timeout,
  // or broker_unreachable for status and setPool; see ClientCore).
  TimePoint deadline = TimePoint::max();
  Duration timeout{0};  // the budget the deadline was computed from (for the failure's message)
  AnswerHandler done;
  ExitCallback onExit;  // Place: kept for the child's childExited (linked, or unlinked with one)
};

// Not thread-safe (ClientCore's thread owns it). Request ids are chosen by the caller and must be
// unique among live entries.
class PendingTable {
 public:
  using Entry = std::pair<uint64_t, PendingRequest>;

  // Stores `request` (moved from only on success). Returns false once close() was called.
  bool add(uint64_t requestId, PendingRequest& request);

  // Removes and returns the entry for `requestId`, if any.
  std::optional<PendingRequest> take(uint64_t requestId);

  // Removes and returns every pending stop of `childId` (a `stopped` answers all of them).
  std::vector<Entry> takeStopsOf(uint64_t childId);

  // An error that names no request (requestId 0) can only answer a stopChild, which carries no
  // request id on the wire. Returns the stop of `childIdHint` if one is pending, else the only
  // pending stop; nullopt when that is ambiguous or there is none.
  std::optional<Entry> takeUnaddressedStop(uint64_t childIdHint);

  // Removes and returns the entries whose deadline is at or before `now`, earliest first.
  std::vector<Entry> takeExpired(TimePoint now);

  // The earliest deadline, or TimePoint::max(). (Drops stale heap entries on the way, hence not
  // const.)
  TimePoint nextDeadline();

  // Refuses further add()s and returns every remaining entry.
  std::vector<Entry> close();

  // Removes and returns every entry (the table stays open).
  std::vector<Entry> takeAll();

  bool contains(uint64_t requestId) const;
  bool empty() const;
  size_t size() const;

 private:
  using Deadline = std::pair<TimePoint, uint64_t>;  // (deadline, requestId)
  // Pops heap entries whose request is gone or has another deadline.
  void dropStaleDeadlines();

  bool closed_ = false;
  std::unordered_map<uint64_t, PendingRequest> entries_;
  // A min-heap of the deadlines, lazily cleaned: answering a request leaves its entry behind
  // (no search, no allocation per request); add() rebuilds the heap when most of it is stale.
  std::vector<Deadline> deadlines_;
  size_t timed_ = 0;  // live entries with a deadline
  std::unordered_multimap<uint64_t, uint64_t> stopsByChild_;  // childId -> requestId
};

}  // namespace flame
