#include "backends/runner_env.h"

namespace flame {

EnvMap runnerEnvironment(const BootSpec& spec, const EnvMap& extra) {
  EnvMap env = extra;
  // The spec's fields are the source of truth for tagging (list() and orphan sweeps rely on
  // FLAME_BROKER_ID), even when the caller forgot to copy them into spec.env.
  if (!spec.pool.empty()) env[kEnvPool] = spec.pool;
  if (!spec.runnerId.empty()) env[kEnvRunnerId] = spec.runnerId;
  if (!spec.brokerId.empty()) env[kEnvBrokerId] = spec.brokerId;
  for (const auto& [name, value] : spec.env) env[name] = value;
  return env;
}

}  // namespace flame
