#include "client/child_handle.h"

#include <catch2/catch.hpp>

using namespace flame;

TEST_CASE("child handles format as childId@runnerId and parse back", "[client]") {
  ChildHandle handle{42, "thumbs-r1"};
  CHECK(handle.toString() == "42@thumbs-r1");
  CHECK(ChildHandle::parse("42@thumbs-r1") == handle);
  CHECK(ChildHandle::parse(handle.toString()) == handle);

  auto bare = ChildHandle::parse("42");
  REQUIRE(bare);
  CHECK(bare->childId == 42);
  CHECK(bare->runnerId.empty());
  CHECK(bare->toString() == "42");

  CHECK(ChildHandle::parse("18446744073709551615@r")->childId == 18446744073709551615ull);
  CHECK(ChildHandle::parse("7@a@b")->runnerId == "a@b");  // only the first '@' separates
}

TEST_CASE("malformed child handles are rejected", "[client]") {
  for (const char* text :
       {"", "@r", "42@", "x@r", "-1", "+1", "4 2", "42x@r", "18446744073709551616"}) {
    INFO(text);
    CHECK_FALSE(ChildHandle::parse(text));
  }
}
