// Fuzzes the broker's TOML config parser (broker/config.h). Contract under test: parseConfig()
// on any text either returns a config or throws ConfigError; any other exception, a crash, a
// sanitizer report or a hang is a bug. An accepted config must also satisfy the invariants the
// parser enforces (config.cpp): pool names of 1 to 128 bytes, 1 <= max, min <= max, a known
// backend, a heartbeat of at least 10ms, liveness 1 to 1000, positive default timeouts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

#include "broker/config.h"

namespace {
[[noreturn]] void fail(const char* what, const char* detail) {
  std::fprintf(stderr, "config_fuzz: %s: %s\n", what, detail);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    flame::BrokerConfig config = flame::parseConfig(text, "fuzz.toml");
    const auto& o = config.broker;
    if (o.heartbeatInterval.count() < 10) fail("accepted a heartbeat under 10ms", "");
    if (o.liveness < 1 || o.liveness > 1000) fail("accepted liveness out of 1..1000", "");
    if (o.defaultTimeout.count() <= 0) fail("accepted a non-positive default timeout", "");
    if (config.brokerId.empty()) fail("accepted an empty broker_id", "");
    for (const auto& pool : config.pools) {
      if (pool.name.empty() || pool.name.size() > 128) fail("accepted a pool name out of 1..128 bytes", "");
      if (pool.limits.max < 1) fail("accepted max 0 in pool", pool.name.c_str());
      if (pool.settings.defaultTimeout.count() <= 0) fail("accepted a non-positive timeout in pool", pool.name.c_str());
      if (pool.limits.max < pool.limits.min) fail("accepted max < min in pool", pool.name.c_str());
      if (pool.backend != "process" && pool.backend != "exec" && pool.backend != "fly" &&
          pool.backend != "kubernetes")
        fail("accepted an unknown backend", pool.backend.c_str());
    }
  } catch (const flame::ConfigError&) {
    // The documented rejection.
  } catch (const std::exception& e) {
    fail("parseConfig threw something other than ConfigError", e.what());
  }
  return 0;
}
