// CURVE and authorization (docs/SECURITY.md, issue 10): the key ring's verdicts, the ZAP
// handler's answers, runner keys derived per booted runner, the [security] config, and a whole
// flame::Broker on real sockets: CURVE handshakes accepted or refused (seen through libzmq's
// socket monitor, so a refusal is observed, not inferred from silence), keys as identities for
// stopChild and setPool, static and booted runners, and revocation on reload.
#include <catch2/catch.hpp>

#include <zmq.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <thread>

#include "broker/boot_token.h"
#include "broker/broker.h"
#include "broker/key_ring.h"
#include "broker/zap.h"
#include "common/codec.h"
#include "tests/backends/fake_backend.h"
#include "tests/backends/local_files.h"

using namespace flame;
using flame::test::TempDir;
using flame::testing::FakeBackend;

namespace {

AllowedKey named(const CurveKeyPair& k, const std::string& name) { return AllowedKey{k.publicKey, name}; }

// A ZAP request as libzmq frames it (after the envelope).
Frames zapRequest(const std::string& domain, const std::string& mechanism, const std::string& z85PublicKey) {
  Frames f;
  for (const std::string& s : {std::string("1.0"), std::string("7"), domain, std::string("127.0.0.1"), std::string(),
                               mechanism})
    f.emplace_back(s.data(), s.size());
  uint8_t raw[32] = {};
  if (!z85PublicKey.empty()) REQUIRE(zmq_z85_decode(raw, z85PublicKey.c_str()) != nullptr);
  f.emplace_back(raw, sizeof raw);
  return f;
}

void writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

}  // namespace

TEST_CASE("the key ring keeps the two endpoints' lists apart and knows minted keys", "[security]") {
  CurveKeyPair server = generateCurveKeyPair(), alice = generateCurveKeyPair(), admin = generateCurveKeyPair(),
               runner = generateCurveKeyPair(), minted = generateCurveKeyPair(), stranger = generateCurveKeyPair();
  KeyRing ring(server, {named(alice, "alice")}, {named(runner, "gpu-1")}, {named(admin, "ops")});
  TimePoint now{};
  using D = KeyRing::Domain;

  CHECK(ring.check(D::Clients, alice.publicKey, now).allowed);
  CHECK(ring.check(D::Clients, alice.publicKey, now).name == "alice");
  CHECK(ring.check(D::Clients, admin.publicKey, now).allowed);
  CHECK(ring.isAdmin(admin.publicKey));
  CHECK_FALSE(ring.isAdmin(alice.publicKey));
  // A key listed for one endpoint is refused by the other, and says so.
  auto runnerAtClients = ring.check(D::Clients, runner.publicKey, now);
  CHECK_FALSE(runnerAtClients.allowed);
  CHECK(runnerAtClients.why.find("runner key") != std::string::npos);
  CHECK_FALSE(ring.check(D::Runners, alice.publicKey, now).allowed);
  CHECK(ring.check(D::Runners, runner.publicKey, now).allowed);
  CHECK_FALSE(ring.check(D::Clients, stranger.publicKey, now).allowed);

  // Minted keys: accepted at the runner endpoint only, until forgotten.
  CHECK_FALSE(ring.check(D::Runners, minted.publicKey, now).allowed);
  ring.authorizeMinted(minted.publicKey, "pool-abc");
  CHECK(ring.check(D::Runners, minted.publicKey, now).allowed);
  CHECK_FALSE(ring.check(D::Clients, minted.publicKey, now).allowed);
  REQUIRE(ring.mintedFor(minted.publicKey));
  CHECK(*ring.mintedFor(minted.publicKey) == "pool-abc");
  CHECK_FALSE(ring.isStaticRunner(minted.publicKey));
  ring.forgetMinted("pool-abc");
  CHECK_FALSE(ring.check(D::Runners, minted.publicKey, now).allowed);
  CHECK_FALSE(ring.mintedFor(minted.publicKey));

  // The adoption window lets unlisted runner keys through the handshake, and only until it ends.
  ring.admitUnlistedRunnersUntil(now + Duration(1000));
  CHECK(ring.check(D::Runners, stranger.publicKey, now).allowed);
  CHECK_FALSE(ring.check(D::Clients, stranger.publicKey, now).allowed);
  CHECK_FALSE(ring.check(D::Runners, stranger.publicKey, now + Duration(1000)).allowed);
}

