// flame::Client against a fake broker (a ROUTER driven by the test thread): the socket shell
// end to end. Exact times (deadlines, heartbeats, liveness) are ClientCore's, tested on a manual
// clock in client_core_test.cpp; these tests wait only for messages, with bounds.
#include "client/client.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <future>
#include <random>
#include <set>

#include "client/fake_broker.h"
#include "schema/flame.capnp.h"

using namespace flame;
using flame::testing::FakeBroker;
using flame::testing::Received;

namespace {

constexpr auto kBound = std::chrono::seconds(5);  // failure bound for futures

ClientOptions fastOptions(const std::string& endpoint) {
  ClientOptions options;
  options.broker = endpoint;
  options.heartbeatInterval = Duration(100);
  options.liveness = 3;
  return options;
}

template <class T>
bool ready(std::future<T>& f, std::chrono::milliseconds bound = kBound) {
  return f.wait_for(bound) == std::future_status::ready;
}

}  // namespace

TEST_CASE("call passes payload and result bytes through exactly", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  const std::string payload = std::string("in\0put\xff", 7) + '\0' + "bytes";  // 13 bytes
  const std::string result("\0\x01out\0", 6);

  auto future =
      client.callAsync("thumbs", "resize", payload, CallOptions{.timeout = Duration(2500)});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  auto& [received, submit] = *got;
  CHECK(submit.mode == Mode::Call);
  CHECK(submit.pool == "thumbs");
  CHECK(submit.function == "resize");
  CHECK(submit.timeoutMs == 2500);
  CHECK(submit.link);
  CHECK_FALSE(submit.idempotent);
  REQUIRE(received.payload);
  CHECK(*received.payload == payload);
  broker.send(received.peer, msg::Result{submit.requestId, 7}, result);

  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(r.value() == result);
}

TEST_CASE("a result without a payload frame is an empty result", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("p", "f", "");
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->first.payload == std::string());  // the payload frame is always sent
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1});
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(r.value().empty());
}

TEST_CASE("an error reply becomes a Failure with its code and message", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("nope", "f", "x",
                                 CallOptions{.idempotent = true, .retries = 2, .link = false});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->second.idempotent);
  CHECK(got->second.retries == 2);
  CHECK_FALSE(got->second.link);
  broker.send(got->first.peer,
              msg::Error{got->second.requestId, ErrorCode::UnknownPool, "no pool named nope", 0});
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::UnknownPool);
  CHECK(r.error().message == "no pool named nope");
  CHECK(r.error().toString() == "unknown_pool: no pool named nope");
}

TEST_CASE("many calls in flight answered out of order each get their own result", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  constexpr int kCalls = 100;
  std::vector<std::future<CallResult>> futures;
  for (int i = 0; i < kCalls; ++i)
    futures.push_back(client.callAsync("p", "echo", "payload-" + std::to_string(i)));

  std::vector<Received> requests;
  for (int i = 0; i < kCalls; ++i) {
    auto got = broker.next();
    REQUIRE(got);
    REQUIRE(std::holds_alternative<msg::Submit>(got->message));
    requests.push_back(std::move(*got));
  }
  std::mt19937 rng(42);
  std::shuffle(requests.begin(), requests.end(), rng);
  for (auto& r : requests) {
    broker.send(r.peer, msg::Result{std::get<msg::Submit>(r.message).requestId, 0},
                "result-of-" + *r.payload);
  }
  for (int i = 0; i < kCalls; ++i) {
    REQUIRE(ready(futures[i]));
    auto r = futures[i].get();
    REQUIRE(r.ok());
    CHECK(r.value() == "result-of-payload-" + std::to_string(i));
  }
}

TEST_CASE("cast returns the job id once accepted", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = std::async(std::launch::async, [&] {
    return client.cast("p", "log", "line", CallOptions{.link = false});
  });
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->second.mode == Mode::Cast);
  CHECK_FALSE(got->second.link);
  broker.send(got->first.peer, msg::Accepted{got->second.requestId, 4242});
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(r.value() == 4242);
}

