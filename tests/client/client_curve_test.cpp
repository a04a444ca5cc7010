// flame::Client with CURVE (issue 10, item 3) against a fake CURVE broker: a ROUTER with a
// secret key and a ZAP handler in the test (tests/common/fake_zap.h) that accepts the keys it is
// told to. A refused handshake must fail requests at once with `unauthorized`: every call here
// has a 60 s timeout and the client's liveness window is 30 s, so an answer within the 5 s bound
// can only come from the handshake (it takes milliseconds; the bound leaves room for a loaded
// machine, where a 2 s bound failed once). Loopback wildcard ports; every wait is bounded.
#include <catch2/catch.hpp>
#include <chrono>
#include <future>

#include "client/client.h"
#include "client/fake_broker.h"
#include "common/curve_keys.h"

using namespace flame;
using flame::testing::CurveBrokerSetup;
using flame::testing::FakeBroker;

namespace {

// Failure bound of every wait; far below the 30 s (liveness) and 60 s (timeout) that any other
// ending of a request would take here.
constexpr auto kBound = std::chrono::seconds(5);
constexpr CallOptions kLongCall{.timeout = Duration(60000)};

ClientOptions curveOptions(const std::string& endpoint, const std::string& serverKey, const CurveKeyPair& own) {
  ClientOptions options;
  options.broker = endpoint;
  options.heartbeatInterval = Duration(10000);
  options.liveness = 3;  // 30 s
  options.serverKey = serverKey;
  options.secretKey = own.secretKey;
  return options;
}

// The answer of a call that should fail at once: it must come within kBound.
struct Refused {
  CallResult result;
};
Refused callRefused(Client& client) {
  auto future = client.callAsync("p", "f", "x", kLongCall);
  REQUIRE(future.wait_for(kBound) == std::future_status::ready);
  return Refused{future.get()};
}

}  // namespace

TEST_CASE("curve client: an allowed key is served, and the broker sees that key", "[client][curve]") {
  CurveBrokerSetup setup;
  FakeBroker broker(setup);
  CurveKeyPair own = generateCurveKeyPair();
  broker.zap()->allow(own.publicKey);
  Client client(curveOptions(broker.endpoint(), setup.keys.publicKey, own));

  auto future = client.callAsync("p", "f", "in", kLongCall);
  auto got = broker.expect<msg::Submit>();
  REQUIRE(got);
  CHECK(got->first.key == own.publicKey);  // authenticated by the ZAP handler, end to end encrypted
  CHECK(got->first.payload == std::string("in"));
  broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, std::string("out"));
  REQUIRE(future.wait_for(kBound) == std::future_status::ready);
  auto r = future.get();
  REQUIRE(r.ok());
  CHECK(*r == "out");
}

TEST_CASE("curve client: an unknown key fails the call at once with unauthorized, naming its fingerprint",
          "[client][curve]") {
  CurveBrokerSetup setup;
  FakeBroker broker(setup);  // allows no key
  CurveKeyPair own = generateCurveKeyPair();
  Client client(curveOptions(broker.endpoint(), setup.keys.publicKey, own));

  auto refused = callRefused(client);
  REQUIRE_FALSE(refused.result.ok());
  CHECK(refused.result.error().code == ErrorCode::Unauthorized);
  CHECK(refused.result.error().message.find("the broker refused this client's key " +
                                            keyFingerprint(own.publicKey)) == 0);
  CHECK(broker.zap()->requests() >= 1);  // it was the ZAP handler's answer

  // While refused, a new request fails at once too, without reaching the broker.
  auto again = callRefused(client);
  REQUIRE_FALSE(again.result.ok());
  CHECK(again.result.error().code == ErrorCode::Unauthorized);
  CHECK_FALSE(broker.next(Duration(50)));
}