TEST_CASE("reloading re-reads the lists from disk, a bad file keeps the current ones", "[security]") {
  TempDir dir("flame-sec");
  CurveKeyPair alice = generateCurveKeyPair(), bob = generateCurveKeyPair();
  writeKeyPair(dir.path("broker"), generateCurveKeyPair());
  writeText(dir.path("clients"), alice.publicKey + " alice\n" + bob.publicKey + " bob\n");
  auto ring = KeyRing::load(SecurityConfig{dir.path("broker.key"), dir.path("clients"), "", ""});
  CHECK(ring->isClient(bob.publicKey));
  CHECK(ring->nameOf(bob.publicKey) == "bob");

  writeText(dir.path("clients"), alice.publicKey + " alice\n" + "not-a-key\n");
  CHECK_THROWS_WITH(ring->reload(), Catch::Contains("security.client_keys") && Catch::Contains("clients:2"));
  CHECK(ring->isClient(bob.publicKey));  // nothing changed

  writeText(dir.path("clients"), alice.publicKey + " alice\n");
  CHECK(ring->reload() == "1 client, 0 runner and 0 admin keys");
  CHECK_FALSE(ring->isClient(bob.publicKey));
  CHECK(ring->isClient(alice.publicKey));
}

TEST_CASE("a booted runner's key pair is derived from the secret, its broker, pool and runner id", "[security]") {
  CurveKeyPair a = deriveRunnerKeyPair("secret-1", "b", "pool", "pool-1");
  CHECK(isZ85Key(a.secretKey));
  CHECK(a.publicKey == publicKeyOf(a.secretKey));
  CHECK(deriveRunnerKeyPair("secret-1", "b", "pool", "pool-1").secretKey == a.secretKey);  // a successor knows it
  CHECK(deriveRunnerKeyPair("secret-1", "b", "pool", "pool-2").publicKey != a.publicKey);
  CHECK(deriveRunnerKeyPair("secret-1", "b", "other", "pool-1").publicKey != a.publicKey);
  CHECK(deriveRunnerKeyPair("secret-1", "c", "pool", "pool-1").publicKey != a.publicKey);
  CHECK(deriveRunnerKeyPair("secret-2", "b", "pool", "pool-1").publicKey != a.publicKey);
  // Not the boot token's bytes: the token alone does not give the key.
  CHECK(a.secretKey.find(deriveBootToken("secret-1", "b", "pool", "pool-1").substr(0, 8)) == std::string::npos);
}

TEST_CASE("the ZAP handler answers 200 with the key as User-Id only for an allowed CURVE key", "[security]") {
  zmq::context_t ctx;
  CurveKeyPair server = generateCurveKeyPair(), alice = generateCurveKeyPair(), runner = generateCurveKeyPair();
  KeyRing ring(server, {named(alice, "alice")}, {named(runner, "r")}, {});
  ManualClock clock;
  ZapHandler zap(ctx, ring, clock);

  auto ok = zap.answer(zapRequest(kClientsZapDomain, "CURVE", alice.publicKey));
  CHECK(ok.status == "200");
  CHECK(ok.userId == alice.publicKey);
  CHECK(zap.answer(zapRequest(kRunnersZapDomain, "CURVE", runner.publicKey)).status == "200");

  CHECK(zap.answer(zapRequest(kClientsZapDomain, "CURVE", runner.publicKey)).status == "400");
  CHECK(zap.answer(zapRequest(kRunnersZapDomain, "CURVE", alice.publicKey)).status == "400");
  CHECK(zap.answer(zapRequest("someone-elses-domain", "CURVE", alice.publicKey)).status == "400");
  CHECK(zap.answer(zapRequest(kClientsZapDomain, "NULL", alice.publicKey)).status == "400");
  CHECK(zap.answer(zapRequest(kClientsZapDomain, "PLAIN", alice.publicKey)).status == "400");
  Frames shortRequest = zapRequest(kClientsZapDomain, "CURVE", alice.publicKey);
  shortRequest.pop_back();
  CHECK(zap.answer(shortRequest).status == "500");
  CHECK(zap.answer(shortRequest).userId.empty());
  CHECK(zap.refused() == 7);
}

