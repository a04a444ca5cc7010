#include <catch2/catch.hpp>

#include "common/duration.h"
#include "common/messages.h"

using namespace flame;

TEST_CASE("durations parse with units", "[duration]") {
  CHECK(parseDuration("500ms") == Duration(500));
  CHECK(parseDuration("30s") == Duration(30'000));
  CHECK(parseDuration("5m") == Duration(300'000));
  CHECK(parseDuration("2h") == Duration(7'200'000));
  CHECK(parseDuration("250") == Duration(250));
  CHECK(parseDuration("infinity") == kInfinite);
  CHECK_FALSE(parseDuration(""));
  CHECK_FALSE(parseDuration("-5s"));
  CHECK_FALSE(parseDuration("5 s"));
  CHECK_FALSE(parseDuration("5d"));
  CHECK_FALSE(parseDuration("99999999999999999999s"));
}

TEST_CASE("durations format back", "[duration]") {
  CHECK(formatDuration(Duration(1500)) == "1500ms");
  CHECK(formatDuration(Duration(30'000)) == "30s");
  CHECK(formatDuration(kInfinite) == "infinity");
  CHECK(toWireMs(kInfinite) == kInfiniteMs);
  CHECK(fromWireMs(kInfiniteMs) == kInfinite);
  CHECK(toWireMs(Duration(1234)) == 1234u);
}
