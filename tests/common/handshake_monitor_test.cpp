// HandshakeVerdicts (what a run of handshake events means) on its own, and HandshakeMonitor on
// real sockets: a DEALER against a CURVE ROUTER whose ZAP handler (tests/common/fake_zap.h) knows
// some keys. Loopback wildcard ports; every wait is bounded and waits for an event.
#include "common/handshake_monitor.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>

#include "common/curve_keys.h"
#include "common/fake_zap.h"

using namespace flame;
using flame::testing::FakeZap;
using Verdict = HandshakeVerdicts::Verdict;

namespace {

constexpr auto kBound = std::chrono::seconds(5);

// A CURVE server endpoint with its ZAP handler, in its own context.
struct CurveServerSide {
  CurveKeyPair keys = generateCurveKeyPair();
  zmq::context_t context;
  FakeZap zap{context};
  zmq::socket_t router;
  std::string endpoint;
  explicit CurveServerSide(bool curve = true) {
    CurveServer server{keys.secretKey, "clients"};
    router = bindRouter(context, "tcp://127.0.0.1:*", {}, curve ? &server : nullptr);
    endpoint = boundEndpoint(router);
  }
};

// Runs a DEALER (CURVE if `client` is set) with a monitor on a Reactor until the monitor says
// something or the bound passes. Returns "succeeded", "refused: <why>" or "nothing".
std::string firstVerdict(zmq::context_t& context, const std::string& endpoint, const CurveClient* client) {
  Reactor reactor;
  zmq::socket_t dealer = newDealer(context, {}, client);
  std::optional<std::string> said;
  HandshakeMonitor::Callbacks callbacks;
  callbacks.succeeded = [&] { said = "succeeded"; };
  callbacks.refused = [&](const std::string& why) { said = "refused: " + why; };
  HandshakeMonitor monitor(context, dealer,
                           HandshakeVerdicts(client != nullptr, "client", client ? client->publicKey : ""),
                           std::move(callbacks));
  monitor.watch(reactor);
  dealer.connect(endpoint);  // after the monitor: it sees the first handshake whatever its speed
  auto until = std::chrono::steady_clock::now() + kBound;
  while (!said && std::chrono::steady_clock::now() < until) reactor.pollOnce(Duration(100));
  return said.value_or("nothing");
}

CurveClient clientOf(const CurveKeyPair& server, const CurveKeyPair& own) {
  return CurveClient{server.publicKey, own.publicKey, own.secretKey};
}

}  // namespace

TEST_CASE("verdicts: success, ZAP refusal and mechanism mismatch are read at once", "[common][curve]") {
  HandshakeVerdicts curve(true, "client", "ABCDEFGHIJabcdefghij0123456789.-:+=^!/*?");
  CHECK(curve.onEvent({HandshakeEventKind::Succeeded, 0}) == Verdict::Succeeded);
  REQUIRE(curve.onEvent({HandshakeEventKind::FailedAuth, 400}) == Verdict::Refused);
  CHECK(curve.why() ==
        "the broker refused this client's key ABCDEFGH… (ZAP status 400): is its public key on the broker's "
        "allow-list?");
  REQUIRE(curve.onEvent({HandshakeEventKind::FailedProtocol, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH}) ==
          Verdict::Refused);
  CHECK(curve.why().find("does not use CURVE") != std::string::npos);

  HandshakeVerdicts plain(false, "runner", "");
  REQUIRE(plain.onEvent({HandshakeEventKind::FailedProtocol, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH}) ==
          Verdict::Refused);
  CHECK(plain.why().find("the broker requires CURVE on this endpoint: give this runner") == 0);
  REQUIRE(plain.onEvent({HandshakeEventKind::FailedProtocol, ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC}) ==
          Verdict::Refused);
  CHECK(plain.why() == "the handshake with the broker failed (ZeroMQ protocol error 0x11000001)");
}

TEST_CASE("verdicts: a handshake cut without detail is a refusal only when it repeats (CURVE 2, plaintext 3)",
          "[common][curve]") {
  HandshakeVerdicts curve(true, "client", "ABCDEFGHIJabcdefghij0123456789.-:+=^!/*?");
  CHECK(curve.onEvent({HandshakeEventKind::FailedNoDetail, 32}) == Verdict::None);
  CHECK(curve.onEvent({HandshakeEventKind::Succeeded, 0}) == Verdict::Succeeded);  // starts the count over
  CHECK(curve.onEvent({HandshakeEventKind::FailedNoDetail, 32}) == Verdict::None);
  REQUIRE(curve.onEvent({HandshakeEventKind::FailedNoDetail, 32}) == Verdict::Refused);
  CHECK(curve.why().find("is the server key the broker's public key") != std::string::npos);

  // A plaintext client: three in a row (a mechanism mismatch races into NO_DETAIL about half the time).
  HandshakeVerdicts plain(false, "client", "");
  CHECK(plain.onEvent({HandshakeEventKind::FailedNoDetail, 32}) == Verdict::None);
  CHECK(plain.onEvent({HandshakeEventKind::FailedNoDetail, 32}) == Verdict::None);
  REQUIRE(plain.onEvent({HandshakeEventKind::FailedNoDetail, 32}) == Verdict::Refused);
  CHECK(plain.why().find("3 times in a row: does it require CURVE on this endpoint?") != std::string::npos);
}

