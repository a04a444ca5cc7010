// Event subscriptions in BrokerCore (`subscribe`, `event`; PROTOCOL.md, Events): what is
// published, to whom, and when a subscription ends. No sockets, a manual clock.
#include <catch2/catch.hpp>

#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;

namespace {
std::vector<EventKind> kinds(const std::vector<msg::Event>& events) {
  std::vector<EventKind> out;
  for (auto& e : events) out.push_back(e.kind);
  return out;
}
}  // namespace

TEST_CASE("events: a subscriber sees runners join, drain, leave and vanish, numbered in order", "[broker][events]") {
  Harness h;
  h.core.declarePool("p", {});
  h.core.onClient("watcher", msg::Subscribe{7, ""}, {});
  auto subscribed = h.outbox.takeOf<msg::Subscribed>("watcher");
  REQUIRE(subscribed.size() == 1);
  CHECK(subscribed[0].requestId == 7);
  CHECK(subscribed[0].lastSeq == 0);

  auto r1 = h.ready("r1", "p", 2);
  auto r2 = h.ready("r2", "p", 2);
  h.core.onRunner(r1, msg::Leaving{"idle", false}, {});
  h.core.onRunner(r1, msg::Leaving{"bye", true}, {});
  CHECK(h.core.dropRunner("r2", "its machine is gone"));
  auto events = h.outbox.takeOf<msg::Event>("watcher");
  REQUIRE(kinds(events) == std::vector<EventKind>{EventKind::RunnerReady, EventKind::RunnerReady,
                                                  EventKind::RunnerDraining, EventKind::RunnerStopped,
                                                  EventKind::RunnerLost});
  for (size_t i = 0; i < events.size(); ++i) {
    CHECK(events[i].requestId == 7);
    CHECK(events[i].seq == i + 1);
    CHECK(events[i].pool == "p");
    CHECK(events[i].timeMs > 0);
  }
  CHECK(events[0].runnerId == "r1");
  CHECK(events[0].runners == 1);  // counts after the event
  CHECK(events[1].runners == 2);
  CHECK(events[2].message == "idle");
  CHECK(events[3].runnerId == "r1");
  CHECK(events[3].runners == 1);
  CHECK(events[4].runnerId == "r2");
  CHECK(events[4].message.find("its machine is gone") != std::string::npos);
  CHECK(events[4].runners == 0);

  // A second subscriber learns where the numbering stands.
  h.core.onClient("late", msg::Subscribe{1, ""}, {});
  auto late = h.outbox.takeOf<msg::Subscribed>("late");
  REQUIRE(late.size() == 1);
  CHECK(late[0].lastSeq == 5);
}

TEST_CASE("events: a pool filter, an unknown pool, cancel ends one subscription", "[broker][events]") {
  Harness h;
  h.core.declarePool("a", {});
  h.core.declarePool("b", {});
  h.core.onClient("w", msg::Subscribe{1, "a"}, {});
  h.core.onClient("w", msg::Subscribe{2, ""}, {});
  h.core.onClient("w", msg::Subscribe{3, "nope"}, {});
  h.core.onClient("w", msg::Subscribe{2, "b"}, {});  // id in use
  CHECK(h.outbox.takeOf<msg::Subscribed>("w").size() == 2);
  auto errors = h.outbox.takeOf<msg::Error>("w");
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].requestId == 3);
  CHECK(errors[0].code == ErrorCode::UnknownPool);
  CHECK(errors[1].requestId == 2);
  CHECK(errors[1].code == ErrorCode::BadRequest);
  CHECK(h.core.subscriptionCount() == 2);

  h.ready("ra", "a", 1);
  h.ready("rb", "b", 1);
  auto events = h.outbox.takeOf<msg::Event>("w");
  REQUIRE(events.size() == 3);  // ra to both subscriptions, rb to the unfiltered one only
  CHECK(events[0].runnerId == "ra");
  CHECK(events[1].runnerId == "ra");
  CHECK(std::set<uint64_t>{events[0].requestId, events[1].requestId} == std::set<uint64_t>{1, 2});
  CHECK(events[2].runnerId == "rb");
  CHECK(events[2].requestId == 2);

  h.core.onClient("w", msg::Cancel{2}, {});
  auto cancelled = h.outbox.takeOf<msg::Error>("w");
  REQUIRE(cancelled.size() == 1);
  CHECK(cancelled[0].requestId == 2);
  CHECK(cancelled[0].code == ErrorCode::Cancelled);
  CHECK(h.core.subscriptionCount() == 1);
  h.ready("rb2", "b", 1);
  CHECK(h.outbox.takeOf<msg::Event>("w").empty());
}

TEST_CASE("events: a silent subscriber is dropped, a heartbeating one kept, a gone one forgotten", "[broker][events]") {
  Harness h;
  h.core.declarePool("p", {});
  h.core.onClient("quiet", msg::Subscribe{1, ""}, {});
  h.core.onClient("alive", msg::Subscribe{1, ""}, {});
  h.core.onClient("vanished", msg::Subscribe{1, ""}, {});
  h.outbox.unreachable.insert("vanished");
  for (int i = 0; i < 5; ++i) {
    h.core.onClient("alive", msg::Heartbeat{}, {});
    h.advance(h.core.options().heartbeatInterval);
  }
  // The window is 3 intervals: "quiet" is gone; "vanished" was dropped at its first failed send.
  h.ready("r1", "p", 1);
  CHECK(h.core.subscriptionCount() == 1);
  CHECK(h.outbox.takeOf<msg::Event>("alive").size() == 1);
  CHECK(h.outbox.takeOf<msg::Event>("quiet").empty());
  // The silent one was told, should it only have paused: it subscribes again if it wants events.
  auto ended = h.outbox.takeOf<msg::Error>("quiet");
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].requestId == 1);
  CHECK(ended[0].code == ErrorCode::Cancelled);
  CHECK(ended[0].message.find("silent") != std::string::npos);
  CHECK(h.core.clientSessionCount() == 1);
}

TEST_CASE("events: queue_full is published once per second at most", "[broker][events]") {
  BrokerOptions o = Harness::defaults();
  Harness h(o);
  PoolSettings s;
  s.maxQueue = 1;
  h.core.declarePool("p", s);
  h.core.onClient("w", msg::Subscribe{1, "p"}, {});
  h.submit("c", 1, "p", "echo");  // queued (no runner)
  for (uint64_t i = 2; i <= 20; ++i) h.submit("c", i, "p", "echo");
  CHECK(h.outbox.takeOf<msg::Error>("c").size() == 19);
  auto events = h.outbox.takeOf<msg::Event>("w");
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == EventKind::QueueFull);
  CHECK(events[0].message.find("full") != std::string::npos);
  h.clock.advance(Duration(1000));
  h.submit("c", 21, "p", "echo");
  CHECK(h.outbox.takeOf<msg::Event>("w").size() == 1);
}

TEST_CASE("events: a client may hold 16 subscriptions", "[broker][events]") {
  Harness h;
  for (uint64_t i = 1; i <= 17; ++i) h.core.onClient("w", msg::Subscribe{i, ""}, {});
  CHECK(h.outbox.takeOf<msg::Subscribed>("w").size() == 16);
  auto errors = h.outbox.takeOf<msg::Error>("w");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].code == ErrorCode::BadRequest);
  CHECK(errors[0].message.find("16") != std::string::npos);
}
