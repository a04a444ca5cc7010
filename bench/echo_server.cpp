#include "bench/echo_server.h"

#include "common/transport.h"

namespace flame::bench {

namespace {
constexpr size_t kMaxFrames = 4;  // [id][""][header][payload], like the broker's client side
constexpr int kBatch = 256;       // messages per readiness, as in broker/server.cpp
}  // namespace

namespace {
zmq::socket_t echoRouter(zmq::context_t& ctx, Transport transport, const KeyRing* keys) {
  nameContext(ctx, Role::Echo);
  if (!keys) return bindRouter(ctx, bindEndpoint(transport, "echo"));
  CurveServer curve{keys->secretKey(), kClientsZapDomain};
  return bindRouter(ctx, bindEndpoint(transport, "echo"), {}, &curve);
}

// Runs first in the constructor: the context's I/O thread starts with its first socket, so it
// is named here (harness.h, nameContext) before the ZAP handler's socket exists.
std::unique_ptr<ZapHandler> zapFor(zmq::context_t& ctx, KeyRing* keys) {
  nameContext(ctx, Role::Echo);
  if (!keys) return nullptr;
  return std::make_unique<ZapHandler>(ctx, *keys, Reactor::steadyClock());
}
}  // namespace

EchoServer::EchoServer(Transport transport, const BenchKeys* curve)
    : keys_(curve ? curve->keyRing() : nullptr),
      zap_(zapFor(ctx_, keys_.get())),
      router_(echoRouter(ctx_, transport, keys_.get())),
      endpoint_(boundEndpoint(router_)) {
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
    if (zap_) reactor.add(zap_->socket(), [this] { zap_->onReadable(); });
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