TEST_CASE("the [security] section and its flags are checked for what is missing", "[security][config]") {
  SECTION("lists without the broker's own key") {
    CHECK_THROWS_WITH(parseConfig("[security]\nclient_keys = \"/x\"\n"),
                      Catch::Contains("security.client_keys: needs secret_key_file"));
  }
  SECTION("a key without anyone allowed to connect") {
    CHECK_THROWS_WITH(parseConfig("[security]\nsecret_key_file = \"/x\"\n"), Catch::Contains("client_keys or admin_keys"));
  }
  SECTION("an unknown key") {
    CHECK_THROWS_WITH(parseConfig("[security]\nsecret_key_files = \"/x\"\n"), Catch::Contains("security.secret_key_files"));
  }
  SECTION("flags fill the section, and CURVE makes other machines' endpoints acceptable") {
    BrokerOverrides flags;
    flags.secretKeyFile = "/etc/flame/broker.key";
    flags.clientKeys = "/etc/flame/clients";
    flags.clients = "tcp://0.0.0.0:5555";
    BrokerConfig c = parseConfig("", "test", flags);
    CHECK(c.security.enabled());
    CHECK(c.security.clientKeys == "/etc/flame/clients");
    CHECK(checkPlaintextExposure(c).empty());
    c.security = {};
    CHECK_THROWS_WITH(checkPlaintextExposure(c), Catch::Contains("[security]") && Catch::Contains("--insecure"));
  }
  SECTION("the key files are read when the broker starts, with errors that name the key and file") {
    TempDir dir("flame-sec");
    writeKeyPair(dir.path("broker"), generateCurveKeyPair());
    SecurityConfig s{dir.path("broker.key"), dir.path("missing.list"), "", ""};
    CHECK_THROWS_WITH(KeyRing::load(s), Catch::Contains("security.client_keys") && Catch::Contains("missing.list"));
    ::chmod(dir.path("broker.key").c_str(), 0644);
    s.clientKeys = "";
    s.adminKeys = dir.path("broker.pub");
    CHECK_THROWS_WITH(KeyRing::load(s), Catch::Contains("security.secret_key_file") && Catch::Contains("chmod 600"));
  }
}

// ------------------------------------------------------------------------------------------
// A whole broker on real sockets.

namespace {

using namespace std::chrono_literals;

// libzmq's view of a connection's handshake, read from its socket monitor.
class HandshakeWatch {
 public:
  HandshakeWatch(zmq::context_t& ctx, zmq::socket_t& socket) : pair_(ctx, zmq::socket_type::pair) {
    static std::atomic<int> counter{0};
    std::string endpoint = "inproc://security-test-monitor-" + std::to_string(counter++);
    REQUIRE(zmq_socket_monitor(socket.handle(), endpoint.c_str(),
                               ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                   ZMQ_EVENT_DISCONNECTED) == 0);
    pair_.connect(endpoint);
  }
  // The first handshake outcome (an event above), or 0 if none came within `bound`.
  int outcome(std::chrono::milliseconds bound = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item{pair_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t event, address;
      (void)pair_.recv(event);
      (void)pair_.recv(address);
      uint16_t id = 0;
      std::memcpy(&id, event.data(), sizeof id);
      return id;
    }
    return 0;
  }

