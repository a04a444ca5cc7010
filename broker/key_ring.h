// Who may connect to the broker and what their keys may do (docs/SECURITY.md): the broker's
// CURVE key pair, the allow-lists of the [security] section (client, runner and admin keys),
// and the keys the scaler minted for the runners it booted. The ZAP handler (broker/zap.h)
// asks it about every handshake; the core asks whether a key is an admin's or may register as
// a static runner. Loop thread only.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/curve_keys.h"

namespace flame {

// [security] (flags --secret-key-file, --client-keys, --runner-keys, --admin-keys). Empty
// secretKeyFile: no CURVE (the endpoints are plaintext; only loopback is allowed without
// --insecure).
struct SecurityConfig {
  std::string secretKeyFile;  // the broker's secret key (flame keygen NAME → NAME.key)
  std::string clientKeys;     // allow-lists: a file or folder (common/curve_keys.h)
  std::string runnerKeys;     // static runners' keys (booted runners get minted ones)
  std::string adminKeys;      // clients that may also setPool and stop anyone's children
  bool enabled() const { return !secretKeyFile.empty(); }
};

// The two endpoints' ZAP domains, so a key listed for one is not accepted by the other.
inline constexpr const char* kClientsZapDomain = "flame-clients";
inline constexpr const char* kRunnersZapDomain = "flame-runners";

class KeyRing {
 public:
  enum class Domain { Clients, Runners };
  struct Verdict {
    bool allowed = false;
    std::string name;  // the key's name in its list (may be empty)
    std::string why;   // when refused: what the key is (unknown, a key of the other endpoint...)
  };

  // Reads the broker's secret key and the lists. Throws ConfigError naming the [security] key
  // and the file's fault.
  static std::unique_ptr<KeyRing> load(const SecurityConfig& config);
  // In memory (tests): the server's pair and the lists.
  KeyRing(CurveKeyPair server, std::vector<AllowedKey> clients, std::vector<AllowedKey> runners,
          std::vector<AllowedKey> admins);

  const std::string& publicKey() const { return server_.publicKey; }
  const std::string& secretKey() const { return server_.secretKey; }

  // Re-reads the three lists (SIGHUP); the broker's own key stays. On a bad file the current
  // lists stay and ConfigError is thrown. Returns how many keys each list now holds, for the log.
  std::string reload();

  // A CURVE handshake on `domain`'s endpoint presenting `key` (Z85). Runner endpoint: a static
  // runner key or a key minted for a booted runner (or anything during an adoption window, see
  // admitUnlistedRunnersUntil).
  Verdict check(Domain domain, std::string_view key, TimePoint now) const;
  bool isClient(std::string_view key) const;  // a client or an admin key
  bool isAdmin(std::string_view key) const;
  bool isStaticRunner(std::string_view key) const;
  // The name of a listed key ("" when it has none or is not listed), for logs.
  std::string nameOf(std::string_view key) const;

  // Keys minted for booted runners (the scaler): each admits one runner id, until forgotten.
  void authorizeMinted(const std::string& publicKey, const std::string& runnerId);
  void forgetMinted(const std::string& runnerId);
  // The runner id a minted key was made for, or nullptr.
  const std::string* mintedFor(std::string_view key) const;

  // After a restart with a token secret, runners booted by the predecessor come back with keys
  // derived from that secret which this run never minted. Until `until`, the runner endpoint's
  // handshake lets any key through; the scaler then admits such a connection only if its key is
  // the one derived for the runner id and pool its ready names (Scaler::admitRunner), and the
  // core sends nothing but errors to a connection that has not registered.
  void admitUnlistedRunnersUntil(TimePoint until) { unlistedRunnersUntil_ = until; }

 private:
  using Names = std::unordered_map<std::string, std::string>;  // key -> name
  static Names index(const std::vector<AllowedKey>& keys);
  static const std::string* find(const Names& names, std::string_view key);

  SecurityConfig config_;
  CurveKeyPair server_;
  Names clients_, runners_, admins_;
  std::unordered_map<std::string, std::string> minted_;          // public key -> runner id
  std::unordered_map<std::string, std::string> mintedByRunner_;  // runner id -> public key
  TimePoint unlistedRunnersUntil_ = TimePoint::min();
};

}  // namespace flame