TEST_CASE("place returns a handle and onExit runs on childExited", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  std::promise<std::pair<uint64_t, std::optional<Failure>>> exited;
  auto exitedFuture = exited.get_future();
  auto future = std::async(std::launch::async, [&] {
    return client.place("p", "serve", "cfg", {}, [&](uint64_t childId, std::optional<Failure> why) {
      exited.set_value({childId, std::move(why)});
    });
  });
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->second.mode == Mode::Place);
  CHECK(got->second.timeoutMs == 0);
  CHECK(got->second.link);
  broker.send(got->first.peer, msg::Placed{got->second.requestId, 17, "p-r1"});
  REQUIRE(ready(future));
  auto handle = future.get();
  REQUIRE(handle.ok());
  CHECK(handle->childId == 17);
  CHECK(handle->runnerId == "p-r1");
  CHECK(handle->toString() == "17@p-r1");

  // The client heartbeats while it has a linked child.
  REQUIRE(broker.awaitHeartbeats(2));
  broker.send(got->first.peer, msg::ChildExited{17, ErrorCode::HandlerError, "boom"});
  REQUIRE(ready(exitedFuture));
  auto [childId, why] = exitedFuture.get();
  CHECK(childId == 17);
  REQUIRE(why);
  CHECK(why->code == ErrorCode::HandlerError);
  CHECK(why->message == "boom");
}

TEST_CASE("stop waits for stopped, and reports not_found", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));

  SECTION("stopped") {
    auto future = std::async(std::launch::async, [&] { return client.stop(ChildHandle{9, "r"}); });
    auto got = broker.expect<msg::StopChild>();
    REQUIRE(got);
    CHECK(got->second.childId == 9);
    broker.send(got->first.peer, msg::Stopped{9});
    REQUIRE(ready(future));
    CHECK(future.get().ok());
  }
  SECTION("not found: the error names no request (stopChild has no request id)") {
    auto future =
        std::async(std::launch::async, [&] { return client.stop(*ChildHandle::parse("12")); });
    auto got = broker.expect<msg::StopChild>();
    REQUIRE(got);
    broker.send(got->first.peer, msg::Error{0, ErrorCode::NotFound, "no child 12", 0});
    REQUIRE(ready(future));
    auto r = future.get();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::NotFound);
  }
  SECTION("a stopped linked child also gets its onExit") {
    std::promise<std::optional<Failure>> exited;
    auto exitedFuture = exited.get_future();
    auto placed = std::async(std::launch::async, [&] {
      return client.place("p", "serve", "", {},
                          [&](uint64_t, std::optional<Failure> why) { exited.set_value(why); });
    });
    auto submit = broker.expect<msg::Submit>();
    REQUIRE(submit);
    broker.send(submit->first.peer, msg::Placed{submit->second.requestId, 5, "r"});
    REQUIRE(ready(placed));
    auto handle = placed.get();
    REQUIRE(handle.ok());
    auto stopped = std::async(std::launch::async, [&] { return client.stop(*handle); });
    auto got = broker.expect<msg::StopChild>();
    REQUIRE(got);
    broker.send(got->first.peer, msg::Stopped{5});
    REQUIRE(ready(stopped));
    CHECK(stopped.get().ok());
    REQUIRE(ready(exitedFuture));
    auto why = exitedFuture.get();
    REQUIRE(why);
    CHECK(why->code == ErrorCode::Cancelled);
  }
}

TEST_CASE("status round trip", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = std::async(std::launch::async, [&] { return client.status(); });
  auto got = broker.expect<msg::StatusRequest>();
  REQUIRE(got);
  msg::StatusReply reply;
  reply.requestId = got->second.requestId;
  msg::PoolStatus pool;
  pool.name = "thumbs";
  pool.queued = 3;
  pool.slotsUsed = 2;
  pool.slotsTotal = 8;
  pool.completed = 10;
  pool.runners.push_back(msg::RunnerStatus{"thumbs-r1", "ready", 2, 4, 1234, "box", 0});
  reply.pools.push_back(pool);
  broker.send(got->first.peer, reply);
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  REQUIRE(r->pools.size() == 1);
  CHECK(r->pools[0].name == "thumbs");
  CHECK(r->pools[0].queued == 3);
  CHECK(r->pools[0].completed == 10);
  REQUIRE(r->pools[0].runners.size() == 1);
  CHECK(r->pools[0].runners[0].runnerId == "thumbs-r1");
  CHECK(r->pools[0].runners[0].pid == 1234);
}

TEST_CASE("a silent broker fails a call with broker_unreachable", "[client]") {
  FakeBroker broker;  // never answers, not even heartbeats
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("p", "f", "x");  // timeout 0: only liveness bounds it
  REQUIRE(broker.expect<msg::Submit>());
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::BrokerUnreachable);
  CHECK_THAT(r.error().message, Catch::StartsWith("broker unreachable: no answer for "));
}

