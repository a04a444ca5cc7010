#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "backends/backend.h"
#include "worker/runner.h"

namespace flame {

namespace {
// nullptr when unset or empty: an empty variable means "use the default".
const char* envValue(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
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