 private:
  zmq::socket_t pair_;
};

constexpr bool kClient = true, kRunner = false;

// A raw DEALER peer with an optional CURVE key pair, speaking flame's frames.
struct Peer {
  Peer(zmq::context_t& ctx, const std::string& endpoint, bool client, const CurveKeyPair* mine,
       const std::string& serverKey)
      : socket(ctx, zmq::socket_type::dealer), watch(ctx, socket), isClient(client) {
    socket.set(zmq::sockopt::linger, 0);
    if (mine) {
      socket.set(zmq::sockopt::curve_serverkey, serverKey);
      socket.set(zmq::sockopt::curve_publickey, mine->publicKey);
      socket.set(zmq::sockopt::curve_secretkey, mine->secretKey);
    }
    socket.connect(endpoint);
  }
  template <typename T>
  void send(const T& message) {
    if (isClient) socket.send(zmq::message_t(), zmq::send_flags::sndmore);
    socket.send(encode(message), zmq::send_flags::none);
  }
  // The next message, skipping heartbeats, within `bound`.
  std::optional<Message> recv(std::chrono::milliseconds bound = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 100ms);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      Frames frames;
      bool truncated = false;
      REQUIRE(recvFrames(socket, frames, 4, truncated));
      size_t header = isClient ? 1 : 0;
      REQUIRE(frames.size() > header);
      auto d = decode(frames[header]);
      REQUIRE(d.ok());
      if (std::holds_alternative<msg::Heartbeat>(*d.message)) continue;
      return std::move(*d.message);
    }
    return std::nullopt;
  }
  template <typename T>
  T expect(std::chrono::milliseconds bound = 5000ms) {
    auto m = recv(bound);
    REQUIRE(m.has_value());
    if (auto* e = std::get_if<msg::Error>(&*m); e && !std::is_same_v<T, msg::Error>)
      FAIL("got error " << errorCodeName(e->code) << ": " << e->message);
    REQUIRE(std::holds_alternative<T>(*m));
    return std::get<T>(*m);
  }
  zmq::socket_t socket;
  HandshakeWatch watch;
  bool isClient;
};

// Keys on disk, a broker with [security] on its own thread, and peers.
struct SecureBroker {
  TempDir dir{"flame-security"};
  CurveKeyPair server = generateCurveKeyPair(), alice = generateCurveKeyPair(), bob = generateCurveKeyPair(),
               admin = generateCurveKeyPair(), runner = generateCurveKeyPair(), stranger = generateCurveKeyPair();
  FakeBackend* backend = nullptr;
  zmq::context_t ctx;
  std::unique_ptr<Broker> broker;
  std::thread loop;
  bool tokenSecret_ = false;

  // `tokenSecret`: boot tokens and runner keys derive from a secret file, so a successor broker
  // (restart()) knows the runners this one booted.
  explicit SecureBroker(bool tokenSecret = false) : tokenSecret_(tokenSecret) {
    writeKeyPair(dir.path("broker"), server);
    writeClients(true);
    writeText(dir.path("admins.list"), admin.publicKey + " ops\n");
    writeRunners(true);
    start();
  }
  ~SecureBroker() { stop(); }
  void start() {
    std::string secret = tokenSecret_ ? "token_secret_file = \"" + dir.path("token.secret") + "\"\nbroker_id = \"sec\"\n" : "";
    BrokerConfig config = parseConfig(R"([broker]
clients = "tcp://127.0.0.1:*"
runners = "tcp://127.0.0.1:*"
heartbeat_interval = "1s"
)" + secret + R"([security]
secret_key_file = ")" + dir.path("broker.key") + R"("
client_keys = ")" + dir.path("clients.list") + R"("
admin_keys = ")" + dir.path("admins.list") + R"("
runner_keys = ")" + dir.path("runners.list") + R"("
[pools.booted]
max = 2
boot_timeout = "60s"
[pools.booted.process]
command = ["unused: the test's backend is a fake"]
)",
                                      "security-test");
    broker = std::make_unique<Broker>(std::move(config), Broker::defaultClock(), [this](const PoolConfig&) {
      auto b = std::make_unique<FakeBackend>();
      backend = b.get();
      return b;
    });
    loop = std::thread([this] { broker->run(); });
  }
  void stop() {
    if (!loop.joinable()) return;
    broker->stopNow();
    loop.join();
  }
  // A successor on new endpoints, with the same keys, lists and (with tokenSecret) secret.
  void restart() {
    stop();
    broker.reset();
    start();
  }
  void writeRunners(bool withRunner) {
    writeText(dir.path("runners.list"), "# static runners\n" + (withRunner ? runner.publicKey + " gpu-1\n" : ""));
  }
  void writeClients(bool withBob) {
    writeText(dir.path("clients.list"), alice.publicKey + " alice\n" + (withBob ? bob.publicKey + " bob\n" : ""));
  }
  std::unique_ptr<Peer> client(const CurveKeyPair* keys) {
    return std::make_unique<Peer>(ctx, broker->clientsEndpoint(), kClient, keys, server.publicKey);
  }
  std::unique_ptr<Peer> runnerPeer(const CurveKeyPair* keys) {
    return std::make_unique<Peer>(ctx, broker->runnersEndpoint(), kRunner, keys, server.publicKey);
  }
};

