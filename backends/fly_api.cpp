#include "backends/fly_api.h"

#include <algorithm>
#include <cctype>

#include "backends/api_json.h"

namespace flame::fly {

namespace {

using api::Json;

std::optional<Machine> decodeMachine(const Json& value) {
  if (!value.is_object()) return std::nullopt;
  Machine machine;
  machine.id = api::stringField(value, "id");
  if (machine.id.empty()) return std::nullopt;
  machine.name = api::stringField(value, "name");
  machine.state = api::stringField(value, "state");
  machine.region = api::stringField(value, "region");
  if (const Json* config = api::objectField(value, "config"))
    machine.metadata = api::stringMapField(*config, "metadata");
  // Events come newest first; the first "exit" one is the last exit.
  if (const Json* events = api::arrayField(value, "events")) {
    for (const Json& event : *events) {
      if (api::stringField(event, "type") != "exit") continue;
      const Json* request = api::objectField(event, "request");
      const Json* exitEvent = request != nullptr ? api::objectField(*request, "exit_event") : nullptr;
      if (exitEvent != nullptr) machine.exitCode = api::intField(*exitEvent, "exit_code");
      break;
    }
  }
  return machine;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::string Machine::meta(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? std::string() : it->second;
}

bool Machine::belongsTo(std::string_view brokerId, std::string_view runnerId) const {
  return meta(kMetaBrokerId) == brokerId && meta(kMetaRunnerId) == runnerId;
}

MachineAnswer parseMachine(std::string_view body) {
  MachineAnswer answer;
  auto json = api::parseJson(body);
  if (!json) {
    answer.status = BackendStatus::failure("answer is not JSON", true);
    return answer;
  }
  auto machine = decodeMachine(*json);
  if (!machine) {
    answer.status = BackendStatus::failure("answer is not a machine (no \"id\")", true);
    return answer;
  }
  answer.machine = std::move(*machine);
  return answer;
}

MachineListAnswer parseMachineList(std::string_view body) {
  MachineListAnswer answer;
  auto json = api::parseJson(body);
  if (!json || !json->is_array()) {
    answer.status = BackendStatus::failure("answer is not a JSON array of machines", true);
    return answer;
  }
  for (const Json& entry : *json) {
    if (auto machine = decodeMachine(entry))
      answer.machines.push_back(std::move(*machine));
    else
      ++answer.skipped;
  }
  return answer;
}

bool isEndedState(std::string_view state) {
  return state == "stopped" || state == "destroying" || state == "destroyed" || state == "failed";
}

std::string describeEnd(const Machine& machine) {
  std::string text = "machine state " + (machine.state.empty() ? "unknown" : machine.state);
  if (machine.exitCode) text += " (exit code " + std::to_string(*machine.exitCode) + ")";
  return text;
}

bool isNameConflict(long status, std::string_view apiMessage) {
  if (status == 409) return true;
  if (status != 422) return false;
  std::string message = lowercase(apiMessage);
  return message.find("already") != std::string::npos ||
         message.find("taken") != std::string::npos ||
         message.find("duplicate") != std::string::npos;
}

}  // namespace flame::fly
