// ClientCore on a manual clock with a recording port: deadlines, heartbeats, liveness, broker
// restarts, payload admission, linked children and shutdown, at exact times. No sockets, no
// threads, no sleeps.
#include "client/client_core.h"

#include <catch2/catch.hpp>

#include "common/codec.h"

using namespace flame;

namespace {

constexpr Duration kInterval{100};
constexpr uint32_t kLiveness = 3;

// Records what the core sends (decoded) and delivers; `blocked` plays a connection that is not
// up (every send would block).
class RecordingPort final : public ClientEffects {
 public:
  struct Sent {
    Message message;
    std::optional<std::string> payload;
  };
  bool blocked = false;
  bool writableWanted = false;
  std::vector<Sent> sent;

  SendStatus send(zmq::message_t* frames, size_t count) override {
    if (blocked) return SendStatus::WouldBlock;
    REQUIRE(count >= 2);
    REQUIRE(frames[0].size() == 0);
    auto decoded = decode(frames[1]);
    REQUIRE(decoded.ok());
    Sent s{std::move(*decoded.message), std::nullopt};
    if (count > 2) s.payload = frames[2].to_string();
    sent.push_back(std::move(s));
    return SendStatus::Ok;
  }
  void wantWritable(bool want) override { writableWanted = want; }
  void deliver(AnswerHandler& done, Answer answer) override { done(std::move(answer)); }
  void exited(ExitCallback& onExit, uint64_t childId, std::optional<Failure> why) override {
    onExit(childId, std::move(why));
  }
  void event(EventHandler& onEvent, const msg::Event& event) override { onEvent(event); }
  void ended(EndHandler& onEnd, Failure why) override { onEnd(std::move(why)); }
  int reconnects = 0;
  void reconnect() override { ++reconnects; }

  template <class T>
  std::vector<T> all() const {
    std::vector<T> out;
    for (auto& s : sent)
      if (auto* m = std::get_if<T>(&s.message)) out.push_back(*m);
    return out;
  }
  size_t heartbeats() const { return all<msg::Heartbeat>().size(); }
  // Everything but heartbeats, in order.
  std::vector<Sent> requests() const {
    std::vector<Sent> out;
    for (auto& s : sent)
      if (!std::holds_alternative<msg::Heartbeat>(s.message)) out.push_back(s);
    return out;
  }
};

// The answers one request got (exactly one is expected).
struct Answers {
  std::vector<Answer> got;
  AnswerHandler handler() {
    return [this](Answer a) { got.push_back(std::move(a)); };
  }
  bool answered() const { return !got.empty(); }
  const Failure& failure() const {
    REQUIRE(got.size() == 1);
    REQUIRE(std::holds_alternative<Failure>(got[0]));
    return std::get<Failure>(got[0]);
  }
};

struct Exits {
  std::vector<std::pair<uint64_t, std::optional<Failure>>> got;
  ExitCallback callback() {
    return [this](uint64_t id, std::optional<Failure> why) { got.emplace_back(id, std::move(why)); };
  }
};

// What one subscription saw: its events and its end (exactly one is expected).
struct Feed {
  std::vector<msg::Event> events;
  std::vector<Failure> ends;
  EventHandler onEvent() {
    return [this](const msg::Event& e) { events.push_back(e); };
  }
  EndHandler onEnd() {
    return [this](Failure why) { ends.push_back(std::move(why)); };
  }
};

msg::Event eventOf(uint64_t subscription, uint64_t seq, EventKind kind = EventKind::RunnerReady) {
  msg::Event e;
  e.requestId = subscription;
  e.seq = seq;
  e.timeMs = 1'796'000'000'000 + seq;
  e.kind = kind;
  e.pool = "thumbs";
  e.runnerId = "r-" + std::to_string(seq);
  return e;
}

struct Fixture {
  ManualClock clock;
  RecordingPort port;
  ClientCore core{ClientCoreOptions{"tcp://test", kInterval, kLiveness}, clock, port};
  uint64_t nextId = 1;
  const TimePoint t0 = clock.now();

  uint64_t call(Answers& answers, CallOptions options = {}, std::string payload = "x") {
    uint64_t id = nextId++;
    core.submit(submitRequest(id, Mode::Call, "p", "f", payload, options, kInterval, answers.handler()));
    return id;
  }
  uint64_t place(Answers& answers, Exits* exits, CallOptions options = {}) {
    uint64_t id = nextId++;
    core.submit(submitRequest(id, Mode::Place, "p", "serve", "", options, kInterval, answers.handler(),
                              exits ? exits->callback() : ExitCallback{}));
    return id;
  }
  uint64_t subscribe(Answers& answers, Feed& feed, std::string pool = "thumbs", Duration timeout = Duration(1000)) {
    uint64_t id = nextId++;
    core.submit(subscribeRequest(id, pool, timeout, answers.handler(), feed.onEvent(), feed.onEnd()));
    return id;
  }
  void receive(Message message, std::optional<std::string> payload = std::nullopt) {
    zmq::message_t frame;
    if (payload) frame = zmq::message_t(payload->data(), payload->size());
    core.onMessage(message, payload ? &frame : nullptr);
  }
  // A heartbeat answer from broker run `instance`.
  void heartbeatAnswer(uint32_t intervalMs = 100, uint64_t instance = 7, uint64_t maxPayload = 0) {
    receive(msg::Heartbeat{0, intervalMs, instance, maxPayload});
  }
  // Moves time to t0 + `at`, running the core whenever it asked to be woken on the way.
  void runUntil(Duration at) {
    TimePoint target = t0 + at;
    for (int guard = 0; guard < 100'000; ++guard) {  // a bound, far above any test's need
      TimePoint next = core.nextWakeup();
      if (next > target) break;
      if (next > clock.now()) clock.advance(next - clock.now());
      core.tick();  // always moves nextWakeup() past now
    }
    if (clock.now() < target) clock.advance(target - clock.now());
    core.tick();
  }
};

}  // namespace