TEST_CASE("curveClientFor: both keys or neither, Z85, the public key derived", "[common][curve]") {
  CurveKeyPair server = generateCurveKeyPair(), own = generateCurveKeyPair();
  CHECK_FALSE(curveClientFor("ClientOptions", "", ""));
  auto curve = curveClientFor("ClientOptions", server.publicKey, own.secretKey);
  REQUIRE(curve);
  CHECK(curve->serverKey == server.publicKey);
  CHECK(curve->publicKey == own.publicKey);
  CHECK(curve->secretKey == own.secretKey);
  CHECK_THROWS_WITH(curveClientFor("ClientOptions", server.publicKey, ""),
                    Catch::Contains("ClientOptions: serverKey and secretKey go together") &&
                        Catch::Contains("only serverKey is set"));
  CHECK_THROWS_WITH(curveClientFor("RunnerOptions", "", own.secretKey), Catch::Contains("only secretKey is set"));
  CHECK_THROWS_AS(curveClientFor("RunnerOptions", "short", own.secretKey), std::invalid_argument);
  // The secret is never echoed in the error.
  std::string badSecret = own.secretKey.substr(0, 39) + "~";
  try {
    curveClientFor("RunnerOptions", server.publicKey, badSecret);
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("secretKey is not a Z85 secret key") != std::string::npos);
    CHECK(std::string(e.what()).find(badSecret) == std::string::npos);
  }
}

TEST_CASE("monitor: an allowed key's handshake succeeds", "[common][curve]") {
  CurveServerSide server;
  CurveKeyPair own = generateCurveKeyPair();
  server.zap.allow(own.publicKey);
  CurveClient client = clientOf(server.keys, own);
  CHECK(firstVerdict(server.context, server.endpoint, &client) == "succeeded");
}

TEST_CASE("monitor: a key the ZAP handler refuses is reported as refused, naming its fingerprint",
          "[common][curve]") {
  CurveServerSide server;
  CurveKeyPair own = generateCurveKeyPair();
  CurveClient client = clientOf(server.keys, own);
  std::string said = firstVerdict(server.context, server.endpoint, &client);
  CHECK(said == "refused: the broker refused this client's key " + keyFingerprint(own.publicKey) +
                    " (ZAP status 400): is its public key on the broker's allow-list?");
  CHECK(server.zap.requests() >= 1);  // the handler was asked: the refusal is its answer
}

TEST_CASE("monitor: a wrong server key is reported as refused", "[common][curve]") {
  CurveServerSide server;
  CurveKeyPair own = generateCurveKeyPair(), notTheServer = generateCurveKeyPair();
  server.zap.allow(own.publicKey);
  CurveClient client = clientOf(notTheServer, own);
  CHECK(firstVerdict(server.context, server.endpoint, &client).find("is the server key the broker's public key") !=
        std::string::npos);
  CHECK(server.zap.requests() == 0);  // the server could not even read the client's HELLO
}

TEST_CASE("monitor: plaintext against CURVE and CURVE against plaintext are refused", "[common][curve]") {
  CurveServerSide curveServer;
  std::string plaintext = firstVerdict(curveServer.context, curveServer.endpoint, nullptr);
  INFO(plaintext);
  CHECK(plaintext.find("refused: the broker requires CURVE on this endpoint") == 0);

  CurveServerSide plainServer(/*curve=*/false);
  CurveKeyPair own = generateCurveKeyPair();
  CurveClient client = clientOf(plainServer.keys, own);
  std::string curveToPlain = firstVerdict(plainServer.context, plainServer.endpoint, &client);
  INFO(curveToPlain);
  CHECK(curveToPlain.find("does not use CURVE") != std::string::npos);
}

TEST_CASE("monitor: a callback may destroy the monitor it came from", "[common][curve]") {
  CurveServerSide server;
  CurveKeyPair own = generateCurveKeyPair();
  CurveClient client = clientOf(server.keys, own);
  Reactor reactor;
  zmq::socket_t dealer = newDealer(server.context, {}, &client);
  std::unique_ptr<HandshakeMonitor> monitor;
  int refusals = 0;
  HandshakeMonitor::Callbacks callbacks;
  callbacks.refused = [&](const std::string&) {
    ++refusals;
    monitor.reset();  // what the runner does: give up, close the connection and its monitor
  };
  monitor = std::make_unique<HandshakeMonitor>(server.context, dealer,
                                               HandshakeVerdicts(true, "runner", own.publicKey), std::move(callbacks));
  monitor->watch(reactor);
  dealer.connect(server.endpoint);
  auto until = std::chrono::steady_clock::now() + kBound;
  while (monitor && std::chrono::steady_clock::now() < until) reactor.pollOnce(Duration(100));
  CHECK(refusals == 1);
  CHECK_FALSE(monitor);
}
