#include "broker/zap.h"

#include "common/log.h"

namespace flame {

namespace {
constexpr Duration kLogEvery{60'000};
constexpr size_t kMaxLogged = 4096;  // distinct refused keys remembered for the log's pacing
// [routing id][empty][version][request id][domain][address][identity][mechanism][credentials]
constexpr size_t kRequestFrames = 9;
}  // namespace

ZapHandler::ZapHandler(zmq::context_t& ctx, KeyRing& keys, const Clock& clock)
    : keys_(keys), clock_(clock), socket_(ctx, zmq::socket_type::router) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
}

void ZapHandler::onReadable() {
  bool truncated = false;
  while (recvFrames(socket_, frames_, kRequestFrames + 1, truncated)) {
    if (frames_.size() < 2 || frames_[1].size() != 0) continue;  // not a ZAP envelope: libzmq never sends one
    Frames request;
    for (size_t i = 2; i < frames_.size(); ++i) request.push_back(std::move(frames_[i]));
    if (truncated) request.clear();  // refused below as malformed
    Answer a = answer(request);
    Frames reply;
    reply.emplace_back(std::move(frames_[0]));
    reply.emplace_back();
    reply.emplace_back("1.0", 3);
    reply.emplace_back(request.size() > 1 ? request[1].data() : nullptr, request.size() > 1 ? request[1].size() : 0);
    reply.emplace_back(a.status.data(), a.status.size());
    reply.emplace_back(a.text.data(), a.text.size());
    reply.emplace_back(a.userId.data(), a.userId.size());
    reply.emplace_back();  // metadata: none
    (void)sendFrames(socket_, reply);
  }
}

ZapHandler::Answer ZapHandler::answer(const Frames& request) {
  // [version][request id][domain][address][identity][mechanism][credentials]
  if (request.size() != 7 || request[0].to_string_view() != "1.0") {
    ++refused_;
    logger("security")->warn("refused a handshake: malformed ZAP request");
    return {"500", "malformed ZAP request", ""};
  }
  std::string domain = request[2].to_string();
  std::string address = request[3].to_string();
  KeyRing::Domain which;
  if (domain == kClientsZapDomain) {
    which = KeyRing::Domain::Clients;
  } else if (domain == kRunnersZapDomain) {
    which = KeyRing::Domain::Runners;
  } else {
    ++refused_;
    logger("security")->warn("refused a handshake from {}: unknown ZAP domain '{}'", address, domain);
    return {"400", "unknown domain", ""};
  }
  if (request[5].to_string_view() != "CURVE" || request[6].size() != 32) {
    ++refused_;
    logger("security")->warn("refused a handshake from {} on {}: mechanism {} (CURVE is required)", address, domain,
                             request[5].to_string());
    return {"400", "CURVE required", ""};
  }
  char z85[41] = {};
  zmq_z85_encode(z85, static_cast<const uint8_t*>(request[6].data()), 32);
  std::string key(z85, 40);
  KeyRing::Verdict verdict = keys_.check(which, key, clock_.now());
  if (verdict.allowed) {
    logger("security")->debug("{} handshake from {}: key {} ({})", domain, address, keyFingerprint(key), verdict.name);
    return {"200", "OK", key};
  }
  ++refused_;
  logRefusal(key, domain, address, verdict);
  return {"400", "key not allowed", ""};
}

void ZapHandler::logRefusal(const std::string& key, const std::string& domain, const std::string& address,
                            const KeyRing::Verdict& verdict) {
  TimePoint now = clock_.now();
  auto it = lastLogged_.find(key);
  if (it != lastLogged_.end() && now - it->second < kLogEvery) return;
  if (lastLogged_.size() >= kMaxLogged) std::erase_if(lastLogged_, [&](auto& e) { return now - e.second >= kLogEvery; });
  if (lastLogged_.size() >= kMaxLogged) lastLogged_.clear();  // a flood of keys: pace by time alone
  lastLogged_[key] = now;
  std::string who = verdict.name.empty() ? "key " + keyFingerprint(key) : "key " + keyFingerprint(key) + " '" + verdict.name + "'";
  logger("security")->warn("refused a {} handshake from {}: {} is {} (logged once a minute per key)", domain, address,
                           who, verdict.why);
}

}  // namespace flame
