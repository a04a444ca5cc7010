// The fake backend other tests (scaler, broker) rely on: its own behaviour is pinned here.
#include "backends/fake_backend.h"

#include <catch2/catch.hpp>
#include <thread>

using namespace flame;
using namespace flame::testing;

namespace {
BootSpec spec(const std::string& runnerId, const std::string& brokerId = "b-1") {
  BootSpec s;
  s.pool = "p";
  s.runnerId = runnerId;
  s.brokerId = brokerId;
  return s;
}
}  // namespace

TEST_CASE("fake backend records boots and stops and lists per broker", "[backends][fake]") {
  FakeBackend fake;
  CHECK(fake.kind() == "fake");
  auto a = fake.boot(spec("r-1"));
  auto b = fake.boot(spec("r-2", "b-2"));
  REQUIRE(a.status.ok);
  REQUIRE(b.status.ok);
  CHECK(a.handle.machineId == "fake-1");
  CHECK(b.handle.machineId == "fake-2");
  CHECK(a.handle.runnerId == "r-1");
  CHECK(fake.bootCount() == 2);
  CHECK(fake.list("b-1").machines.size() == 1);
  CHECK(fake.stop(a.handle).ok);
  CHECK(fake.stop(a.handle).ok);  // idempotent
  CHECK(fake.stopCount() == 2);
  CHECK_FALSE(fake.isAlive("fake-1"));
  CHECK(fake.isAlive("fake-2"));
  CHECK(fake.list("b-1").machines.empty());
  fake.addMachine(MachineHandle{"orphan", "r-old", "p"}, "b-1");
  CHECK(fake.list("b-1").machines.size() == 1);
  fake.vanish("orphan");
  CHECK(fake.alive().size() == 1);
}

TEST_CASE("fake backend injects failures on command", "[backends][fake]") {
  FakeBackend fake;
  fake.failNextBoots(2, true, "quota");
  auto first = fake.boot(spec("r-1"));
  CHECK_FALSE(first.status.ok);
  CHECK(first.status.retryable);
  CHECK(first.status.message == "quota");
  CHECK_FALSE(fake.boot(spec("r-2")).status.ok);
  CHECK(fake.boot(spec("r-3")).status.ok);
  CHECK(fake.bootCount() == 3);
  CHECK(fake.alive().size() == 1);

  fake.failNextBoots(1, false);
  auto permanent = fake.boot(spec("r-4"));
  CHECK_FALSE(permanent.status.ok);
  CHECK_FALSE(permanent.status.retryable);

  fake.failNextStops(1, true);
  CHECK_FALSE(fake.stop(MachineHandle{"fake-1", "r-3", "p"}).ok);
  CHECK(fake.isAlive("fake-1"));
  fake.failList(true);
  CHECK_FALSE(fake.list("b-1").status.ok);
  fake.clearFailures();
  CHECK(fake.list("b-1").status.ok);

  FailingBackend failing(false, "bad image");
  auto never = failing.boot(spec("r-x"));
  CHECK_FALSE(never.status.ok);
  CHECK(never.status.message == "bad image");
  failing.clearFailures();
  CHECK(failing.boot(spec("r-y")).status.ok);
}

TEST_CASE("fake backend can hold boots in flight until released", "[backends][fake]") {
  FakeBackend fake;
  fake.holdBoots();
  BootResult result;
  std::thread scaler([&] { result = fake.boot(spec("r-slow")); });
  REQUIRE(fake.waitForBootsInFlight(1));
  CHECK(fake.bootCount() == 1);  // recorded while in flight
  CHECK(fake.alive().empty());   // but no machine yet
  fake.releaseBoots();
  scaler.join();
  CHECK(result.status.ok);
  CHECK(fake.alive().size() == 1);
}
