// UTF-8 checks for text that crosses the wire. PROTOCOL.md says every text field is UTF-8: the
// decoder refuses anything else (isValidUtf8), and senders that carry text they did not write
// (a handler's error message) repair it first (toValidUtf8) so their message is not refused.
#pragma once

#include <string>
#include <string_view>

namespace flame {

// True if `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF). Thread-safe, allocation-free.
bool isValidUtf8(std::string_view text);

// `text` with every ill-formed sequence replaced by U+FFFD; `text` itself when it is valid.
std::string toValidUtf8(std::string_view text);

}  // namespace flame
