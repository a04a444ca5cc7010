#include "client/typed.h"

#include <catch2/catch.hpp>

#include "schema/flame.capnp.h"

using namespace flame;

TEST_CASE("typed payloads round-trip through bytes", "[client]") {
  auto bytes = toBytes<wire::Placed>([](wire::Placed::Builder b) {
    b.setChildId(5);
    b.setRunnerId("r-1");
  });
  CHECK(bytes.size() % 8 == 0);
  // Unaligned input (an odd offset in a larger buffer) is copied before parsing.
  std::string shifted = "x" + bytes;
  auto parsed = fromBytes<wire::Placed>(std::string_view(shifted).substr(1));
  REQUIRE(parsed.ok());
  CHECK(parsed->get().getChildId() == 5);
  CHECK(std::string(parsed->get().getRunnerId().cStr()) == "r-1");
  // The reader stays valid after the Outcome is moved.
  auto moved = std::move(parsed).value();
  CHECK(moved.get().getChildId() == 5);
}

TEST_CASE("bad typed bytes are a bad_request failure, never an exception", "[client]") {
  for (std::string bad :
       {std::string(), std::string("abc"), std::string(8, '\xff'), std::string(64, '\x7f')}) {
    auto parsed = fromBytes<wire::Placed>(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::BadRequest);
    CHECK_THAT(parsed.error().message, Catch::StartsWith("bad result: "));
  }
  // A segment table that points past the end.
  std::string truncated =
      toBytes<wire::Placed>([](wire::Placed::Builder b) { b.setRunnerId("a long runner id"); });
  truncated.resize(truncated.size() - 8);
  CHECK_FALSE(fromBytes<wire::Placed>(truncated).ok());
}
