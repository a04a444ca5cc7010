// The broker's ZAP handler (ZeroMQ RFC 27): libzmq asks it about every CURVE handshake on the
// broker's endpoints, and it answers from the KeyRing. It is bound on inproc://zeromq.zap.01
// before the endpoints are (Broker does that), and served on the broker's one loop, so the
// minted keys the scaler adds are seen by the next handshake without a lock. It fails closed:
// anything but a well-formed CURVE request for one of flame's two domains with an allowed key
// is refused, and the endpoints set ZAP_ENFORCE_DOMAIN so a handshake with no handler to ask is
// refused too. Accepted keys become the connection's User-Id (transport.h, peerKey()).
#pragma once

#include <zmq.hpp>

#include <string>
#include <unordered_map>

#include "broker/key_ring.h"
#include "common/clock.h"
#include "common/transport.h"

namespace flame {

class ZapHandler {
 public:
  // Binds inproc://zeromq.zap.01 in `ctx` (throws zmq::error_t if another handler has it).
  ZapHandler(zmq::context_t& ctx, KeyRing& keys, const Clock& clock);

  zmq::socket_t& socket() { return socket_; }
  // Answers every request waiting on the socket (the Reactor calls it when readable).
  void onReadable();

  // One request, decoded from its frames (after the routing id and delimiter): the reply's
  // status code ("200" or "400"/"500"), status text and user id. Public for tests.
  struct Answer {
    std::string status, text, userId;
  };
  Answer answer(const Frames& request);

  uint64_t refused() const { return refused_; }

 private:
  // A refused key is logged once per key per minute (a misconfigured client retries forever).
  void logRefusal(const std::string& key, const std::string& domain, const std::string& address,
                  const KeyRing::Verdict& verdict);

  KeyRing& keys_;
  const Clock& clock_;
  zmq::socket_t socket_;
  Frames frames_;
  std::unordered_map<std::string, TimePoint> lastLogged_;
  uint64_t refused_ = 0;
};

}  // namespace flame
