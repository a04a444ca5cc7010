#include "broker/boot_token.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace flame {

namespace {
std::string hex(const unsigned char* bytes, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[bytes[i] >> 4]);
    out.push_back(digits[bytes[i] & 15]);
  }
  return out;
}
}  // namespace

namespace {
// HMAC-SHA256 over the fields, each length-prefixed, so no two different field lists can
// produce the same input, whatever bytes they contain. 32 bytes.
std::array<unsigned char, 32> mac(std::string_view secret, std::initializer_list<std::string_view> fields) {
  std::string data;
  for (std::string_view field : fields) data.append(std::to_string(field.size())).append(":").append(field);
  std::array<unsigned char, 32> out{};
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), buf, &len) ||
      len != out.size())
    throw std::runtime_error("HMAC-SHA256 failed");  // only if OpenSSL itself is broken
  std::memcpy(out.data(), buf, out.size());
  return out;
}
}  // namespace

std::string deriveBootToken(std::string_view secret, std::string_view brokerId, std::string_view pool,
                            std::string_view runnerId) {
  auto m = mac(secret, {brokerId, pool, runnerId});
  return hex(m.data(), m.size());
}

CurveKeyPair deriveRunnerKeyPair(std::string_view secret, std::string_view brokerId, std::string_view pool,
                                 std::string_view runnerId) {
  // A fourth field keeps these bytes apart from the token's: knowing a runner's token (it is in
  // its environment too, but also in logs of old versions) says nothing about its key.
  auto m = mac(secret, {brokerId, pool, runnerId, "curve-secret-key"});
  char z85[41] = {};
  if (!zmq_z85_encode(z85, m.data(), m.size())) throw std::runtime_error("zmq_z85_encode failed");
  CurveKeyPair keys;
  keys.secretKey = z85;
  keys.publicKey = publicKeyOf(keys.secretKey);
  return keys;
}

std::string randomSecret() {
  std::random_device random;
  unsigned char bytes[32];
  for (auto& b : bytes) b = static_cast<unsigned char>(random());
  return hex(bytes, sizeof bytes);
}

std::string loadOrCreateSecret(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::string secret = randomSecret() + "\n";
    bool written = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
    ::close(fd);
    if (!written) throw std::runtime_error(path + ": cannot write the token secret: " + std::strerror(errno));
    secret.pop_back();
    return secret;
  }
  if (errno != EEXIST) throw std::runtime_error(path + ": cannot create the token secret: " + std::strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error(path + ": cannot read the token secret: " + std::strerror(errno));
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    throw std::runtime_error(path + ": the token secret must not be accessible to group or others (chmod 600)");
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in && !in.eof()) throw std::runtime_error(path + ": cannot read the token secret");
  std::string secret = buf.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' '))
    secret.pop_back();
  if (secret.size() < 16) throw std::runtime_error(path + ": the token secret is shorter than 16 bytes");
  return secret;
}

bool sameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace flame
