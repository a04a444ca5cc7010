// The ZeroMQ plumbing, written once: socket set-up with the options every flame socket needs
// (see ZEROMQ-NOTES.md), bounded multipart receive, non-blocking send with a clear status,
// and the poll loop (Reactor) that the broker, the runner and the client's I/O thread share.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/timers.h"

namespace flame {

struct SocketLimits {
  // ZMQ_MAXMSGSIZE: a frame larger than this makes libzmq drop the connection, so it is set
  // well above the application's payload limit, which is checked in code with a clear error.
  int64_t maxFrameBytes = 64 * 1024 * 1024;
  int sendHwm = 100'000;
  int recvHwm = 100'000;
};

// CURVE (docs/SECURITY.md). Keys are Z85 text (40 characters, common/curve_keys.h).
// The server side of an endpoint: its secret key, and the ZAP domain its handshakes are checked
// in (the ZAP handler must be bound on inproc://zeromq.zap.01 in the same context before the
// bind; ZAP_ENFORCE_DOMAIN is set, so a handshake with no handler to ask is refused).
struct CurveServer {
  std::string secretKey;
  std::string zapDomain;
};
// The client side: the server's public key and the connecting peer's own key pair.
struct CurveClient {
  std::string serverKey;
  std::string publicKey;
  std::string secretKey;
};

// A ROUTER bound to `endpoint` ("tcp://127.0.0.1:*" picks a free port) with
// ROUTER_MANDATORY, linger 0 and the limits; a CURVE server if `curve` is given. Throws
// zmq::error_t if the bind fails.
zmq::socket_t bindRouter(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits = {},
                         const CurveServer* curve = nullptr);

// A DEALER connected to `endpoint` with IMMEDIATE, linger 0, IPv6 allowed and the limits; a
// CURVE client if `curve` is given.
zmq::socket_t connectDealer(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits = {},
                            const CurveClient* curve = nullptr);
// The same DEALER, not connected yet: for a caller that must watch it from its first handshake
// (a socket monitor attached after connect() can miss a refusal that comes within ~0.1 ms, as a
// mechanism mismatch does on loopback: common/handshake_monitor.h).
zmq::socket_t newDealer(zmq::context_t& ctx, const SocketLimits& limits = {}, const CurveClient* curve = nullptr);

// The key the ZAP handler authenticated for the connection a message came on (its "User-Id"
// property: flame's handler sets it to the peer's Z85 public key). Empty without CURVE.
std::string_view peerKey(const zmq::message_t& message);

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

// The one poll loop of the tree: a few sockets and descriptors, and the timers (TimerQueue) of
// whoever runs on it. pollOnce() sleeps until input arrives or the next timer is due — never
// longer, so a timer fires on time whatever else the loop is doing — then runs the handlers of
// the ready sockets once each and the timers that are due. Not thread-safe: one thread owns it,
// its sockets and its timers (wake it from another thread with an eventfd added by addFd).
class Reactor {
 public:
  using Callback = std::function<void()>;
  // `clock` (not owned) times the timers; the default is the real steady clock.
  explicit Reactor(const Clock& clock = steadyClock());

  // Calls `onReadable` whenever `socket` has input (and `onWritable`, if given, whenever it can
  // take output and wantWritable(socket, true) was said). The socket must outlive its entry.
  void add(zmq::socket_t& socket, Callback onReadable, Callback onWritable = {});
  // Calls `onReadable` whenever the plain descriptor `fd` (an eventfd, say) is readable. A raw
  // descriptor costs the poll nothing beyond its slot (a ZeroMQ socket is asked for its events).
  void addFd(int fd, Callback onReadable);
  // Stops watching `socket` (before it is closed). Safe inside a handler.
  void remove(zmq::socket_t& socket);
  void wantWritable(zmq::socket_t& socket, bool want);

  // Timers (see common/timers.h). Handlers run on the loop thread inside pollOnce().
  TimerId at(TimePoint when, Callback fn) { return timers_.at(when, std::move(fn)); }
  TimerId after(Duration delay, Callback fn) { return timers_.at(addSaturating(clock_.now(), delay), std::move(fn)); }
  TimerId every(Duration period, Callback fn) {
    return timers_.every(period, addSaturating(clock_.now(), period), std::move(fn));
  }
  bool reschedule(TimerId id, TimePoint when) { return timers_.reschedule(id, when); }
  bool cancel(TimerId id) { return timers_.cancel(id); }
  TimerQueue& timers() { return timers_; }
  const Clock& clock() const { return clock_; }

  // Waits until input, the next timer, or `maxWait` (negative or kInfinite: no bound beyond the
  // timers), runs the handlers of the ready sockets once each, then the due timers. Returns how
  // many sockets were ready. EINTR counts as 0.
  int pollOnce(Duration maxWait = kInfinite);

  static const Clock& steadyClock();

 private:
  struct Entry {
    Callback onReadable;
    Callback onWritable;
    bool removed = false;
  };
  void compact();

  const Clock& clock_;
  TimerQueue timers_;
  std::vector<zmq::pollitem_t> items_;
  std::deque<Entry> entries_;  // a deque: a handler may add() while another runs
  bool dispatching_ = false;
  bool needsCompact_ = false;
};

}  // namespace flame