TEST_CASE("with no broker listening, requests still fail in bounded time", "[client]") {
  Client client(fastOptions(flame::testing::deadEndpoint()));
  auto r = client.call("p", "f", "x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::BrokerUnreachable);
  auto s = client.status(Duration(100));  // its own deadline comes before liveness
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == ErrorCode::BrokerUnreachable);
}

TEST_CASE("heartbeats flow while a request is outstanding", "[client]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("p", "f", "x");
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  // Answered heartbeats keep the call alive well past interval x liveness.
  REQUIRE(broker.awaitHeartbeats(5));
  CHECK(future.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, "done");
  REQUIRE(ready(future));
  CHECK(future.get().value() == "done");
}

TEST_CASE("a broker restart fails the requests it forgot instead of leaving them hanging", "[client]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("p", "f", "x", CallOptions{kInfinite});
  REQUIRE(broker.expect<msg::Submit>());
  REQUIRE(broker.awaitHeartbeats(2));
  CHECK(future.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);
  broker.instance = 8;  // same endpoint, new broker run
  REQUIRE(broker.awaitHeartbeats(1));  // answered by the "new" broker
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::BrokerUnreachable);
  CHECK_THAT(r.error().message, Catch::StartsWith("broker restarted"));
}

TEST_CASE("malformed messages from the broker are dropped and the client keeps working",
          "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("p", "f", "x");
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  const std::string& peer = got->first.peer;
  auto sendFramesOf = [&](std::vector<std::string> parts) {
    Frames frames;
    frames.emplace_back(peer.data(), peer.size());
    for (auto& p : parts) frames.emplace_back(p.data(), p.size());
    broker.sendRaw(frames);
  };
  sendFramesOf({"", "garbage"});                                 // not a whole number of words
  sendFramesOf({"", std::string(16, '\xff')});                   // words, but not Cap'n Proto
  sendFramesOf({"not-empty", "x"});                              // bad delimiter
  sendFramesOf({""});                                            // no header
  sendFramesOf({"", "a", "b", "c"});                             // too many frames
  broker.send(peer, msg::Result{999999, 1}, "nobody's");         // unknown request id
  broker.send(peer, msg::Ready{"r", "p", 1, {}, "", 0, 0, "", {}});  // a runner message
  broker.send(peer, msg::Result{got->second.requestId, 1}, "fine");
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(r.value() == "fine");
}

TEST_CASE("a call the broker never answers fails at its local deadline and is cancelled",
          "[client]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;  // the broker is alive: only the local deadline can end the call
  Client client(fastOptions(broker.endpoint()));
  auto future = client.callAsync("p", "f", "x", CallOptions{.timeout = Duration(100), .waitTimeout = Duration(100)});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  auto cancel = broker.expect<msg::Cancel>();  // sent when the client gives up
  REQUIRE(cancel);
  CHECK(cancel->second.requestId == got->second.requestId);
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::Timeout);
  CHECK(r.error().message == "no answer within the 200ms timeout (checked by the client)");
}

TEST_CASE("a child placed after its place was abandoned is stopped", "[client]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;
  Client client(fastOptions(broker.endpoint()));
  auto r = std::async(std::launch::async, [&] {
    return client.place("p", "serve", "", CallOptions{.waitTimeout = Duration(50)});
  });
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  REQUIRE(broker.expect<msg::Cancel>());
  REQUIRE(ready(r));
  CHECK(r.get().error().code == ErrorCode::Timeout);
  broker.send(got->first.peer, msg::Placed{got->second.requestId, 77, "r"});
  auto stop = broker.expect<msg::StopChild>();
  REQUIRE(stop);
  CHECK(stop->second.childId == 77);
}

