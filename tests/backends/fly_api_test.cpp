// Decoding Fly Machines API answers: real-looking answers, then malformed ones (wrong types,
// missing fields, truncated JSON, HTML error pages), which must give a clear error, never throw.
#include "backends/fly_api.h"

#include <catch2/catch.hpp>
#include <string>

#include "backends/api_json.h"

using namespace flame;

namespace {

constexpr const char* kMachine = R"({
  "id": "3d8d413b29d089", "name": "thumbs-7f3a", "state": "stopped", "region": "ams",
  "instance_id": "01HX2A", "private_ip": "fdaa:0:18::3",
  "config": {"image": "registry.fly.io/myapp:v1", "auto_destroy": true,
             "metadata": {"flame_broker_id": "broker-a", "flame_runner_id": "thumbs-7f3a",
                          "flame_pool": "thumbs", "count": 3}},
  "events": [
    {"type": "exit", "status": "stopped", "source": "flyd", "timestamp": 1714557600000,
     "request": {"exit_event": {"exit_code": 137, "oom_killed": true, "signal": -1}}},
    {"type": "exit", "status": "stopped", "request": {"exit_event": {"exit_code": 1}}},
    {"type": "start", "status": "started", "source": "user"}
  ]})";

}  // namespace

TEST_CASE("fly parseMachine reads a machine", "[backends][fly][api]") {
  fly::MachineAnswer answer = fly::parseMachine(kMachine);
  REQUIRE(answer.status.ok);
  const fly::Machine& machine = answer.machine;
  CHECK(machine.id == "3d8d413b29d089");
  CHECK(machine.name == "thumbs-7f3a");
  CHECK(machine.state == "stopped");
  CHECK(machine.region == "ams");
  CHECK(machine.meta(fly::kMetaPool) == "thumbs");
  CHECK(machine.meta("count").empty());  // not a string: skipped
  CHECK(machine.belongsTo("broker-a", "thumbs-7f3a"));
  CHECK_FALSE(machine.belongsTo("broker-b", "thumbs-7f3a"));
  CHECK_FALSE(machine.belongsTo("broker-a", "thumbs-other"));
  CHECK(machine.exitCode == 137);  // the newest exit event
  CHECK(fly::isEndedState(machine.state));
  CHECK(fly::describeEnd(machine) == "machine state stopped (exit code 137)");
}

TEST_CASE("fly parseMachine rejects malformed answers with a clear error",
          "[backends][fly][api]") {
  const char* bodies[] = {
      "",
      "null",
      "[]",
      "\"3d8d413b29d089\"",
      "{}",
      R"({"id": 3})",
      R"({"id": null, "name": "x"})",
      R"({"id": ""})",
      R"({"id": "m-1", "name": )",
      "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
      "{\"id\": \"m-\xff\xfe\"}",  // invalid UTF-8
      R"({"id":"m-1"} trailing)",
  };
  for (const char* body : bodies) {
    INFO(body);
    fly::MachineAnswer answer = fly::parseMachine(body);
    CHECK_FALSE(answer.status.ok);
    CHECK(answer.status.retryable);
    CHECK_FALSE(answer.status.message.empty());
  }
}

TEST_CASE("fly parseMachine tolerates odd field types around a valid id",
          "[backends][fly][api]") {
  fly::MachineAnswer answer = fly::parseMachine(
      R"({"id":"m-1","name":7,"state":["started"],"region":null,"config":"x",
          "events":{"type":"exit"}})");
  REQUIRE(answer.status.ok);
  CHECK(answer.machine.id == "m-1");
  CHECK(answer.machine.name.empty());
  CHECK(answer.machine.state.empty());
  CHECK(answer.machine.metadata.empty());
  CHECK_FALSE(answer.machine.exitCode);
  CHECK_FALSE(fly::isEndedState(answer.machine.state));
  CHECK(fly::describeEnd(answer.machine) == "machine state unknown");

  // Exit codes that are not ints are absent, not wrapped.
  for (const char* code : {"1.5", "true", "\"1\"", "99999999999", "-99999999999",
                           "18446744073709551615"}) {
    std::string body = std::string(R"({"id":"m","events":[{"type":"exit","request":{"exit_event":{"exit_code":)") +
                       code + "}}}]}";
    INFO(body);
    auto parsed = fly::parseMachine(body);
    REQUIRE(parsed.status.ok);
    CHECK_FALSE(parsed.machine.exitCode);
  }
}

TEST_CASE("fly parseMachineList keeps the machines and counts the rest",
          "[backends][fly][api]") {
  fly::MachineListAnswer answer = fly::parseMachineList(
      R"([{"id":"m-1","state":"started"}, 7, "m-2", null, {"name":"no-id"}, [], {"id":"m-3"}])");
  REQUIRE(answer.status.ok);
  REQUIRE(answer.machines.size() == 2);
  CHECK(answer.machines[0].id == "m-1");
  CHECK(answer.machines[1].id == "m-3");
  CHECK(answer.skipped == 5);
  CHECK(fly::parseMachineList("[]").machines.empty());

  for (const char* body : {"", "{}", R"({"machines":[]})", "null", "[{\"id\":\"m-1\"}",
                           "<!DOCTYPE html><html>Fly.io</html>", "42"}) {
    INFO(body);
    auto bad = fly::parseMachineList(body);
    CHECK_FALSE(bad.status.ok);
    CHECK_THAT(bad.status.message, Catch::Contains("not a JSON array"));
  }
}

TEST_CASE("fly answers nested absurdly deep do not crash", "[backends][fly][api]") {
  std::string deep(200'000, '[');
  CHECK_FALSE(fly::parseMachine(deep).status.ok);
  CHECK_FALSE(fly::parseMachineList(deep).status.ok);
  std::string closed = deep + std::string(200'000, ']');
  CHECK_FALSE(fly::parseMachine(closed).status.ok);
  auto list = fly::parseMachineList(closed);
  REQUIRE(list.status.ok);
  CHECK(list.skipped == 1);
}

TEST_CASE("fly ended states and name conflicts", "[backends][fly][api]") {
  for (const char* state : {"stopped", "destroying", "destroyed", "failed"})
    CHECK(fly::isEndedState(state));
  for (const char* state : {"created", "starting", "started", "stopping", "replacing", ""})
    CHECK_FALSE(fly::isEndedState(state));
  CHECK(fly::isNameConflict(409, "machine name already taken"));
  CHECK(fly::isNameConflict(409, ""));
  CHECK(fly::isNameConflict(422, "Validation failed: Name has already been taken"));
  CHECK_FALSE(fly::isNameConflict(422, "image not found"));
  CHECK_FALSE(fly::isNameConflict(400, "name already taken"));
}

TEST_CASE("api intField accepts only ints that fit", "[backends][api]") {
  auto json = api::parseJson(R"({"a":1,"b":-2,"c":2147483648,"d":1.0,"e":"3","f":false})");
  REQUIRE(json);
  CHECK(api::intField(*json, "a") == 1);
  CHECK(api::intField(*json, "b") == -2);
  CHECK_FALSE(api::intField(*json, "c"));
  CHECK_FALSE(api::intField(*json, "d"));
  CHECK_FALSE(api::intField(*json, "e"));
  CHECK_FALSE(api::intField(*json, "f"));
  CHECK_FALSE(api::intField(*json, "missing"));
  CHECK_FALSE(api::intField(api::Json::array(), "a"));
  CHECK_FALSE(api::parseJson(std::string(api::kMaxJsonBytes + 1, ' ')));
}