TEST_CASE("core: a submit is sent at once with its header and payload, and its answer delivered", "[client][core]") {
  Fixture f;
  Answers a;
  uint64_t id = f.call(a, CallOptions{.timeout = Duration(2500), .idempotent = true, .retries = 2}, "in\0put");
  auto requests = f.port.requests();
  REQUIRE(requests.size() == 1);
  auto& submit = std::get<msg::Submit>(requests[0].message);
  CHECK(submit.requestId == id);
  CHECK(submit.timeoutMs == 2500);
  CHECK(submit.splitBudget);       // timeout is the run budget
  CHECK(submit.waitTimeoutMs == 0);  // the pool's wait_timeout
  CHECK(submit.idempotent);
  CHECK(submit.retries == 2);
  CHECK(requests[0].payload == std::string("in\0put"));
  f.receive(msg::Result{id, 9}, std::string("out\0", 4));
  REQUIRE(a.got.size() == 1);
  auto& reply = std::get<CallReply>(a.got[0]);
  CHECK(reply.payload == std::string("out\0", 4));
  CHECK(reply.jobId == 9);
  CHECK_FALSE(f.core.outstanding());
  // A second answer for the same request is dropped: each request is answered once.
  f.receive(msg::Result{id, 9}, "again");
  CHECK(a.got.size() == 1);
}

TEST_CASE("core: a call's local deadline is timeout + 2 x interval, then it fails and is cancelled", "[client][core]") {
  Fixture f;
  Answers a;
  uint64_t id = f.call(a, CallOptions{.timeout = Duration(100), .waitTimeout = Duration(100)});
  CHECK(f.core.nextWakeup() <= f.t0 + Duration(100));  // heartbeats come first
  // The broker is alive (answers heartbeats), so only the local deadline can end the call.
  for (int ms = 100; ms < 400; ms += 100) {
    f.runUntil(Duration(ms));
    f.heartbeatAnswer();
  }
  f.runUntil(Duration(399));
  CHECK_FALSE(a.answered());
  f.runUntil(Duration(400));
  REQUIRE(a.answered());
  CHECK(a.failure().code == ErrorCode::Timeout);
  CHECK(a.failure().message == "no answer within the 200ms timeout (checked by the client)");
  auto cancels = f.port.all<msg::Cancel>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].requestId == id);
  // A late result finds nobody.
  f.receive(msg::Result{id, 1}, "late");
  CHECK(a.got.size() == 1);
}

TEST_CASE("core: a request still queued at its deadline is dropped, never sent nor cancelled", "[client][core]") {
  Fixture f;
  f.port.blocked = true;
  Answers a;
  f.call(a, CallOptions{.timeout = Duration(25), .waitTimeout = Duration(25)});
  CHECK(f.port.writableWanted);
  CHECK(f.core.queuedCount() == 2);  // the heartbeat and the submit
  f.runUntil(Duration(249));
  CHECK_FALSE(a.answered());
  f.runUntil(Duration(250));  // 50 + 2 x 100; liveness (300) comes later
  CHECK(a.failure().code == ErrorCode::Timeout);
  f.port.blocked = false;
  f.core.onWritable();
  CHECK(f.port.requests().empty());  // neither the submit nor a cancel ever left
  CHECK_FALSE(f.port.writableWanted);
}

TEST_CASE("core: queued messages leave in order once the connection is writable", "[client][core]") {
  Fixture f;
  f.port.blocked = true;
  Answers a, b;
  uint64_t first = f.call(a);
  uint64_t second = f.call(b);
  CHECK(f.port.sent.empty());
  CHECK(f.port.writableWanted);
  f.port.blocked = false;
  f.core.onWritable();
  CHECK_FALSE(f.port.writableWanted);
  auto requests = f.port.requests();
  REQUIRE(requests.size() == 2);
  CHECK(std::get<msg::Submit>(requests[0].message).requestId == first);
  CHECK(std::get<msg::Submit>(requests[1].message).requestId == second);
  CHECK(f.core.queuedCount() == 0);
}