TEST_CASE("destroying the client fails what is outstanding and says goodbye", "[client]") {
  FakeBroker broker;
  std::promise<std::optional<Failure>> exited;
  auto exitedFuture = exited.get_future();
  std::future<CallResult> linkedCall, unlinkedCall;
  uint64_t linkedId = 0;
  {
    Client client(fastOptions(broker.endpoint()));
    auto placed = std::async(std::launch::async, [&] {
      return client.place("p", "serve", "", {},
                          [&](uint64_t, std::optional<Failure> why) { exited.set_value(why); });
    });
    auto submit = broker.expect<msg::Submit>();
    REQUIRE(submit);
    broker.send(submit->first.peer, msg::Placed{submit->second.requestId, 31, "r"});
    REQUIRE(ready(placed));
    REQUIRE(placed.get().ok());

    linkedCall = client.callAsync("p", "f", "1");
    auto linked = broker.expect<msg::Submit>();
    REQUIRE(linked);
    linkedId = linked->second.requestId;
    unlinkedCall = client.callAsync("p", "f", "2", CallOptions{.link = false});
    REQUIRE(broker.expect<msg::Submit>());
  }
  REQUIRE(ready(linkedCall));
  CHECK(linkedCall.get().error().code == ErrorCode::ShuttingDown);
  REQUIRE(ready(unlinkedCall));
  CHECK(unlinkedCall.get().error().code == ErrorCode::ShuttingDown);
  REQUIRE(ready(exitedFuture));
  auto why = exitedFuture.get();
  REQUIRE(why);
  CHECK(why->code == ErrorCode::ShuttingDown);

  // Goodbyes: cancel for the linked call only, stopChild for the linked child (any order).
  bool cancelled = false, stopped = false;
  for (int i = 0; i < 2; ++i) {
    auto got = broker.next();
    REQUIRE(got);
    if (auto* c = std::get_if<msg::Cancel>(&got->message)) cancelled = c->requestId == linkedId;
    if (auto* s = std::get_if<msg::StopChild>(&got->message)) stopped = s->childId == 31;
  }
  CHECK(cancelled);
  CHECK(stopped);
}

TEST_CASE("synchronous methods called from a completion callback fail instead of deadlocking",
          "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  std::promise<Failure> inner;
  auto innerFuture = inner.get_future();
  client.callAsync("p", "f", "x", {}, [&](CallResult) {
    auto r = client.call("p", "g", "y");
    inner.set_value(r.ok() ? Failure{ErrorCode::None, "unexpected success"} : r.error());
  });
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1});
  REQUIRE(ready(innerFuture));
  auto failure = innerFuture.get();
  CHECK(failure.code == ErrorCode::Internal);
  CHECK_THAT(failure.message, Catch::Contains("I/O thread"));
}

TEST_CASE("callTyped sends a Cap'n Proto request and parses the typed result", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = std::async(std::launch::async, [&] {
    return client.callTyped<wire::Heartbeat, wire::Heartbeat>("p", "double",
                                                              [](wire::Heartbeat::Builder b) {
                                                                b.setSentMs(21);
                                                                b.setIntervalMs(7);
                                                              });
  });
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  REQUIRE(got->first.payload);
  auto request = fromBytes<wire::Heartbeat>(*got->first.payload);
  REQUIRE(request.ok());
  CHECK(request->get().getSentMs() == 21);
  auto reply = toBytes<wire::Heartbeat>([&](wire::Heartbeat::Builder b) {
    b.setSentMs(request->get().getSentMs() * 2);
    b.setIntervalMs(request->get().getIntervalMs() * 2);
  });
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, reply);
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(r->get().getSentMs() == 42);
  CHECK(r->get().getIntervalMs() == 14);

  SECTION("bad result bytes are a bad_request failure") {
    auto bad = std::async(std::launch::async, [&] {
      return client.callTyped<wire::Heartbeat, wire::Heartbeat>("p", "double",
                                                                [](wire::Heartbeat::Builder) {});
    });
    auto second = broker.expect<msg::Submit>();
    REQUIRE(second);
    broker.send(second->first.peer, msg::Result{second->second.requestId, 2}, "not capnp");
    REQUIRE(ready(bad));
    auto failure = bad.get();
    REQUIRE_FALSE(failure.ok());
    CHECK(failure.error().code == ErrorCode::BadRequest);
    CHECK_THAT(failure.error().message, Catch::StartsWith("bad result: "));
  }
}

TEST_CASE("setPool sends only the limits given and returns the pool's status", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  auto future = std::async(std::launch::async,
                           [&] { return client.setPool("thumbs", PoolLimitsUpdate{.max = 6}); });
  auto got = broker.expect<msg::SetPool>();
  REQUIRE(got);
  CHECK(got->second.pool == "thumbs");
  CHECK(got->second.min == -1);
  CHECK(got->second.max == 6);
  CHECK(got->second.warmSlots == -1);
  msg::StatusReply reply;
  reply.requestId = got->second.requestId;
  reply.pools.push_back(msg::PoolStatus{});
  reply.pools[0].name = "thumbs";
  reply.pools[0].max = 6;
  broker.send(got->first.peer, reply);
  REQUIRE(ready(future));
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(r->pools.at(0).max == 6);

  auto rejected = std::async(std::launch::async,
                             [&] { return client.setPool("thumbs", PoolLimitsUpdate{.min = 9}); });
  auto second = broker.expect<msg::SetPool>();
  REQUIRE(second);
  broker.send(second->first.peer, msg::Error{second->second.requestId, ErrorCode::BadRequest,
                                             "min (9) must not exceed max (6)", 0});
  REQUIRE(ready(rejected));
  CHECK(rejected.get().error().code == ErrorCode::BadRequest);
}

