// SocketSet: waits on many ZeroMQ sockets at once in O(ready) with epoll on their ZMQ_FD
// notification descriptors, where zmq::poll costs O(sockets) per call (1000 runner sockets
// in one thread would make the load generator, not the broker, the bottleneck).
//
// The ZMQ_FD contract (libzmq): the descriptor only says "the socket's state may have changed".
// After it fires, and after ANY send on a socket, the owner must drain that socket with
// non-blocking receives until EAGAIN and then confirm with ZMQ_EVENTS, or a message can sit
// unnoticed. drainable() implements the confirmation; callers loop "recv until empty, then
// while (drainable(s))". A socket sent to outside that loop must be passed to touch().
//
// Not thread-safe: one thread owns the set and its sockets.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

namespace flame::bench {

class SocketSet {
 public:
  SocketSet();
  ~SocketSet();
  SocketSet(const SocketSet&) = delete;
  SocketSet& operator=(const SocketSet&) = delete;

  // Watches `socket` (which must outlive the set); `tag` comes back from wait().
  void add(zmq::socket_t& socket, uint32_t tag);
  // Also wakes wait() when `fd` (an eventfd, say) is readable; reported with `tag`.
  void addFd(int fd, uint32_t tag);

  // Marks a socket as needing service on the next wait() (after a send outside its service).
  void touch(uint32_t tag) { touched_.push_back(tag); }

  // Appends the tags that may be readable to `ready` (cleared first), waiting up to `timeout`
  // if none is (0 = do not wait). Returns ready.size(). EINTR counts as nothing ready.
  size_t wait(std::chrono::milliseconds timeout, std::vector<uint32_t>& ready);

  // True when `socket` has a message waiting (ZMQ_EVENTS & POLLIN).
  static bool drainable(zmq::socket_t& socket);

 private:
  int epoll_ = -1;
  std::vector<uint32_t> touched_;
};

}  // namespace flame::bench