TEST_CASE("core: heartbeats go at once when work begins, every interval while it lasts, never when idle",
          "[client][core]") {
  Fixture f;
  CHECK(f.core.nextWakeup() == TimePoint::max());  // idle: nothing to do, ever
  f.runUntil(Duration(10'000));
  CHECK(f.port.heartbeats() == 0);

  Answers a;
  uint64_t id = f.call(a);
  CHECK(f.port.heartbeats() == 1);
  f.clock.advance(Duration(99));
  f.core.tick();
  CHECK(f.port.heartbeats() == 1);
  f.heartbeatAnswer();
  f.clock.advance(Duration(1));
  CHECK(f.core.nextWakeup() == f.clock.now());
  f.core.tick();
  CHECK(f.port.heartbeats() == 2);
  f.heartbeatAnswer();
  f.receive(msg::Result{id, 1});
  REQUIRE(a.answered());
  CHECK(f.core.nextWakeup() == TimePoint::max());
  f.clock.advance(Duration(5'000));
  f.core.tick();
  CHECK(f.port.heartbeats() == 2);
}

TEST_CASE("core: silence is counted from when work began, the broker is dead at interval x liveness",
          "[client][core]") {
  Fixture f;
  f.heartbeatAnswer();        // last heard at t0...
  f.clock.advance(Duration(3'600'000));  // ...an hour of idleness does not count
  Answers call, placed;
  Exits exits;
  uint64_t placeId = f.place(placed, &exits);
  f.receive(msg::Placed{placeId, 5, "r"});
  REQUIRE(placed.answered());
  TimePoint began = f.clock.now();
  f.call(call);
  CHECK(f.core.liveness().deadline() == began + Duration(300));
  f.clock.advance(Duration(299));
  f.core.tick();
  CHECK_FALSE(call.answered());
  CHECK(exits.got.empty());
  f.clock.advance(Duration(1));
  CHECK(f.core.nextWakeup() <= f.clock.now());
  f.core.tick();
  CHECK(call.failure().code == ErrorCode::BrokerUnreachable);
  CHECK(call.failure().message == "broker unreachable: no answer for 300ms");
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].first == 5);
  CHECK(exits.got[0].second->code == ErrorCode::BrokerUnreachable);
  CHECK_FALSE(f.core.outstanding());
}

TEST_CASE("core: anything heard from the broker, even undecodable bytes, postpones the verdict", "[client][core]") {
  Fixture f;
  Answers a;
  f.call(a);
  f.clock.advance(Duration(200));
  Frames garbage;
  garbage.emplace_back();
  garbage.emplace_back("garbage!", 8);
  f.core.onBrokerFrames(garbage, false);
  CHECK(f.core.liveness().deadline() == f.t0 + Duration(500));
  f.clock.advance(Duration(299));
  f.core.tick();
  CHECK_FALSE(a.answered());
  f.clock.advance(Duration(1));
  f.core.tick();
  CHECK(a.failure().code == ErrorCode::BrokerUnreachable);
}

TEST_CASE("core: with no connection at all, a request fails at the liveness deadline", "[client][core]") {
  Fixture f;
  f.port.blocked = true;
  Answers a;
  f.call(a);  // timeout 0: only liveness bounds it
  f.runUntil(Duration(299));
  CHECK_FALSE(a.answered());
  f.runUntil(Duration(300));
  CHECK(a.failure().code == ErrorCode::BrokerUnreachable);
  CHECK(f.core.queuedCount() == 0);  // the outbox was cleared with it
  CHECK_FALSE(f.port.writableWanted);
}

TEST_CASE("core: the broker's smaller heartbeat interval is adopted for heartbeats and liveness", "[client][core]") {
  Fixture f;
  Answers a;
  f.call(a);
  f.heartbeatAnswer(50);
  CHECK(f.core.heartbeatInterval() == Duration(50));
  CHECK(f.core.liveness().window() == Duration(150));
  f.runUntil(Duration(50));
  CHECK(f.port.heartbeats() == 2);
  f.runUntil(Duration(149));
  CHECK_FALSE(a.answered());
  f.runUntil(Duration(150));
  CHECK(a.failure().code == ErrorCode::BrokerUnreachable);
  // A larger interval is not adopted.
  Fixture g;
  Answers b;
  g.call(b);
  g.heartbeatAnswer(5000);
  CHECK(g.core.heartbeatInterval() == kInterval);
}

TEST_CASE("core: a broker restart (new instance) fails every request and child at once", "[client][core]") {
  Fixture f;
  Answers a, b, placed;
  Exits exits;
  f.call(a, CallOptions{.timeout = kInfinite});
  uint64_t placeId = f.place(placed, &exits);
  f.receive(msg::Placed{placeId, 3, "r"});
  f.heartbeatAnswer(100, 7);
  f.heartbeatAnswer(100, 7);
  CHECK_FALSE(a.answered());
  f.heartbeatAnswer(100, 8);  // same endpoint, new broker run
  CHECK(a.failure().code == ErrorCode::BrokerUnreachable);
  CHECK_THAT(a.failure().message, Catch::StartsWith("broker restarted"));
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].second->code == ErrorCode::BrokerUnreachable);
  // Work after the restart is tied to the new run.
  f.call(b);
  f.heartbeatAnswer(100, 8);
  CHECK_FALSE(b.answered());
}

TEST_CASE("core: a payload over 1 MiB waits for the broker's limit, then is sent or refused", "[client][core]") {
  Fixture f;
  const std::string big(3 * 1024 * 1024, 'x');
  const std::string fits(2 * 1024 * 1024, 'y');
  const std::string small(1024 * 1024, 'z');
  Answers tooBig, okBig, okSmall, later;
  f.call(tooBig, {}, big);
  f.call(okBig, {}, fits);
  f.call(okSmall, {}, small);  // 1 MiB exactly goes at once
  CHECK(f.core.parkedCount() == 2);
  REQUIRE(f.port.requests().size() == 1);
  CHECK(f.port.requests()[0].payload->size() == small.size());
  CHECK(f.port.heartbeats() == 1);  // its answer brings the limit

  f.heartbeatAnswer(100, 7, 2 * 1024 * 1024);
  CHECK(f.core.parkedCount() == 0);
  CHECK(tooBig.failure().code == ErrorCode::PayloadTooLarge);
  CHECK(tooBig.failure().message == "payload of 3145728 bytes exceeds the broker's limit of 2097152 bytes");
  REQUIRE(f.port.requests().size() == 2);
  CHECK(f.port.requests()[1].payload->size() == fits.size());
  CHECK_FALSE(okBig.answered());
  // Once known, the limit applies on the spot.
  f.call(later, {}, big);
  CHECK(later.failure().code == ErrorCode::PayloadTooLarge);
  CHECK(f.port.requests().size() == 2);
}

TEST_CASE("core: a parked payload that outlives its deadline is never sent", "[client][core]") {
  Fixture f;
  Answers a;
  f.call(a, CallOptions{.timeout = Duration(5), .waitTimeout = Duration(5)}, std::string(2 * 1024 * 1024, 'x'));
  f.heartbeatAnswer();  // no limit told
  f.runUntil(Duration(210));
  CHECK(a.failure().code == ErrorCode::Timeout);
  CHECK(f.core.parkedCount() == 0);
  f.heartbeatAnswer(100, 7, 64 * 1024 * 1024);
  CHECK(f.port.requests().empty());  // no submit, and no cancel for what never left
}

TEST_CASE("core: placed children report their exit once, linked or not", "[client][core][children]") {
  Fixture f;
  Answers linked, unlinked, unwatched;
  Exits exits, unlinkedExits;
  uint64_t a = f.place(linked, &exits);
  uint64_t b = f.place(unlinked, &unlinkedExits, CallOptions{.link = false});
  uint64_t c = f.place(unwatched, nullptr, CallOptions{.link = false});
  CHECK(std::get<msg::Submit>(f.port.requests()[0].message).timeoutMs == 0);  // place: infinite by default
  f.receive(msg::Placed{a, 17, "r1"});
  f.receive(msg::Placed{b, 18, "r1"});
  f.receive(msg::Placed{c, 19, "r1"});
  CHECK(std::get<msg::Placed>(linked.got.at(0)).childId == 17);
  CHECK(f.core.linkedChildCount() == 1);
  CHECK(f.core.watchedChildCount() == 2);  // no onExit, not linked: nothing to watch for
  CHECK(f.core.outstanding());  // a watched child keeps the heartbeats going
  f.runUntil(Duration(100));
  f.heartbeatAnswer();
  CHECK(f.port.heartbeats() == 2);

  f.receive(msg::ChildExited{19, ErrorCode::None, ""});  // dropped: unwatched
  f.receive(msg::ChildExited{18, ErrorCode::None, ""});
  REQUIRE(unlinkedExits.got.size() == 1);
  CHECK(unlinkedExits.got[0].first == 18);
  CHECK_FALSE(unlinkedExits.got[0].second);  // returned normally
  CHECK(f.core.outstanding());  // the linked one is still watched
  f.receive(msg::ChildExited{17, ErrorCode::HandlerError, "boom"});
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].first == 17);
  CHECK(exits.got[0].second == Failure{ErrorCode::HandlerError, "boom"});
  f.receive(msg::ChildExited{17, ErrorCode::None, ""});
  f.receive(msg::ChildExited{18, ErrorCode::None, ""});
  CHECK(exits.got.size() == 1);
  CHECK(unlinkedExits.got.size() == 1);
  CHECK_FALSE(f.core.outstanding());
  CHECK(f.core.nextWakeup() == TimePoint::max());
}

