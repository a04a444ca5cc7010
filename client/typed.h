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

namespace flame {

// An owned Cap'n Proto message whose root is a T. get() never throws: the bytes were fully
// traversed and copied when the message was made. Movable; readers stay valid while it lives.
template <class T>
class Typed {
 public:
  explicit Typed(std::unique_ptr<capnp::MallocMessageBuilder> message)
      : message_(std::move(message)) {}

  typename T::Reader get() const { return message_->getRoot<T>().asReader(); }

 private:
  std::unique_ptr<capnp::MallocMessageBuilder> message_;
};

// Serialises the T that `build` fills in as payload bytes.
template <class T>
std::string toBytes(const std::function<void(typename T::Builder)>& build) {
  capnp::MallocMessageBuilder message;
  build(message.initRoot<T>());
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Parses untrusted bytes as a T: copies them to an aligned buffer, reads with traversal and
// nesting limits, and deep-copies into an owned message, so every bounds check happens here.
// Failure: {BadRequest, "bad result: <why>"}.
template <class T>
Outcome<Typed<T>> fromBytes(std::string_view bytes) {
  constexpr size_t kWord = sizeof(capnp::word);
  if (bytes.empty()) return Failure{ErrorCode::BadRequest, "bad result: empty message"};
  if (bytes.size() % kWord != 0)
    return Failure{ErrorCode::BadRequest, "bad result: " + std::to_string(bytes.size()) +
                                              " bytes is not a whole number of 8-byte words"};
  size_t count = bytes.size() / kWord;
  auto words = kj::heapArray<capnp::word>(count);  // aligned copy: capnp rejects unaligned data
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  try {
    capnp::ReaderOptions options;
    // A valid message traverses each word about once; the factor allows list overheads.
    options.traversalLimitInWords = count * 4 + 64;
    options.nestingLimit = 32;
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    auto owned = std::make_unique<capnp::MallocMessageBuilder>();
    owned->setRoot(reader.getRoot<T>());
    return Typed<T>(std::move(owned));
  } catch (const kj::Exception& e) {
    return Failure{ErrorCode::BadRequest, std::string("bad result: ") + e.getDescription().cStr()};
  }
}

}  // namespace flame
