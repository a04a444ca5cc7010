#include "client/pending.h"

#include <catch2/catch.hpp>

using namespace flame;

namespace {
const TimePoint kT0{Duration(1'000'000)};

PendingRequest request(RequestKind kind, TimePoint deadline = TimePoint::max(),
                       uint64_t childId = 0) {
  PendingRequest r;
  r.kind = kind;
  r.deadline = deadline;
  r.childId = childId;
  return r;
}
}  // namespace

TEST_CASE("pending requests are taken exactly once", "[client]") {
  PendingTable table;
  auto r = request(RequestKind::Call);
  REQUIRE(table.add(1, r));
  CHECK(table.contains(1));
  CHECK(table.size() == 1);
  CHECK(table.take(1));
  CHECK_FALSE(table.take(1));
  CHECK(table.empty());
}

TEST_CASE("expired requests come out earliest first and only once due", "[client]") {
  PendingTable table;
  auto late = request(RequestKind::Call, kT0 + Duration(300));
  auto early = request(RequestKind::Call, kT0 + Duration(100));
  auto never = request(RequestKind::Call);
  REQUIRE(table.add(1, late));
  REQUIRE(table.add(2, early));
  REQUIRE(table.add(3, never));
  CHECK(table.nextDeadline() == kT0 + Duration(100));
  CHECK(table.takeExpired(kT0 + Duration(99)).empty());
  auto due = table.takeExpired(kT0 + Duration(300));
  REQUIRE(due.size() == 2);
  CHECK(due[0].first == 2);
  CHECK(due[1].first == 1);
  CHECK(table.nextDeadline() == TimePoint::max());
  CHECK(table.size() == 1);
  // A request answered before its deadline leaves no deadline behind.
  auto answered = request(RequestKind::Call, kT0 + Duration(50));
  REQUIRE(table.add(4, answered));
  CHECK(table.take(4));
  CHECK(table.takeExpired(kT0 + Duration(1000)).empty());
}

TEST_CASE("stops are found by child id, or as the only stop for an unaddressed error", "[client]") {
  PendingTable table;
  auto a = request(RequestKind::Stop, TimePoint::max(), 7);
  auto b = request(RequestKind::Stop, TimePoint::max(), 7);
  auto c = request(RequestKind::Stop, TimePoint::max(), 8);
  REQUIRE(table.add(1, a));
  REQUIRE(table.add(2, b));
  REQUIRE(table.add(3, c));
  CHECK_FALSE(table.takeUnaddressedStop(0));  // ambiguous
  auto hinted = table.takeUnaddressedStop(8);
  REQUIRE(hinted);
  CHECK(hinted->first == 3);
  auto sevens = table.takeStopsOf(7);
  REQUIRE(sevens.size() == 2);
  CHECK(sevens[0].first == 1);
  CHECK(sevens[1].first == 2);
  CHECK(table.empty());
  auto d = request(RequestKind::Stop, TimePoint::max(), 9);
  REQUIRE(table.add(4, d));
  auto only = table.takeUnaddressedStop(0);
  REQUIRE(only);
  CHECK(only->first == 4);
}

TEST_CASE("a closed table refuses new requests and hands back the rest", "[client]") {
  PendingTable table;
  auto r = request(RequestKind::Status);
  REQUIRE(table.add(1, r));
  auto rest = table.close();
  REQUIRE(rest.size() == 1);
  auto late = request(RequestKind::Call);
  late.done = [](Answer) {};
  CHECK_FALSE(table.add(2, late));
  CHECK(late.done);  // not moved from: the caller completes it
}

TEST_CASE("answered requests leave no deadline behind, however many", "[client]") {
  PendingTable table;
  // Thousands of requests answered before their deadlines (the pipelined case), then one left.
  for (uint64_t id = 1; id <= 5000; ++id) {
    auto r = request(RequestKind::Call, kT0 + Duration(1000 + static_cast<int64_t>(id)));
    REQUIRE(table.add(id, r));
    if (id != 4000) CHECK(table.take(id));
  }
  CHECK(table.size() == 1);
  CHECK(table.nextDeadline() == kT0 + Duration(5000));
  CHECK(table.takeExpired(kT0 + Duration(4999)).empty());
  auto due = table.takeExpired(kT0 + Duration(10'000));
  REQUIRE(due.size() == 1);
  CHECK(due[0].first == 4000);
  CHECK(table.nextDeadline() == TimePoint::max());
}