TEST_CASE("core: an unlinked child keeps the client heartbeating, its exit ends that", "[client][core][children]") {
  Fixture f;
  Answers placed;
  Exits exits;
  uint64_t id = f.place(placed, &exits, CallOptions{.link = false});
  f.receive(msg::Placed{id, 4, "r"});
  REQUIRE(f.core.watchedChildCount() == 1);
  size_t before = f.port.heartbeats();
  for (int i = 1; i <= 5; ++i) {  // five intervals, the broker answering each heartbeat
    f.runUntil(Duration(100 * i));
    f.heartbeatAnswer();
  }
  CHECK(f.port.heartbeats() == before + 5);
  CHECK(exits.got.empty());
  f.receive(msg::ChildExited{4, ErrorCode::None, ""});
  REQUIRE(exits.got.size() == 1);
  CHECK(f.core.nextWakeup() == TimePoint::max());  // idle again: no more heartbeats
}

TEST_CASE("core: an unlinked child is reported exited when stopped, cancelled", "[client][core][children]") {
  Fixture f;
  Answers placed, stop;
  Exits exits;
  uint64_t id = f.place(placed, &exits, CallOptions{.link = false});
  f.receive(msg::Placed{id, 6, "r"});
  f.core.submit(stopRequest(f.nextId++, 6, kInfinite, stop.handler()));
  f.receive(msg::Stopped{6});
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].first == 6);
  CHECK(exits.got[0].second == Failure{ErrorCode::Cancelled, "stopped"});
  f.receive(msg::ChildExited{6, ErrorCode::Cancelled, "stopped"});  // a late notice: still once
  CHECK(exits.got.size() == 1);
}

TEST_CASE("core: an unlinked child is reported exited broker_unreachable when the broker is lost or restarts",
          "[client][core][children]") {
  Fixture f;
  Answers first, second;
  Exits lost, restarted;
  uint64_t a = f.place(first, &lost, CallOptions{.link = false});
  f.receive(msg::Placed{a, 8, "r"});
  f.heartbeatAnswer(100, 7);
  // Silence from t0 (the last message heard): dead at interval x liveness = 300 ms.
  f.runUntil(Duration(299));
  CHECK(lost.got.empty());
  f.runUntil(Duration(300));
  REQUIRE(lost.got.size() == 1);
  CHECK(lost.got[0].second->code == ErrorCode::BrokerUnreachable);
  CHECK_FALSE(f.core.outstanding());

  uint64_t b = f.place(second, &restarted, CallOptions{.link = false});
  f.receive(msg::Placed{b, 9, "r"});
  f.heartbeatAnswer(100, 7);
  CHECK(restarted.got.empty());
  f.heartbeatAnswer(100, 8);  // a new broker run
  REQUIRE(restarted.got.size() == 1);
  CHECK(restarted.got[0].first == 9);
  CHECK(restarted.got[0].second->code == ErrorCode::BrokerUnreachable);
  CHECK_THAT(restarted.got[0].second->message, Catch::StartsWith("broker restarted"));
}

TEST_CASE("core: at shutdown a linked child is stopped, an unlinked one only unwatched", "[client][core][children]") {
  Fixture f;
  Answers a, b;
  Exits linkedExits, unlinkedExits;
  uint64_t linkedPlace = f.place(a, &linkedExits);
  uint64_t unlinkedPlace = f.place(b, &unlinkedExits, CallOptions{.link = false});
  f.receive(msg::Placed{linkedPlace, 21, "r"});
  f.receive(msg::Placed{unlinkedPlace, 22, "r"});
  size_t before = f.port.sent.size();
  CHECK(f.core.shutdown());
  std::vector<RecordingPort::Sent> goodbyes(f.port.sent.begin() + static_cast<std::ptrdiff_t>(before), f.port.sent.end());
  REQUIRE(goodbyes.size() == 1);
  CHECK(std::get<msg::StopChild>(goodbyes[0].message).childId == 21);
  REQUIRE(linkedExits.got.size() == 1);
  CHECK(linkedExits.got[0].second == Failure{ErrorCode::ShuttingDown, "the client is shutting down"});
  REQUIRE(unlinkedExits.got.size() == 1);
  CHECK(unlinkedExits.got[0].first == 22);
  CHECK(unlinkedExits.got[0].second->code == ErrorCode::ShuttingDown);
  CHECK_THAT(unlinkedExits.got[0].second->message,
             Catch::Contains("stopped watching child 22") && Catch::Contains("keeps running"));
}

TEST_CASE("core: stop is answered by stopped (which also ends a linked child) or by an error without an id",
          "[client][core]") {
  Fixture f;
  Answers placed, stop, stopMissing;
  Exits exits;
  uint64_t placeId = f.place(placed, &exits);
  f.receive(msg::Placed{placeId, 5, "r"});
  f.core.submit(stopRequest(f.nextId++, 5, kInfinite, stop.handler()));
  CHECK(f.port.all<msg::StopChild>().at(0).childId == 5);
  f.receive(msg::Stopped{5});
  REQUIRE(stop.answered());
  CHECK(std::holds_alternative<msg::Stopped>(stop.got[0]));
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].second->code == ErrorCode::Cancelled);

  f.core.submit(stopRequest(f.nextId++, 12, kInfinite, stopMissing.handler()));
  f.receive(msg::Error{0, ErrorCode::NotFound, "no child 12", 0});
  CHECK(stopMissing.failure().code == ErrorCode::NotFound);
}

