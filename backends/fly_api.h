// Decoders for the Fly Machines API's answers (untrusted bytes) and the facts FlyBackend reads
// from them. Pure functions: no I/O, no logging, never throw; a malformed answer is a failed
// BackendStatus naming what was wrong. fuzz/fly_answer_fuzz.cpp feeds them arbitrary bytes.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"

namespace flame::fly {

// Metadata keys FlyBackend puts on every machine it creates (config.metadata). Every key that
// starts with kMetaPrefix is flame's: users' metadata may not use it.
inline constexpr const char* kMetaPrefix = "flame_";
inline constexpr const char* kMetaPool = "flame_pool";
inline constexpr const char* kMetaBrokerId = "flame_broker_id";
inline constexpr const char* kMetaRunnerId = "flame_runner_id";

struct Machine {
  std::string id;     // never empty in a decoded machine
  std::string name;
  std::string state;  // "created", "started", "stopped", "destroyed", ... ("" when absent)
  std::string region;
  std::map<std::string, std::string> metadata;  // config.metadata, string values only
  std::optional<int> exitCode;  // from the newest "exit" event, when the answer lists events

  std::string meta(const std::string& key) const;
  // Carries our tags for this broker and runner.
  bool belongsTo(std::string_view brokerId, std::string_view runnerId) const;
};

struct MachineAnswer {
  BackendStatus status;  // failed (retryable): the body is not a machine object with an id
  Machine machine;
};

struct MachineListAnswer {
  BackendStatus status;  // failed (retryable): the body is not a JSON array
  std::vector<Machine> machines;
  size_t skipped = 0;  // array entries that were not machine objects with an id
};

// GET /machines/{id} and POST /machines answers.
MachineAnswer parseMachine(std::string_view body);
// GET /machines answers.
MachineListAnswer parseMachineList(std::string_view body);

// A machine in this state no longer runs its runner and will not by itself again (our machines
// have restart policy "no" and auto_destroy): stopped, destroying, destroyed, failed.
bool isEndedState(std::string_view state);
// "machine state stopped (exit code 1)" for ExitedMachine::description.
std::string describeEnd(const Machine& machine);

// True when a create was refused because the machine name is in use: any 409 on create, or a
// 422 whose error says the name is taken (both forms have been seen from Machines API versions).
bool isNameConflict(long status, std::string_view apiMessage);

}  // namespace flame::fly
