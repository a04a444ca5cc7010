// SendQueue: the broker's outgoing messages of one loop iteration, sent together.
//
// Sending each message the moment the core emits it woke libzmq's I/O thread once per message;
// queueing a batch's messages and sending them in one burst wakes it once per burst (measured
// with flame-bench: about a quarter less CPU per job over all threads, see bench/README.md).
// The price is that a send can fail after the core was told "Ok": flush() reports a runner
// connection found gone, with the jobs its queued messages carried, so the core can requeue
// them (BrokerCore::onUndeliverable); a client message that belongs to such a dispatch (the
// placer's `placed`) is dropped with it, since the job will be placed again. Replies to a
// client that is gone are simply dropped.
//
// Messages are kept as ready-to-send frames ([routing id][""]?[header][payload]?) in one
// reused vector, so a flush hands each frame to libzmq without another copy or move.
// Not thread-safe: the broker's loop thread owns it.
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/job.h"
#include "common/transport.h"

namespace flame {

class SendQueue {
 public:
  // One queued message: `count` frames from `first` in frames(), the routing id first.
  struct Message {
    bool toRunner = false;
    bool dropped = false;  // a runner message behind a failed one to the same connection
    uint8_t count = 0;
    uint32_t first = 0;
    JobId dispatch = 0;  // the job whose dispatch this message is part of (0: none)
  };
  // Sends one message's frames (routing id first); they may be moved from.
  using Send = std::function<SendStatus(const Message&, zmq::message_t* frames)>;
  // A runner connection is gone: `jobs` were dispatched by messages to it that were dropped.
  using Undeliverable = std::function<void(const std::string& peer, const std::vector<JobId>& jobs, SendStatus why)>;

  // Clients get an empty delimiter frame after the routing id (plain REQ sockets work).
  void push(bool toRunner, const std::string& peer, zmq::message_t header, zmq::message_t* payload, JobId dispatch);
  // Sends everything queued, in order, then empties the queue. After a runner message fails,
  // every later message to that connection is dropped and `undeliverable` is told once, with
  // the jobs they dispatched; later client messages of those dispatches are dropped too. What
  // `undeliverable` queues meanwhile is sent in the same flush.
  void flush(const Send& send, const Undeliverable& undeliverable);
  size_t size() const { return messages_.size(); }

 private:
  std::string_view peerOf(const Message& m) const {
    return {static_cast<const char*>(frames_[m.first].data()), frames_[m.first].size()};
  }
  std::vector<Message> messages_;       // reused: capacities stay
  std::vector<zmq::message_t> frames_;
};

}  // namespace flame
