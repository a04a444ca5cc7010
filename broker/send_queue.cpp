#include "broker/send_queue.h"

#include <algorithm>

namespace flame {

void SendQueue::push(bool toRunner, const std::string& peer, zmq::message_t header, zmq::message_t* payload,
                     JobId dispatch) {
  Message& m = messages_.emplace_back();
  m.toRunner = toRunner;
  m.dispatch = dispatch;
  m.first = static_cast<uint32_t>(frames_.size());
  frames_.emplace_back(peer.data(), peer.size());
  if (!toRunner) frames_.emplace_back();
  frames_.push_back(std::move(header));
  if (payload) frames_.push_back(std::move(*payload));
  m.count = static_cast<uint8_t>(frames_.size() - m.first);
}

void SendQueue::flush(const Send& send, const Undeliverable& undeliverable) {
  // Index loops with no reference kept across a callback: undeliverable() may push.
  for (size_t i = 0; i < messages_.size(); ++i) {
    if (messages_[i].dropped) continue;
    const Message m = messages_[i];
    SendStatus status = send(m, &frames_[m.first]);
    if (status == SendStatus::Ok || !m.toRunner) continue;
    const std::string peer(peerOf(m));
    std::vector<JobId> jobs;
    for (size_t k = i; k < messages_.size(); ++k) {
      Message& later = messages_[k];
      if (!later.toRunner || later.dropped || peerOf(later) != peer) continue;
      later.dropped = true;
      if (later.dispatch != 0) jobs.push_back(later.dispatch);
    }
    // The placer's `placed` for a dispatch that did not arrive: the job will be placed again.
    for (size_t k = i + 1; k < messages_.size() && !jobs.empty(); ++k) {
      Message& later = messages_[k];
      if (!later.toRunner && later.dispatch != 0 && std::find(jobs.begin(), jobs.end(), later.dispatch) != jobs.end())
        later.dropped = true;
    }
    undeliverable(peer, jobs, status);
  }
  messages_.clear();
  frames_.clear();
}

}  // namespace flame
