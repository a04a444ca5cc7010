#include "common/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace flame {

namespace {

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string readWhole(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw KeyFileError(path + ": cannot read (" + std::strerror(errno) + ")");
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The one key a key file holds: its first line that is not blank or a comment.
std::string singleKey(const std::string& path, const std::string& what) {
  std::istringstream lines(readWhole(path));
  std::string line;
  while (std::getline(lines, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (!isZ85Key(t))
      throw KeyFileError(path + ": not a " + what + " (expected " + std::to_string(kZ85KeyLength) +
                         " Z85 characters, as `flame keygen` writes)");
    return t;
  }
  throw KeyFileError(path + ": empty, expected a " + what);
}

void writeFile(const std::string& path, const std::string& text, mode_t mode) {
  // O_EXCL: an existing key is never overwritten (it may be the only copy of a secret).
  FILE* f = nullptr;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd >= 0) f = ::fdopen(fd, "w");
  if (!f) {
    std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw KeyFileError(path + ": cannot create (" + why + ")");
  }
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok) throw KeyFileError(path + ": cannot write");
  ::chmod(path.c_str(), mode);  // the umask may have taken bits away; never added any
}

}  // namespace

CurveKeyPair generateCurveKeyPair() {
  std::array<char, kZ85KeyLength + 1> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0)
    throw KeyFileError(std::string("cannot generate a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                       " (libzmq without CURVE support?)");
  return CurveKeyPair{std::string(pub.data(), kZ85KeyLength), std::string(sec.data(), kZ85KeyLength)};
}

bool isZ85Key(std::string_view text) {
  if (text.size() != kZ85KeyLength) return false;
  std::string copy(text);
  std::array<uint8_t, 32> raw{};
  return zmq_z85_decode(raw.data(), copy.c_str()) != nullptr;
}

std::string publicKeyOf(const std::string& secretKey) {
  if (!isZ85Key(secretKey)) throw KeyFileError("not a Z85 secret key");
  std::array<char, kZ85KeyLength + 1> pub{};
  if (zmq_curve_public(pub.data(), secretKey.c_str()) != 0)
    throw KeyFileError(std::string("cannot derive the public key: ") + zmq_strerror(zmq_errno()));
  return std::string(pub.data(), kZ85KeyLength);
}

std::string keyFingerprint(std::string_view key) { return std::string(key.substr(0, 8)) + "…"; }

void writeKeyPair(const std::string& base, const CurveKeyPair& keys) {
  std::string secretPath = base + ".key", publicPath = base + ".pub";
  // Both paths must be free before anything is written, so a refusal leaves nothing half done.
  for (const auto& p : {secretPath, publicPath})
    if (std::filesystem::exists(p)) throw KeyFileError(p + ": exists; refusing to overwrite a key");
  writeFile(secretPath, keys.secretKey + "\n", 0600);
  writeFile(publicPath, keys.publicKey + "\n", 0644);
}

std::string readSecretKeyFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw KeyFileError(path + ": cannot read (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) throw KeyFileError(path + ": not a regular file");
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    throw KeyFileError(path + ": a secret key must be readable by its owner only (chmod 600 " + path + ")");
  return singleKey(path, "Z85 secret key");
}

std::string readPublicKey(const std::string& keyOrFile) {
  // A file first: a 40-character path made of Z85 characters ("/tmp/flame-xyz/.../broker.pub")
  // is also a well-formed key, and taking it as one fails only at the handshake, obscurely.
  std::error_code ec;
  if (std::filesystem::is_regular_file(keyOrFile, ec)) return singleKey(keyOrFile, "Z85 public key");
  if (isZ85Key(keyOrFile)) return keyOrFile;
  if (!std::filesystem::exists(keyOrFile))
    throw KeyFileError(keyOrFile + ": neither a Z85 public key (40 characters) nor a readable file");
  return singleKey(keyOrFile, "Z85 public key");
}

std::vector<AllowedKey> readAllowList(const std::string& fileOrFolder) {
  std::vector<std::string> files;
  std::error_code ec;
  if (std::filesystem::is_directory(fileOrFolder, ec)) {
    for (auto& entry : std::filesystem::directory_iterator(fileOrFolder))
      if (entry.is_regular_file() && entry.path().extension() == ".pub") files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(fileOrFolder);
  }
  std::vector<AllowedKey> keys;
  for (const auto& file : files) {
    std::string fallbackName =
        files.size() > 1 || file != fileOrFolder ? std::filesystem::path(file).stem().string() : std::string();
    std::istringstream lines(readWhole(file));
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
      std::string t = trim(line);
      if (t.empty() || t[0] == '#') continue;
      std::string key = t.substr(0, t.find_first_of(" \t"));
      if (!isZ85Key(key))
        throw KeyFileError(file + ":" + std::to_string(number) + ": '" + key.substr(0, 60) +
                           "' is not a Z85 public key (40 characters)");
      std::string name = key.size() < t.size() ? trim(std::string_view(t).substr(key.size())) : fallbackName;
      keys.push_back(AllowedKey{key, name});
    }
  }
  return keys;
}

}  // namespace flame
