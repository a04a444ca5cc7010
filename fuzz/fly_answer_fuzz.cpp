// Fuzzes the decoders of Fly Machines API answers (backends/fly_api.h) and the error-message
// extraction every API backend applies to a refused request (backends/retry.h). Contract under
// test: on any bytes they return a value and never throw; a decoded machine has an id; a list's
// machines and skipped entries account for every array element; an API error message is at most
// 303 printable characters. Any exception, crash, sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "backends/api_json.h"
#include "backends/fly_api.h"
#include "backends/retry.h"

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fly_answer_fuzz: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);

  flame::fly::MachineAnswer machine = flame::fly::parseMachine(body);
  if (machine.status.ok) {
    if (machine.machine.id.empty()) fail("decoded a machine without an id");
    (void)flame::fly::describeEnd(machine.machine);
    (void)flame::fly::isEndedState(machine.machine.state);
    (void)machine.machine.belongsTo("broker-a", "thumbs-1");
  } else if (machine.status.message.empty()) {
    fail("a refused machine without a reason");
  }

  flame::fly::MachineListAnswer list = flame::fly::parseMachineList(body);
  if (list.status.ok) {
    auto json = flame::api::parseJson(body);
    if (!json || !json->is_array()) fail("accepted a list that is not an array");
    if (list.machines.size() + list.skipped != json->size())
      fail("list entries neither decoded nor counted as skipped");
    for (const auto& m : list.machines)
      if (m.id.empty()) fail("decoded a listed machine without an id");
  } else if (list.status.message.empty()) {
    fail("a refused list without a reason");
  }

  std::string message = flame::apiErrorMessage(body, {"error", "message"});
  if (message.size() > 303) fail("API error message longer than 303 characters");
  for (char c : message) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) fail("API error message with an unprintable character");
  }
  (void)flame::fly::isNameConflict(422, message);
  return 0;
}
