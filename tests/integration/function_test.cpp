// flame::Function<In, Out> on both sides of the wire (issue 12, item 8), serveIfBooted, and
// JobContext::slot() (item 10): a broker process on loopback, runners in-process or the
// embedded-app example booted as a process, a flame::Client calling through the broker.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/client.h"
#include "examples/wordcount_api.h"
#include "integration/process_harness.h"
#include "worker/runner.h"
#include "worker/serve.h"

using namespace flame;
using namespace flame::test;

namespace {

const std::vector<std::string> kFastBroker{"--heartbeat-interval", "200ms", "--liveness", "3"};

// Waits for the broker to log that `count` runners of `pool` are ready.
bool runnersReady(BrokerProcess& broker, const std::string& pool, size_t count = 1) {
  return eventually(
      [&] {
        const auto& out = broker.process->output();
        size_t n = 0, pos = 0;
        std::string needle = "pool=" + pool + " runner=";
        while ((pos = out.find(needle, pos)) != std::string::npos) {
          auto eol = out.find('\n', pos);
          if (out.substr(pos, eol - pos).find(" ready:") != std::string::npos) ++n;
          pos = eol;
        }
        return n >= count;
      },
      Millis(10000));
}

ClientOptions clientFor(const BrokerProcess& b) {
  ClientOptions o;
  o.broker = b.clients;
  o.heartbeatInterval = Duration(200);
  return o;
}

CallOptions tenSeconds() {
  CallOptions o;
  o.timeout = Duration(10000);
  return o;
}

// A runner of `pool` on a thread of the test, drained and joined when it goes away.
class InProcessRunner {
 public:
  InProcessRunner(const BrokerProcess& broker, const std::string& pool, uint32_t concurrency) {
    RunnerOptions o;
    o.broker = broker.runners;
    o.pool = pool;
    o.concurrency = concurrency;
    o.heartbeatInterval = Duration(200);
    o.failsafeAfter = Duration(5000);
    runner_ = std::make_unique<Runner>(o);
  }
  ~InProcessRunner() {
    runner_->requestStop();
    if (thread_.joinable()) thread_.join();
  }
  Runner& operator*() { return *runner_; }
  Runner* operator->() { return runner_.get(); }
  void start() {
    thread_ = std::thread([r = runner_.get()] { r->run(); });
  }

 private:
  std::unique_ptr<Runner> runner_;
  std::thread thread_;
};

void serveWordcount(Runner& runner) {
  runner.serve(wordcount::countWords, [](wordcount::Document::Reader doc, wordcount::Counts::Builder out,
                                         JobContext& job) {
    out.setWords(static_cast<uint32_t>(doc.getText().size()));
    out.setLines(job.slot());
    out.setRunner("in-process");
  });
  runner.serve(wordcount::shout, [](const std::string& s) { return s + "!"; });
  runner.serve(wordcount::square, [](uint64_t n) -> Reply<uint64_t> {
    if (n == 13) return fail("13 is unlucky");
    return n * n;
  });
}

}  // namespace

TEST_CASE("Function<In, Out> calls a runner's typed functions over the broker", "[integration][function]") {
  auto broker = BrokerProcess::start(kFastBroker);
  InProcessRunner runner(broker, "fn", 2);
  serveWordcount(*runner);
  runner.start();
  REQUIRE(runnersReady(broker, "fn"));
  Client client(clientFor(broker));

  // A Cap'n Proto struct in and out (a Builder converts to the Reader the call takes).
  capnp::MallocMessageBuilder doc;
  doc.initRoot<wordcount::Document>().setText("hello");
  auto counts = client.call("fn", wordcount::countWords, doc.getRoot<wordcount::Document>(), tenSeconds());
  REQUIRE(counts);
  CHECK(counts->get().getWords() == 5);
  CHECK(std::string(counts->get().getRunner().cStr()) == "in-process");

  // Bytes, asynchronously; a trivially copyable value.
  auto loud = client.callAsync("fn", wordcount::shout, "hi", tenSeconds());
  auto squared = client.call("fn", wordcount::square, 12, tenSeconds());
  REQUIRE(loud.wait_for(std::chrono::seconds(15)) == std::future_status::ready);
  auto loudResult = loud.get();
  REQUIRE(loudResult);
  CHECK(*loudResult == "hi!");
  REQUIRE(squared);
  CHECK(*squared == 144u);

  // A failure the function returns is a handlerError with its text.
  auto unlucky = client.call("fn", wordcount::square, 13, tenSeconds());
  REQUIRE_FALSE(unlucky);
  CHECK(unlucky.error().code == ErrorCode::HandlerError);
  CHECK(unlucky.error().message == "13 is unlucky");

  // Compile-time checks (uncomment to see them):
  //   client.call("fn", wordcount::square, std::string("12"));
  //     -> no matching call: the argument must be what Function<uint64_t, uint64_t> takes.
  //   flame::Function<std::vector<int>, int> bad{"bad"};
  //     -> "flame::Function<In, Out>: In must be a Cap'n Proto struct, std::string or a
  //        trivially copyable type"
  //   runner.serve(wordcount::square, [](std::string s) { return s; });
  //     -> "Runner::serve(Function<In, Out>, impl): impl must be callable as impl(View) or
  //        impl(View, JobContext&), ..."
}

