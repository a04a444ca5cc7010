// Backend: how a pool's machines are booted and stopped. A small interface with no data
// (leveldb's Env, kj's "interfaces have no fields"); each implementation lives in its own file
// (process, exec, fly, kubernetes) and tests use tests/backends/fake_backend.h.
//
// Threading: implementations may block (an HTTP call, a fork). The broker never calls them
// from its socket loop; the scaler runs them on its backend worker thread. An implementation
// must be safe to call from one thread at a time (the scaler serialises calls per backend).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flame {

// Environment variables a booted runner reads (like FLAME's FLAME_PARENT).
inline constexpr const char* kEnvBroker = "FLAME_BROKER";        // runner endpoint of the broker
inline constexpr const char* kEnvPool = "FLAME_POOL";            // pool name
inline constexpr const char* kEnvRunnerId = "FLAME_RUNNER_ID";   // id the broker expects
inline constexpr const char* kEnvBootToken = "FLAME_BOOT_TOKEN"; // one-time token
inline constexpr const char* kEnvBrokerId = "FLAME_BROKER_ID";   // tags machines for orphan sweeps
inline constexpr const char* kEnvConcurrency = "FLAME_MAX_CONCURRENCY";
// With CURVE (docs/SECURITY.md): the broker's public key and the runner's own secret key, minted
// for this runner id alone.
inline constexpr const char* kEnvServerKey = "FLAME_SERVER_KEY";
inline constexpr const char* kEnvSecretKey = "FLAME_SECRET_KEY";

struct BootSpec {
  std::string pool;
  std::string runnerId;  // unique, chosen by the broker ("thumbs-7f3a...")
  std::string brokerId;  // identifies this broker instance; machines are tagged with it
  std::map<std::string, std::string> env;  // the FLAME_* variables above, plus pool extras
};

// What a backend returns for a booted machine: enough to stop it later.
struct MachineHandle {
  std::string machineId;  // backend-specific: pid, Fly machine id, pod name
  std::string runnerId;
  std::string pool;
};

// Outcome of a backend call. `retryable` separates "try again later" (429, 5xx, a timeout)
// from "this will never work" (bad image, 401, missing command).
struct BackendStatus {
  bool ok = true;
  bool retryable = false;
  std::string message;
  static BackendStatus success() { return {}; }
  static BackendStatus failure(std::string why, bool retryable) { return {false, retryable, std::move(why)}; }
};

struct BootResult {
  BackendStatus status;
  MachineHandle handle;  // valid when status.ok
};

// A machine that ended by itself (crashed, exited), as reported by Backend::reapExited().
struct ExitedMachine {
  MachineHandle machine;
  std::string description;  // "exit status 1", "killed by signal 9 (Killed)"
};

struct ListResult {
  BackendStatus status;
  std::vector<MachineHandle> machines;  // machines tagged with this broker id
};

class Backend {
 public:
  virtual ~Backend() = default;
  // "process", "exec", "fly", "kubernetes", "fake".
  virtual std::string kind() const = 0;
  // Starts one machine that will run a runner with spec.env. Returns once the provider has
  // accepted it (not when the runner connected: the broker waits for READY up to boot_timeout).
  virtual BootResult boot(const BootSpec& spec) = 0;
  // Stops (destroys) a machine; idempotent: stopping a machine that is already gone is ok.
  virtual BackendStatus stop(const MachineHandle& machine) = 0;
  // Lists machines this broker (spec.brokerId) started that still exist, for orphan sweeps.
  // Backends that cannot list return ok with supportsList() == false.
  virtual ListResult list(const std::string& brokerId) = 0;
  virtual bool supportsList() const = 0;
  // Machines that ended by themselves since the last call, each reported once. Never blocks and
  // may be called from the broker's loop thread concurrently with the other methods (so an
  // implementation that has nothing cheap to say returns {}, the default). Lets the scaler see
  // a runner that died before connecting at once instead of at boot_timeout.
  virtual std::vector<ExitedMachine> reapExited() { return {}; }
};

}  // namespace flame
