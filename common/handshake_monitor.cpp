#include "common/handshake_monitor.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/curve_keys.h"

namespace flame {

namespace {

// How many handshakes in a row cut without detail make a refusal (see the header): a wrong
// server key does it on every attempt; a mechanism mismatch about every other attempt (a race);
// one alone may be a broker that went away in the middle of a handshake.
constexpr int kSilentFailuresCurve = 2;
constexpr int kSilentFailuresPlaintext = 3;

constexpr int kWatchedEvents = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

// Each monitor binds its own inproc endpoint; contexts may be shared by many peers, so the
// names are unique in the process.
std::string nextMonitorEndpoint() {
  static std::atomic<uint64_t> counter{0};
  return "inproc://flame-handshake-monitor-" + std::to_string(counter.fetch_add(1));
}

std::string hex(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

}  // namespace

std::optional<CurveClient> curveClientFor(std::string_view owner, const std::string& serverKey,
                                          const std::string& secretKey) {
  if (serverKey.empty() && secretKey.empty()) return std::nullopt;
  const std::string name(owner);
  if (serverKey.empty() || secretKey.empty())
    throw std::invalid_argument(name + ": serverKey and secretKey go together (CURVE), or both stay empty "
                                "(plaintext); only " + (serverKey.empty() ? "secretKey" : "serverKey") + " is set");
  if (!isZ85Key(serverKey))
    throw std::invalid_argument(name + ": serverKey '" + serverKey.substr(0, 60) +
                                "' is not a Z85 public key (40 characters, as in the broker's NAME.pub)");
  if (!isZ85Key(secretKey))
    throw std::invalid_argument(name + ": secretKey is not a Z85 secret key (40 characters, as in a NAME.key)");
  return CurveClient{serverKey, publicKeyOf(secretKey), secretKey};
}

HandshakeVerdicts::HandshakeVerdicts(bool curve, std::string who, std::string publicKey)
    : curve_(curve), who_(std::move(who)), publicKey_(std::move(publicKey)) {}

HandshakeVerdicts::Verdict HandshakeVerdicts::onEvent(const HandshakeEvent& event) {
  const std::string key = curve_ ? "this " + who_ + "'s key " + keyFingerprint(publicKey_) : "this " + who_;
  switch (event.kind) {
    case HandshakeEventKind::Succeeded:
      silentFailures_ = 0;
      return Verdict::Succeeded;
    case HandshakeEventKind::FailedAuth:
      why_ = "the broker refused " + key + " (ZAP status " + std::to_string(event.value) +
             "): is its public key on the broker's allow-list?";
      return Verdict::Refused;
    case HandshakeEventKind::FailedProtocol:
      if (event.value != ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        why_ = "the handshake with the broker failed (ZeroMQ protocol error " + hex(event.value) + ")";
      else if (curve_)
        why_ = "the broker does not use CURVE on this endpoint, but this " + who_ +
               " was given a server key (security mechanism mismatch)";
      else
        why_ = "the broker requires CURVE on this endpoint: give this " + who_ +
               " the broker's public key and a key pair (--server-key and --key-file, or FLAME_SERVER_KEY "
               "and FLAME_KEY_FILE)";
      return Verdict::Refused;
    case HandshakeEventKind::FailedNoDetail:
      if (++silentFailures_ < (curve_ ? kSilentFailuresCurve : kSilentFailuresPlaintext)) return Verdict::None;
      if (curve_)
        why_ = "the broker closed the connection during the CURVE handshake " + std::to_string(silentFailures_) +
               " times in a row: is the server key the broker's public key, and does the broker use CURVE on this "
               "endpoint? (" + key + ")";
      else
        why_ = "the broker closed the connection during the handshake " + std::to_string(silentFailures_) +
               " times in a row: does it require CURVE on this endpoint? (then give this " + who_ +
               " the broker's public key and a key pair: --server-key and --key-file, or FLAME_SERVER_KEY and "
               "FLAME_KEY_FILE)";
      return Verdict::Refused;
  }
  return Verdict::None;
}

HandshakeMonitor::HandshakeMonitor(zmq::context_t& context, zmq::socket_t& socket, HandshakeVerdicts verdicts,
                                   Callbacks callbacks)
    : monitored_(socket), verdicts_(std::move(verdicts)), callbacks_(std::move(callbacks)) {
  std::string endpoint = nextMonitorEndpoint();
  if (zmq_socket_monitor(monitored_.handle(), endpoint.c_str(), kWatchedEvents) != 0) throw zmq::error_t();
  try {
    pair_ = zmq::socket_t(context, zmq::socket_type::pair);
    pair_.set(zmq::sockopt::linger, 0);
    pair_.connect(endpoint);
  } catch (...) {
    zmq_socket_monitor(monitored_.handle(), nullptr, 0);
    throw;
  }
}

HandshakeMonitor::~HandshakeMonitor() {
  *alive_ = false;
  if (reactor_) reactor_->remove(pair_);
  // Stopping first closes libzmq's end of the pair, so no event is left half written.
  zmq_socket_monitor(monitored_.handle(), nullptr, 0);
  pair_.close();
}

void HandshakeMonitor::watch(Reactor& reactor) {
  reactor_ = &reactor;
  reactor.add(pair_, [this] { poll(); });
}

void HandshakeMonitor::poll() {
  // Read everything first: a callback may destroy this monitor (and its socket).
  std::vector<HandshakeEvent> events;
  for (;;) {
    zmq::message_t head, address;
    if (!pair_.recv(head, zmq::recv_flags::dontwait)) break;
    // Frame 1: uint16 event, uint32 value (host order); frame 2: the endpoint. Both always sent.
    if (head.more()) (void)pair_.recv(address, zmq::recv_flags::none);
    if (head.size() < 6) continue;
    uint16_t id = 0;
    uint32_t value = 0;
    std::memcpy(&id, head.data(), sizeof id);
    std::memcpy(&value, static_cast<const char*>(head.data()) + 2, sizeof value);
    switch (id) {
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        events.push_back({HandshakeEventKind::Succeeded, value});
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        events.push_back({HandshakeEventKind::FailedNoDetail, value});
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        events.push_back({HandshakeEventKind::FailedProtocol, value});
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        events.push_back({HandshakeEventKind::FailedAuth, value});
        break;
      default:
        break;  // MONITOR_STOPPED and anything not asked for
    }
  }
  std::shared_ptr<bool> alive = alive_;
  for (const auto& event : events) {
    // Callbacks run from copies: one that destroys the monitor must not destroy itself mid-call.
    switch (verdicts_.onEvent(event)) {
      case HandshakeVerdicts::Verdict::Succeeded:
        if (auto succeeded = callbacks_.succeeded) succeeded();
        break;
      case HandshakeVerdicts::Verdict::Refused:
        if (auto refused = callbacks_.refused) refused(std::string(verdicts_.why()));
        break;
      case HandshakeVerdicts::Verdict::None:
        break;
    }
    if (!*alive) return;
  }
}

}  // namespace flame