TEST_CASE("core: a child placed after its place was abandoned is stopped", "[client][core]") {
  Fixture f;
  Answers placed;
  uint64_t id = f.place(placed, nullptr, CallOptions{.waitTimeout = Duration(50)});
  f.runUntil(Duration(100));
  f.heartbeatAnswer();
  f.runUntil(Duration(250));
  CHECK(placed.failure().code == ErrorCode::Timeout);
  CHECK(f.port.all<msg::Cancel>().at(0).requestId == id);
  f.receive(msg::Placed{id, 77, "r"});
  CHECK(f.port.all<msg::StopChild>().at(0).childId == 77);
  CHECK(f.core.linkedChildCount() == 0);
}

TEST_CASE("core: status and setPool fail broker_unreachable at their own deadline", "[client][core]") {
  Fixture f;
  Answers status, setPool;
  f.core.submit(statusRequest(f.nextId++, Duration(100), status.handler()));
  f.core.submit(setPoolRequest(f.nextId++, "thumbs", PoolLimitsUpdate{.max = 6}, Duration(150), setPool.handler()));
  auto sp = f.port.all<msg::SetPool>();
  REQUIRE(sp.size() == 1);
  CHECK(sp[0].min == -1);
  CHECK(sp[0].max == 6);
  f.runUntil(Duration(99));
  CHECK_FALSE(status.answered());
  f.runUntil(Duration(100));
  CHECK(status.failure() == Failure{ErrorCode::BrokerUnreachable, "broker unreachable: no status reply within 100ms"});
  f.runUntil(Duration(150));
  CHECK(setPool.failure().code == ErrorCode::BrokerUnreachable);
  CHECK(f.port.all<msg::Cancel>().empty());  // only calls and places are cancelled
}

TEST_CASE("core: a completion may start the next request, which leaves at once", "[client][core]") {
  Fixture f;
  Answers second;
  std::vector<Answer> first;
  uint64_t id = f.nextId++;
  f.core.submit(submitRequest(id, Mode::Call, "p", "f", "1", {}, kInterval, [&](Answer a) {
    first.push_back(std::move(a));
    f.call(second, {}, "2");
  }));
  f.receive(msg::Result{id, 1}, "r1");
  REQUIRE(first.size() == 1);
  auto requests = f.port.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[1].payload == "2");
  CHECK(f.core.outstanding());
  // The same from a failure: the new work's silence counts from the failure.
  f.runUntil(Duration(300));
  CHECK(second.failure().code == ErrorCode::BrokerUnreachable);
}

TEST_CASE("core: messages a client must not receive are dropped", "[client][core]") {
  Fixture f;
  Answers a;
  uint64_t id = f.call(a);
  f.receive(msg::Ready{"r", "p", 1, {}, "", 0, 0, "", {}});
  f.receive(msg::Result{999999, 1}, "nobody's");
  Frames badLayout;
  badLayout.emplace_back("not-empty", 9);
  badLayout.emplace_back("x", 1);
  f.core.onBrokerFrames(badLayout, false);
  Frames truncated;
  truncated.emplace_back();
  truncated.push_back(encode(msg::Result{id, 1}));
  f.core.onBrokerFrames(truncated, true);
  CHECK_FALSE(a.answered());
  f.receive(msg::Result{id, 1}, "fine");
  CHECK(std::get<CallReply>(a.got.at(0)).payload == "fine");
}

TEST_CASE("core: shutdown says goodbye for linked work that left, fails everything, refuses more",
          "[client][core]") {
  Fixture f;
  Answers placed, linkedCall, unlinkedCall, queued, after;
  Exits exits;
  uint64_t placeId = f.place(placed, &exits);
  f.receive(msg::Placed{placeId, 31, "r"});
  uint64_t linkedId = f.call(linkedCall);
  f.call(unlinkedCall, CallOptions{.link = false});
  f.port.blocked = true;
  f.call(queued);  // never reached the connection: no goodbye for it
  size_t before = f.port.sent.size();
  f.port.blocked = false;

  CHECK(f.core.shutdown());
  std::vector<RecordingPort::Sent> goodbyes(f.port.sent.begin() + static_cast<std::ptrdiff_t>(before), f.port.sent.end());
  REQUIRE(goodbyes.size() == 2);
  CHECK(std::get<msg::Cancel>(goodbyes[0].message).requestId == linkedId);
  CHECK(std::get<msg::StopChild>(goodbyes[1].message).childId == 31);
  for (Answers* a : {&linkedCall, &unlinkedCall, &queued}) CHECK(a->failure().code == ErrorCode::ShuttingDown);
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].second->code == ErrorCode::ShuttingDown);
  CHECK(f.core.nextWakeup() == TimePoint::max());

  f.call(after);
  CHECK(after.failure() == Failure{ErrorCode::ShuttingDown, "the client is shutting down"});
  CHECK(f.port.sent.size() == before + 2);
  CHECK_FALSE(f.core.shutdown());  // once
}

TEST_CASE("core: shutdown with nothing linked outstanding says no goodbye", "[client][core]") {
  Fixture f;
  Answers a;
  f.call(a, CallOptions{.link = false});
  CHECK_FALSE(f.core.shutdown());
  CHECK(a.failure().code == ErrorCode::ShuttingDown);
}

TEST_CASE("core: deadline budgets", "[client][core]") {
  auto budget = [](Mode mode, Duration timeout, Duration wait, Duration interval) {
    return clientDeadlineBudget(mode, CallOptions{.timeout = timeout, .waitTimeout = wait}, interval);
  };
  // A call: wait + run budget + 2 heartbeats.
  CHECK(budget(Mode::Call, Duration(200), Duration(300), Duration(100)) == Duration(700));
  // A place is answered once placed: its wait bound, whatever its lifetime.
  CHECK(budget(Mode::Place, kInfinite, Duration(1), Duration(1000)) == Duration(2001));
  // 0 is the pool's default, unknown here (liveness bounds it).
  CHECK(budget(Mode::Call, Duration(200), Duration(0), Duration(100)) == kInfinite);
  CHECK(budget(Mode::Call, Duration(0), Duration(300), Duration(100)) == kInfinite);
  CHECK(budget(Mode::Call, kInfinite, Duration(300), Duration(100)) == kInfinite);
  CHECK(budget(Mode::Cast, Duration(200), Duration(300), Duration(100)) == kInfinite);  // accepted at once
}

