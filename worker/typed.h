// Typed Cap'n Proto handlers: the payload is one `In` message and the result one `Out` message
// (standard framing, unpacked). Errors reading the payload become handlerError "bad payload: ...".
//
//   runner.handle("double", flame::typed<Num, Num>([](Num::Reader in, Num::Builder out,
//   flame::JobContext&) {
//     out.setValue(in.getValue() * 2);
//   }));
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <functional>
#include <string>

#include "worker/handler.h"

namespace flame {

// The bytes of a Cap'n Proto message as a payload (what typed() reads and returns; clients use
// it to build arguments).
inline std::string messageBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Wraps `fn` as a Handler. The payload is copied into an aligned buffer (frames are not
// aligned), read with the default ReaderOptions; a kj::Exception thrown while `fn` runs (a
// malformed payload is detected lazily, when a field is read) fails the job with
// "bad payload: <description>".
template <class In, class Out>
Handler typed(std::function<void(typename In::Reader, typename Out::Builder, JobContext&)> fn) {
  return [fn = std::move(fn)](JobContext& job) -> HandlerResult {
    std::string_view payload = job.payload();
    if (payload.size() % sizeof(capnp::word) != 0)
      return fail("bad payload: " + std::to_string(payload.size()) +
                  " bytes is not a whole number of 8-byte words");
    auto words = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
    if (!payload.empty()) std::memcpy(words.begin(), payload.data(), payload.size());
    capnp::MallocMessageBuilder out;
    try {
      capnp::FlatArrayMessageReader reader(words);
      fn(reader.getRoot<In>(), out.initRoot<Out>(), job);
    } catch (const kj::Exception& e) {
      return fail(std::string("bad payload: ") + e.getDescription().cStr());
    }
    return ok(messageBytes(out));
  };
}

}  // namespace flame
