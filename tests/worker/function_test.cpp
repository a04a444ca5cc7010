// functionHandler (worker/typed.h): what Runner::serve makes of a Function<In, Out> and an impl,
// called directly with a JobContext; and SlotTable (worker/handler_threads.h). The same over a
// broker: tests/integration/function_test.cpp.
#include <catch2/catch.hpp>
#include <stop_token>

#include "schema/flame.capnp.h"
#include "worker/handler_threads.h"
#include "worker/typed.h"

using namespace flame;

namespace {

constexpr Function<wire::Placed, wire::Placed> kEchoPlaced{"echo_placed"};
constexpr Function<std::string, uint32_t> kLength{"length"};

HandlerResult run(const Handler& handler, std::string_view payload, uint32_t slot = 0) {
  std::stop_source stop;
  JobContext job(1, Mode::Call, payload, stop.get_token(), TimePoint::max(), slot);
  return handler(job);
}

}  // namespace

TEST_CASE("a served function decodes its payload and encodes its result", "[worker][function]") {
  auto handler = functionHandler(kEchoPlaced, [](wire::Placed::Reader in, wire::Placed::Builder out, JobContext& job) {
    out.setChildId(in.getChildId() + job.slot());
    out.setRunnerId(in.getRunnerId());
  });
  capnp::MallocMessageBuilder message;
  auto in = message.initRoot<wire::Placed>();
  in.setChildId(40);
  in.setRunnerId("r-1");
  auto result = run(handler, PayloadCodec<wire::Placed>::encode(in), 2);
  REQUIRE_FALSE(result.isError);
  auto decoded = PayloadCodec<wire::Placed>::decode(result.value);
  REQUIRE(decoded.value);
  CHECK(decoded.value->get().getChildId() == 42);
  CHECK(std::string(decoded.value->get().getRunnerId().cStr()) == "r-1");

  auto length = functionHandler(kLength, [](const std::string& s) { return static_cast<uint32_t>(s.size()); });
  auto n = run(length, "four");
  REQUIRE_FALSE(n.isError);
  CHECK(PayloadCodec<uint32_t>::decode(n.value).value == 4u);
}

TEST_CASE("a payload that does not decode is a handlerError naming the function and impl never runs",
          "[worker][function]") {
  bool ran = false;
  auto handler = functionHandler(kEchoPlaced, [&](wire::Placed::Reader, wire::Placed::Builder) { ran = true; });
  auto empty = run(handler, "");
  CHECK(empty.isError);
  CHECK(empty.value == "bad payload for echo_placed: empty message");
  auto odd = run(handler, "abc");
  CHECK(odd.value == "bad payload for echo_placed: 3 bytes is not a whole number of 8-byte words");
  auto garbage = run(handler, std::string(64, '\x7f'));
  CHECK(garbage.isError);
  CHECK_THAT(garbage.value, Catch::StartsWith("bad payload for echo_placed: "));
  CHECK_FALSE(ran);

  constexpr Function<uint32_t, std::string> kDescribe{"describe"};
  auto describe = functionHandler(kDescribe, [](uint32_t n) { return std::to_string(n); });
  auto wrong = run(describe, "12345");
  CHECK(wrong.isError);
  CHECK(wrong.value == "bad payload for describe: expected 4 bytes, got 5");
}

TEST_CASE("a served function fails with fail(): Reply<Out> or a builder-style HandlerResult", "[worker][function]") {
  auto value = functionHandler(kLength, [](std::string s) -> Reply<uint32_t> {
    if (s.empty()) return fail("empty");
    return static_cast<uint32_t>(s.size());
  });
  auto failed = run(value, "");
  CHECK(failed.isError);
  CHECK(failed.value == "empty");

  auto builder = functionHandler(kEchoPlaced, [](wire::Placed::Reader in, wire::Placed::Builder) -> HandlerResult {
    if (in.getChildId() == 0) return fail("no child");
    return ok();
  });
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Placed>();
  auto r = run(builder, PayloadCodec<wire::Placed>::encode(message.getRoot<wire::Placed>()));
  CHECK(r.isError);
  CHECK(r.value == "no child");
}

TEST_CASE("SlotTable hands out the lowest free slot and reuses a freed one", "[worker][slots]") {
  SlotTable slots(3);
  CHECK(slots.acquire() == 0u);
  CHECK(slots.acquire() == 1u);
  CHECK(slots.acquire() == 2u);
  CHECK_FALSE(slots.acquire().has_value());
  slots.release(1);
  CHECK(slots.held() == 2);
  CHECK(slots.acquire() == 1u);
  slots.release(0);
  slots.release(2);
  CHECK(slots.acquire() == 0u);
}
