#include "client/typed.h"

#include <catch2/catch.hpp>

#include <vector>

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

TEST_CASE("PayloadCodec: the wire forms of Function<In, Out> payloads", "[client][function]") {
  // Bytes as they are; a trivially copyable value as exactly its sizeof bytes.
  CHECK(PayloadCodec<std::string>::encode("a\0b") == "a");
  CHECK(PayloadCodec<std::string>::decode(std::string("a\0b", 3)).value == std::string("a\0b", 3));
  struct Point {
    int32_t x, y;
  };
  auto bytes = PayloadCodec<Point>::encode(Point{3, -4});
  CHECK(bytes.size() == sizeof(Point));
  auto point = PayloadCodec<Point>::decode(bytes);
  REQUIRE(point.value);
  CHECK(point.value->x == 3);
  CHECK(point.value->y == -4);
  auto short_ = PayloadCodec<Point>::decode("abc");
  CHECK_FALSE(short_.value);
  CHECK(short_.error == "expected 8 bytes, got 3");
  // A Cap'n Proto struct: the standard framing, as toBytes writes it.
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Placed>().setChildId(9);
  auto placed = PayloadCodec<wire::Placed>::encode(message.getRoot<wire::Placed>());
  auto decoded = PayloadCodec<wire::Placed>::decode(placed);
  REQUIRE(decoded.value);
  CHECK(decoded.value->get().getChildId() == 9);
  CHECK(PayloadCodec<wire::Placed>::decode("").error == "empty message");
  // Unsupported types are rejected at compile time by Function's static_assert.
  static_assert(!PayloadCodec<std::vector<int>>::kSupported);
  static_assert(!PayloadCodec<const char*>::kSupported);
}
