#include <catch2/catch.hpp>

#include <sys/eventfd.h>
#include <unistd.h>

#include "common/transport.h"

using namespace flame;

TEST_CASE("router reports a gone peer instead of dropping silently", "[transport]") {
  zmq::context_t ctx;
  auto router = bindRouter(ctx, "tcp://127.0.0.1:*");
  Frames out;
  out.emplace_back(std::string("no-such-peer"));
  out.emplace_back(std::string("x"));
  CHECK(sendFrames(router, out) == SendStatus::Unreachable);
}

TEST_CASE("frames beyond the bound are discarded and flagged", "[transport]") {
  zmq::context_t ctx;
  auto router = bindRouter(ctx, "tcp://127.0.0.1:*");
  auto dealer = connectDealer(ctx, boundEndpoint(router));
  for (int i = 0; i < 9; ++i) dealer.send(zmq::buffer(std::to_string(i)), i < 8 ? zmq::send_flags::sndmore : zmq::send_flags::none);
  Reactor reactor;
  Frames frames;
  bool truncated = false, got = false;
  reactor.add(router, [&] { got = recvFrames(router, frames, 4, truncated); });
  for (int i = 0; i < 50 && !got; ++i) reactor.pollOnce(Duration(100));
  REQUIRE(got);
  CHECK(truncated);
  CHECK(frames.size() == 4);  // routing id + 3 frames
  CHECK(frames[1].to_string() == "0");
}

TEST_CASE("a reactor runs the handler of a plain descriptor when it is readable", "[transport]") {
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fd >= 0);
  Reactor reactor;
  int calls = 0;
  reactor.addFd(fd, [&] {
    uint64_t n = 0;
    (void)!read(fd, &n, sizeof n);
    ++calls;
  });
  CHECK(reactor.pollOnce(Duration(0)) == 0);
  CHECK(calls == 0);
  uint64_t one = 1;
  REQUIRE(write(fd, &one, sizeof one) == sizeof one);
  CHECK(reactor.pollOnce(Duration(1000)) == 1);
  CHECK(calls == 1);
  CHECK(reactor.pollOnce(Duration(0)) == 0);  // the handler drained it
  close(fd);
}

TEST_CASE("a reactor with nothing readable wakes for its next timer, not later", "[transport]") {
  Reactor reactor;
  const Clock& clock = reactor.clock();
  TimePoint start = clock.now();
  TimePoint firedAt{};
  reactor.after(Duration(30), [&] { firedAt = clock.now(); });
  // No bound of its own: only the timer can end this wait.
  for (int i = 0; i < 5 && firedAt == TimePoint{}; ++i) reactor.pollOnce();
  REQUIRE(firedAt != TimePoint{});
  CHECK(firedAt - start >= Duration(30));
  CHECK(firedAt - start < Duration(1000));
}

TEST_CASE("a reactor runs due timers on a manual clock and forgets removed sockets", "[transport]") {
  ManualClock clock;
  Reactor reactor(clock);
  zmq::context_t ctx;
  auto router = bindRouter(ctx, "tcp://127.0.0.1:*");
  auto dealer = connectDealer(ctx, boundEndpoint(router));
  int reads = 0, fired = 0;
  reactor.add(router, [&] { ++reads; });
  TimerId t = reactor.every(Duration(100), [&] { ++fired; });
  clock.advance(Duration(100));
  reactor.pollOnce(Duration(0));  // due: runs without waiting
  CHECK(fired == 1);
  CHECK(reactor.cancel(t));
  reactor.remove(router);
  dealer.send(zmq::buffer(std::string("x")), zmq::send_flags::none);
  clock.advance(Duration(1000));
  CHECK(reactor.pollOnce(Duration(50)) == 0);
  CHECK(reads == 0);
  CHECK(fired == 1);
}
