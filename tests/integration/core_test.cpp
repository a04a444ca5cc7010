// End-to-end tests with real processes on loopback: flame-broker, flame-worker and the flame
// CLI, plus raw ZeroMQ sockets for what a client in another language would send.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <random>
#include <thread>

#include "client/client.h"
#include "common/codec.h"
#include "common/transport.h"
#include "tests/integration/process_harness.h"

using namespace flame;
using namespace flame::test;
using Clock_ = std::chrono::steady_clock;

namespace {

// Fast heartbeats so liveness windows are short: 200 ms x 3.
const std::vector<std::string> kFastBroker{"--heartbeat-interval", "200ms", "--liveness", "3"};

std::unique_ptr<Process> startWorker(const BrokerProcess& broker, const std::string& pool, int concurrency = 1,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{binary("flame-worker"), "--broker", broker.runners, "--pool", pool,
                                "--concurrency", std::to_string(concurrency), "--enable-test-functions"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Process::start(argv);
}

// Waits for the broker to log that a runner of `pool` is ready.
void waitRunnerReady(BrokerProcess& broker, const std::string& pool, int count = 1) {
  for (int i = 0; i < count; ++i) {
    // Each ready line is distinct (its runner id); wait for the count-th one.
    bool ok = eventually(
        [&] {
          const auto& out = broker.process->output();
          size_t n = 0, pos = 0;
          std::string needle = "pool=" + pool + " runner=";
          while ((pos = out.find(needle, pos)) != std::string::npos) {
            auto eol = out.find('\n', pos);
            if (out.substr(pos, eol - pos).find(" ready:") != std::string::npos) ++n;
            pos = eol;
          }
          return n >= static_cast<size_t>(i + 1);
        },
        Millis(10000));
    REQUIRE(ok);
  }
}

struct CliResult {
  int exitCode = -1;
  std::string output;
};

CliResult runCli(const std::vector<std::string>& args, Millis bound = Millis(15000)) {
  std::vector<std::string> argv{binary("flame")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Process::start(argv);
  auto status = p->waitExit(bound);
  CliResult r;
  r.output = p->output();
  if (status && WIFEXITED(*status)) r.exitCode = WEXITSTATUS(*status);
  return r;
}

// Waits until the (only) pool has `n` slots in use, i.e. the job is running on a runner.
bool waitSlotsUsed(Client& client, uint32_t n) {
  return eventually(
      [&] {
        auto st = client.status();
        return st && !st.value().pools.empty() && st.value().pools[0].slotsUsed == n;
      },
      Millis(5000));
}

ClientOptions clientFor(const BrokerProcess& b) {
  ClientOptions o;
  o.broker = b.clients;
  o.heartbeatInterval = Duration(200);
  return o;
}

}  // namespace

TEST_CASE("echo round trip through the CLI", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto worker = startWorker(broker, "demo");
  waitRunnerReady(broker, "demo");
  auto r = runCli({"call", "--broker", broker.clients, "demo", "echo", "hello flame"});
  CHECK(r.exitCode == 0);
  CHECK(r.output == "hello flame");

  auto bad = runCli({"call", "--broker", broker.clients, "demo", "fail", "it broke"});
  CHECK(bad.exitCode == 1);
  CHECK(bad.output.find("handler_error") != std::string::npos);
  CHECK(bad.output.find("it broke") != std::string::npos);

  auto unknown = runCli({"call", "--broker", broker.clients, "nosuchpool", "echo", "x"});
  CHECK(unknown.exitCode == 1);
  CHECK(unknown.output.find("unknown_pool") != std::string::npos);

  auto nofn = runCli({"call", "--broker", broker.clients, "demo", "nosuchfn", "x"});
  CHECK(nofn.exitCode == 1);
  CHECK(nofn.output.find("unknown_function") != std::string::npos);

  auto status = runCli({"status", "--json", "--broker", broker.clients});
  CHECK(status.exitCode == 0);
  CHECK(status.output.find("\"demo\"") != std::string::npos);
}

TEST_CASE("a call that times out returns timeout within 1 s of its deadline, and the slot is free again",
          "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto worker = startWorker(broker, "t", 1);
  waitRunnerReady(broker, "t");
  Client client(clientFor(broker));
  CallOptions o;
  o.timeout = Duration(500);
  auto start = Clock_::now();
  auto r = client.call("t", "sleep", "10000", o);
  auto elapsed = std::chrono::duration_cast<Millis>(Clock_::now() - start);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::Timeout);
  CHECK(elapsed >= Millis(450));
  CHECK(elapsed < Millis(1500));
  // The only slot comes back (the sleep handler honours cancellation): the next call runs.
  CallOptions quick;
  quick.timeout = Duration(5000);
  auto again = client.call("t", "echo", "again", quick);
  REQUIRE(again);
  CHECK(again.value() == "again");
}

TEST_CASE("kill -9 of a runner mid-call gets runner_lost to the caller within the liveness window",
          "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto worker = startWorker(broker, "k", 1);
  waitRunnerReady(broker, "k");
  Client client(clientFor(broker));
  CallOptions o;
  o.timeout = Duration(60000);
  auto pending = client.callAsync("k", "sleep", "60000", o);
  // Wait until the job is running on the runner.
  REQUIRE(waitSlotsUsed(client, 1));
  auto killedAt = Clock_::now();
  worker->signal(SIGKILL);
  REQUIRE(pending.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  auto elapsed = std::chrono::duration_cast<Millis>(Clock_::now() - killedAt);
  auto r = pending.get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::RunnerLost);
  CHECK(elapsed < Millis(600 + 400));  // interval x liveness, plus one sweep of slack
}

TEST_CASE("a runner whose broker is killed exits within --failsafe-after", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto worker = startWorker(broker, "f", 1, {"--failsafe-after", "1500ms"});
  waitRunnerReady(broker, "f");
  auto killedAt = Clock_::now();
  broker.process->signal(SIGKILL);
  auto status = worker->waitExit(Millis(5000));
  auto elapsed = std::chrono::duration_cast<Millis>(Clock_::now() - killedAt);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 3);  // failsafe
  CHECK(elapsed < Millis(1500 + 1500));
  CHECK(worker->output().find("failsafe") != std::string::npos);
}

