// The one boundary where untrusted bytes become messages, and messages become bytes.
// decode() never throws and never crashes on any input: it returns either a message or a
// clear error (with the request id when it could be read, so the peer can be answered).
#pragma once

#include <zmq.hpp>

#include <cstddef>
#include <optional>
#include <string>

#include "common/messages.h"

namespace flame {

struct DecodeLimits {
  // Largest header frame accepted. Headers are small (names, ids); payloads travel apart.
  size_t maxHeaderBytes = 64 * 1024;
  // Cap'n Proto nesting limit (the default is 64; our schema nests 4 deep).
  int nestingLimit = 16;
};

struct DecodeResult {
  std::optional<Message> message;  // set on success
  ErrorCode code = ErrorCode::None;
  std::string error;               // human-readable reason on failure
  uint64_t requestId = 0;          // best effort, 0 when unknown
  bool ok() const { return message.has_value(); }
};

// Decodes one header frame. Thread-safe; copies unaligned input to an aligned buffer.
DecodeResult decode(const void* data, size_t size, const DecodeLimits& limits = {});
inline DecodeResult decode(const zmq::message_t& frame, const DecodeLimits& limits = {}) {
  return decode(frame.data(), frame.size(), limits);
}

// Encodes one message as a header frame (an Envelope with kProtocolVersion). Thread-safe.
template <class T>
zmq::message_t encode(const T& message);
zmq::message_t encodeMessage(const Message& message);

// Same, with an explicit version (tests and compatibility probes only).
zmq::message_t encodeWithVersion(const Message& message, uint16_t version);

}  // namespace flame
