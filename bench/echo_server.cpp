#include "bench/echo_server.h"

#include "common/transport.h"

namespace flame::bench {

namespace {
constexpr size_t kMaxFrames = 4;  // [id][""][header][payload], like the broker's client side
constexpr int kBatch = 256;       // messages per readiness, as in broker/server.cpp
}  // namespace

namespace {
zmq::socket_t echoRouter(zmq::context_t& ctx, Transport transport) {
  nameContext(ctx, Role::Echo);
  return bindRouter(ctx, bindEndpoint(transport, "echo"));
}
}  // namespace

EchoServer::EchoServer(Transport transport)
    : router_(echoRouter(ctx_, transport)), endpoint_(boundEndpoint(router_)) {
  // The socket is handed to the thread here and never touched by this one again.
  // It runs the broker's own loop (Reactor, zmq::poll, same batch size), so the two
  // measurements differ only in what happens between receive and send.
  thread_ = std::thread([this] {
    nameThread("echo");
    Reactor reactor;
    Frames frames;
    bool truncated = false;
    reactor.add(router_, [&] {
      for (int i = 0; i < kBatch; ++i) {
        if (!recvFrames(router_, frames, kMaxFrames, truncated)) return;
        sendFrames(router_, frames);
      }
    });
    while (!stopping_.load(std::memory_order_relaxed)) reactor.pollOnce(Duration(50));
  });
}

EchoServer::~EchoServer() {
  stopping_ = true;  // seen within one poll timeout (50 ms)
  thread_.join();
  router_.close();
  removeIpcFile(endpoint_);
}

}  // namespace flame::bench
