// Boot tokens: the credential a booted runner presents in every `ready`. A token is derived
// from a broker secret, the broker id, the pool and the runner id (HMAC-SHA256), so a broker
// restarted with the same secret and broker id can verify the runners its predecessor booted,
// with no state file beyond the secret (docs/RELIABILITY.md, "Broker restart").
#pragma once

#include <string>
#include <string_view>

#include "common/curve_keys.h"

namespace flame {

// Hex HMAC-SHA256(secret, the three fields, each length-prefixed): 64 characters.
std::string deriveBootToken(std::string_view secret, std::string_view brokerId, std::string_view pool,
                            std::string_view runnerId);

// The CURVE key pair of a booted runner (docs/SECURITY.md), derived like its boot token but in
// a separate domain: a successor broker with the same secret and broker id knows the key each
// of its predecessor's runners holds without a state file. Throws std::runtime_error only if
// OpenSSL or libzmq's CURVE is missing.
CurveKeyPair deriveRunnerKeyPair(std::string_view secret, std::string_view brokerId, std::string_view pool,
                                 std::string_view runnerId);

// 32 random bytes from the OS.
std::string randomSecret();

// Reads the secret in `path`, or creates the file (mode 0600, 32 random bytes as hex) when it
// does not exist. Throws std::runtime_error naming the file and the reason: unreadable, too
// short (< 16 bytes), or readable by group/others.
std::string loadOrCreateSecret(const std::string& path);

// Compares two credentials in time that depends only on their lengths.
bool sameSecret(std::string_view a, std::string_view b);

}  // namespace flame
