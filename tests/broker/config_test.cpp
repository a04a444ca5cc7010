#include <catch2/catch.hpp>
#include <unistd.h>

#include <map>
#include <regex>

#include <cstdlib>
#include <filesystem>
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

// ---- issue 12, item 11: richer machines ----------------------------------------------------------

TEST_CASE("fly gpus, init and metadata are read and checked", "[config]") {
  ::unsetenv("FLY_APP_NAME");
  ::unsetenv("FLY_IMAGE_REF");
  auto c = parseConfig(R"(
[pools.gpu]
backend = "fly"
[pools.gpu.fly]
app = "a"
image = "i"
gpu_kind = "l40s"
gpus = 2
init_entrypoint = ["/bin/sh", "-c"]
init_cmd = ["exec flame-worker"]
init_exec = ["/tini"]
metadata = { team = "vision" }
)");
  const FlyOptions& f = c.pools.at(0).fly;
  CHECK(f.gpus == 2);
  CHECK(f.initEntrypoint == std::vector<std::string>{"/bin/sh", "-c"});
  CHECK(f.initCmd == std::vector<std::string>{"exec flame-worker"});
  CHECK(f.initExec == std::vector<std::string>{"/tini"});
  CHECK(f.metadata == std::map<std::string, std::string>{{"team", "vision"}});
  CHECK(formatConfig(parseConfig(formatConfig(c), "printed")) == formatConfig(c));

  const std::string head = "[pools.g]\nbackend = \"fly\"\n[pools.g.fly]\napp = \"a\"\nimage = \"i\"\n";
  CHECK_THROWS_WITH(parseConfig(head + "gpus = 1\n"),
                    Catch::Contains("pools.g.fly.gpus: needs gpu_kind"));
  CHECK_THROWS_WITH(parseConfig(head + "gpu_kind = \"a10\"\ngpus = -1\n"),
                    Catch::Contains("pools.g.fly.gpus: must be between 0"));
  CHECK_THROWS_WITH(parseConfig(head + "init_cmd = \"flame-worker\"\n"),
                    Catch::Contains("pools.g.fly.init_cmd: must be an array of strings"));
  CHECK_THROWS_WITH(parseConfig(head + "metadata = { flame_broker_id = \"other\" }\n"),
                    Catch::Contains("pools.g.fly.metadata.flame_broker_id") &&
                        Catch::Contains("flame's own"));
  CHECK_THROWS_WITH(parseConfig(head + "metadata = { n = 1 }\n"),
                    Catch::Contains("pools.g.fly.metadata.n: must be a string"));
  CHECK_NOTHROW(parseConfig(head + "gpu_kind = \"a10\"\n"));  // gpus not sent: Fly's count
}

TEST_CASE("fly app and image default to the broker's own on Fly", "[config]") {
  const std::string text = "[pools.g]\nbackend = \"fly\"\n[pools.g.fly]\n";
  ::unsetenv("FLY_APP_NAME");
  ::unsetenv("FLY_IMAGE_REF");
  CHECK_THROWS_WITH(parseConfig(text), Catch::Contains("pools.g.fly.app: is required") &&
                                           Catch::Contains("FLY_APP_NAME"));
  ::setenv("FLY_APP_NAME", "flame-app", 1);
  CHECK_THROWS_WITH(parseConfig(text), Catch::Contains("pools.g.fly.image: is required") &&
                                           Catch::Contains("FLY_IMAGE_REF"));
  ::setenv("FLY_IMAGE_REF", "registry.fly.io/flame-app:deployment-1", 1);
  auto c = parseConfig(text);
  CHECK(c.pools.at(0).fly.app == "flame-app");
  CHECK(c.pools.at(0).fly.image == "registry.fly.io/flame-app:deployment-1");
  auto set = parseConfig(text + "app = \"other\"\nimage = \"img\"\n");  // set values win
  CHECK(set.pools.at(0).fly.app == "other");
  CHECK(set.pools.at(0).fly.image == "img");
  ::unsetenv("FLY_APP_NAME");
  ::unsetenv("FLY_IMAGE_REF");
}