TEST_CASE("a payload over the broker's limit fails at once with payload_too_large, never sent",
          "[client][reliability]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;
  broker.maxPayloadBytes = 2 * 1024 * 1024;
  Client client(fastOptions(broker.endpoint()));
  // Before the limit is known, a large payload waits for the broker's first heartbeat answer
  // (the client heartbeats at once when work starts), then is refused without being sent.
  const std::string big(3 * 1024 * 1024, 'x');
  auto tooBig = client.callAsync("p", "f", big, CallOptions{.timeout = kInfinite});
  REQUIRE(broker.awaitHeartbeats(1));  // answered with the limit
  REQUIRE(ready(tooBig));
  auto r = tooBig.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::PayloadTooLarge);
  CHECK(r.error().message.find("3145728 bytes") != std::string::npos);
  // Once known, the limit is applied on the spot; payloads within it go through.
  auto r2 = client.callAsync("p", "f", big, CallOptions{.timeout = kInfinite});
  REQUIRE(ready(r2));
  CHECK(r2.get().error().code == ErrorCode::PayloadTooLarge);
  auto fits = client.callAsync("p", "f", std::string(2 * 1024 * 1024, 'y'), CallOptions{.timeout = kInfinite});
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);  // the first message the broker sees is this one: the big ones never left
  CHECK(got->first.payload->size() == 2 * 1024 * 1024);
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, "ok");
  REQUIRE(ready(fits));
  CHECK(fits.get().value() == "ok");
}

TEST_CASE("requests made before the broker is up leave when it comes up", "[client]") {
  std::string endpoint = flame::testing::deadEndpoint();
  ClientOptions options = fastOptions(endpoint);
  options.heartbeatInterval = Duration(1000);  // liveness 3 s: the broker comes up well before
  Client client(options);
  auto future = client.callAsync("p", "f", "early");  // the DEALER cannot take it yet
  FakeBroker broker(endpoint);
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->first.payload == "early");
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, "late but here");
  REQUIRE(ready(future));
  CHECK(future.get().value() == "late but here");
}

TEST_CASE("a completion callback can issue the next call (the pipelined pattern)", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  constexpr int kChain = 20;
  std::promise<std::vector<std::string>> done;
  auto results = done.get_future();
  std::vector<std::string> seen;  // touched only on the I/O thread until done is set
  std::function<void(CallResult)> next = [&](CallResult r) {
    seen.push_back(r ? r.value() : r.error().toString());
    if (seen.size() == kChain) {
      done.set_value(seen);
      return;
    }
    client.callAsync("p", "f", std::to_string(seen.size()), {}, next);
  };
  client.callAsync("p", "f", "0", {}, next);
  for (int i = 0; i < kChain; ++i) {
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->first.payload == std::to_string(i));
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, "r" + *got->first.payload);
  }
  REQUIRE(ready(results));
  auto all = results.get();
  REQUIRE(all.size() == kChain);
  for (int i = 0; i < kChain; ++i) CHECK(all[i] == "r" + std::to_string(i));
}

TEST_CASE("requests from many threads each arrive once and get their own answer", "[client]") {
  FakeBroker broker;
  Client client(fastOptions(broker.endpoint()));
  constexpr int kThreads = 4, kEach = 50;
  std::vector<std::future<std::vector<std::future<CallResult>>>> issuers;
  for (int t = 0; t < kThreads; ++t)
    issuers.push_back(std::async(std::launch::async, [&client, t] {
      std::vector<std::future<CallResult>> mine;
      for (int i = 0; i < kEach; ++i)
        mine.push_back(client.callAsync("p", "f", std::to_string(t) + "/" + std::to_string(i)));
      return mine;
    }));
  std::set<std::string> payloads;
  for (int n = 0; n < kThreads * kEach; ++n) {
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    payloads.insert(*got->first.payload);
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, "=" + *got->first.payload);
  }
  CHECK(payloads.size() == kThreads * kEach);
  for (int t = 0; t < kThreads; ++t) {
    REQUIRE(ready(issuers[t]));
    auto mine = issuers[t].get();
    for (int i = 0; i < kEach; ++i) {
      REQUIRE(ready(mine[i]));
      CHECK(mine[i].get().value() == "=" + std::to_string(t) + "/" + std::to_string(i));
    }
  }
}