TEST_CASE("core: a call that may be retried gets every attempt and the backoff delays", "[client][core][retry]") {
  const Duration hb{100};  // slack: 2 x 100 ms
  CallOptions base{.timeout = Duration(1000), .waitTimeout = Duration(500)};  // 1500 ms per attempt
  auto with = [&](auto change) {
    CallOptions o = base;
    change(o);
    return clientDeadlineBudget(Mode::Call, o, hb);
  };
  // No retry flag: one attempt, whatever the backoff or retries say.
  CHECK(with([](CallOptions& o) { o.retries = 3; o.retryBackoff = Duration(100); }) == Duration(1700));
  // Idempotent, retries 0 = the default, 1: two attempts and one delay (100).
  CHECK(with([](CallOptions& o) { o.idempotent = true; o.retryBackoff = Duration(100); }) == Duration(3000 + 100 + 200));
  // Three retries on handler errors: 4 attempts + 100 + 200 + 400.
  CHECK(with([](CallOptions& o) {
          o.retryHandlerError = true;
          o.retries = 3;
          o.retryBackoff = Duration(100);
        }) == Duration(6000 + 700 + 200));
  // The cap: 100 + 200 + 250 + 250.
  CHECK(with([](CallOptions& o) {
          o.retryTimeout = true;
          o.retries = 4;
          o.retryBackoff = Duration(100);
          o.retryBackoffMax = Duration(250);
        }) == Duration(7500 + 800 + 200));
  // A max below the backoff caps the first delay too.
  CHECK(with([](CallOptions& o) {
          o.idempotent = true;
          o.retries = 2;
          o.retryBackoff = Duration(1000);
          o.retryBackoffMax = Duration(300);
        }) == Duration(4500 + 600 + 200));
  // Backoff 0 = the pool's, unknown here: no local deadline (liveness bounds a lost broker).
  CHECK(with([](CallOptions& o) { o.idempotent = true; }) == kInfinite);
  // A huge number of doublings saturates instead of overflowing.
  CHECK(with([](CallOptions& o) {
          o.idempotent = true;
          o.retries = 255;
          o.retryBackoff = Duration(1000);
        }) == kInfinite);
  // A place is never retried: its wait bound only.
  CallOptions place = base;
  place.idempotent = true;
  place.retryBackoff = Duration(100);
  CHECK(clientDeadlineBudget(Mode::Place, place, hb) == Duration(700));
  CHECK_FALSE(retriesPossible(Mode::Place, place));
  CHECK(retriesPossible(Mode::Cast, place));
}

TEST_CASE("core: retry options travel in the submit, the local deadline waits for the retries",
          "[client][core][retry]") {
  Fixture f;
  Answers a;
  uint64_t id = f.call(a, CallOptions{.timeout = Duration(100),
                                      .waitTimeout = Duration(100),
                                      .retries = 2,
                                      .retryHandlerError = true,
                                      .retryTimeout = true,
                                      .retryBackoff = Duration(50),
                                      .retryBackoffMax = Duration(75)});
  auto requests = f.port.requests();
  REQUIRE(requests.size() == 1);
  auto& submit = std::get<msg::Submit>(requests[0].message);
  CHECK(submit.requestId == id);
  CHECK_FALSE(submit.idempotent);
  CHECK(submit.retries == 2);
  CHECK(submit.retryHandlerError);
  CHECK(submit.retryTimeout);
  CHECK(submit.retryBackoffMs == 50);
  CHECK(submit.retryBackoffMaxMs == 75);
  // 3 x 200 + 50 + 75 + 2 x 100 = 925 ms, the broker answering every heartbeat meanwhile.
  for (int t = 100; t <= 900; t += 100) {
    f.runUntil(Duration(t));
    f.heartbeatAnswer();
  }
  f.runUntil(Duration(924));
  CHECK_FALSE(a.answered());
  f.runUntil(Duration(925));
  CHECK(a.failure() == Failure{ErrorCode::Timeout, "no answer within the 725ms timeout (checked by the client)"});
}

TEST_CASE("core: a burst holds what it sends and offers it all, in order, at its end", "[client][core]") {
  Fixture f;
  Answers a, b;
  uint64_t first = f.call(a);  // outside a burst: at once
  REQUIRE(f.port.requests().size() == 1);
  f.core.beginBurst();
  f.receive(msg::Result{first, 1}, "r");
  uint64_t second = f.call(b);
  CHECK(f.port.requests().size() == 1);  // held
  CHECK(f.core.queuedCount() == 1);
  CHECK_FALSE(f.port.writableWanted);   // held is not blocked
  f.core.endBurst();
  auto requests = f.port.requests();
  REQUIRE(requests.size() == 2);
  CHECK(std::get<msg::Submit>(requests[1].message).requestId == second);
  CHECK(f.core.queuedCount() == 0);
  // A connection that refuses at the end of the burst keeps the rest queued for onWritable().
  Answers c;
  f.core.beginBurst();
  f.call(c);
  f.port.blocked = true;
  f.core.endBurst();
  CHECK(f.port.writableWanted);
  f.port.blocked = false;
  f.core.onWritable();
  CHECK(f.port.requests().size() == 3);
  CHECK_FALSE(f.port.writableWanted);
}

// ---------------------------------------------------------------- refused handshakes (issue 10)

