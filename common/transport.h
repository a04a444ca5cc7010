// The ZeroMQ plumbing, written once: socket set-up with the options every flame socket needs
// (see ZEROMQ-NOTES.md), bounded multipart receive, non-blocking send with a clear status,
// and the poll loop (Reactor) that the broker, the runner and the client's I/O thread share.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace flame {

struct SocketLimits {
  // ZMQ_MAXMSGSIZE: a frame larger than this makes libzmq drop the connection, so it is set
  // well above the application's payload limit, which is checked in code with a clear error.
  int64_t maxFrameBytes = 64 * 1024 * 1024;
  int sendHwm = 100'000;
  int recvHwm = 100'000;
};

// A ROUTER bound to `endpoint` ("tcp://127.0.0.1:*" picks a free port) with
// ROUTER_MANDATORY, linger 0 and the limits. Throws zmq::error_t if the bind fails.
zmq::socket_t bindRouter(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits = {});

// A DEALER connected to `endpoint` with IMMEDIATE, linger 0, IPv6 allowed and the limits.
zmq::socket_t connectDealer(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits = {});

// The endpoint a socket actually bound (resolves the "*" port).
std::string boundEndpoint(zmq::socket_t& socket);

using Frames = std::vector<zmq::message_t>;

// Receives one whole multipart message without blocking. Returns false if none is waiting.
// At most `maxFrames` frames are kept; the rest are read and discarded, and `truncated` is set.
bool recvFrames(zmq::socket_t& socket, Frames& frames, size_t maxFrames, bool& truncated);

enum class SendStatus { Ok, Unreachable, WouldBlock };

// Sends frames as one multipart message without blocking (ZMQ_DONTWAIT). With a ROUTER,
// frames[0] is the routing id; Unreachable means that peer is gone (ROUTER_MANDATORY).
// Frames are consumed (moved into the socket) on success.
SendStatus sendFrames(zmq::socket_t& socket, Frames& frames);
SendStatus sendFrames(zmq::socket_t& socket, zmq::message_t* frames, size_t count);

// Poll loop over a few sockets. Not thread-safe: one thread owns it and its sockets.
class Reactor {
 public:
  using Handler = std::function<void()>;
  // Calls `onReadable` whenever `socket` has input. The socket must outlive the reactor.
  void add(zmq::socket_t& socket, Handler onReadable);
  // Calls `onReadable` whenever the plain descriptor `fd` (an eventfd, say) is readable. A raw
  // descriptor costs the poll nothing beyond its slot (a ZeroMQ socket is asked for its events).
  void addFd(int fd, Handler onReadable);
  // Waits up to `timeout` (negative or kInfinite: forever) for input and runs the handlers of
  // the ready sockets once each. Returns how many were ready. EINTR counts as 0.
  int pollOnce(Duration timeout);

 private:
  std::vector<zmq::pollitem_t> items_;
  std::vector<Handler> handlers_;
};

}  // namespace flame
