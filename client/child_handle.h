// ChildHandle names a placed child: the broker's child id and the runner it runs on.
// Its text form, "childId@runnerId" (e.g. "42@thumbs-r1"), is what `flame place` prints and
// `flame stop` accepts; the runner part is informational (stopChild needs only the id).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flame {

struct ChildHandle {
  uint64_t childId = 0;
  std::string runnerId;  // empty when parsed from a bare id

  // "childId@runnerId", or just "childId" when runnerId is empty (so parse(toString())
  // round-trips).
  std::string toString() const;

  // Accepts "42@r-1" and "42". Rejects an empty or non-decimal id, a value over 2^64-1,
  // and an '@' followed by nothing.
  static std::optional<ChildHandle> parse(std::string_view text);

  bool operator==(const ChildHandle&) const = default;
};

}  // namespace flame
