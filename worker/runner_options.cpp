#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "backends/backend.h"
#include "common/curve_keys.h"
#include "worker/runner.h"

namespace flame {

namespace {
// nullptr when unset or empty: an empty variable means "use the default".
const char* envValue(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

// A static runner's secret key file (FLAME_SERVER_KEY and FLAME_SECRET_KEY, which the broker
// sets for the runners it boots, are in backends/backend.h).
constexpr const char* kEnvRunnerKeyFile = "FLAME_KEY_FILE";

// FLAME_SERVER_KEY, FLAME_KEY_FILE and FLAME_SECRET_KEY into `o`; errors name the variable.
void readCurveKeys(RunnerOptions& o) {
  const char* serverKey = envValue(kEnvServerKey);
  const char* keyFile = envValue(kEnvRunnerKeyFile);
  const char* secretKey = envValue(kEnvSecretKey);
  if (keyFile && secretKey)
    throw std::invalid_argument(std::string(kEnvRunnerKeyFile) + " and " + kEnvSecretKey +
                                " are both set: give this runner's secret key one way only");
  // One key without the other is not refused here: flame-worker's flags may give the other. The
  // Runner refuses an incomplete pair (curveClientFor).
  if (serverKey) {
    try {
      o.serverKey = readPublicKey(serverKey);
    } catch (const KeyFileError& e) {
      throw std::invalid_argument(std::string(kEnvServerKey) + ": " + e.what());
    }
  }
  if (keyFile) {
    try {
      o.secretKey = readSecretKeyFile(keyFile);
    } catch (const KeyFileError& e) {
      throw std::invalid_argument(std::string(kEnvRunnerKeyFile) + ": " + e.what());
    }
  } else if (secretKey) {
    if (!isZ85Key(secretKey))
      throw std::invalid_argument(std::string(kEnvSecretKey) +
                                  " is not a Z85 secret key (40 characters, as in a NAME.key)");
    o.secretKey = secretKey;
  }
}
}  // namespace

RunnerOptions RunnerOptions::fromEnvironment() {
  RunnerOptions o;
  if (const char* v = envValue(kEnvBroker)) o.broker = v;
  if (const char* v = envValue(kEnvPool)) o.pool = v;
  if (const char* v = envValue(kEnvRunnerId)) o.runnerId = v;
  if (const char* v = envValue(kEnvBootToken)) o.token = v;
  if (const char* v = envValue(kEnvConcurrency)) {
    std::string_view text(v);
    uint32_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || ptr != text.data() + text.size() || n == 0)
      throw std::invalid_argument(std::string(kEnvConcurrency) + "='" + v +
                                  "' is not a positive integer");
    o.concurrency = n;
  }
  readCurveKeys(o);
  return o;
}

const char* runExitName(RunExit exit) {
  switch (exit) {
    case RunExit::Stopped:
      return "stopped";
    case RunExit::Drained:
      return "drained";
    case RunExit::FailsafeExpired:
      return "failsafe_expired";
    case RunExit::Retired:
      return "retired";
    case RunExit::Unauthorized:
      return "unauthorized";
  }
  return "unknown";
}

}  // namespace flame
