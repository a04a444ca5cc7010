// The broker's TOML config file: endpoints, heartbeats, limits, and the pools with their
// backends. Every wrong value is rejected at start-up with a ConfigError naming the key
// ("pools.thumbs.max: must be at least min (3)"). See examples/flame.toml for every key.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "backends/exec_backend.h"
#include "backends/fly_backend.h"
#include "backends/kubernetes_backend.h"
#include "backends/process_backend.h"
#include "broker/broker_core.h"
#include "broker/key_ring.h"
#include "broker/options.h"

namespace flame {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Scaling limits of one pool (FLAME.Pool's options). Changeable at runtime: min, max, warmSlots.
struct PoolLimits {
  uint32_t min = 0;
  uint32_t max = 1;
  uint32_t maxConcurrency = 1;
  uint32_t warmSlots = 0;  // free slots kept booted ahead of demand
  Duration idleShutdownAfter{10'000};
  Duration minIdleShutdownAfter = kInfinite;
  Duration bootTimeout{30'000};
  Duration shutdownTimeout{5'000};
  bool singleUse = false;
};

struct PoolConfig {
  std::string name;
  PoolSettings settings;  // placement, default timeout, max queue
  PoolLimits limits;
  std::string backend;    // process | exec | fly | kubernetes
  ProcessOptions process;
  ExecOptions exec;
  FlyOptions fly;
  KubernetesOptions kubernetes;
};

struct BrokerConfig {
  BrokerOptions broker;
  std::string brokerId;          // tags machines for orphan sweeps; default "flame-<hostname>"
  std::string advertiseRunners;  // endpoint booted runners connect to; default: the bound one
  Duration orphanSweepInterval{60'000};
  // A file holding the secret that boot tokens are derived from (created, mode 0600, if it does
  // not exist). With it, a restarted broker with the same broker_id verifies the runners its
  // predecessor booted and re-adopts them; empty = a random secret per run (no re-adoption).
  std::string tokenSecretFile;
  // After start-up, how long runners booted by a predecessor may take to come back before the
  // orphan sweep stops their machines.
  Duration adoptWindow{15'000};
  std::string logLevel = "info";
  // Bind endpoints that are not loopback without encryption or authentication ([broker]
  // allow_plaintext, --insecure). Off: such an endpoint is refused at start-up.
  bool allowPlaintext = false;
  // [broker] metrics, --metrics: "host:port" of the Prometheus endpoint (GET /metrics, served off
  // the loop; docs/OPERATIONS.md); "" = off. Unauthenticated: a non-loopback host needs
  // allowPlaintext.
  std::string metrics;
  SecurityConfig security;  // [security]: CURVE on both endpoints (docs/SECURITY.md)
  std::vector<PoolConfig> pools;
};

// True for endpoints only this machine can reach: ipc://, inproc://, and tcp:// on 127.0.0.0/8
// (also as ::ffff:127.x.y.z), ::1 or localhost. tcp://*, 0.0.0.0, another address or an
// interface name is not.
bool isLoopbackEndpoint(const std::string& endpoint);
// Refuses (ConfigError naming the key and the fix) a broker endpoint that is not loopback unless
// CURVE is on ([security]) or allowPlaintext; returns the warnings to log for the ones it allows.
std::vector<std::string> checkPlaintextExposure(const BrokerConfig& config);

// Command-line values that replace [broker] keys of the config file. They are applied when the
// [broker] section has been read and before the pools are, so a pool that does not set its own
// `timeout`, `max_queue` or `placement` gets the flag's value; a pool's own key still wins.
struct BrokerOverrides {
  std::optional<std::string> clients, runners;
  std::optional<Duration> heartbeatInterval;
  std::optional<uint32_t> liveness;
  std::optional<size_t> maxPayloadBytes;
  std::optional<Duration> defaultTimeout;
  std::optional<Placement> placement;
  std::optional<uint32_t> maxQueue;
  std::optional<Duration> shutdownGrace;
  std::optional<bool> keepRunnersOnShutdown;
  std::optional<std::string> logLevel;
  std::optional<bool> allowPlaintext;  // --insecure
  std::optional<std::string> metrics;  // --metrics
  // [security]: --secret-key-file, --client-keys, --runner-keys, --admin-keys
  std::optional<std::string> secretKeyFile, clientKeys, runnerKeys, adminKeys;
};

// Parses and validates a config (empty text: the defaults). `source` names it in error
// messages. Throws ConfigError.
BrokerConfig parseConfig(std::string_view text, const std::string& source = "config",
                         const BrokerOverrides& overrides = {});
BrokerConfig loadConfig(const std::string& path, const BrokerOverrides& overrides = {});

// The effective configuration, every key the file may set, in file order: "broker.liveness" →
// "3", "pools.gpu.fly.cpus" → "1", values as TOML literals (strings quoted, durations as
// strings: "30s", "infinity"). `flame-broker --print-config` prints it as a TOML file; a test
// holds examples/flame.toml to it.
std::vector<std::pair<std::string, std::string>> configEntries(const BrokerConfig& config);
// configEntries as a TOML document that parseConfig reads back to the same configuration.
std::string formatConfig(const BrokerConfig& config);

// Builds the backend of a pool. Throws ConfigError when its options cannot work
// (for fly and kubernetes: the backend's own configStatus()).
std::unique_ptr<Backend> makeBackend(const PoolConfig& pool);

}  // namespace flame
