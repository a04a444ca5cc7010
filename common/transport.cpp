#include "common/transport.h"

#include <algorithm>

namespace flame {

namespace {
constexpr int kZapEnforceDomain = 93;  // ZMQ_ZAP_ENFORCE_DOMAIN

void applyCommon(zmq::socket_t& s, const SocketLimits& limits) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, limits.maxFrameBytes);
  s.set(zmq::sockopt::sndhwm, limits.sendHwm);
  s.set(zmq::sockopt::rcvhwm, limits.recvHwm);
  s.set(zmq::sockopt::ipv6, 1);
}
}  // namespace

zmq::socket_t bindRouter(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits,
                         const CurveServer* curve) {
  zmq::socket_t s(ctx, zmq::socket_type::router);
  applyCommon(s, limits);
  s.set(zmq::sockopt::router_mandatory, 1);
  if (curve) {
    s.set(zmq::sockopt::curve_server, 1);
    s.set(zmq::sockopt::curve_secretkey, curve->secretKey);
    s.set(zmq::sockopt::zap_domain, curve->zapDomain);
    // Fail closed: without it libzmq accepts every CURVE client when no ZAP handler answers
    // (ZEROMQ-NOTES.md). A DRAFT option in zmq.h, honoured by the stable library.
    int enforce = 1;
    if (zmq_setsockopt(s.handle(), kZapEnforceDomain, &enforce, sizeof enforce) != 0) throw zmq::error_t();
  }
  s.bind(endpoint);
  return s;
}

zmq::socket_t connectDealer(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits,
                            const CurveClient* curve) {
  zmq::socket_t s = newDealer(ctx, limits, curve);
  s.connect(endpoint);
  return s;
}

zmq::socket_t newDealer(zmq::context_t& ctx, const SocketLimits& limits, const CurveClient* curve) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  applyCommon(s, limits);
  s.set(zmq::sockopt::immediate, 1);
  if (curve) {
    s.set(zmq::sockopt::curve_serverkey, curve->serverKey);
    s.set(zmq::sockopt::curve_publickey, curve->publicKey);
    s.set(zmq::sockopt::curve_secretkey, curve->secretKey);
  }
  return s;
}

std::string_view peerKey(const zmq::message_t& message) {
  const char* key = zmq_msg_gets(message.handle(), "User-Id");
  return key ? std::string_view(key) : std::string_view();
}

std::string boundEndpoint(zmq::socket_t& socket) { return socket.get(zmq::sockopt::last_endpoint); }

bool recvFrames(zmq::socket_t& socket, Frames& frames, size_t maxFrames, bool& truncated) {
  frames.clear();
  truncated = false;
  zmq::message_t part;
  if (!socket.recv(part, zmq::recv_flags::dontwait)) return false;
  for (;;) {
    bool more = part.more();
    if (frames.size() < maxFrames) {
      frames.push_back(std::move(part));
      part = zmq::message_t();
    } else {
      truncated = true;
    }
    if (!more) return true;
    // The rest of a multipart message is already queued: this never blocks.
    (void)socket.recv(part, zmq::recv_flags::none);
  }
}

SendStatus sendFrames(zmq::socket_t& socket, Frames& frames) { return sendFrames(socket, frames.data(), frames.size()); }

SendStatus sendFrames(zmq::socket_t& socket, zmq::message_t* frames, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    auto flags = zmq::send_flags::dontwait;
    if (i + 1 < count) flags = flags | zmq::send_flags::sndmore;
    try {
      if (!socket.send(frames[i], flags)) return SendStatus::WouldBlock;
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH) return SendStatus::Unreachable;
      throw;
    }
  }
  return SendStatus::Ok;
}

Reactor::Reactor(const Clock& clock) : clock_(clock) {}

const Clock& Reactor::steadyClock() {
  static const SteadyClock clock;
  return clock;
}

void Reactor::add(zmq::socket_t& socket, Callback onReadable, Callback onWritable) {
  items_.push_back(zmq::pollitem_t{socket.handle(), 0, ZMQ_POLLIN, 0});
  entries_.push_back(Entry{std::move(onReadable), std::move(onWritable)});
}

void Reactor::addFd(int fd, Callback onReadable) {
  items_.push_back(zmq::pollitem_t{nullptr, fd, ZMQ_POLLIN, 0});
  entries_.push_back(Entry{std::move(onReadable), {}});
}

void Reactor::remove(zmq::socket_t& socket) {
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].socket != socket.handle() || entries_[i].removed) continue;
    entries_[i].removed = true;
    items_[i].events = 0;
    items_[i].socket = nullptr;
    items_[i].fd = -1;  // poll ignores negative descriptors
    needsCompact_ = true;
  }
  if (!dispatching_) compact();
}

void Reactor::wantWritable(zmq::socket_t& socket, bool want) {
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].socket != socket.handle() || entries_[i].removed) continue;
    items_[i].events = static_cast<short>(ZMQ_POLLIN | (want ? ZMQ_POLLOUT : 0));
  }
}

void Reactor::compact() {
  if (!needsCompact_) return;
  size_t out = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (entries_[i].removed) continue;
    if (out != i) {
      items_[out] = items_[i];
      entries_[out] = std::move(entries_[i]);
    }
    ++out;
  }
  items_.resize(out);
  entries_.resize(out);
  needsCompact_ = false;
}

int Reactor::pollOnce(Duration maxWait) {
  // zmq::poll takes milliseconds as a long; beyond a day it is "no timeout" (a timer or a
  // message wakes the loop long before).
  constexpr Duration kLongestPoll{24L * 3600 * 1000};
  TimePoint now = clock_.now();
  TimePoint next = timers_.nextDeadline();
  Duration wait = maxWait < Duration(0) ? kInfinite : maxWait;
  if (next != TimePoint::max()) wait = std::min(wait, next > now ? next - now : Duration(0));
  long ms = wait >= kLongestPoll ? -1 : static_cast<long>(wait.count());
  int ready = 0;
  try {
    ready = zmq::poll(items_.data(), items_.size(), std::chrono::milliseconds(ms));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    ready = 0;
  }
  if (ready > 0) {
    dispatching_ = true;
    size_t count = items_.size();  // handlers may add entries: those wait for the next poll
    for (size_t i = 0; i < count; ++i) {
      short revents = items_[i].revents;
      items_[i].revents = 0;
      if (entries_[i].removed) continue;
      if ((revents & ZMQ_POLLIN) && entries_[i].onReadable) entries_[i].onReadable();
      if ((revents & ZMQ_POLLOUT) && !entries_[i].removed && entries_[i].onWritable) entries_[i].onWritable();
    }
    dispatching_ = false;
    compact();
  }
  timers_.runDue(clock_.now());
  return std::max(ready, 0);
}

}  // namespace flame
