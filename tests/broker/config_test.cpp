#include <catch2/catch.hpp>

#include <map>
#include <regex>

#include <fstream>

#include <toml++/toml.h>

#include "broker/config.h"

using namespace flame;

namespace {
std::string errorOf(const std::string& text) {
  try {
    parseConfig(text, "test.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a full config parses", "[config]") {
  auto c = parseConfig(R"(
[broker]
clients = "tcp://127.0.0.1:*"
runners = "ipc:///tmp/flame-runners"
heartbeat_interval = "500ms"
liveness = 4
broker_id = "b1"

[pools.thumbs]
backend = "process"
min = 1
max = 10
max_concurrency = 5
idle_shutdown_after = "30s"
single_use = true
placement = "spread"
timeout = "5m"
max_queue = 100
warm_slots = 3

[pools.thumbs.process]
command = ["./build/bin/flame-worker", "--enable-test-functions"]
env = { EXTRA = "1" }

[pools.gpu]
backend = "fly"
max = 2
[pools.gpu.fly]
app = "my-app"
image = "registry.fly.io/my-app:latest"
gpu_kind = "a100-pcie-40gb"
)");
  CHECK(c.broker.clientsEndpoint == "tcp://127.0.0.1:*");
  CHECK(c.broker.runnersEndpoint == "ipc:///tmp/flame-runners");
  CHECK(c.broker.heartbeatInterval == Duration(500));
  CHECK(c.broker.liveness == 4);
  CHECK(c.brokerId == "b1");
  REQUIRE(c.pools.size() == 2);
  auto& t = c.pools[1].name == "thumbs" ? c.pools[1] : c.pools[0];
  CHECK(t.limits.min == 1);
  CHECK(t.limits.max == 10);
  CHECK(t.limits.maxConcurrency == 5);
  CHECK(t.limits.idleShutdownAfter == Duration(30000));
  CHECK(t.limits.singleUse);
  CHECK(t.limits.warmSlots == 3);
  CHECK(t.settings.placement == Placement::Spread);
  CHECK(t.settings.defaultTimeout == Duration(300000));
  CHECK(t.settings.maxQueue == 100);
  CHECK(t.process.command.size() == 2);
  CHECK(t.process.extraEnv.at("EXTRA") == "1");
}

TEST_CASE("wrong config values are rejected naming the key", "[config]") {
  CHECK(errorOf("[broker]\nclient = \"x\"\n") == "broker.client: unknown key");
  CHECK(errorOf("[pools.a]\nmin = -1\n[pools.a.process]\ncommand=[\"w\"]\n").find("pools.a.min: must be between") == 0);
  CHECK(errorOf("[pools.a]\nmin = 3\nmax = 2\n[pools.a.process]\ncommand=[\"w\"]\n") ==
        "pools.a.max: must be at least min (3), got 2");
  CHECK(errorOf("[pools.a]\nbackend = \"ec2\"\n").find("pools.a.backend: unknown backend 'ec2'") == 0);
  CHECK(errorOf("[pools.a]\nbackend = \"process\"\n").find("pools.a.process.command: is required") == 0);
  CHECK(errorOf("[pools.a]\nbackend = \"fly\"\n[pools.a.fly]\nimage = \"i\"\n").find("pools.a.fly.app: is required") == 0);
  CHECK(errorOf("[pools.a]\nidle_shutdown_after = \"soon\"\n[pools.a.process]\ncommand=[\"w\"]\n")
            .find("pools.a.idle_shutdown_after: 'soon' is not a duration") == 0);
  CHECK(errorOf("[pools.a]\nmax = \"3\"\n").find("pools.a.max: must be an integer") == 0);
  CHECK(errorOf("[pools.a]\nplacement = \"random\"\n[pools.a.process]\ncommand=[\"w\"]\n").find("pools.a.placement") == 0);
  CHECK(errorOf("[pools.a]\n[pools.a.process]\ncommand=[\"w\"]\nbogus = 1\n") == "pools.a.process.bogus: unknown key");
  CHECK(errorOf("[broker\n").find("test.toml:1") == 0);
  CHECK(errorOf("[pools.a]\nboot_timeout = \"infinity\"\n[pools.a.process]\ncommand=[\"w\"]\n") ==
        "pools.a.boot_timeout: cannot be infinity");
}

TEST_CASE("durations accept infinity where it makes sense", "[config]") {
  auto c = parseConfig("[pools.a]\nmin_idle_shutdown_after = \"infinity\"\nidle_shutdown_after = \"infinity\"\n"
                       "[pools.a.process]\ncommand=[\"w\"]\n");
  CHECK(c.pools[0].limits.idleShutdownAfter == kInfinite);
}

namespace {
std::string exampleConfig() {
  std::ifstream in(std::string(FLAME_SOURCE_DIR) + "/examples/flame.toml");
  REQUIRE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// The example with its commented-out sections and keys switched on: "# key = value" and
// "# [table]" lines lose their "# " (prose comments have no " = " right after a bare key).
std::string uncommented(const std::string& text) {
  static const std::regex setting(R"(^# (\[[a-z0-9_.]+\]|[a-z0-9_]+ = .*)$)");
  std::istringstream lines(text);
  std::string line, out;
  while (std::getline(lines, line)) {
    std::smatch m;
    out += (std::regex_match(line, m, setting) ? m[1].str() : line) + "\n";
  }
  return out;
}

std::map<std::string, std::string> entriesOf(const BrokerConfig& c) {
  auto list = configEntries(c);
  return {list.begin(), list.end()};
}

// Keys without a default: the example shows a value.
bool hasNoDefault(const std::string& key) {
  static const std::regex required(
      R"(^(broker\.broker_id|security\..*|pools\.[^.]+\.(process\.command|exec\.boot|exec\.stop|fly\.app|fly\.image|kubernetes\.image))$)");
  return std::regex_match(key, required);
}
}  // namespace

TEST_CASE("the example config lists every key, each with its built-in default", "[config]") {
  const std::string text = uncommented(exampleConfig());
  BrokerConfig example = parseConfig(text, "examples/flame.toml (all sections on)");
  REQUIRE(example.pools.size() == 4);  // process, exec, fly, kubernetes

  // The defaults: the same pools with nothing but their backend and required keys.
  auto shown = entriesOf(example);
  std::string minimal;
  for (const PoolConfig& p : example.pools) {
    minimal += "[pools." + p.name + "]\nbackend = \"" + p.backend + "\"\n[pools." + p.name + "." + p.backend + "]\n";
    for (auto& [key, value] : shown)
      if (hasNoDefault(key) && key.rfind("pools." + p.name + ".", 0) == 0)
        minimal += key.substr(key.rfind('.') + 1) + " = " + value + "\n";
  }
  auto defaults = entriesOf(parseConfig(minimal, "defaults"));

  toml::table table = toml::parse(text);
  size_t compared = 0;
  for (auto& [key, value] : shown) {
    INFO(key);
    // Every key is in the file; a pool's own keys once, in [pools.default].
    std::string at = key;
    if (std::count(key.begin(), key.end(), '.') == 2 && key.rfind("pools.default.", 0) != 0)
      at = "pools.default." + key.substr(key.rfind('.') + 1);
    CHECK(table.at_path(at));
    if (hasNoDefault(key)) continue;
    REQUIRE(defaults.count(key));
    CHECK(value == defaults[key]);  // with its default
    ++compared;
  }
  CHECK(compared > 60);
}

TEST_CASE("the configuration in effect prints as TOML that reads back the same", "[config]") {
  BrokerConfig c = parseConfig(uncommented(exampleConfig()));
  c.broker.heartbeatInterval = Duration(1500);
  c.pools[0].process.extraEnv = {{"A", "x \"quoted\" \\ value"}};
  std::string printed = formatConfig(c);
  CHECK(printed.find("[pools.gpu.fly]") != std::string::npos);
  CHECK(formatConfig(parseConfig(printed, "printed")) == printed);
}

TEST_CASE("shutdown and re-adoption keys are read and checked", "[config]") {
  auto c = parseConfig(R"(
[broker]
shutdown_grace = "3s"
keep_runners_on_shutdown = true
token_secret_file = "/var/lib/flame/secret"
adopt_window = "45s"
)");
  CHECK(c.broker.shutdownGrace == Duration(3000));
  CHECK(c.broker.keepRunnersOnShutdown);
  CHECK(c.tokenSecretFile == "/var/lib/flame/secret");
  CHECK(c.adoptWindow == Duration(45000));
  CHECK_THROWS_WITH(parseConfig("[broker]\nshutdown_grace = \"infinity\"\n"), Catch::Contains("broker.shutdown_grace"));
  CHECK_THROWS_WITH(parseConfig("[broker]\nkeep_runners_on_shutdown = 1\n"),
                    Catch::Contains("broker.keep_runners_on_shutdown"));
}

TEST_CASE("backends' watch_interval is read", "[config]") {
  auto c = parseConfig(R"(
[pools.gpu]
backend = "fly"
[pools.gpu.fly]
app = "a"
image = "i"
watch_interval = "5s"
[pools.k]
backend = "kubernetes"
[pools.k.kubernetes]
image = "i"
watch_interval = "0s"
)");
  REQUIRE(c.pools.size() == 2);
  for (auto& p : c.pools) {
    if (p.name == "gpu") CHECK(p.fly.watchInterval == Duration(5000));
    if (p.name == "k") CHECK(p.kubernetes.watchInterval == Duration(0));
  }
  CHECK_THROWS_WITH(parseConfig("[pools.g]\nbackend = \"fly\"\n[pools.g.fly]\napp = \"a\"\nimage = \"i\"\nwatch_interval = 3\n"),
                    Catch::Contains("watch_interval"));
}

TEST_CASE("only loopback, ipc and inproc endpoints count as local", "[config][security]") {
  for (const char* local : {"tcp://127.0.0.1:5555", "tcp://127.0.0.1:*", "tcp://127.1.2.3:9", "tcp://localhost:1",
                            "tcp://[::1]:5555", "ipc:///tmp/flame.sock", "inproc://x",
                            "tcp://[::ffff:127.0.0.1]:45637", "tcp://[::FFFF:127.0.0.1]:1"})
    CHECK(isLoopbackEndpoint(local));
  for (const char* remote : {"tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.0.0.1:5555", "tcp://eth0:5555",
                             "tcp://[::]:5555", "tcp://[fdaa::3]:5556", "tcp://128.0.0.1:1", "tcp://127.0.0.1x:1",
                             "udp://127.0.0.1:1", "tcp://10.0.0.1;127.0.0.1:5555", "tcp://[::ffff:10.0.0.1]:1",
                             "tcp://[::ffff:]:1"})
    CHECK_FALSE(isLoopbackEndpoint(remote));
}

TEST_CASE("a plaintext endpoint other machines can reach is refused unless allowed", "[config][security]") {
  auto config = parseConfig("[broker]\nclients = \"tcp://0.0.0.0:5555\"\n");
  try {
    checkPlaintextExposure(config);
    FAIL("not refused");
  } catch (const ConfigError& e) {
    std::string why = e.what();
    CHECK(why.find("broker.clients") != std::string::npos);
    CHECK(why.find("--insecure") != std::string::npos);
    CHECK(why.find("allow_plaintext") != std::string::npos);
  }
  auto allowed = parseConfig("[broker]\nclients = \"tcp://0.0.0.0:5555\"\nallow_plaintext = true\n");
  auto warnings = checkPlaintextExposure(allowed);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("tcp://0.0.0.0:5555") != std::string::npos);
  BrokerOverrides insecure;
  insecure.allowPlaintext = true;
  CHECK(checkPlaintextExposure(parseConfig("[broker]\nrunners = \"tcp://*:5556\"\n", "t", insecure)).size() == 1);
  CHECK(checkPlaintextExposure(parseConfig("")).empty());  // the defaults are loopback
}

TEST_CASE("cast_timeout is infinite unless a pool sets it", "[config]") {
  auto c = parseConfig(R"([pools.a]
[pools.a.process]
command = ["x"]
[pools.b]
cast_timeout = "2m"
[pools.b.process]
command = ["x"]
)");
  REQUIRE(c.pools.size() == 2);
  CHECK(c.pools[0].settings.castTimeout == kInfinite);
  CHECK(c.pools[1].settings.castTimeout == Duration(120000));
  CHECK_THROWS_WITH(parseConfig("[pools.a]\ncast_timeout = \"0s\"\n[pools.a.process]\ncommand = [\"x\"]\n"),
                    Catch::Contains("pools.a.cast_timeout"));
}
