#include "broker/send_queue.h"

namespace flame {

void SendQueue::push(bool toRunner, const std::string& peer, zmq::message_t header, zmq::message_t* payload,
                     JobId job) {
  Outgoing& m = queue_.emplace_back();
  m.toRunner = toRunner;
  m.job = job;
  m.peer = peer;
  m.header = std::move(header);
  if (payload) {
    m.hasPayload = true;
    m.payload = std::move(*payload);
  }
}

void SendQueue::flush(const Send& send, const Undeliverable& undeliverable) {
  // An index loop with no reference kept across the callback: undeliverable() may push.
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (queue_[i].dropped) continue;
    SendStatus status = send(queue_[i]);
    if (status == SendStatus::Ok || !queue_[i].toRunner) continue;
    const std::string peer = queue_[i].peer;
    std::vector<JobId> jobs;
    for (size_t k = i; k < queue_.size(); ++k) {
      Outgoing& m = queue_[k];
      if (!m.toRunner || m.dropped || m.peer != peer) continue;
      m.dropped = true;
      if (m.job != 0) jobs.push_back(m.job);
    }
    undeliverable(peer, jobs, status);
  }
  queue_.clear();
}

}  // namespace flame
