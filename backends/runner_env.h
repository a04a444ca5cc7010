// The environment a booted runner receives, shared by every backend so they agree on precedence.
#pragma once

#include <map>
#include <string>

#include "backends/backend.h"

namespace flame {

using EnvMap = std::map<std::string, std::string>;

// Variables for a runner booted from `spec`: `extra` (the backend's configured env) first, then
// FLAME_POOL / FLAME_RUNNER_ID / FLAME_BROKER_ID from the spec's fields, then spec.env. Later
// entries win, so configuration can never override the identity the broker handed out.
EnvMap runnerEnvironment(const BootSpec& spec, const EnvMap& extra);

}  // namespace flame
