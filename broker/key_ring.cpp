#include "broker/key_ring.h"

#include "broker/config.h"

namespace flame {

namespace {
std::vector<AllowedKey> readList(const std::string& configKey, const std::string& path) {
  if (path.empty()) return {};
  try {
    return readAllowList(path);
  } catch (const KeyFileError& e) {
    throw ConfigError("security." + configKey + ": " + e.what());
  }
}
}  // namespace

KeyRing::Names KeyRing::index(const std::vector<AllowedKey>& keys) {
  Names names;
  for (const auto& k : keys) names.emplace(k.key, k.name);
  return names;
}

const std::string* KeyRing::find(const Names& names, std::string_view key) {
  auto it = names.find(std::string(key));
  return it == names.end() ? nullptr : &it->second;
}

std::unique_ptr<KeyRing> KeyRing::load(const SecurityConfig& config) {
  CurveKeyPair server;
  try {
    server.secretKey = readSecretKeyFile(config.secretKeyFile);
    server.publicKey = publicKeyOf(server.secretKey);
  } catch (const KeyFileError& e) {
    throw ConfigError(std::string("security.secret_key_file: ") + e.what());
  }
  auto ring = std::make_unique<KeyRing>(std::move(server), readList("client_keys", config.clientKeys),
                                        readList("runner_keys", config.runnerKeys),
                                        readList("admin_keys", config.adminKeys));
  ring->config_ = config;
  return ring;
}

KeyRing::KeyRing(CurveKeyPair server, std::vector<AllowedKey> clients, std::vector<AllowedKey> runners,
                 std::vector<AllowedKey> admins)
    : server_(std::move(server)), clients_(index(clients)), runners_(index(runners)), admins_(index(admins)) {}

std::string KeyRing::reload() {
  // Read all three before replacing any: a bad file leaves the lists as they were.
  Names clients = index(readList("client_keys", config_.clientKeys));
  Names runners = index(readList("runner_keys", config_.runnerKeys));
  Names admins = index(readList("admin_keys", config_.adminKeys));
  clients_ = std::move(clients);
  runners_ = std::move(runners);
  admins_ = std::move(admins);
  return std::to_string(clients_.size()) + " client, " + std::to_string(runners_.size()) + " runner and " +
         std::to_string(admins_.size()) + " admin keys";
}

KeyRing::Verdict KeyRing::check(Domain domain, std::string_view key, TimePoint now) const {
  Verdict v;
  if (domain == Domain::Clients) {
    const std::string* name = find(admins_, key);
    if (!name) name = find(clients_, key);
    if (name) return Verdict{true, *name, {}};
    if (const std::string* runner = find(runners_, key)) {
      v.name = *runner;
      v.why = "a runner key, not a client key";
    } else if (mintedFor(key)) {
      v.why = "a key minted for a booted runner";
    } else {
      v.why = "not in client_keys or admin_keys (unknown or revoked)";
    }
    return v;
  }
  if (const std::string* name = find(runners_, key)) return Verdict{true, *name, {}};
  if (const std::string* runnerId = mintedFor(key)) return Verdict{true, "minted for runner " + *runnerId, {}};
  if (now < unlistedRunnersUntil_) return Verdict{true, "unlisted, during the adoption window", {}};
  if (const std::string* client = find(clients_, key); client || find(admins_, key)) {
    v.name = client ? *client : *find(admins_, key);
    v.why = "a client key, not a runner key";
  } else {
    v.why = "not in runner_keys and not minted for a running runner (unknown, revoked, or its runner is gone)";
  }
  return v;
}

bool KeyRing::isClient(std::string_view key) const { return find(clients_, key) || find(admins_, key); }
bool KeyRing::isAdmin(std::string_view key) const { return find(admins_, key) != nullptr; }
bool KeyRing::isStaticRunner(std::string_view key) const { return find(runners_, key) != nullptr; }

std::string KeyRing::nameOf(std::string_view key) const {
  for (const Names* names : {&admins_, &clients_, &runners_})
    if (const std::string* name = find(*names, key)) return *name;
  return {};
}

void KeyRing::authorizeMinted(const std::string& publicKey, const std::string& runnerId) {
  forgetMinted(runnerId);
  minted_[publicKey] = runnerId;
  mintedByRunner_[runnerId] = publicKey;
}

void KeyRing::forgetMinted(const std::string& runnerId) {
  auto it = mintedByRunner_.find(runnerId);
  if (it == mintedByRunner_.end()) return;
  minted_.erase(it->second);
  mintedByRunner_.erase(it);
}

const std::string* KeyRing::mintedFor(std::string_view key) const {
  auto it = minted_.find(std::string(key));
  return it == minted_.end() ? nullptr : &it->second;
}

}  // namespace flame
