// The runner's settings (RunnerOptions) and why a runner ends (RunExit): shared by the public
// flame::Runner (worker/runner.h) and its socket-free state machine (worker/runner_core.h).
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string>

#include "common/clock.h"

namespace flame {

struct RunnerOptions {
  std::string broker = "tcp://127.0.0.1:5556";  // the broker's runner endpoint
  std::string pool = "default";                 // 1-128 bytes
  std::string runnerId;      // empty: generated "<pool>-<host>-<pid>-<random hex>"
  std::string token;         // boot token (FLAME_BOOT_TOKEN), empty for static runners
  uint32_t concurrency = 1;  // slots: jobs run at once, >= 1
  // Until the broker's `welcome` says otherwise.
  Duration heartbeatInterval{1000};
  uint32_t liveness = 3;          // the broker is unreachable after interval x liveness of silence
  Duration failsafeAfter{30000};  // exit once the broker has been unreachable this long
  Duration drainGrace{30000};     // on requestDrain(): how long in-flight work may finish
  Duration cancelGrace{5000};     // a cancelled handler still running after this => retire
  // Reconnect backoff (common/liveness.h): doubles per attempt from min to max, each delay
  // jittered down by up to a quarter, back to min on any message from the broker.
  Duration reconnectMin{100}, reconnectMax{5000};
  uint64_t reconnectSeed = 0;    // seeds the backoff's jitter; 0: random (tests fix it)
  const Clock* clock = nullptr;  // nullptr: the real steady clock. Not owned.
  // A ZeroMQ context to share with other Runners and Clients of the process (not owned; must
  // outlive the Runner): one I/O thread for all of them. nullptr: the Runner's own context.
  zmq::context_t* context = nullptr;
  // CURVE (docs/PROTOCOL.md, "Encryption and authentication"): the broker's Z85 public key and
  // this runner's Z85 secret key (its public key, derived from it, is what the broker checks:
  // a key on its runner allow-list, or the one it minted for this runner when it booted it).
  // Both empty: plaintext. One without the other, or a key that is not Z85: the Runner's
  // constructor throws std::invalid_argument.
  std::string serverKey;
  std::string secretKey;

  // Defaults overridden by FLAME_BROKER, FLAME_POOL, FLAME_RUNNER_ID, FLAME_BOOT_TOKEN and
  // FLAME_MAX_CONCURRENCY (see backends/backend.h), and the CURVE keys: FLAME_SERVER_KEY (the
  // broker's public key, or a file holding it), FLAME_KEY_FILE (a secret key file, mode 0600) or
  // FLAME_SECRET_KEY (a secret key itself: how the broker hands a booted runner the key it
  // minted for it). Throws std::invalid_argument naming the variable and the fault (e.g.
  // FLAME_MAX_CONCURRENCY not a positive integer, an unreadable key file, both FLAME_KEY_FILE and
  // FLAME_SECRET_KEY). One key without the other is left for the Runner to refuse (flame-worker's
  // flags may give the other).
  static RunnerOptions fromEnvironment();
};


// Why run() returned.
enum class RunExit {
  Stopped,          // requestStop()
  Drained,          // `drain` from the broker or requestDrain(): in-flight work finished
  FailsafeExpired,  // the broker was unreachable for failsafeAfter
  Retired,          // a handler ignored cancellation; see Runner::strandedHandlers()
  Unauthorized,     // the broker refused the boot token, or the handshake (key, CURVE)
};
const char* runExitName(RunExit exit);

}  // namespace flame