TEST_CASE("core: a refused handshake fails every pending request and linked child at once, unauthorized",
          "[client][core][curve]") {
  Fixture f;
  f.port.blocked = true;  // the connection never came up: everything is still queued
  Answers call, place;
  f.call(call, CallOptions{.timeout = Duration(30000)});
  f.place(place, nullptr);
  REQUIRE(f.core.pendingCount() == 2);
  REQUIRE(f.core.queuedCount() > 0);
  f.runUntil(Duration(10));  // well before any deadline or liveness window

  f.core.onHandshakeRefused("the broker refused this client's key abcdefgh… (ZAP status 400)");
  CHECK(call.failure().code == ErrorCode::Unauthorized);
  CHECK(call.failure().message == "the broker refused this client's key abcdefgh… (ZAP status 400)");
  CHECK(call.failure().toString().rfind("unauthorized: ", 0) == 0);
  CHECK(place.failure().code == ErrorCode::Unauthorized);
  CHECK(f.clock.now() == f.t0 + Duration(10));  // at the instant of the refusal, not later
  CHECK(f.core.pendingCount() == 0);
  CHECK(f.core.queuedCount() == 0);  // nothing left for a connection the broker will not open
  CHECK_FALSE(f.port.writableWanted);
  REQUIRE(f.core.refusal());
}

TEST_CASE("core: a linked child is reported exited unauthorized when a later handshake is refused",
          "[client][core][curve]") {
  Fixture f;
  Answers place;
  Exits exits;
  uint64_t id = f.place(place, &exits, CallOptions{.link = true});
  f.receive(msg::Placed{id, 42, "r-1"});
  REQUIRE(f.core.linkedChildCount() == 1);
  f.core.onHandshakeRefused("revoked");
  REQUIRE(exits.got.size() == 1);
  CHECK(exits.got[0].first == 42);
  REQUIRE(exits.got[0].second);
  CHECK(exits.got[0].second->code == ErrorCode::Unauthorized);
}

TEST_CASE("core: while refused, a new request fails at once without being sent", "[client][core][curve]") {
  Fixture f;
  f.core.onHandshakeRefused("no such key");
  Answers a;
  f.call(a, CallOptions{.timeout = Duration(30000)});
  CHECK(a.failure() == Failure{ErrorCode::Unauthorized, "no such key"});
  CHECK(f.port.sent.empty());  // not even a heartbeat
  CHECK_FALSE(f.core.outstanding());
}

TEST_CASE("core: after a refusal a fresh connection is tried after the retry delay, backing off",
          "[client][core][curve]") {
  Fixture f;  // handshakeRetryMin 500 ms, max 10 s; each delay jittered down by up to a quarter
  f.core.onHandshakeRefused("refused");
  TimePoint first = f.core.nextWakeup();
  CHECK(first >= f.t0 + Duration(375));
  CHECK(first <= f.t0 + Duration(500));
  f.runUntil(Duration(374));
  CHECK(f.port.reconnects == 0);
  f.runUntil(Duration(500));
  CHECK(f.port.reconnects == 1);
  // Refused again on the new connection: the next try waits about twice as long.
  f.core.onHandshakeRefused("refused");
  TimePoint second = f.core.nextWakeup();
  CHECK(second >= f.clock.now() + Duration(750));
  CHECK(second <= f.clock.now() + Duration(1000));
  // No event at all from the new connection (broker down): no more reconnects are made by the
  // core; libzmq keeps dialling that connection by itself.
  f.runUntil(Duration(1500));
  CHECK(f.port.reconnects == 2);
  f.runUntil(Duration(60000));
  CHECK(f.port.reconnects == 2);
}

TEST_CASE("core: a successful handshake ends the refusal: requests go to the broker again",
          "[client][core][curve]") {
  Fixture f;
  f.core.onHandshakeRefused("refused");
  f.runUntil(Duration(500));
  REQUIRE(f.port.reconnects == 1);
  f.core.onHandshakeSucceeded();
  CHECK_FALSE(f.core.refusal());
  CHECK(f.core.nextWakeup() == TimePoint::max());  // idle, no retry pending
  Answers a;
  uint64_t id = f.call(a);
  REQUIRE(f.port.requests().size() == 1);
  f.receive(msg::Result{id, 1}, "ok");
  REQUIRE(a.got.size() == 1);
  CHECK(std::get<CallReply>(a.got[0]).payload == "ok");
  // The backoff started over: a new refusal retries after the minimum again.
  f.core.onHandshakeRefused("refused");
  CHECK(f.core.nextWakeup() <= f.clock.now() + Duration(500));
}

TEST_CASE("core: a handshake success without a refusal changes nothing", "[client][core][curve]") {
  Fixture f;
  Answers a;
  f.call(a, CallOptions{.timeout = Duration(1000)});
  f.core.onHandshakeSucceeded();
  CHECK(f.core.pendingCount() == 1);
  CHECK_FALSE(a.answered());
  CHECK_FALSE(f.core.refusal());
}

TEST_CASE("core: after shutdown a refusal is ignored", "[client][core][curve]") {
  Fixture f;
  f.core.shutdown();
  f.core.onHandshakeRefused("late");
  CHECK_FALSE(f.core.refusal());
  CHECK(f.core.nextWakeup() == TimePoint::max());
}

// ---------------------------------------------------------------- events (issue 11, item 3)

TEST_CASE("core: a subscription is confirmed, then gets its events in order until cancelled",
          "[client][core][events]") {
  Fixture f;
  Answers answer;
  Feed feed;
  uint64_t id = f.subscribe(answer, feed);
  auto sent = f.port.all<msg::Subscribe>();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].requestId == id);
  CHECK(sent[0].pool == "thumbs");
  f.receive(eventOf(id, 4));  // before subscribed: not confirmed, dropped
  CHECK(feed.events.empty());
  f.receive(msg::Subscribed{id, 41});
  f.receive(msg::Subscribed{id, 41});  // a second one (a confused broker) changes nothing
  REQUIRE(answer.got.size() == 1);
  CHECK(std::get<msg::Subscribed>(answer.got[0]).lastSeq == 41);
  CHECK(f.core.pendingCount() == 0);
  CHECK(f.core.subscriptionCount() == 1);

  f.receive(eventOf(id, 42, EventKind::RunnerBooting));
  f.receive(eventOf(id + 100, 43));  // another subscription's: not ours
  f.receive(eventOf(id, 44, EventKind::RunnerReady));
  REQUIRE(feed.events.size() == 2);
  CHECK(feed.events[0].seq == 42);
  CHECK(feed.events[0].kind == EventKind::RunnerBooting);
  CHECK(feed.events[1].seq == 44);
  CHECK(feed.events[1].runnerId == "r-44");
  CHECK(feed.ends.empty());

  f.core.submit(unsubscribeRequest(id));
  REQUIRE(feed.ends.size() == 1);
  CHECK(feed.ends[0] == Failure{ErrorCode::Cancelled, "the subscription was cancelled"});
  auto cancels = f.port.all<msg::Cancel>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].requestId == id);
  // The broker's answer to the cancel, and a late event, find nothing: no second end, no event.
  f.receive(msg::Error{id, ErrorCode::Cancelled, "cancelled", 0});
  f.receive(eventOf(id, 45));
  CHECK(feed.ends.size() == 1);
  CHECK(feed.events.size() == 2);
  f.core.submit(unsubscribeRequest(id));  // twice: a no-op
  CHECK(f.port.all<msg::Cancel>().size() == 1);
  CHECK_FALSE(f.core.outstanding());
  CHECK(f.core.nextWakeup() == TimePoint::max());
}

