// Typed Cap'n Proto payloads: build a request struct into payload bytes, and turn result bytes
// into an owned, validated message. The bytes are the standard Cap'n Proto framing (segment
// table + segments, unpacked), so a runner in any language can read and write them.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "client/outcome.h"
#include "common/function.h"

namespace flame {

// Serialises the T that `build` fills in as payload bytes.
template <class T>
std::string toBytes(const std::function<void(typename T::Builder)>& build) {
  capnp::MallocMessageBuilder message;
  build(message.initRoot<T>());
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Parses untrusted bytes as a T (common/function.h, decodeCapnp: aligned copy, traversal and
// nesting limits, deep copy). Failure: {BadRequest, "bad result: <why>"}.
template <class T>
Outcome<Typed<T>> fromBytes(std::string_view bytes) {
  auto decoded = decodeCapnp<T>(bytes);
  if (!decoded.value) return Failure{ErrorCode::BadRequest, "bad result: " + decoded.error};
  return std::move(*decoded.value);
}

}  // namespace flame
