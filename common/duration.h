// Human durations as used in config files and flags: "250ms", "30s", "5m", "1h", "infinity".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace flame {

// Parses a duration; a bare number is milliseconds. "infinity" gives kInfinite.
// Returns nullopt for anything else (negative, unknown unit, overflow, empty).
std::optional<Duration> parseDuration(std::string_view text);

// "1500ms", "30s", "5m", "infinity": the shortest exact form.
std::string formatDuration(Duration d);

// Milliseconds on the wire: kInfinite -> kInfiniteMs, otherwise clamped below it.
uint32_t toWireMs(Duration d);
Duration fromWireMs(uint32_t ms);

}  // namespace flame