msg::Ready ready(const std::string& id, const std::string& pool, const std::string& token = "") {
  msg::Ready r;
  r.runnerId = id;
  r.pool = pool;
  r.slots = 1;
  r.functions = {"sleep"};
  r.token = token;
  return r;
}

msg::Submit submit(uint64_t requestId, const std::string& pool, Mode mode) {
  msg::Submit s;
  s.requestId = requestId;
  s.mode = mode;
  s.pool = pool;
  s.function = "sleep";
  s.timeoutMs = 60'000;
  return s;
}

// The spec of the n-th boot (1-based), once the fake backend has seen it.
BootSpec bootNumber(FakeBackend& backend, size_t n) {
  REQUIRE(flame::test::waitFor([&] { return backend.bootCount() >= n; }));
  return backend.boots()[n - 1];
}

}  // namespace

TEST_CASE("a listed client key is served, an unknown key, a runner key and a plaintext client are refused",
          "[security][broker]") {
  SecureBroker b;
  auto alice = b.client(&b.alice);
  CHECK(alice->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  alice->send(msg::StatusRequest{1});
  CHECK(alice->expect<msg::StatusReply>().requestId == 1);

  auto stranger = b.client(&b.stranger);
  CHECK(stranger->watch.outcome() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
  auto runnerKey = b.client(&b.runner);
  CHECK(runnerKey->watch.outcome() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
  // A plaintext client never completes a handshake: the server drops the connection.
  auto plaintext = b.client(nullptr);
  int seen = plaintext->watch.outcome();
  CHECK(seen != ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  CHECK(seen != 0);
  // And a runner with a client key at the runner endpoint.
  auto clientAsRunner = b.runnerPeer(&b.alice);
  CHECK(clientAsRunner->watch.outcome() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
}

TEST_CASE("a child is its placer's key's: another client cannot stop it, an admin can, setPool needs an admin",
          "[security][broker]") {
  SecureBroker b;
  auto runner = b.runnerPeer(&b.runner);
  runner->send(ready("static-1", "static"));
  runner->expect<msg::Welcome>();

  auto alice = b.client(&b.alice);
  alice->send(submit(1, "static", Mode::Place));
  auto job = runner->expect<msg::Job>();
  auto placed = alice->expect<msg::Placed>();
  CHECK(placed.childId == job.jobId);

  auto bob = b.client(&b.bob);
  bob->send(msg::StopChild{placed.childId});
  auto refused = bob->expect<msg::Error>();
  CHECK(refused.code == ErrorCode::Unauthorized);
  CHECK(refused.message.find("another client's key") != std::string::npos);
  bob->send(msg::SetPool{2, "booted", 0, 1, -1});
  CHECK(bob->expect<msg::Error>().code == ErrorCode::Unauthorized);

  auto admin = b.client(&b.admin);
  admin->send(msg::StopChild{placed.childId});
  CHECK(runner->expect<msg::CancelJob>().jobId == job.jobId);  // only now does the runner hear of it
  admin->send(msg::SetPool{3, "booted", 0, 1, -1});
  CHECK(admin->expect<msg::StatusReply>().requestId == 3);
}

TEST_CASE("a static pool takes runners with a runner key only, a minted key cannot serve it", "[security][broker]") {
  SecureBroker b;
  // Ask for a booted runner to get a minted key.
  auto alice = b.client(&b.alice);
  alice->send(submit(1, "booted", Mode::Call));
  BootSpec spec = bootNumber(*b.backend, 1);
  CurveKeyPair minted{publicKeyOf(spec.env.at(kEnvSecretKey)), spec.env.at(kEnvSecretKey)};
  auto impostor = b.runnerPeer(&minted);
  CHECK(impostor->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  impostor->send(ready("static-2", "static"));
  CHECK(impostor->expect<msg::Error>().code == ErrorCode::Unauthorized);
}

TEST_CASE("a booted runner joins with the key minted for its id, a rogue with its token or another's key does not",
          "[security][broker]") {
  SecureBroker b;
  auto alice = b.client(&b.alice);
  alice->send(submit(1, "booted", Mode::Call));
  alice->send(submit(2, "booted", Mode::Call));
  BootSpec first = bootNumber(*b.backend, 1), second = bootNumber(*b.backend, 2);
  CHECK(first.env.at(kEnvServerKey) == b.server.publicKey);
  CHECK(first.env.at(kEnvSecretKey) != second.env.at(kEnvSecretKey));
  auto keysOf = [](const BootSpec& s) {
    return CurveKeyPair{publicKeyOf(s.env.at(kEnvSecretKey)), s.env.at(kEnvSecretKey)};
  };
  CurveKeyPair firstKeys = keysOf(first), secondKeys = keysOf(second);
  const std::string& firstToken = first.env.at(kEnvBootToken);

  // A stranger who read the first runner's token: its key is refused at the handshake.
  auto thief = b.runnerPeer(&b.stranger);
  CHECK(thief->watch.outcome() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
  // The second runner's key with the first runner's id and token: refused at ready.
  auto swapped = b.runnerPeer(&secondKeys);
  CHECK(swapped->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  swapped->send(ready(first.runnerId, "booted", firstToken));
  CHECK(swapped->expect<msg::Error>().code == ErrorCode::Unauthorized);
  // A static runner key with the first runner's id and token: refused too.
  auto staticKey = b.runnerPeer(&b.runner);
  staticKey->send(ready(first.runnerId, "booted", firstToken));
  CHECK(staticKey->expect<msg::Error>().code == ErrorCode::Unauthorized);

  // The real one joins and gets the work.
  auto real = b.runnerPeer(&firstKeys);
  CHECK(real->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  real->send(ready(first.runnerId, "booted", firstToken));
  real->expect<msg::Welcome>();
  CHECK(real->expect<msg::Job>().function == "sleep");
}

TEST_CASE("a key removed from the lists and reloaded is refused: new handshakes and its open connection",
          "[security][broker]") {
  SecureBroker b;
  auto alice = b.client(&b.alice);
  auto bob = b.client(&b.bob);
  bob->send(msg::StatusRequest{1});
  bob->expect<msg::StatusReply>();
  auto runner = b.runnerPeer(&b.runner);
  runner->send(ready("static-1", "static"));
  runner->expect<msg::Welcome>();

  b.writeClients(false);
  b.writeRunners(false);
  b.broker->reloadKeys();
  // The reload happens on the loop's next turn: ask until the answer changes (bounded).
  std::optional<msg::Error> refused;
  for (uint64_t id = 2; id < 200 && !refused; ++id) {
    bob->send(msg::StatusRequest{id});
    auto m = bob->recv();
    REQUIRE(m.has_value());
    if (auto* e = std::get_if<msg::Error>(&*m)) refused = *e;
  }
  REQUIRE(refused.has_value());
  CHECK(refused->code == ErrorCode::Unauthorized);
  CHECK(refused->message.find("revoked") != std::string::npos);
  auto bobAgain = b.client(&b.bob);
  CHECK(bobAgain->watch.outcome() == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
  // Alice, still listed, is served on old and new connections.
  alice->send(msg::StatusRequest{1});
  alice->expect<msg::StatusReply>();
  auto aliceAgain = b.client(&b.alice);
  CHECK(aliceAgain->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  // The static runner whose key went is drained (its running work may finish).
  CHECK(runner->expect<msg::Drain>().graceMs > 0);
}

TEST_CASE("after a restart with the same token secret, a booted runner comes back with its derived key",
          "[security][broker]") {
  SecureBroker b(true);
  auto alice = b.client(&b.alice);
  alice->send(submit(1, "booted", Mode::Call));
  BootSpec spec = bootNumber(*b.backend, 1);
  CurveKeyPair minted{publicKeyOf(spec.env.at(kEnvSecretKey)), spec.env.at(kEnvSecretKey)};
  const std::string& token = spec.env.at(kEnvBootToken);

  b.restart();  // the successor never minted this key
  // During the adoption window the handshake lets unlisted runner keys through; only the key
  // derived for the runner id named in ready is admitted.
  auto stranger = b.runnerPeer(&b.stranger);
  CHECK(stranger->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  stranger->send(ready(spec.runnerId, "booted", token));
  CHECK(stranger->expect<msg::Error>().code == ErrorCode::Unauthorized);
  auto back = b.runnerPeer(&minted);
  CHECK(back->watch.outcome() == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  back->send(ready(spec.runnerId, "booted", token));
  back->expect<msg::Welcome>();
}
