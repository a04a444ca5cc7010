// The scaler driving the real FlyBackend against a local fake Machines API: the machine
// lifecycle the user pays for (create, and a forced DELETE whenever its runner is not wanted).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "backends/fly_backend.h"
#include "broker/scaler.h"
#include "tests/backends/fake_api_server.h"
#include "tests/broker/fake_outbox.h"

using namespace flame;
using namespace flame::test;
using flame::testing::FakeApiServer;
using flame::testing::Reply;
using json = nlohmann::json;

namespace {

struct FlyScaler : Harness {
  explicit FlyScaler(FakeApiServer& api) : scaler(core, clock, "broker-fly", "tcp://[fdaa::1]:5556") {
    core.setListener(&scaler);
    PoolConfig pc;
    pc.name = "gpu";
    pc.backend = "fly";
    pc.limits.max = 2;
    pc.limits.bootTimeout = Duration(5000);
    pc.limits.idleShutdownAfter = Duration(3000);
    pc.fly.apiBase = api.baseUrl();
    pc.fly.app = "app";
    pc.fly.token = "tok";
    pc.fly.image = "img:1";
    pc.fly.createRatePerSecond = 0;
    pc.fly.maxRetries = 0;
    pc.fly.requestTimeout = Duration(5000);
    scaler.addPool(pc, makeBackend(pc), std::make_unique<InlineBackendExecutor>());
  }
  ~FlyScaler() { core.setListener(nullptr); }
  void tick() {
    core.tick();
    scaler.tick();
    scaler.tick();
  }
  void pass(Duration d, const std::vector<std::string>& alive = {}) {
    for (Duration t{0}; t < d; t += Duration(100)) {
      for (auto& c : alive) heartbeat(c);
      clock.advance(Duration(100));
      tick();
    }
  }
  Scaler scaler;
};

// A Machines API that creates m-1, m-2, ... and answers DELETE with `deleteStatus`.
void serveMachines(FakeApiServer& api, int deleteStatus) {
  auto created = std::make_shared<int>(0);
  api.server().Post("/v1/apps/app/machines", [&api, created](const httplib::Request& req, httplib::Response& res) {
    api.record(req);
    res.set_content(json{{"id", "m-" + std::to_string(++*created)}}.dump(), "application/json");
  });
  api.server().Delete(R"(/v1/apps/app/machines/([^/]+))",
                      [&api, deleteStatus](const httplib::Request& req, httplib::Response& res) {
                        api.record(req);
                        res.status = deleteStatus;
                        res.set_content(deleteStatus == 404 ? R"({"error":"not found"})" : "{}", "application/json");
                      });
  api.start();
}

std::vector<flame::testing::RecordedRequest> deletes(const FakeApiServer& api) {
  std::vector<flame::testing::RecordedRequest> out;
  for (auto& r : api.requests())
    if (r.method == "DELETE") out.push_back(r);
  return out;
}

}  // namespace

TEST_CASE("fly: a machine whose runner never connects is deleted with force at boot_timeout", "[scaler][fly]") {
  FakeApiServer api;
  serveMachines(api, 200);
  FlyScaler h(api);
  h.submit("c", 1, "gpu", "render", "", Mode::Call, kInfiniteMs);
  h.tick();
  REQUIRE(api.requestCount() == 1);
  auto body = json::parse(api.requests()[0].body);
  CHECK(body["config"]["metadata"]["flame_pool"] == "gpu");
  CHECK(body["config"]["metadata"]["flame_broker_id"] == "broker-fly");
  CHECK(body["config"]["env"]["FLAME_BROKER"] == "tcp://[fdaa::1]:5556");
  CHECK(body["config"]["auto_destroy"] == true);
  CHECK(body["config"]["restart"]["policy"] == "no");
  h.pass(Duration(5100));
  auto del = deletes(api);
  REQUIRE(del.size() == 1);
  CHECK(del[0].path == "/v1/apps/app/machines/m-1");
  CHECK(del[0].param("force") == "true");
}

TEST_CASE("fly: an idle runner's machine is deleted after it drains, a lost one at once", "[scaler][fly]") {
  FakeApiServer api;
  serveMachines(api, 404);  // DELETE of a machine already gone (auto_destroy) is still fine
  FlyScaler h(api);
  h.submit("c", 1, "gpu", "render", "", Mode::Call, kInfiniteMs);
  h.submit("c", 2, "gpu", "render", "", Mode::Call, kInfiniteMs);
  h.tick();
  REQUIRE(api.requestCount() == 2);
  std::vector<std::string> conns;
  for (auto& r : api.requests()) {
    auto env = json::parse(r.body)["config"]["env"];
    std::string id = env["FLAME_RUNNER_ID"];
    std::string conn = "conn-" + id;
    h.core.onRunner(conn, msg::Ready{id, "gpu", 1, {"render"}, env["FLAME_BOOT_TOKEN"], 0, 0, "fly"}, {});
    conns.push_back(conn);
  }
  auto j0 = h.jobsFor(conns[0]);
  auto j1 = h.jobsFor(conns[1]);
  REQUIRE(j0.size() == 1);
  REQUIRE(j1.size() == 1);
  h.done(conns[0], j0[0].jobId);
  // conns[1] dies mid-job: its machine is deleted without waiting for anything.
  h.pass(Duration(4100), {conns[0]});
  CHECK(h.outbox.takeOf<msg::Error>("c").at(0).code == ErrorCode::RunnerLost);
  REQUIRE(deletes(api).size() >= 1);
  CHECK(deletes(api)[0].path == "/v1/apps/app/machines/m-2");
  // conns[0] idled for 3 s: drained; once it leaves, its machine is deleted too.
  CHECK(h.outbox.takeOf<msg::Drain>(conns[0]).size() == 1);
  h.core.onRunner(conns[0], msg::Leaving{"drained", true}, {});
  h.tick();
  REQUIRE(deletes(api).size() == 2);
  CHECK(deletes(api)[1].path == "/v1/apps/app/machines/m-1");
  CHECK(h.core.status(0).pools[0].runners.empty());
}