TEST_CASE("kubernetes pod_template is read, and its errors stop the start-up naming the file",
          "[config]") {
  char pattern[] = "/tmp/flame-config-XXXXXX";
  std::string dir = ::mkdtemp(pattern);
  std::string good = dir + "/gpu-pod.json", bad = dir + "/bad.json";
  std::ofstream(good) << R"({"containers": [{"name": "runner", "image": "ghcr.io/a/gpu:1",
                             "resources": {"limits": {"nvidia.com/gpu": 1}}}]})";
  std::ofstream(bad) << R"({"spec": {"containers": []}})";
  // No image: allowed with a template (its runner container names one).
  std::string text = "[pools.k]\nbackend = \"kubernetes\"\n[pools.k.kubernetes]\nnamespace = \"ns\"\n"
                     "pod_template = \"" + good + "\"\n";
  auto c = parseConfig(text);
  CHECK(c.pools.at(0).kubernetes.podTemplate == good);
  CHECK(formatConfig(c).find("pod_template = \"" + good + "\"") != std::string::npos);
  CHECK(makeBackend(c.pools.at(0)) != nullptr);

  auto withBad = parseConfig("[pools.k]\nbackend = \"kubernetes\"\n[pools.k.kubernetes]\n"
                             "namespace = \"ns\"\nimage = \"i\"\npod_template = \"" + bad + "\"\n");
  CHECK_THROWS_AS(makeBackend(withBad.pools.at(0)), ConfigError);
  CHECK_THROWS_WITH(makeBackend(withBad.pools.at(0)),
                    Catch::Contains("pools.k.kubernetes") && Catch::Contains(bad) &&
                        Catch::Contains("spec.containers is missing or empty"));
  auto missing = parseConfig("[pools.k]\nbackend = \"kubernetes\"\n[pools.k.kubernetes]\n"
                             "namespace = \"ns\"\npod_template = \"" + dir + "/none.json\"\n");
  CHECK_THROWS_WITH(makeBackend(missing.pools.at(0)),
                    Catch::Contains(dir + "/none.json: cannot read the file"));
  CHECK_THROWS_WITH(parseConfig("[pools.k]\nbackend = \"kubernetes\"\n[pools.k.kubernetes]\n"
                                "pod_template = 3\n"),
                    Catch::Contains("pools.k.kubernetes.pod_template: must be a string"));
  CHECK_THROWS_WITH(parseConfig("[pools.k]\nbackend = \"kubernetes\"\n[pools.k.kubernetes]\n"),
                    Catch::Contains("pools.k.kubernetes.image: is required"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("retry_backoff and retry_backoff_max: defaults, values, and bad values", "[config]") {
  auto config = parseConfig(R"(
[pools.a]
[pools.a.process]
command = ["x"]
[pools.b]
retry_backoff = "1s"
retry_backoff_max = "30s"
[pools.b.process]
command = ["x"]
)");
  CHECK(config.pools.at(0).settings.retryBackoff == Duration(0));
  CHECK(config.pools.at(0).settings.retryBackoffMax == Duration(600'000));
  CHECK(config.pools.at(1).settings.retryBackoff == Duration(1000));
  CHECK(config.pools.at(1).settings.retryBackoffMax == Duration(30'000));
  CHECK_THROWS_WITH(parseConfig("[pools.a]\nretry_backoff = \"5s\"\nretry_backoff_max = \"1s\"\n[pools.a.process]\ncommand = [\"x\"]\n"),
                    Catch::Contains("pools.a.retry_backoff_max"));
  CHECK_THROWS_WITH(parseConfig("[pools.a]\nretry_backoff = \"infinity\"\n[pools.a.process]\ncommand = [\"x\"]\n"),
                    Catch::Contains("pools.a.retry_backoff"));
  CHECK_THROWS_WITH(parseConfig("[pools.a]\nretry_backoff = \"soon\"\n[pools.a.process]\ncommand = [\"x\"]\n"),
                    Catch::Contains("pools.a.retry_backoff"));
}