TEST_CASE("core: an unknown pool fails the subscribe, and its end never runs", "[client][core][events]") {
  Fixture f;
  Answers answer;
  Feed feed;
  uint64_t id = f.subscribe(answer, feed, "nope");
  f.receive(msg::Error{id, ErrorCode::UnknownPool, "no pool named nope", 0});
  CHECK(answer.failure() == Failure{ErrorCode::UnknownPool, "no pool named nope"});
  CHECK(feed.ends.empty());
  CHECK(f.core.subscriptionCount() == 0);
  CHECK_FALSE(f.core.outstanding());
}

TEST_CASE("core: a subscription heartbeats, and a silent broker ends it once, broker_unreachable",
          "[client][core][events]") {
  Fixture f;
  Answers answer;
  Feed feed;
  uint64_t id = f.subscribe(answer, feed);
  f.receive(msg::Subscribed{id, 0});
  CHECK(f.port.heartbeats() == 1);  // at once, when work began
  for (int i = 1; i <= 5; ++i) {   // the broker answers: the subscription lives on
    f.runUntil(Duration(100 * i));
    f.heartbeatAnswer();
  }
  CHECK(f.port.heartbeats() == 6);
  f.receive(eventOf(id, 1));  // events are signs of life too
  CHECK(feed.ends.empty());
  // Silent from t0 + 500: dead at 800.
  f.runUntil(Duration(799));
  CHECK(feed.ends.empty());
  f.runUntil(Duration(800));
  REQUIRE(feed.ends.size() == 1);
  CHECK(feed.ends[0].code == ErrorCode::BrokerUnreachable);
  CHECK(f.core.subscriptionCount() == 0);
  f.runUntil(Duration(2000));
  CHECK(feed.ends.size() == 1);
  CHECK(f.core.nextWakeup() == TimePoint::max());
}

TEST_CASE("core: a broker restart ends a subscription, saying so", "[client][core][events]") {
  Fixture f;
  Answers answer;
  Feed feed;
  uint64_t id = f.subscribe(answer, feed);
  f.receive(msg::Subscribed{id, 0});
  f.heartbeatAnswer(100, 7);
  f.heartbeatAnswer(100, 8);
  REQUIRE(feed.ends.size() == 1);
  CHECK(feed.ends[0].code == ErrorCode::BrokerUnreachable);
  CHECK_THAT(feed.ends[0].message, Catch::StartsWith("broker restarted: the subscription ended"));
}

TEST_CASE("core: shutdown cancels a subscription at the broker and ends it shutting_down", "[client][core][events]") {
  Fixture f;
  Answers answer, unconfirmedAnswer;
  Feed feed, unconfirmed;
  uint64_t id = f.subscribe(answer, feed);
  uint64_t pendingId = f.subscribe(unconfirmedAnswer, unconfirmed, "");
  CHECK(f.port.all<msg::Subscribe>().at(1).pool.empty());  // every pool
  f.receive(msg::Subscribed{id, 0});
  CHECK(f.core.shutdown());
  auto cancels = f.port.all<msg::Cancel>();
  REQUIRE(cancels.size() == 2);
  CHECK(((cancels[0].requestId == id && cancels[1].requestId == pendingId) ||
         (cancels[0].requestId == pendingId && cancels[1].requestId == id)));
  REQUIRE(feed.ends.size() == 1);
  CHECK(feed.ends[0].code == ErrorCode::ShuttingDown);
  CHECK(unconfirmedAnswer.failure().code == ErrorCode::ShuttingDown);
  CHECK(unconfirmed.ends.empty());  // never confirmed: its request was answered instead
}

TEST_CASE("core: an unanswered subscribe fails at its deadline, a late subscribed is cancelled",
          "[client][core][events]") {
  Fixture f;
  Answers answer;
  Feed feed;
  uint64_t id = f.subscribe(answer, feed, "thumbs", Duration(50));
  f.runUntil(Duration(50));
  CHECK(answer.failure() == Failure{ErrorCode::BrokerUnreachable, "broker unreachable: no answer to subscribe within 50ms"});
  REQUIRE(f.port.all<msg::Cancel>().size() == 1);
  f.receive(msg::Subscribed{id, 0});
  f.receive(eventOf(id, 1));
  CHECK(f.port.all<msg::Cancel>().size() == 2);  // nobody listens: ended at the broker again
  CHECK(feed.events.empty());
  CHECK(feed.ends.empty());
  CHECK(f.core.subscriptionCount() == 0);
}

TEST_CASE("core: an event handler may cancel its own subscription", "[client][core][events]") {
  Fixture f;
  Answers answer;
  std::vector<uint64_t> seen;
  std::vector<Failure> ends;
  uint64_t id = f.nextId++;
  f.core.submit(subscribeRequest(
      id, "", Duration(1000), answer.handler(),
      [&](const msg::Event& e) {
        seen.push_back(e.seq);
        if (e.seq == 2) f.core.submit(unsubscribeRequest(id));
      },
      [&](Failure why) { ends.push_back(std::move(why)); }));
  f.receive(msg::Subscribed{id, 0});
  f.receive(eventOf(id, 1));
  f.receive(eventOf(id, 2));
  f.receive(eventOf(id, 3));
  CHECK(seen == std::vector<uint64_t>{1, 2});
  REQUIRE(ends.size() == 1);
  CHECK(ends[0].code == ErrorCode::Cancelled);
}