TEST_CASE("a payload that does not decode fails with a clear handlerError", "[integration][function]") {
  auto broker = BrokerProcess::start(kFastBroker);
  InProcessRunner runner(broker, "fn", 1);
  serveWordcount(*runner);
  runner.start();
  REQUIRE(runnersReady(broker, "fn"));
  Client client(clientFor(broker));

  // Untyped calls with bytes that are not what the function declares: the impl never runs.
  auto notCapnp = client.call("fn", "count_words", "abc", tenSeconds());
  REQUIRE_FALSE(notCapnp);
  CHECK(notCapnp.error().code == ErrorCode::HandlerError);
  CHECK(notCapnp.error().message ==
        "bad payload for count_words: 3 bytes is not a whole number of 8-byte words");

  auto garbage = client.call("fn", "count_words", std::string(64, '\x7f'), tenSeconds());
  REQUIRE_FALSE(garbage);
  CHECK(garbage.error().code == ErrorCode::HandlerError);
  CHECK_THAT(garbage.error().message, Catch::StartsWith("bad payload for count_words: "));

  auto wrongSize = client.call("fn", "square", "abc", tenSeconds());
  REQUIRE_FALSE(wrongSize);
  CHECK(wrongSize.error().message == "bad payload for square: expected 8 bytes, got 3");
}

TEST_CASE("a result that does not decode fails the typed call with a clear error", "[integration][function]") {
  auto broker = BrokerProcess::start(kFastBroker);
  InProcessRunner runner(broker, "fn", 1);
  // Serves the names with raw handlers that answer the wrong bytes.
  runner->handle("square", [](JobContext&) { return std::string("abc"); });
  runner->handle("count_words", [](JobContext&) { return std::string(16, '\xff'); });
  runner.start();
  REQUIRE(runnersReady(broker, "fn"));
  Client client(clientFor(broker));

  auto squared = client.call("fn", wordcount::square, 2, tenSeconds());
  REQUIRE_FALSE(squared);
  CHECK(squared.error().code == ErrorCode::BadRequest);
  CHECK(squared.error().message == "bad result of square: expected 8 bytes, got 3");

  capnp::MallocMessageBuilder doc;
  doc.initRoot<wordcount::Document>().setText("x");
  auto counts = client.callAsync("fn", wordcount::countWords, doc.getRoot<wordcount::Document>(), tenSeconds());
  REQUIRE(counts.wait_for(std::chrono::seconds(15)) == std::future_status::ready);
  auto r = counts.get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::BadRequest);
  CHECK_THAT(r.error().message, Catch::StartsWith("bad result of count_words: "));
}

