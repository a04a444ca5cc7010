#include "broker/inbound.h"

namespace flame {

void deliverFromClient(BrokerCore& core, const DecodeLimits& limits, Frames& frames, bool truncated,
                       bool authenticated) {
  const std::string client = frames[0].to_string();
  if (frames.size() < 3 || frames[1].size() != 0) {
    core.onClientInvalid(client, ErrorCode::BadRequest, "expected [empty delimiter][header][payload?] frames", 0);
    return;
  }
  auto d = decode(frames[2], limits);
  if (truncated) {
    core.onClientInvalid(client, ErrorCode::BadRequest, "too many frames (at most 3: delimiter, header, payload)",
                         d.requestId);
    return;
  }
  if (!d.ok()) {
    core.onClientInvalid(client, d.code, d.error, d.requestId);
    return;
  }
  zmq::message_t payload;
  if (frames.size() == 4) payload = std::move(frames[3]);
  std::string_view key = authenticated ? peerKey(frames[2]) : std::string_view();
  core.onClient(client, std::move(*d.message), std::move(payload), key);
}

void deliverFromRunner(BrokerCore& core, const DecodeLimits& limits, Frames& frames, bool truncated,
                       bool authenticated) {
  const std::string peer = frames[0].to_string();
  if (frames.size() < 2) {
    core.onRunnerInvalid(peer, ErrorCode::BadRequest, "expected [header][payload?] frames");
    return;
  }
  if (truncated) {
    core.onRunnerInvalid(peer, ErrorCode::BadRequest, "too many frames (at most 2: header, payload)");
    return;
  }
  auto d = decode(frames[1], limits);
  if (!d.ok()) {
    core.onRunnerInvalid(peer, d.code, d.error);
    return;
  }
  zmq::message_t payload;
  if (frames.size() == 3) payload = std::move(frames[2]);
  std::string_view key = authenticated ? peerKey(frames[1]) : std::string_view();
  core.onRunner(peer, std::move(*d.message), std::move(payload), key);
}

}  // namespace flame
