#include "bench/socket_set.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace flame::bench {

SocketSet::SocketSet() : epoll_(epoll_create1(EPOLL_CLOEXEC)) {
  if (epoll_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

SocketSet::~SocketSet() {
  if (epoll_ >= 0) close(epoll_);
}

void SocketSet::add(zmq::socket_t& socket, uint32_t tag) {
  addFd(socket.get(zmq::sockopt::fd), tag);
  // A socket may already hold input whose notification was consumed before we watched it.
  touch(tag);
}

void SocketSet::addFd(int fd, uint32_t tag) {
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: libzmq resets the descriptor when it reads it
  ev.data.u32 = tag;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0)
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
}

size_t SocketSet::wait(std::chrono::milliseconds timeout, std::vector<uint32_t>& ready) {
  ready.clear();
  ready.swap(touched_);
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  int ms = ready.empty() ? static_cast<int>(timeout.count()) : 0;
  int n = epoll_wait(epoll_, events, kMaxEvents, ms);
  for (int i = 0; i < n; ++i) ready.push_back(events[i].data.u32);
  return ready.size();
}

bool SocketSet::drainable(zmq::socket_t& socket) {
  return (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
}

}  // namespace flame::bench
