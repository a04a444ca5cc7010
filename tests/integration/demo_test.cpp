// README's first command, flame-demo (scripts/demo.sh), as CI runs it: a real broker with the
// local process backend, a burst, the pool growing from zero and back, and the events of both
// directions printed as they happen (issue 11, item 3: what `flame events` shows during the demo).
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include "tests/integration/process_harness.h"

using namespace flame::test;

TEST_CASE("demo: a burst grows the pool from zero and it shrinks back, events and all", "[integration][demo]") {
  auto demo = Process::start({binary("flame-demo"), "--jobs", "8", "--sleep-ms", "200"});
  auto status = demo->waitExit(Millis(90'000));
  const std::string& out = demo->output();
  INFO(out);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(out.find("all 8 calls answered") != std::string::npos);
  CHECK(out.find("(0 failed)") != std::string::npos);
  CHECK(out.find("pool is back to zero runners") != std::string::npos);
  // The events, in the order a pool lives them.
  size_t booting = out.find("pool=demo runner_booting");
  size_t ready = out.find("pool=demo runner_ready");
  size_t draining = out.find("pool=demo runner_draining");
  size_t stopped = out.find("pool=demo runner_stopped");
  REQUIRE(booting != std::string::npos);
  REQUIRE(ready != std::string::npos);
  REQUIRE(draining != std::string::npos);
  REQUIRE(stopped != std::string::npos);
  CHECK(booting < ready);
  CHECK(ready < draining);
  CHECK(draining < stopped);
  CHECK(out.find("message=\"idle for") != std::string::npos);
  // The last runner to leave leaves none behind.
  size_t last = out.rfind("pool=demo runner_stopped");
  std::string lastLine = out.substr(last, out.find('\n', last) - last);
  CHECK(lastLine.find("runners=0 booting=0") != std::string::npos);
}
