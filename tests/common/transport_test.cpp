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
