// A small ZAP handler for tests of CURVE peers (issue 10): a REP socket bound on
// inproc://zeromq.zap.01 in the test's context, on its own thread, answering 200 for a public key
// on its allow-list and 400 for any other. It must exist before a CURVE ROUTER of that context
// binds (flame's ROUTERs enforce the ZAP domain: no handler, no handshake).
//
// ZAP (RFC 27) request frames: version "1.0", request id, domain, address, identity, mechanism
// ("CURVE"), credentials (the client's 32-byte binary public key). Reply frames: "1.0", request
// id, status code "200"/"400", status text, user id (the Z85 key here, as flame's broker sets it),
// metadata (empty).
#pragma once

#include <zmq.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/curve_keys.h"
#include "common/transport.h"

namespace flame::testing {

class FakeZap {
 public:
  // Binds the handler in `context` before returning.
  explicit FakeZap(zmq::context_t& context) {
    std::promise<void> bound;
    auto ready = bound.get_future();
    thread_ = std::thread([this, &context, &bound] { serve(context, bound); });
    ready.get();  // rethrows a failed bind
  }
  ~FakeZap() {
    stop_ = true;
    thread_.join();
  }
  FakeZap(const FakeZap&) = delete;
  FakeZap& operator=(const FakeZap&) = delete;

  // Accepts the Z85 public key `key` from now on (thread-safe).
  void allow(const std::string& key) {
    std::lock_guard lock(mutex_);
    allowed_.insert(key);
  }
  // How many handshakes were checked so far (thread-safe).
  int requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // Waits until at least `count` handshakes were checked, at most `bound`.
  bool awaitRequests(int count, std::chrono::milliseconds bound) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, bound, [&] { return requests_ >= count; });
  }

 private:
  void serve(zmq::context_t& context, std::promise<void>& bound) {
    zmq::socket_t rep;
    try {
      rep = zmq::socket_t(context, zmq::socket_type::rep);
      rep.set(zmq::sockopt::linger, 0);
      rep.bind("inproc://zeromq.zap.01");
    } catch (...) {
      bound.set_exception(std::current_exception());
      return;
    }
    bound.set_value();
    while (!stop_) {
      zmq::pollitem_t item{rep.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));  // a bound for noticing stop_
      Frames request;
      bool truncated = false;
      if (!recvFrames(rep, request, 8, truncated)) continue;
      answer(rep, request);
    }
  }

  void answer(zmq::socket_t& rep, Frames& request) {
    std::string key;
    if (request.size() >= 7 && request[6].size() == 32) {
      std::array<char, kZ85KeyLength + 1> z85{};
      zmq_z85_encode(z85.data(), static_cast<const uint8_t*>(request[6].data()), 32);
      key.assign(z85.data(), kZ85KeyLength);
    }
    bool ok;
    {
      std::lock_guard lock(mutex_);
      ok = !key.empty() && allowed_.count(key) > 0;
      ++requests_;
    }
    Frames reply;
    reply.emplace_back("1.0", 3);
    if (request.size() > 1)
      reply.emplace_back(request[1].data(), request[1].size());
    else
      reply.emplace_back();
    reply.emplace_back(ok ? "200" : "400", 3);
    std::string text = ok ? "OK" : "key not allowed";
    reply.emplace_back(text.data(), text.size());
    if (ok)
      reply.emplace_back(key.data(), key.size());
    else
      reply.emplace_back();
    reply.emplace_back();
    (void)sendFrames(rep, reply);
    changed_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::string> allowed_;
  int requests_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace flame::testing
