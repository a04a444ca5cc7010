// CURVE keys on disk (docs/SECURITY.md): generating a key pair, writing it as
// NAME.key (the Z85 secret key, one line, mode 0600) and NAME.pub (the Z85 public key, one
// line) — the text form libzmq's zmq_curve_keypair() produces — and reading keys and allow-lists
// back with errors that name the file and what is wrong with it.
//
// Allow-lists are in the style of ssh's authorized_keys: one Z85 public key per line, an
// optional name after it (the rest of the line), `#` comments and blank lines ignored. A
// folder is read as the concatenation of its `*.pub` files, each key named after its file
// unless the line names it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flame {

class KeyFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr size_t kZ85KeyLength = 40;  // a 32-byte CURVE key in Z85

struct CurveKeyPair {
  std::string publicKey;  // Z85
  std::string secretKey;  // Z85
};

// A fresh key pair (zmq_curve_keypair). Throws KeyFileError if libzmq was built without CURVE.
CurveKeyPair generateCurveKeyPair();
// True if `text` is a 40-character Z85 string that decodes to 32 bytes.
bool isZ85Key(std::string_view text);
// The public key of a Z85 secret key (zmq_curve_public). Throws KeyFileError for a bad key.
std::string publicKeyOf(const std::string& secretKey);
// A short, stable name for a key in logs: its first 8 Z85 characters and "…".
std::string keyFingerprint(std::string_view key);

// Writes `base`.key (mode 0600, never over an existing file) and `base`.pub. Throws
// KeyFileError naming the file that could not be written.
void writeKeyPair(const std::string& base, const CurveKeyPair& keys);

// Reads a secret key file: it must exist, be readable by its owner only (no group or other
// permission bits) and hold one Z85 key. Throws KeyFileError naming the file and the fault.
std::string readSecretKeyFile(const std::string& path);
// A public key given as a file holding one (a NAME.pub) or directly (40 Z85 characters). A file
// that exists wins: a 40-character path can be well-formed Z85 too.
std::string readPublicKey(const std::string& keyOrFile);

struct AllowedKey {
  std::string key;   // Z85
  std::string name;  // from the line, else the file's name; may be empty
};
// Reads an allow-list file or folder (see the top of this file). Throws KeyFileError naming the
// file and line of a bad entry.
std::vector<AllowedKey> readAllowList(const std::string& fileOrFolder);

}  // namespace flame
