// One named spdlog logger per component ("broker", "runner", "client", "scaler", ...),
// writing to stderr. Context goes in the message: "pool=thumbs runner=r-3 job=42".
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace flame {

// Returns the logger for `component`, creating it on first use. Thread-safe.
std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Sets the level of every flame logger ("trace", "debug", "info", "warn", "error", "off").
// Returns false for an unknown level name.
bool setLogLevel(const std::string& level);

}  // namespace flame