TEST_CASE("clients sharing one ZeroMQ context each work, and one's end leaves the other working",
          "[client]") {
  FakeBroker broker;
  zmq::context_t shared;
  ClientOptions o = fastOptions(broker.endpoint());
  o.context = &shared;
  Client first(o);
  auto answer = [&](Client& client, const std::string& payload) {
    auto future = client.callAsync("p", "f", payload, CallOptions{.timeout = Duration(2500)});
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    auto& [received, submit] = *got;
    broker.send(received.peer, msg::Result{submit.requestId, 1}, "re:" + payload);
    REQUIRE(ready(future));
    auto r = future.get();
    REQUIRE(r.ok());
    CHECK(r.value() == "re:" + payload);
  };
  {
    Client second(o);
    answer(second, "two");
    answer(first, "one");
  }  // the second is destroyed: the shared context stays open
  answer(first, "again");
}

TEST_CASE("subscribe delivers events on the I/O thread, the handle's end cancels it once", "[client][events]") {
  FakeBroker broker;
  broker.heartbeatReplyMs = 100;
  auto client = std::make_unique<Client>(fastOptions(broker.endpoint()));
  std::mutex mutex;
  std::vector<uint64_t> seqs;
  std::vector<Failure> ends;
  std::promise<void> twoEvents, ended;
  auto subscribing = std::async(std::launch::async, [&] {
    return client->subscribe(
        "thumbs",
        [&](const msg::Event& e) {
          std::lock_guard lock(mutex);
          seqs.push_back(e.seq);
          if (seqs.size() == 2) twoEvents.set_value();
        },
        [&](Failure why) {
          std::lock_guard lock(mutex);
          ends.push_back(std::move(why));
          ended.set_value();
        });
  });
  auto got = broker.expect<msg::Subscribe>();
  REQUIRE(got);
  CHECK(got->second.pool == "thumbs");
  uint64_t id = got->second.requestId;
  broker.send(got->first.peer, msg::Subscribed{id, 5});
  REQUIRE(ready(subscribing));
  auto subscription = subscribing.get();
  REQUIRE(subscription);
  CHECK(subscription->id() == id);
  CHECK(subscription->lastSeq() == 5);
  msg::Event e;
  e.requestId = id;
  e.seq = 6;
  broker.send(got->first.peer, e);
  e.seq = 7;
  broker.send(got->first.peer, e);
  auto events = twoEvents.get_future();
  REQUIRE(ready(events));
  REQUIRE(broker.awaitHeartbeats(2));  // subscribed: the client keeps heartbeating

  Subscription moved = std::move(*subscription);  // the moved-from handle ends nothing
  CHECK_FALSE(*subscription);
  moved = Subscription();  // assigning over a live handle ends it
  auto cancel = broker.expect<msg::Cancel>();
  REQUIRE(cancel);
  CHECK(cancel->second.requestId == id);
  auto end = ended.get_future();
  REQUIRE(ready(end));
  client.reset();  // no second end at shutdown
  std::lock_guard lock(mutex);
  CHECK(seqs == std::vector<uint64_t>{6, 7});
  REQUIRE(ends.size() == 1);
  CHECK(ends[0].code == ErrorCode::Cancelled);
}

TEST_CASE("a subscription handle may outlive its client, the client's end ends it shutting_down", "[client][events]") {
  FakeBroker broker;
  auto client = std::make_unique<Client>(fastOptions(broker.endpoint()));
  std::promise<Failure> ended;
  auto subscribing = std::async(std::launch::async, [&] {
    return client->subscribe("", {}, [&](Failure why) { ended.set_value(std::move(why)); });
  });
  auto got = broker.expect<msg::Subscribe>();
  REQUIRE(got);
  CHECK(got->second.pool.empty());
  broker.send(got->first.peer, msg::Subscribed{got->second.requestId, 0});
  REQUIRE(ready(subscribing));
  auto subscription = subscribing.get();
  REQUIRE(subscription);
  auto end = ended.get_future();
  client.reset();
  REQUIRE(ready(end));
  CHECK(end.get().code == ErrorCode::ShuttingDown);
  subscription->cancel();  // the client is gone: nothing happens
  CHECK_FALSE(*subscription);
}