TEST_CASE("a placed child holds a slot until stopped", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto worker = startWorker(broker, "pl", 1);
  waitRunnerReady(broker, "pl");
  auto placed = runCli({"place", "--broker", broker.clients, "pl", "sleep", "600000"});
  REQUIRE(placed.exitCode == 0);
  auto handle = placed.output.substr(0, placed.output.find_first_of("\r\n"));
  CHECK(handle.find('@') != std::string::npos);

  Client client(clientFor(broker));
  CallOptions o;
  o.timeout = Duration(500);
  auto blocked = client.call("pl", "echo", "x", o);
  REQUIRE_FALSE(blocked);
  CHECK(blocked.error().code == ErrorCode::Timeout);  // the child holds the only slot

  auto stopped = runCli({"stop", "--broker", broker.clients, handle});
  CHECK(stopped.exitCode == 0);
  o.timeout = Duration(5000);
  auto freed = client.call("pl", "echo", "free", o);
  REQUIRE(freed);
  CHECK(freed.value() == "free");
  auto again = runCli({"stop", "--broker", broker.clients, handle});
  CHECK(again.exitCode == 1);
  CHECK(again.output.find("not_found") != std::string::npos);
}

TEST_CASE("garbage on both ports leaves the broker serving, with clear errors where a reply is possible",
          "[integration]") {
  auto broker = BrokerProcess::start({"--max-payload", "4096"});
  auto worker = startWorker(broker, "g", 2);
  waitRunnerReady(broker, "g");
  zmq::context_t ctx;
  std::mt19937_64 rng(42);
  auto randomBytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  auto recvReply = [&](zmq::socket_t& s) -> std::optional<msg::Error> {
    Reactor reactor;
    Frames frames;
    bool truncated = false, got = false;
    reactor.add(s, [&] { got = recvFrames(s, frames, 8, truncated); });
    for (int i = 0; i < 50 && !got; ++i) reactor.pollOnce(Duration(100));
    if (!got || frames.size() < 2) return std::nullopt;
    auto d = decode(frames[1]);
    if (!d.ok() || !std::holds_alternative<msg::Error>(*d.message)) return std::nullopt;
    return std::get<msg::Error>(*d.message);
  };

  // A client DEALER sending junk: each message gets an error reply.
  auto dealer = connectDealer(ctx, broker.clients);
  for (int i = 0; i < 20; ++i) {
    dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
    auto junk = randomBytes(8 * (1 + rng() % 20));
    dealer.send(zmq::buffer(junk));
    auto e = recvReply(dealer);
    REQUIRE(e.has_value());
    CHECK(e->code == ErrorCode::BadRequest);
  }
  // Missing delimiter, too many frames, odd sizes.
  dealer.send(zmq::str_buffer("no delimiter"));
  CHECK(recvReply(dealer).has_value());
  dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
  for (int i = 0; i < 5; ++i) dealer.send(zmq::str_buffer("x"), zmq::send_flags::sndmore);
  dealer.send(zmq::str_buffer("x"));
  CHECK(recvReply(dealer)->message.find("too many frames") != std::string::npos);
  // Wrong protocol version.
  msg::Submit s;
  s.requestId = 99;
  s.pool = "g";
  s.function = "echo";
  dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer.send(encodeWithVersion(Message(s), 7), zmq::send_flags::none);
  auto v = recvReply(dealer);
  REQUIRE(v.has_value());
  CHECK(v->code == ErrorCode::UnsupportedVersion);
  CHECK(v->requestId == 99);
  // Oversized payload.
  dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer.send(encode(s), zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(std::string(5000, 'x')));
  auto big = recvReply(dealer);
  REQUIRE(big.has_value());
  CHECK(big->code == ErrorCode::PayloadTooLarge);
  // Empty pool name.
  s.pool = "";
  dealer.send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer.send(encode(s), zmq::send_flags::none);
  CHECK(recvReply(dealer)->code == ErrorCode::BadRequest);

  // Junk on the runner port, including a bogus ready.
  auto fakeRunner = connectDealer(ctx, broker.runners);
  for (int i = 0; i < 20; ++i) fakeRunner.send(zmq::buffer(randomBytes(1 + rng() % 200)));
  fakeRunner.send(encode(msg::Ready{"", "", 0, {}, "", 0, 0, "", {}}), zmq::send_flags::none);
  fakeRunner.send(encode(msg::JobDone{12345, ErrorCode::None, ""}), zmq::send_flags::none);

  // Everyone else is still served.
  Client client(clientFor(broker));
  CallOptions o;
  o.timeout = Duration(5000);
  auto r = client.call("g", "echo", "still here", o);
  REQUIRE(r);
  CHECK(r.value() == "still here");
  CHECK(broker.process->running());
}