TEST_CASE("curve client: once its key is allowed, a later handshake succeeds and calls are served again",
          "[client][curve]") {
  CurveBrokerSetup setup;
  FakeBroker broker(setup);
  CurveKeyPair own = generateCurveKeyPair();
  Client client(curveOptions(broker.endpoint(), setup.keys.publicKey, own));
  REQUIRE(callRefused(client).result.error().code == ErrorCode::Unauthorized);

  broker.zap()->allow(own.publicKey);
  // The client tries a fresh connection after 0.5 s (jittered down by up to a quarter): wait for
  // that handshake to be checked, then for the client to hear it succeeded.
  REQUIRE(broker.zap()->awaitRequests(2, std::chrono::duration_cast<std::chrono::milliseconds>(kBound)));
  std::optional<CallResult> served;
  auto until = std::chrono::steady_clock::now() + kBound;
  while (!served && std::chrono::steady_clock::now() < until) {
    auto future = client.callAsync("p", "f", "x", kLongCall);
    // Refused at once while the client has not yet heard of the success (a few ms at most).
    if (future.wait_for(std::chrono::milliseconds(20)) == std::future_status::ready) {
      auto early = future.get();
      REQUIRE_FALSE(early.ok());
      REQUIRE(early.error().code == ErrorCode::Unauthorized);
      continue;
    }
    auto got = broker.expect<msg::Submit>();
    REQUIRE(got);
    CHECK(got->first.key == own.publicKey);
    broker.send(got->first.peer, msg::Result{got->second.requestId, 1}, std::string("back"));
    REQUIRE(future.wait_for(kBound) == std::future_status::ready);
    served = future.get();
  }
  REQUIRE(served);
  REQUIRE(served->ok());
  CHECK(**served == "back");
}

TEST_CASE("curve client: a plaintext client of a CURVE broker fails at once with unauthorized", "[client][curve]") {
  CurveBrokerSetup setup;
  FakeBroker broker(setup);
  ClientOptions options;
  options.broker = broker.endpoint();
  options.heartbeatInterval = Duration(10000);
  Client client(options);
  auto refused = callRefused(client);
  REQUIRE_FALSE(refused.result.ok());
  CHECK(refused.result.error().code == ErrorCode::Unauthorized);
  // "the broker requires CURVE on this endpoint: ..." — or, when the mismatch raced into cut
  // handshakes three times (common/handshake_monitor.h), "... does it require CURVE on this endpoint?".
  CHECK(refused.result.error().message.find("require") != std::string::npos);
  CHECK(refused.result.error().message.find("CURVE on this endpoint") != std::string::npos);
}

TEST_CASE("curve client: a CURVE client of a plaintext broker, or with a wrong server key, fails at once",
          "[client][curve]") {
  CurveKeyPair own = generateCurveKeyPair();
  SECTION("plaintext broker") {
    FakeBroker broker;
    Client client(curveOptions(broker.endpoint(), generateCurveKeyPair().publicKey, own));
    auto refused = callRefused(client);
    REQUIRE_FALSE(refused.result.ok());
    CHECK(refused.result.error().code == ErrorCode::Unauthorized);
    // "does not use CURVE on this endpoint" — or, when the mismatch raced into cut handshakes,
    // "does the broker use CURVE on this endpoint?".
    CHECK(refused.result.error().message.find("use CURVE on this endpoint") != std::string::npos);
  }
  SECTION("wrong server key") {
    CurveBrokerSetup setup;
    FakeBroker broker(setup);
    broker.zap()->allow(own.publicKey);
    Client client(curveOptions(broker.endpoint(), generateCurveKeyPair().publicKey, own));
    auto refused = callRefused(client);
    REQUIRE_FALSE(refused.result.ok());
    CHECK(refused.result.error().code == ErrorCode::Unauthorized);
    CHECK(refused.result.error().message.find("is the server key the broker's public key") != std::string::npos);
  }
}

TEST_CASE("curve client: a key without the other, or not Z85, is refused at construction", "[client][curve]") {
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  ClientOptions options;
  options.serverKey = server.publicKey;
  CHECK_THROWS_WITH(Client(options), Catch::Contains("serverKey and secretKey go together"));
  options.serverKey.clear();
  options.secretKey = own.secretKey;
  CHECK_THROWS_WITH(Client(options), Catch::Contains("only secretKey is set"));
  options.serverKey = "not a key";
  CHECK_THROWS_WITH(Client(options), Catch::Contains("is not a Z85 public key"));
}
