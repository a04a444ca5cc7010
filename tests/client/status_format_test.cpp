#include "client/status_format.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace flame;

namespace {
msg::StatusReply sample() {
  msg::StatusReply reply;
  msg::PoolStatus thumbs;
  thumbs.name = "thumbs";
  thumbs.queued = 3;
  thumbs.slotsUsed = 5;
  thumbs.slotsTotal = 8;
  thumbs.completed = 120;
  thumbs.failed = 2;
  thumbs.retried = 7;
  thumbs.booting = 1;
  thumbs.boots = 4;
  thumbs.bootFailures = 1;
  thumbs.min = 0;
  thumbs.max = 10;
  thumbs.runners.push_back(msg::RunnerStatus{"thumbs-r1", "ready", 4, 4, 1234, "box", 0});
  thumbs.runners.push_back(msg::RunnerStatus{"thumbs-r2", "draining", 1, 4, 99, "", 1500});
  reply.pools.push_back(thumbs);
  msg::PoolStatus empty;
  empty.name = "pdf";
  empty.max = 2;
  reply.pools.push_back(empty);
  return reply;
}
}  // namespace

TEST_CASE("status renders as aligned tables", "[client]") {
  CHECK(formatStatusTable(msg::StatusReply{}) == "no pools\n");
  const char* expected =
      "POOL    QUEUED  SLOTS  RUNNERS  BOOTING  MIN  MAX  COMPLETED  FAILED  RETRIED  BOOTS  BOOT_FAILURES\n"
      "thumbs  3       5/8    2        1        0    10   120        2       7        4      1\n"
      "pdf     0       0/0    0        0        0    2    0          0       0        0      0\n"
      "\n"
      "thumbs runners:\n"
      "  RUNNER     STATE     SLOTS  PID   HOST  IDLE\n"
      "  thumbs-r1  ready     4/4    1234  box   0ms\n"
      "  thumbs-r2  draining  1/4    99    -     1500ms\n";
  CHECK(formatStatusTable(sample()) == expected);
}

TEST_CASE("status renders as one JSON object with snake_case keys in order", "[client]") {
  CHECK(formatStatusJson(msg::StatusReply{}) == R"({"pools":[]})");
  auto text = formatStatusJson(sample());
  CHECK(text.find('\n') == std::string::npos);
  CHECK(
      text.rfind(
          R"({"pools":[{"name":"thumbs","queued":3,"slots_used":5,"slots_total":8,"runners":[)"
          R"({"id":"thumbs-r1","state":"ready","slots_used":4,"slots_total":4,"pid":1234,"host":"box","idle_ms":0},)",
          0) == 0);
  auto json = nlohmann::json::parse(text);
  auto& pool = json["pools"][0];
  CHECK(pool["booting"] == 1);
  CHECK(pool["boots"] == 4);
  CHECK(pool["boot_failures"] == 1);
  CHECK(pool["completed"] == 120);
  CHECK(pool["failed"] == 2);
  CHECK(pool["retried"] == 7);
  CHECK(pool["min"] == 0);
  CHECK(pool["max"] == 10);
  CHECK(pool["runners"][1]["idle_ms"] == 1500);
  CHECK(json["pools"][1]["name"] == "pdf");
  CHECK(json["pools"][1]["runners"].empty());
}

TEST_CASE("status JSON survives invalid UTF-8 from peers", "[client]") {
  msg::StatusReply reply;
  reply.pools.push_back(msg::PoolStatus{});
  reply.pools[0].name = "bad\xff";
  auto text = formatStatusJson(reply);
  CHECK(nlohmann::json::parse(text)["pools"][0]["name"] == "bad\xEF\xBF\xBD");
}

TEST_CASE("ISO-8601 times are UTC with milliseconds", "[client]") {
  CHECK(formatIsoTime(0) == "1970-01-01T00:00:00.000Z");
  CHECK(formatIsoTime(1'796'323'801'123) == "2026-12-03T18:50:01.123Z");
  CHECK(formatIsoTime(1'796'323'801'007) == "2026-12-03T18:50:01.007Z");
}

TEST_CASE("an event line escapes its message", "[client][events]") {
  msg::Event e;
  e.timeMs = 0;
  e.kind = EventKind::BootFailed;
  e.pool = "p";
  e.message = "line1\nline2 \"q\" \\ \x01";
  CHECK(formatEventLine(e) ==
        "1970-01-01T00:00:00.000Z pool=p boot_failed runners=0 booting=0 message=\"line1\\nline2 \\\"q\\\" \\\\ \\x01\"");
  e.message = "bad\xff";
  CHECK(nlohmann::json::parse(formatEventJson(e))["message"] == "bad\xEF\xBF\xBD");
}