TEST_CASE("a plain REQ socket can make a synchronous call", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto worker = startWorker(broker, "req", 1);
  waitRunnerReady(broker, "req");
  zmq::context_t ctx;
  zmq::socket_t req(ctx, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, 5000);
  req.connect(broker.clients);
  msg::Submit s;
  s.requestId = 1;
  s.pool = "req";
  s.function = "echo";
  s.timeoutMs = 5000;
  req.send(encode(s), zmq::send_flags::sndmore);
  req.send(zmq::str_buffer("via REQ"));
  zmq::message_t header, payload;
  REQUIRE(req.recv(header));
  REQUIRE(header.more());
  REQUIRE(req.recv(payload));
  auto d = decode(header);
  REQUIRE(d.ok());
  REQUIRE(std::holds_alternative<msg::Result>(*d.message));
  CHECK(std::get<msg::Result>(*d.message).requestId == 1);
  CHECK(payload.to_string() == "via REQ");
}

TEST_CASE("many calls in flight from one client all complete", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto w1 = startWorker(broker, "m", 4);
  auto w2 = startWorker(broker, "m", 4);
  waitRunnerReady(broker, "m", 2);
  Client client(clientFor(broker));
  std::vector<std::future<CallResult>> futures;
  CallOptions o;
  o.timeout = Duration(20000);
  for (int i = 0; i < 500; ++i) futures.push_back(client.callAsync("m", "echo", "n" + std::to_string(i), o));
  int ok = 0;
  for (int i = 0; i < 500; ++i) {
    REQUIRE(futures[i].wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    auto r = futures[i].get();
    ok += r && r.value() == "n" + std::to_string(i);
  }
  CHECK(ok == 500);
}

TEST_CASE("an idempotent call survives the loss of its runner", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto w1 = startWorker(broker, "i", 1);
  waitRunnerReady(broker, "i");
  Client client(clientFor(broker));
  CallOptions o;
  o.timeout = Duration(20000);
  o.idempotent = true;
  o.retries = 1;
  auto pending = client.callAsync("i", "sleep", "1500", o);
  REQUIRE(waitSlotsUsed(client, 1));
  auto w2 = startWorker(broker, "i", 1);
  waitRunnerReady(broker, "i", 2);
  w1->signal(SIGKILL);
  REQUIRE(pending.wait_for(std::chrono::seconds(15)) == std::future_status::ready);
  auto r = pending.get();
  REQUIRE(r);
  CHECK(r.value().find("slept") != std::string::npos);
}

TEST_CASE("the embedded-app example runs its own runners and calls them with typed payloads", "[integration]") {
  auto broker = BrokerProcess::start(kFastBroker);
  auto app = Process::start({binary("embedded-app"), "--clients", broker.clients, "--runners", broker.runners});
  auto status = app->waitExit(Millis(20000));
  REQUIRE(status.has_value());
  INFO(app->output());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(app->output().find("9 words, 3 lines") != std::string::npos);
  CHECK(app->output().find("1 words, 1 lines") != std::string::npos);
}