TEST_CASE("serveIfBooted: the example app is its own runner when booted", "[integration][function]") {
  auto broker = BrokerProcess::start(kFastBroker);
  // The environment a backend gives a runner it boots (no boot token: the broker accepts a
  // runner it did not boot into a static pool).
  auto app = Process::start({binary("embedded-app")}, {{"FLAME_BROKER", broker.runners}, {"FLAME_POOL", "booted"}});
  REQUIRE(runnersReady(broker, "booted"));
  Client client(clientFor(broker));

  capnp::MallocMessageBuilder doc;
  doc.initRoot<wordcount::Document>().setText("one two\nthree\n");
  auto counts = client.call("booted", wordcount::countWords, doc.getRoot<wordcount::Document>(), tenSeconds());
  INFO(app->output());
  REQUIRE(counts);
  CHECK(counts->get().getWords() == 3);
  CHECK(counts->get().getLines() == 2);
  CHECK(std::string(counts->get().getRunner().cStr()).rfind("booted-", 0) == 0);
  auto squared = client.call("booted", wordcount::square, 7, tenSeconds());
  REQUIRE(squared);
  CHECK(*squared == 49u);

  // SIGTERM drains it, and the process exits with the runner's code (0: drained), without
  // ever running the application part.
  app->signal(SIGTERM);
  auto status = app->waitExit(Millis(15000));
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(app->output().find(" lines (runner ") == std::string::npos);  // what the app part prints
}

TEST_CASE("serveIfBooted returns at once when not booted", "[integration][function]") {
  // ctest's environment has neither variable; make sure of it for a developer's shell too.
  ::unsetenv("FLAME_BOOT_TOKEN");
  ::unsetenv("FLAME_BROKER");
  CHECK_FALSE(bootedAsRunner());
  bool registered = false;
  CHECK_FALSE(runIfBooted([&](Runner&) { registered = true; }).has_value());
  serveIfBooted([&](Runner&) { registered = true; });  // returns: not booted
  CHECK_FALSE(registered);
}

TEST_CASE("JobContext::slot: N running jobs hold slots 0..N-1 once each and a freed slot is reused",
          "[integration][slots]") {
  constexpr uint32_t kSlots = 3;
  // Declared before the runner, so they outlive its handler threads.
  std::mutex mutex;
  std::condition_variable_any cv;
  std::map<std::string, uint32_t> slotOf;  // job name -> slot, while it runs or after
  std::set<std::string> released;

  auto broker = BrokerProcess::start(kFastBroker);
  InProcessRunner runner(broker, "slots", kSlots);
  runner->handle("hold", [&](JobContext& job) -> HandlerResult {
    std::string name(job.payload());
    std::unique_lock lock(mutex);
    slotOf[name] = job.slot();
    cv.notify_all();
    // Until the test releases this job (a failure bound, not a timer: 20 s).
    bool go = cv.wait_for(lock, job.stopToken(), std::chrono::seconds(20), [&] { return released.count(name) > 0; });
    if (!go) return fail("never released");
    return std::to_string(job.slot());
  });
  runner.start();
  REQUIRE(runnersReady(broker, "slots"));
  Client client(clientFor(broker));

  auto waitStarted = [&](size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return slotOf.size() >= n; });
  };
  auto release = [&](const std::string& name) {
    std::lock_guard lock(mutex);
    released.insert(name);
    cv.notify_all();
  };

  std::map<std::string, std::future<CallResult>> calls;
  for (std::string name : {"a", "b", "c"}) calls[name] = client.callAsync("slots", "hold", name, tenSeconds());
  REQUIRE(waitStarted(kSlots));
  std::string onSlotOne;
  {
    std::lock_guard lock(mutex);
    std::multiset<uint32_t> seen;
    for (auto& [name, slot] : slotOf) {
      seen.insert(slot);
      if (slot == 1) onSlotOne = name;
    }
    CHECK(seen == std::multiset<uint32_t>{0, 1, 2});
  }
  REQUIRE_FALSE(onSlotOne.empty());

  // The job on slot 1 ends; the next job gets slot 1, the only free one.
  release(onSlotOne);
  REQUIRE(calls[onSlotOne].wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  auto done = calls[onSlotOne].get();
  REQUIRE(done);
  CHECK(*done == "1");
  calls["d"] = client.callAsync("slots", "hold", "d", tenSeconds());
  REQUIRE(waitStarted(kSlots + 1));
  {
    std::lock_guard lock(mutex);
    CHECK(slotOf["d"] == 1);
  }
  for (std::string name : {"a", "b", "c", "d"}) release(name);
  for (auto& [name, call] : calls) {
    if (name == onSlotOne) continue;
    REQUIRE(call.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(call.get());
  }
}
