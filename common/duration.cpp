#include "common/duration.h"

#include <charconv>
#include <limits>

#include "common/messages.h"

namespace flame {

std::optional<Duration> parseDuration(std::string_view text) {
  if (text == "infinity" || text == "inf") return kInfinite;
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) return std::nullopt;
  std::string_view unit(ptr, text.data() + text.size() - ptr);
  uint64_t scale = 0;
  if (unit.empty() || unit == "ms") scale = 1;
  else if (unit == "s") scale = 1000;
  else if (unit == "m") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else return std::nullopt;
  if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 2) / scale) return std::nullopt;
  return Duration(static_cast<int64_t>(value * scale));
}

std::string formatDuration(Duration d) {
  if (d == kInfinite) return "infinity";
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

uint32_t toWireMs(Duration d) {
  if (d >= Duration(kInfiniteMs)) return kInfiniteMs;
  if (d.count() < 0) return 0;
  return static_cast<uint32_t>(d.count());
}

Duration fromWireMs(uint32_t ms) { return ms == kInfiniteMs ? kInfinite : Duration(ms); }

}  // namespace flame
