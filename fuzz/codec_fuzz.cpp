// Fuzzes the one decode boundary (common/codec.h) as each role that reads untrusted header
// frames uses it. The first input byte picks the role, the rest is the header frame:
//   0  broker, client endpoint (BrokerServer::readClients: broker DecodeLimits)
//   1  broker, runner endpoint (BrokerServer::readRunners: broker DecodeLimits)
//   2  runner, reading the broker (worker/runner.cpp: default limits)
//   3  client, reading the broker (client/client.cpp: default limits), and rendering a decoded
//      status reply as `flame status` does (table and JSON)
// Checked, beyond "never crashes, never throws":
// - a rejection carries an error code and a reason, and that reason can be sent back to the
//   peer (the broker echoes it in an `error`, which must decode on the other side);
// - an accepted message re-encodes to bytes that decode again to the same encoding (the
//   decoder keeps nothing the encoder cannot write, and normalises what it clamps);
// - the typed encode<T>() (with its patched templates for result/accepted/job) and the
//   generic encodeMessage() produce the same bytes;
// - the JSON of a status reply parses.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <variant>

#include "broker/options.h"
#include "client/status_format.h"
#include "common/codec.h"
#include "common/log.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "codec_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

std::string bytes(const zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }

flame::DecodeLimits brokerLimits() {
  flame::DecodeLimits limits;
  limits.maxHeaderBytes = flame::BrokerOptions{}.maxHeaderBytes;
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  flame::setLogLevel("off");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t role = data[0] % 4;
  const flame::DecodeLimits limits = role <= 1 ? brokerLimits() : flame::DecodeLimits{};
  flame::DecodeResult decoded = flame::decode(data + 1, size - 1, limits);
  if (!decoded.ok()) {
    if (decoded.code == flame::ErrorCode::None) fail("rejected without an error code:", decoded.error);
    if (decoded.error.empty()) fail("rejected without a reason");
    if (role <= 1) {  // BrokerCore::onClientInvalid / onRunnerInvalid answer with the reason
      flame::msg::Error reply;
      reply.code = decoded.code;
      reply.message = decoded.error;
      reply.requestId = decoded.requestId;
      flame::DecodeResult echoed = flame::decode(flame::encode(reply));
      if (!echoed.ok()) fail("the broker's answer to a rejected message does not decode:", echoed.error);
    }
    return 0;
  }
  const flame::Message& message = *decoded.message;

  // Re-encoding is stable: encode(decode(encode(m))) == encode(m).
  zmq::message_t first = flame::encodeMessage(message);
  flame::DecodeResult again = flame::decode(first, limits);
  if (!again.ok()) fail("our own encoding of an accepted message does not decode:", again.error);
  zmq::message_t second = flame::encodeMessage(*again.message);
  if (bytes(first) != bytes(second)) fail("re-encoding an accepted message is not stable");
  if (again.message->index() != message.index()) fail("re-decoding changed the message kind");

  // The typed encoder (fast templates for the hot headers) agrees with the generic one.
  std::visit([&](const auto& m) {
    if (bytes(flame::encode(m)) != bytes(first)) fail("encode<T>() and encodeMessage() disagree");
  }, message);

  if (role == 3) {
    if (const auto* status = std::get_if<flame::msg::StatusReply>(&message)) {
      (void)flame::formatStatusTable(*status);
      std::string json = flame::formatStatusJson(*status);
      if (!nlohmann::json::accept(json)) fail("formatStatusJson produced invalid JSON:", json);
    }
  }
  return 0;
}
