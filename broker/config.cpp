#include "broker/config.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "broker/metrics_server.h"
#include "common/duration.h"

namespace flame {

namespace {

// Reads typed values out of one TOML table, remembering the dotted path for messages and
// rejecting keys nobody asked for.
class Table {
 public:
  Table(const toml::table& t, std::string path) : table_(t), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw ConfigError(keyPath(key) + ": " + why);
  }
  std::string keyPath(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  bool has(const std::string& key) const { return table_.contains(key); }

  std::string str(const std::string& key, std::string fallback) {
    seen_.insert(key);
    auto node = table_.get(key);
    if (!node) return fallback;
    auto v = node->value<std::string>();
    if (!v) fail(key, "must be a string");
    return *v;
  }
  int64_t integer(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
    seen_.insert(key);
    auto node = table_.get(key);
    if (!node) return fallback;
    if (!node->is_integer()) fail(key, "must be an integer");
    int64_t v = *node->value<int64_t>();
    if (v < lo || v > hi) fail(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " + std::to_string(v) + ")");
    return v;
  }
  double number(const std::string& key, double fallback) {
    seen_.insert(key);
    auto node = table_.get(key);
    if (!node) return fallback;
    auto v = node->value<double>();
    if (!v) fail(key, "must be a number");
    return *v;
  }
  bool boolean(const std::string& key, bool fallback) {
    seen_.insert(key);
    auto node = table_.get(key);
    if (!node) return fallback;
    if (!node->is_boolean()) fail(key, "must be true or false");
    return *node->value<bool>();
  }
  Duration duration(const std::string& key, Duration fallback, bool allowInfinite = true) {
    seen_.insert(key);
    auto node = table_.get(key);
    if (!node) return fallback;
    auto s = node->value<std::string>();
    if (!s) fail(key, "must be a duration string such as \"500ms\", \"30s\", \"5m\" or \"infinity\"");
    auto d = parseDuration(*s);
    if (!d) fail(key, "'" + *s + "' is not a duration (use \"500ms\", \"30s\", \"5m\", \"1h\" or \"infinity\")");
    if (!allowInfinite && *d == kInfinite) fail(key, "cannot be infinity");
    return *d;
  }
  std::vector<std::string> strings(const std::string& key) {
    seen_.insert(key);
    std::vector<std::string> out;
    auto node = table_.get(key);
    if (!node) return out;
    auto arr = node->as_array();
    if (!arr) fail(key, "must be an array of strings");
    for (auto& el : *arr) {
      auto v = el.value<std::string>();
      if (!v) fail(key, "must be an array of strings");
      out.push_back(*v);
    }
    return out;
  }
  std::map<std::string, std::string> stringMap(const std::string& key) {
    seen_.insert(key);
    std::map<std::string, std::string> out;
    auto node = table_.get(key);
    if (!node) return out;
    auto t = node->as_table();
    if (!t) fail(key, "must be a table of strings");
    for (auto& [k, v] : *t) {
      auto s = v.value<std::string>();
      if (!s) fail(key + "." + std::string(k.str()), "must be a string");
      out[std::string(k.str())] = *s;
    }
    return out;
  }
  const toml::table* subtable(const std::string& key) {
    seen_.insert(key);
    auto node = table_.get(key);
    if (!node) return nullptr;
    auto t = node->as_table();
    if (!t) fail(key, "must be a table");
    return t;
  }
  // Call last: every key present must have been read.
  void rejectUnknown() const {
    for (auto& [k, v] : table_) {
      std::string key(k.str());
      if (!seen_.count(key)) fail(key, "unknown key");
    }
  }

 private:
  const toml::table& table_;
  std::string path_;
  std::set<std::string> seen_;
};

std::string defaultBrokerId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string("flame-") + host;
}

void parseBackend(PoolConfig& pool, Table& t) {
  const std::string path = "pools." + pool.name + "." + pool.backend;
  const toml::table* sub = t.subtable(pool.backend);
  static const toml::table empty;
  Table b(sub ? *sub : empty, path);
  if (pool.backend == "process") {
    pool.process.command = b.strings("command");
    pool.process.extraEnv = b.stringMap("env");
    pool.process.stopGrace = b.duration("stop_grace", pool.limits.shutdownTimeout, false);
    if (pool.process.command.empty()) b.fail("command", "is required: the runner command, e.g. [\"flame-worker\"]");
  } else if (pool.backend == "exec") {
    pool.exec.bootCommand = b.strings("boot");
    pool.exec.stopCommand = b.strings("stop");
    pool.exec.listCommand = b.strings("list");
    pool.exec.commandTimeout = b.duration("command_timeout", pool.exec.commandTimeout, false);
    if (pool.exec.bootCommand.empty()) b.fail("boot", "is required: the command that boots a runner");
    if (pool.exec.stopCommand.empty()) b.fail("stop", "is required: the command that stops a machine");
  } else if (pool.backend == "fly") {
    auto& f = pool.fly;
    f.apiBase = b.str("api_base", f.apiBase);
    // On Fly, the broker's own app and image are the defaults (as FLAME does).
    auto onFly = [](const char* name) {
      const char* value = std::getenv(name);
      return std::string(value != nullptr ? value : "");
    };
    f.app = b.str("app", onFly("FLY_APP_NAME"));
    f.token = b.str("token", "");
    f.image = b.str("image", onFly("FLY_IMAGE_REF"));
    f.region = b.str("region", "");
    f.cpuKind = b.str("cpu_kind", f.cpuKind);
    f.cpus = static_cast<int>(b.integer("cpus", f.cpus, 1, 64));
    f.memoryMb = static_cast<int>(b.integer("memory_mb", f.memoryMb, 128, 1 << 20));
    f.gpuKind = b.str("gpu_kind", "");
    f.gpus = static_cast<int>(b.integer("gpus", 0, 0, 64));
    if (f.gpus > 0 && f.gpuKind.empty())
      b.fail("gpus", "needs gpu_kind (e.g. \"a100-pcie-40gb\"): Fly attaches GPUs of one kind");
    f.initCmd = b.strings("init_cmd");
    f.initEntrypoint = b.strings("init_entrypoint");
    f.initExec = b.strings("init_exec");
    f.metadata = b.stringMap("metadata");
    for (const auto& [key, value] : f.metadata)
      if (key.rfind(fly::kMetaPrefix, 0) == 0)
        b.fail("metadata." + key, "keys starting with \"" + std::string(fly::kMetaPrefix) +
                                      "\" are flame's own (its broker, runner and pool tags)");
    f.env = b.stringMap("env");
    f.requestTimeout = b.duration("request_timeout", f.requestTimeout, false);
    f.maxRetries = static_cast<int>(b.integer("max_retries", f.maxRetries, 0, 100));
    f.createRatePerSecond = b.number("create_rate_per_second", f.createRatePerSecond);
    f.createBurst = static_cast<int>(b.integer("create_burst", f.createBurst, 1, 1000));
    f.watchInterval = b.duration("watch_interval", f.watchInterval, false);
    if (f.app.empty()) b.fail("app", "is required: the Fly app that hosts the runner machines (on Fly: default $FLY_APP_NAME)");
    if (f.image.empty()) b.fail("image", "is required: the runner image (on Fly: default $FLY_IMAGE_REF)");
  } else if (pool.backend == "kubernetes") {
    auto& k = pool.kubernetes;
    k.apiServer = b.str("api_server", k.apiServer);
    k.namespace_ = b.str("namespace", "");
    k.tokenPath = b.str("token_path", k.tokenPath);
    k.caPath = b.str("ca_path", k.caPath);
    k.insecureSkipTlsVerify = b.boolean("insecure_skip_tls_verify", false);
    k.image = b.str("image", "");
    k.podTemplate = b.str("pod_template", "");
    k.env = b.stringMap("env");
    k.cpu = b.str("cpu", "");
    k.memory = b.str("memory", "");
    k.labels = b.stringMap("labels");
    k.serviceAccount = b.str("service_account", "");
    k.requestTimeout = b.duration("request_timeout", k.requestTimeout, false);
    k.maxRetries = static_cast<int>(b.integer("max_retries", k.maxRetries, 0, 100));
    k.watchInterval = b.duration("watch_interval", k.watchInterval, false);
    // With a pod template the image may come from its runner container: the backend checks that
    // when it reads the template (makeBackend, at start-up).
    if (k.image.empty() && k.podTemplate.empty()) b.fail("image", "is required: the runner image (or a pod_template whose runner container names one)");
  }
  b.rejectUnknown();
}

PoolConfig parsePool(const std::string& name, const toml::table& table, const BrokerOptions& broker) {
  PoolConfig pool;
  pool.name = name;
  Table t(table, "pools." + name);
  if (name.empty() || name.size() > 128) t.fail("", "pool names must be 1 to 128 bytes");
  pool.backend = t.str("backend", "process");
  static const std::set<std::string> kinds{"process", "exec", "fly", "kubernetes"};
  if (!kinds.count(pool.backend))
    t.fail("backend", "unknown backend '" + pool.backend + "' (process, exec, fly or kubernetes)");
  auto& l = pool.limits;
  l.min = static_cast<uint32_t>(t.integer("min", 0, 0, 100'000));
  l.max = static_cast<uint32_t>(t.integer("max", std::max<int64_t>(1, l.min), 0, 100'000));
  if (l.max < l.min) t.fail("max", "must be at least min (" + std::to_string(l.min) + "), got " + std::to_string(l.max));
  if (l.max == 0) t.fail("max", "must be at least 1");
  l.maxConcurrency = static_cast<uint32_t>(t.integer("max_concurrency", 1, 1, 1'000'000));
  l.warmSlots = static_cast<uint32_t>(t.integer("warm_slots", 0, 0, 1'000'000));
  l.idleShutdownAfter = t.duration("idle_shutdown_after", l.idleShutdownAfter);
  l.minIdleShutdownAfter = t.duration("min_idle_shutdown_after", l.minIdleShutdownAfter);
  l.bootTimeout = t.duration("boot_timeout", l.bootTimeout, false);
  l.shutdownTimeout = t.duration("shutdown_timeout", l.shutdownTimeout, false);
  l.singleUse = t.boolean("single_use", false);
  pool.settings.defaultTimeout = t.duration("timeout", broker.defaultTimeout);
  if (pool.settings.defaultTimeout.count() == 0) t.fail("timeout", "must be positive");
  pool.settings.castTimeout = t.duration("cast_timeout", kInfinite);
  if (pool.settings.castTimeout.count() == 0) t.fail("cast_timeout", "must be positive");
  // Waiting for a runner may take a boot: by default as long as one may take, and some margin.
  constexpr Duration kWaitMargin{10'000};
  pool.settings.waitTimeout = t.duration("wait_timeout", l.bootTimeout >= kInfinite - kWaitMargin ? kInfinite : l.bootTimeout + kWaitMargin);
  if (pool.settings.waitTimeout.count() == 0) t.fail("wait_timeout", "must be positive");
  pool.settings.retryBackoff = t.duration("retry_backoff", Duration(0), false);
  pool.settings.retryBackoffMax = t.duration("retry_backoff_max", Duration(600'000), false);
  if (pool.settings.retryBackoffMax.count() == 0) t.fail("retry_backoff_max", "must be positive");
  if (pool.settings.retryBackoffMax < pool.settings.retryBackoff)
    t.fail("retry_backoff_max", "must be at least retry_backoff (" + formatDuration(pool.settings.retryBackoff) + ")");
  pool.settings.maxQueue = static_cast<uint32_t>(t.integer("max_queue", broker.maxQueue, 0, 100'000'000));
  auto placement = t.str("placement", broker.placement == Placement::Spread ? "spread" : "pack");
  if (placement != "pack" && placement != "spread") t.fail("placement", "must be \"pack\" or \"spread\", got '" + placement + "'");
  pool.settings.placement = placement == "spread" ? Placement::Spread : Placement::Pack;
  parseBackend(pool, t);
  t.rejectUnknown();
  return pool;
}

}  // namespace

namespace {
void applyOverrides(BrokerConfig& config, const BrokerOverrides& f) {
  auto& o = config.broker;
  if (f.clients) o.clientsEndpoint = *f.clients;
  if (f.runners) o.runnersEndpoint = *f.runners;
  if (f.heartbeatInterval) o.heartbeatInterval = *f.heartbeatInterval;
  if (f.liveness) o.liveness = *f.liveness;
  if (f.maxPayloadBytes) o.maxPayloadBytes = *f.maxPayloadBytes;
  if (f.defaultTimeout) o.defaultTimeout = *f.defaultTimeout;
  if (f.placement) o.placement = *f.placement;
  if (f.maxQueue) o.maxQueue = *f.maxQueue;
  if (f.shutdownGrace) o.shutdownGrace = *f.shutdownGrace;
  if (f.keepRunnersOnShutdown) o.keepRunnersOnShutdown = *f.keepRunnersOnShutdown;
  if (f.logLevel) config.logLevel = *f.logLevel;
  if (f.allowPlaintext) config.allowPlaintext = *f.allowPlaintext;
  if (f.metrics) config.metrics = *f.metrics;
  if (f.secretKeyFile) config.security.secretKeyFile = *f.secretKeyFile;
  if (f.clientKeys) config.security.clientKeys = *f.clientKeys;
  if (f.runnerKeys) config.security.runnerKeys = *f.runnerKeys;
  if (f.adminKeys) config.security.adminKeys = *f.adminKeys;
}

// The files are read when the broker starts (KeyRing::load); here only what is missing.
void checkSecurity(const SecurityConfig& s) {
  if (!s.enabled()) {
    for (auto [key, value] : {std::pair<const char*, const std::string*>{"client_keys", &s.clientKeys},
                              {"runner_keys", &s.runnerKeys},
                              {"admin_keys", &s.adminKeys}})
      if (!value->empty())
        throw ConfigError(std::string("security.") + key +
                          ": needs secret_key_file, the broker's own key (flame keygen broker; --secret-key-file)");
    return;
  }
  if (s.clientKeys.empty() && s.adminKeys.empty())
    throw ConfigError("security: with secret_key_file set, list the clients that may connect in client_keys or "
                      "admin_keys (--client-keys, --admin-keys): without them no client could connect");
}
}  // namespace

BrokerConfig parseConfig(std::string_view text, const std::string& source, const BrokerOverrides& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw ConfigError(msg.str());
  }
  BrokerConfig config;
  config.brokerId = defaultBrokerId();
  Table top(root, "");
  if (const toml::table* b = top.subtable("broker")) {
    Table t(*b, "broker");
    auto& o = config.broker;
    o.clientsEndpoint = t.str("clients", o.clientsEndpoint);
    o.runnersEndpoint = t.str("runners", o.runnersEndpoint);
    config.advertiseRunners = t.str("advertise_runners", "");
    config.brokerId = t.str("broker_id", config.brokerId);
    if (config.brokerId.empty()) t.fail("broker_id", "must not be empty");
    o.heartbeatInterval = t.duration("heartbeat_interval", o.heartbeatInterval, false);
    if (o.heartbeatInterval.count() < 10) t.fail("heartbeat_interval", "must be at least 10ms");
    o.liveness = static_cast<uint32_t>(t.integer("liveness", o.liveness, 1, 1000));
    o.maxPayloadBytes = static_cast<size_t>(t.integer("max_payload_bytes", static_cast<int64_t>(o.maxPayloadBytes), 1, int64_t(1) << 31));
    o.defaultTimeout = t.duration("default_timeout", o.defaultTimeout);
    if (o.defaultTimeout.count() == 0) t.fail("default_timeout", "must be positive");
    o.maxQueue = static_cast<uint32_t>(t.integer("max_queue", o.maxQueue, 0, 100'000'000));
    auto placement = t.str("placement", "pack");
    if (placement != "pack" && placement != "spread") t.fail("placement", "must be \"pack\" or \"spread\", got '" + placement + "'");
    o.placement = placement == "spread" ? Placement::Spread : Placement::Pack;
    config.orphanSweepInterval = t.duration("orphan_sweep_interval", config.orphanSweepInterval, false);
    o.shutdownGrace = t.duration("shutdown_grace", o.shutdownGrace, false);
    o.keepRunnersOnShutdown = t.boolean("keep_runners_on_shutdown", o.keepRunnersOnShutdown);
    config.tokenSecretFile = t.str("token_secret_file", "");
    config.adoptWindow = t.duration("adopt_window", config.adoptWindow, false);
    config.logLevel = t.str("log_level", config.logLevel);
    config.allowPlaintext = t.boolean("allow_plaintext", config.allowPlaintext);
    config.metrics = t.str("metrics", config.metrics);
    t.rejectUnknown();
  }
  if (const toml::table* sec = top.subtable("security")) {
    Table t(*sec, "security");
    config.security.secretKeyFile = t.str("secret_key_file", "");
    config.security.clientKeys = t.str("client_keys", "");
    config.security.runnerKeys = t.str("runner_keys", "");
    config.security.adminKeys = t.str("admin_keys", "");
    t.rejectUnknown();
  }
  applyOverrides(config, overrides);  // before the pools copy the broker's defaults
  checkSecurity(config.security);
  if (const toml::table* pools = top.subtable("pools")) {
    for (auto& [k, v] : *pools) {
      std::string name(k.str());
      auto t = v.as_table();
      if (!t) throw ConfigError("pools." + name + ": must be a table ([pools." + name + "])");
      config.pools.push_back(parsePool(name, *t, config.broker));
    }
  }
  top.rejectUnknown();
  return config;
}

bool isLoopbackEndpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string rest = endpoint.substr(6);
  std::string host;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return false;
    host = rest.substr(1, close - 1);
  } else {
    host = rest.substr(0, rest.rfind(':'));
  }
  if (host.find(';') != std::string::npos) return false;  // a source address: be strict
  if (host == "localhost" || host == "::1") return true;
  // An IPv4 address in IPv6 form: what a broker reports as its bound endpoint (ipv6 is on).
  constexpr std::string_view kMapped = "::ffff:";
  if (host.size() > kMapped.size() && std::equal(kMapped.begin(), kMapped.end(), host.begin(), [](char a, char b) {
        return a == std::tolower(static_cast<unsigned char>(b));
      }))
    host = host.substr(kMapped.size());
  // 127.0.0.0/8: four dotted numbers, the first 127.
  unsigned a = 0, b = 0, c = 0, d = 0;
  char tail = 0;
  if (std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4)
    return a == 127 && b < 256 && c < 256 && d < 256;
  return false;
}

std::vector<std::string> checkPlaintextExposure(const BrokerConfig& config) {
  std::vector<std::string> warnings;
  for (auto [key, endpoint] : {std::pair<const char*, const std::string*>{"clients", &config.broker.clientsEndpoint},
                               {"runners", &config.broker.runnersEndpoint}}) {
    if (isLoopbackEndpoint(*endpoint) || config.security.enabled()) continue;
    if (!config.allowPlaintext)
      throw ConfigError(std::string("broker.") + key + ": '" + *endpoint +
                        "' is reachable from other machines without encryption or authentication: turn on "
                        "CURVE ([security] secret_key_file and client_keys, see docs/SECURITY.md), bind a "
                        "loopback address (127.0.0.1), or accept plaintext with --insecure "
                        "(allow_plaintext = true in [broker])");
    warnings.push_back(std::string("broker.") + key + " '" + *endpoint +
                       "' is reachable from other machines without encryption or authentication (--insecure)");
  }
  if (!config.metrics.empty()) {
    // The metrics endpoint has no authentication at all (CURVE does not cover it).
    std::string host;
    int port = 0;
    if (!splitHostPort(config.metrics, host, port))
      throw ConfigError("broker.metrics: '" + config.metrics + "' is not host:port (e.g. \"127.0.0.1:9464\")");
    if (!isLoopbackHost(host)) {
      if (!config.allowPlaintext)
        throw ConfigError("broker.metrics: '" + config.metrics +
                          "' is reachable from other machines and has no authentication: bind a loopback "
                          "address (127.0.0.1:9464) or accept it with --insecure (allow_plaintext = true in [broker])");
      warnings.push_back("broker.metrics '" + config.metrics + "' is reachable from other machines without authentication (--insecure)");
    }
  }
  return warnings;
}

namespace {
// TOML literals.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out + "\"";
}
std::string literal(Duration d) { return quoted(formatDuration(d)); }
std::string literal(bool b) { return b ? "true" : "false"; }
std::string literal(const std::vector<std::string>& list) {
  std::string out = "[";
  for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + quoted(list[i]);
  return out + "]";
}
std::string literal(const std::map<std::string, std::string>& map) {
  std::string out = "{";
  bool first = true;
  for (auto& [k, v] : map) {
    out += (first ? " " : ", ") + quoted(k) + " = " + quoted(v);
    first = false;
  }
  return out + (first ? "}" : " }");
}
std::string literal(Placement p) { return quoted(p == Placement::Spread ? "spread" : "pack"); }
template <typename N>
std::string number(N n) {
  std::ostringstream out;
  out << n;
  if constexpr (std::is_floating_point_v<N>)
    if (out.str().find_first_of(".e") == std::string::npos) out << ".0";
  return out.str();
}
}  // namespace

std::vector<std::pair<std::string, std::string>> configEntries(const BrokerConfig& c) {
  std::vector<std::pair<std::string, std::string>> e;
  auto add = [&](std::string key, std::string value) { e.emplace_back(std::move(key), std::move(value)); };
  const BrokerOptions& o = c.broker;
  add("broker.clients", quoted(o.clientsEndpoint));
  add("broker.runners", quoted(o.runnersEndpoint));
  add("broker.advertise_runners", quoted(c.advertiseRunners));
  add("broker.broker_id", quoted(c.brokerId));
  add("broker.heartbeat_interval", literal(o.heartbeatInterval));
  add("broker.liveness", number(o.liveness));
  add("broker.max_payload_bytes", number(o.maxPayloadBytes));
  add("broker.default_timeout", literal(o.defaultTimeout));
  add("broker.max_queue", number(o.maxQueue));
  add("broker.placement", literal(o.placement));
  add("broker.orphan_sweep_interval", literal(c.orphanSweepInterval));
  add("broker.shutdown_grace", literal(o.shutdownGrace));
  add("broker.keep_runners_on_shutdown", literal(o.keepRunnersOnShutdown));
  add("broker.token_secret_file", quoted(c.tokenSecretFile));
  add("broker.adopt_window", literal(c.adoptWindow));
  add("broker.log_level", quoted(c.logLevel));
  add("broker.allow_plaintext", literal(c.allowPlaintext));
  add("broker.metrics", quoted(c.metrics));
  add("security.secret_key_file", quoted(c.security.secretKeyFile));
  add("security.client_keys", quoted(c.security.clientKeys));
  add("security.admin_keys", quoted(c.security.adminKeys));
  add("security.runner_keys", quoted(c.security.runnerKeys));
  for (const PoolConfig& p : c.pools) {
    const std::string k = "pools." + p.name + ".";
    const PoolLimits& l = p.limits;
    add(k + "backend", quoted(p.backend));
    add(k + "min", number(l.min));
    add(k + "max", number(l.max));
    add(k + "max_concurrency", number(l.maxConcurrency));
    add(k + "warm_slots", number(l.warmSlots));
    add(k + "idle_shutdown_after", literal(l.idleShutdownAfter));
    add(k + "min_idle_shutdown_after", literal(l.minIdleShutdownAfter));
    add(k + "boot_timeout", literal(l.bootTimeout));
    add(k + "shutdown_timeout", literal(l.shutdownTimeout));
    add(k + "timeout", literal(p.settings.defaultTimeout));
    add(k + "cast_timeout", literal(p.settings.castTimeout));
    add(k + "wait_timeout", literal(p.settings.waitTimeout));
    add(k + "retry_backoff", literal(p.settings.retryBackoff));
    add(k + "retry_backoff_max", literal(p.settings.retryBackoffMax));
    add(k + "single_use", literal(l.singleUse));
    add(k + "max_queue", number(p.settings.maxQueue));
    add(k + "placement", literal(p.settings.placement));
    const std::string b = k + p.backend + ".";
    if (p.backend == "process") {
      add(b + "command", literal(p.process.command));
      add(b + "env", literal(p.process.extraEnv));
      add(b + "stop_grace", literal(p.process.stopGrace));
    } else if (p.backend == "exec") {
      add(b + "boot", literal(p.exec.bootCommand));
      add(b + "stop", literal(p.exec.stopCommand));
      add(b + "list", literal(p.exec.listCommand));
      add(b + "command_timeout", literal(p.exec.commandTimeout));
    } else if (p.backend == "fly") {
      const FlyOptions& f = p.fly;
      add(b + "app", quoted(f.app));
      add(b + "image", quoted(f.image));
      add(b + "token", quoted(f.token));
      add(b + "region", quoted(f.region));
      add(b + "cpu_kind", quoted(f.cpuKind));
      add(b + "cpus", number(f.cpus));
      add(b + "memory_mb", number(f.memoryMb));
      add(b + "gpu_kind", quoted(f.gpuKind));
      add(b + "gpus", number(f.gpus));
      add(b + "init_entrypoint", literal(f.initEntrypoint));
      add(b + "init_cmd", literal(f.initCmd));
      add(b + "init_exec", literal(f.initExec));
      add(b + "metadata", literal(f.metadata));
      add(b + "api_base", quoted(f.apiBase));
      add(b + "request_timeout", literal(f.requestTimeout));
      add(b + "max_retries", number(f.maxRetries));
      add(b + "create_rate_per_second", number(f.createRatePerSecond));
      add(b + "create_burst", number(f.createBurst));
      add(b + "watch_interval", literal(f.watchInterval));
      add(b + "env", literal(f.env));
    } else if (p.backend == "kubernetes") {
      const KubernetesOptions& ko = p.kubernetes;
      add(b + "image", quoted(ko.image));
      add(b + "pod_template", quoted(ko.podTemplate));
      add(b + "namespace", quoted(ko.namespace_));
      add(b + "api_server", quoted(ko.apiServer));
      add(b + "token_path", quoted(ko.tokenPath));
      add(b + "ca_path", quoted(ko.caPath));
      add(b + "insecure_skip_tls_verify", literal(ko.insecureSkipTlsVerify));
      add(b + "cpu", quoted(ko.cpu));
      add(b + "memory", quoted(ko.memory));
      add(b + "labels", literal(ko.labels));
      add(b + "service_account", quoted(ko.serviceAccount));
      add(b + "request_timeout", literal(ko.requestTimeout));
      add(b + "max_retries", number(ko.maxRetries));
      add(b + "watch_interval", literal(ko.watchInterval));
      add(b + "env", literal(ko.env));
    }
  }
  return e;
}

std::string formatConfig(const BrokerConfig& config) {
  std::string out, table;
  for (auto& [key, value] : configEntries(config)) {
    size_t dot = key.rfind('.');
    std::string section = key.substr(0, dot);
    if (section != table) {
      out += (out.empty() ? "[" : "\n[") + section + "]\n";
      table = section;
    }
    out += key.substr(dot + 1) + " = " + value + "\n";
  }
  return out;
}

BrokerConfig loadConfig(const std::string& path, const BrokerOverrides& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::stringstream buf;
  buf << in.rdbuf();
  return parseConfig(buf.str(), path, overrides);
}

std::unique_ptr<Backend> makeBackend(const PoolConfig& pool) {
  const std::string where = "pools." + pool.name + "." + pool.backend;
  if (pool.backend == "process") return std::make_unique<ProcessBackend>(pool.process);
  if (pool.backend == "exec") return std::make_unique<ExecBackend>(pool.exec);
  if (pool.backend == "fly") {
    auto b = std::make_unique<FlyBackend>(pool.fly);
    if (!b->configStatus().ok) throw ConfigError(where + ": " + b->configStatus().message);
    return b;
  }
  if (pool.backend == "kubernetes") {
    auto b = std::make_unique<KubernetesBackend>(pool.kubernetes);
    if (!b->configStatus().ok) throw ConfigError(where + ": " + b->configStatus().message);
    return b;
  }
  throw ConfigError("pools." + pool.name + ".backend: unknown backend '" + pool.backend + "'");
}

}  // namespace flame
