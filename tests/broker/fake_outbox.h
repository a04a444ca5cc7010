// An Outbox that records what BrokerCore sends, decoded, so tests can assert on it; and a
// small driver that speaks for clients and runners. No sockets.
#pragma once

#include <deque>
#include <set>
#include <string>
#include <vector>

#include "broker/broker_core.h"
#include "common/codec.h"

namespace flame::test {

struct Sent {
  bool toClient = false;
  std::string peer;
  Message message;
  std::string payload;
  bool hasPayload = false;
};

class RecordingOutbox final : public Outbox {
 public:
  SendStatus toClient(const std::string& client, zmq::message_t header, zmq::message_t* payload, JobId) override {
    return record(true, client, header, payload);
  }
  SendStatus toRunner(const std::string& routingId, zmq::message_t header, zmq::message_t* payload,
                      JobId) override {
    return record(false, routingId, header, payload);
  }
  std::deque<Sent> sent;
  std::set<std::string> unreachable;

  // Removes and returns everything sent to `peer` so far.
  std::vector<Sent> take(const std::string& peer) {
    std::vector<Sent> out;
    for (auto it = sent.begin(); it != sent.end();) {
      if (it->peer == peer) {
        out.push_back(std::move(*it));
        it = sent.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }
  // Messages of type M sent to `peer` (removing them).
  template <class M>
  std::vector<M> takeOf(const std::string& peer) {
    std::vector<M> out;
    for (auto it = sent.begin(); it != sent.end();) {
      if (it->peer == peer && std::holds_alternative<M>(it->message)) {
        out.push_back(std::get<M>(it->message));
        it = sent.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

 private:
  SendStatus record(bool client, const std::string& peer, zmq::message_t& header, zmq::message_t* payload) {
    if (unreachable.count(peer)) return SendStatus::Unreachable;
    auto d = decode(header);
    if (!d.ok()) throw std::runtime_error("core sent an undecodable message: " + d.error);
    Sent s{client, peer, std::move(*d.message), {}, payload != nullptr};
    if (payload) {
      s.payload = payload->to_string();
      *payload = zmq::message_t();  // consumed, as a real send would
    }
    sent.push_back(std::move(s));
    return SendStatus::Ok;
  }
};

// Drives a BrokerCore as clients and runners would.
struct Harness {
  explicit Harness(BrokerOptions o = defaults()) : options(o), core(o, clock, outbox) {}
  static BrokerOptions defaults() {
    BrokerOptions o;
    o.heartbeatInterval = Duration(1000);
    o.liveness = 3;
    o.defaultTimeout = Duration(30000);
    return o;
  }
  ManualClock clock;
  RecordingOutbox outbox;
  BrokerOptions options;
  BrokerCore core;

  // The secret runner `id` registers with (as flame::Runner, every runner sends one).
  static std::string token(const std::string& id) { return "secret-of-" + id; }
  // Registers runner `id` on connection "conn-<id>" and drains its welcome.
  std::string ready(const std::string& id, const std::string& pool, uint32_t slots,
                    std::vector<std::string> functions = {"echo"}, uint32_t busy = 0) {
    std::string conn = "conn-" + id;
    core.onRunner(conn, msg::Ready{id, pool, slots, std::move(functions), token(id), busy, 0, "host"}, {});
    return conn;
  }
  void submit(const std::string& client, uint64_t requestId, const std::string& pool, const std::string& function,
              const std::string& payload = "", Mode mode = Mode::Call, uint32_t timeoutMs = 0, bool link = false,
              bool idempotent = false, uint8_t retries = 0) {
    msg::Submit s;
    s.requestId = requestId;
    s.mode = mode;
    s.pool = pool;
    s.function = function;
    s.timeoutMs = timeoutMs;
    s.link = link;
    s.idempotent = idempotent;
    s.retries = retries;
    core.onClient(client, s, zmq::message_t(payload.data(), payload.size()));
  }
  void done(const std::string& conn, JobId job, const std::string& result = "",
            ErrorCode code = ErrorCode::None, const std::string& message = "") {
    core.onRunner(conn, msg::JobDone{job, code, message}, zmq::message_t(result.data(), result.size()));
  }
  std::vector<msg::Job> jobsFor(const std::string& conn) { return outbox.takeOf<msg::Job>(conn); }
  // The payloads of the jobs sent to `conn`, in order (removing everything sent to it).
  std::vector<std::string> jobPayloadsFor(const std::string& conn) {
    std::vector<std::string> payloads;
    for (auto& s : outbox.take(conn))
      if (std::holds_alternative<msg::Job>(s.message)) payloads.push_back(s.payload);
    return payloads;
  }
  // Advances the clock and runs the core's timers, in steps (as the socket loop would).
  void advance(Duration d, Duration step = Duration(100)) {
    for (Duration t{0}; t < d; t += step) {
      clock.advance(std::min(step, d - t));
      core.tick();
    }
  }
  // Keeps runners alive by having them heartbeat while time passes.
  void heartbeat(const std::string& conn) { core.onRunner(conn, msg::Heartbeat{}, {}); }
};

}  // namespace flame::test
