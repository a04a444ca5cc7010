#include "common/transport.h"

namespace flame {

namespace {
void applyCommon(zmq::socket_t& s, const SocketLimits& limits) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, limits.maxFrameBytes);
  s.set(zmq::sockopt::sndhwm, limits.sendHwm);
  s.set(zmq::sockopt::rcvhwm, limits.recvHwm);
  s.set(zmq::sockopt::ipv6, 1);
}
}  // namespace

zmq::socket_t bindRouter(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits) {
  zmq::socket_t s(ctx, zmq::socket_type::router);
  applyCommon(s, limits);
  s.set(zmq::sockopt::router_mandatory, 1);
  s.bind(endpoint);
  return s;
}

zmq::socket_t connectDealer(zmq::context_t& ctx, const std::string& endpoint, const SocketLimits& limits) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  applyCommon(s, limits);
  s.set(zmq::sockopt::immediate, 1);
  s.connect(endpoint);
  return s;
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

void Reactor::add(zmq::socket_t& socket, Handler onReadable) {
  items_.push_back(zmq::pollitem_t{socket.handle(), 0, ZMQ_POLLIN, 0});
  handlers_.push_back(std::move(onReadable));
}

void Reactor::addFd(int fd, Handler onReadable) {
  items_.push_back(zmq::pollitem_t{nullptr, fd, ZMQ_POLLIN, 0});
  handlers_.push_back(std::move(onReadable));
}

int Reactor::pollOnce(Duration timeout) {
  long ms = (timeout.count() < 0 || timeout >= Duration(24L * 3600 * 1000)) ? -1 : static_cast<long>(timeout.count());
  int ready = 0;
  try {
    ready = zmq::poll(items_.data(), items_.size(), std::chrono::milliseconds(ms));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    throw;
  }
  if (ready <= 0) return 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (items_[i].revents & ZMQ_POLLIN) handlers_[i]();
  }
  return ready;
}

}  // namespace flame
