#include "client/child_handle.h"

#include <charconv>

namespace flame {

std::string ChildHandle::toString() const {
  if (runnerId.empty()) return std::to_string(childId);
  return std::to_string(childId) + "@" + runnerId;
}

std::optional<ChildHandle> ChildHandle::parse(std::string_view text) {
  auto at = text.find('@');
  std::string_view id = text.substr(0, at);
  if (id.empty()) return std::nullopt;
  for (char c : id) {
    // from_chars alone would accept a leading '+'/'-' in some forms and stop at the first
    // non-digit; the handle must be exactly digits.
    if (c < '0' || c > '9') return std::nullopt;
  }
  ChildHandle handle;
  auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), handle.childId);
  if (ec != std::errc() || end != id.data() + id.size()) return std::nullopt;
  if (at != std::string_view::npos) {
    std::string_view runner = text.substr(at + 1);
    if (runner.empty()) return std::nullopt;
    handle.runnerId = std::string(runner);
  }
  return handle;
}

}  // namespace flame
