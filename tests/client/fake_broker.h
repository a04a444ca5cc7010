// A fake broker for client tests: a ROUTER on a loopback wildcard port, driven by the test
// thread. It decodes what clients send and answers only what the test tells it to (plus,
// optionally, heartbeats). Every wait is bounded; nothing sleeps.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/codec.h"
#include "common/curve_keys.h"
#include "common/fake_zap.h"
#include "common/transport.h"

namespace flame::testing {

// One message from a client, with the routing id needed to answer it.
struct Received {
  std::string peer;
  Message message;
  std::optional<std::string> payload;  // the frame after the header, if any
  std::string key;                     // the ZAP-authenticated key (CURVE), else empty
};

// A CURVE broker endpoint: its key pair; the ZAP handler accepts the keys given to allow().
struct CurveBrokerSetup {
  CurveKeyPair keys = generateCurveKeyPair();
};

class FakeBroker {
 public:
  static constexpr Duration kWait{5000};  // failure bound of every wait

  // Binds `endpoint` (a loopback wildcard port by default).
  explicit FakeBroker(const std::string& endpoint = "tcp://127.0.0.1:*")
      : router_(bindRouter(context_, endpoint)), endpoint_(boundEndpoint(router_)) {
    reactor_.add(router_, [] {});
  }
  // A CURVE broker (issue 10): its ZAP handler is bound first and accepts no key until allow().
  explicit FakeBroker(const CurveBrokerSetup& curve)
      : zap_(std::make_unique<FakeZap>(context_)),
        curveServer_{curve.keys.secretKey, "clients"},
        router_(bindRouter(context_, "tcp://127.0.0.1:*", {}, &curveServer_)),
        endpoint_(boundEndpoint(router_)) {
    reactor_.add(router_, [] {});
  }

  const std::string& endpoint() const { return endpoint_; }
  // The ZAP handler of a CURVE broker (nullptr otherwise).
  FakeZap* zap() { return zap_.get(); }

  // Answer each client heartbeat with a heartbeat carrying `intervalMs` (0: do not answer).
  uint32_t heartbeatReplyMs = 0;
  uint64_t instance = 7;  // the broker run id those answers carry
  uint64_t maxPayloadBytes = 0;  // the payload limit those answers carry (0: none said)
  int heartbeatsSeen = 0;

  // The next message that is not a heartbeat (heartbeats are counted and maybe answered), or
  // nullopt if none arrives within `wait`.
  std::optional<Received> next(Duration wait = kWait) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      auto got = nextAny(deadline);
      if (!got) return std::nullopt;
      if (!std::holds_alternative<msg::Heartbeat>(got->message)) return got;
    }
  }

  // The next message of type T (others that are not heartbeats fail the wait: nullopt).
  template <class T>
  std::optional<std::pair<Received, T>> expect(Duration wait = kWait) {
    auto got = next(wait);
    if (!got || !std::holds_alternative<T>(got->message)) return std::nullopt;
    T message = std::get<T>(got->message);
    return std::make_pair(std::move(*got), std::move(message));
  }

  // Waits until `count` more heartbeats have arrived; other messages are kept for next().
  bool awaitHeartbeats(int count, Duration wait = kWait) {
    int target = heartbeatsSeen + count;
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (heartbeatsSeen < target) {
      auto got = nextAny(deadline);
      if (!got) return false;
      if (!std::holds_alternative<msg::Heartbeat>(got->message)) held_.push_back(std::move(*got));
    }
    return true;
  }

  // Sends [peer][""][encode(message)][payload?].
  void send(const std::string& peer, const Message& message,
            std::optional<std::string> payload = std::nullopt) {
    Frames frames;
    frames.emplace_back(peer.data(), peer.size());
    frames.emplace_back();
    frames.push_back(encodeMessage(message));
    if (payload) frames.emplace_back(payload->data(), payload->size());
    sendRaw(frames);
  }

  // Sends frames as they are (frames[0] must be the routing id).
  void sendRaw(Frames& frames) { sendFrames(router_, frames); }

 private:
  std::optional<Received> nextAny(std::chrono::steady_clock::time_point deadline) {
    if (!held_.empty()) {
      Received r = std::move(held_.front());
      held_.erase(held_.begin());
      return r;
    }
    for (;;) {
      Frames frames;
      bool truncated = false;
      while (recvFrames(router_, frames, 4, truncated)) {
        if (frames.size() < 3 || frames[1].size() != 0) continue;  // not a client message
        auto decoded = decode(frames[2]);
        if (!decoded.ok()) continue;
        Received r{frames[0].to_string(), std::move(*decoded.message), std::nullopt, std::string(peerKey(frames[2]))};
        if (frames.size() > 3) r.payload = frames[3].to_string();
        if (std::holds_alternative<msg::Heartbeat>(r.message)) {
          ++heartbeatsSeen;
          if (heartbeatReplyMs != 0)
            send(r.peer, msg::Heartbeat{0, heartbeatReplyMs, instance, maxPayloadBytes});
        }
        return r;
      }
      auto left = std::chrono::duration_cast<Duration>(deadline - std::chrono::steady_clock::now());
      if (left <= Duration(0)) return std::nullopt;
      reactor_.pollOnce(left);
    }
  }

  zmq::context_t context_;
  std::unique_ptr<FakeZap> zap_;  // before router_: bound before a CURVE router binds
  CurveServer curveServer_;
  zmq::socket_t router_;
  std::string endpoint_;
  Reactor reactor_;
  std::vector<Received> held_;
};

// An endpoint where nothing listens: bound once to get a free port, then closed.
inline std::string deadEndpoint() {
  zmq::context_t context;
  auto router = bindRouter(context, "tcp://127.0.0.1:*");
  return boundEndpoint(router);
}

}  // namespace flame::testing
