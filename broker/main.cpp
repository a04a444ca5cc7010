// flame-broker: parses the flags, merges them into the config file once (BrokerOverrides), and
// runs a flame::Broker (broker/broker.h) until SIGTERM/SIGINT.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "broker/broker.h"
#include "common/duration.h"
#include "common/log.h"

namespace {

int usage(const std::string& message) {
  std::fprintf(stderr, "flame-broker: %s\n", message.c_str());
  return 2;
}

void writeEndpoints(const std::string& file, flame::Broker& server) {
  bool toStdout = file == "-";
  std::string tmp = file + ".tmp";
  FILE* f = toStdout ? stdout : std::fopen(tmp.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write --endpoints-file " + file);
  std::string metrics = server.metricsAddress().empty() ? "" : ", \"metrics\": \"" + server.metricsAddress() + "\"";
  std::fprintf(f, "{\"clients\": \"%s\", \"runners\": \"%s\", \"pid\": %d%s}\n", server.clientsEndpoint().c_str(),
               server.runnersEndpoint().c_str(), static_cast<int>(getpid()), metrics.c_str());
  if (toStdout) {
    std::fflush(stdout);
  } else {
    std::fclose(f);
    std::rename(tmp.c_str(), file.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flame-broker: routes call/cast/place jobs from clients to runners, and scales pools"};
  std::string configFile, clients, runners, heartbeat, timeout, placement, logLevel, endpointsFile;
  uint32_t liveness = 0, maxQueue = 0;
  size_t maxPayload = 0;
  app.add_option("--config", configFile, "TOML config file (pools, backends, limits); flags override it");
  auto* oClients = app.add_option("--clients", clients, "client endpoint to bind [tcp://127.0.0.1:5555]");
  auto* oRunners = app.add_option("--runners", runners, "runner endpoint to bind [tcp://127.0.0.1:5556]");
  auto* oHeartbeat = app.add_option("--heartbeat-interval", heartbeat, "heartbeat interval [1000ms]");
  auto* oLiveness = app.add_option("--liveness", liveness, "missed heartbeats before a peer is dead [3]")
                        ->check(CLI::Range(1u, 1000u));
  auto* oMaxPayload = app.add_option("--max-payload", maxPayload, "largest payload/result frame in bytes [16 MiB]")
                          ->check(CLI::Range(size_t(1), size_t(1) << 31));
  auto* oTimeout = app.add_option("--default-timeout", timeout, "deadline of jobs that do not set one [30s]");
  auto* oPlacement = app.add_option("--placement", placement, "pack or spread [pack]")
                         ->check(CLI::IsMember({"pack", "spread"}));
  auto* oMaxQueue = app.add_option("--max-queue", maxQueue, "per-pool queue limit, 0 = unlimited [0]");
  std::string shutdownGrace;
  bool keepRunners = false;
  auto* oShutdownGrace =
      app.add_option("--shutdown-grace", shutdownGrace, "SIGTERM: how long running jobs may finish [20s]");
  auto* oKeepRunners = app.add_flag("--keep-runners", keepRunners,
                                    "SIGTERM: leave runners running for a successor broker to re-adopt");
  auto* oLogLevel = app.add_option("--log-level", logLevel, "trace, debug, info, warn, error [info]");
  bool insecure = false;
  auto* oInsecure = app.add_flag("--insecure", insecure,
                                 "allow endpoints other machines can reach without encryption (allow_plaintext)");
  std::string metricsAddress;
  auto* oMetrics = app.add_option("--metrics", metricsAddress,
                                  "serve Prometheus metrics on host:port at /metrics (port 0: any; loopback unless --insecure) [off]");
  std::string secretKeyFile, clientKeys, runnerKeys, adminKeys;
  auto* oSecretKey = app.add_option("--secret-key-file", secretKeyFile,
                                    "CURVE: the broker's secret key (flame keygen broker), turns on [security]");
  auto* oClientKeys = app.add_option("--client-keys", clientKeys, "CURVE: allowed client keys (file or folder)");
  auto* oRunnerKeys = app.add_option("--runner-keys", runnerKeys, "CURVE: allowed static runner keys (file or folder)");
  auto* oAdminKeys = app.add_option("--admin-keys", adminKeys, "CURVE: admin client keys (file or folder)");
  bool printConfig = false;
  app.add_flag("--print-config", printConfig,
               "print the configuration in effect (the file, defaults and flags merged) as TOML, and exit");
  app.add_option("--endpoints-file", endpointsFile,
                 "once bound, write the actual endpoints as one JSON line to this file ('-' = stdout)");
  CLI11_PARSE(app, argc, argv);

  // Flags replace [broker] keys before the pools are read (config.h, BrokerOverrides).
  flame::BrokerOverrides flags;
  if (*oClients) flags.clients = clients;
  if (*oRunners) flags.runners = runners;
  if (*oHeartbeat) {
    auto hb = flame::parseDuration(heartbeat);
    if (!hb || *hb == flame::kInfinite || hb->count() < 10)
      return usage("--heartbeat-interval: '" + heartbeat + "' is not a duration of at least 10ms");
    flags.heartbeatInterval = *hb;
  }
  if (*oLiveness) flags.liveness = liveness;
  if (*oMaxPayload) flags.maxPayloadBytes = maxPayload;
  if (*oTimeout) {
    auto to = flame::parseDuration(timeout);
    if (!to || to->count() == 0) return usage("--default-timeout: '" + timeout + "' is not a positive duration or 'infinity'");
    flags.defaultTimeout = *to;
  }
  if (*oPlacement) flags.placement = placement == "spread" ? flame::Placement::Spread : flame::Placement::Pack;
  if (*oMaxQueue) flags.maxQueue = maxQueue;
  if (*oShutdownGrace) {
    auto grace = flame::parseDuration(shutdownGrace);
    if (!grace || *grace == flame::kInfinite)
      return usage("--shutdown-grace: '" + shutdownGrace + "' is not a finite duration");
    flags.shutdownGrace = *grace;
  }
  if (*oKeepRunners) flags.keepRunnersOnShutdown = keepRunners;
  if (*oLogLevel) flags.logLevel = logLevel;
  if (*oInsecure) flags.allowPlaintext = insecure;
  if (*oMetrics) flags.metrics = metricsAddress;
  if (*oSecretKey) flags.secretKeyFile = secretKeyFile;
  if (*oClientKeys) flags.clientKeys = clientKeys;
  if (*oRunnerKeys) flags.runnerKeys = runnerKeys;
  if (*oAdminKeys) flags.adminKeys = adminKeys;

  flame::BrokerConfig config;
  try {
    config = configFile.empty() ? flame::parseConfig("", "defaults", flags) : flame::loadConfig(configFile, flags);
  } catch (const flame::ConfigError& e) {
    return usage(e.what());
  }
  if (!flame::setLogLevel(config.logLevel)) return usage("log level: unknown level '" + config.logLevel + "'");
  if (printConfig) {
    std::fputs(flame::formatConfig(config).c_str(), stdout);
    return 0;
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  std::unique_ptr<flame::Broker> broker;
  try {
    broker = std::make_unique<flame::Broker>(std::move(config));
  } catch (const flame::ConfigError& e) {
    return usage(e.what());
  } catch (const zmq::error_t& e) {
    flame::logger("broker")->error("cannot bind: {} (clients {}, runners {})", e.what(),
                                   flags.clients.value_or("default"), flags.runners.value_or("default"));
    return 1;
  }
  if (!endpointsFile.empty()) {
    try {
      writeEndpoints(endpointsFile, *broker);
    } catch (const std::exception& e) {
      flame::logger("broker")->error("{}", e.what());
      return 1;
    }
  }
  // First SIGTERM/SIGINT: clean shutdown (running work finishes within the grace); second: now.
  // SIGHUP: re-read the key allow-lists.
  flame::Duration grace = broker->config().broker.shutdownGrace;
  std::thread signals([&broker, set, grace]() mutable {
    int stops = 0;
    while (stops < 2) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        flame::logger("broker")->info("SIGHUP: re-reading the key lists");
        broker->reloadKeys();
      } else if (++stops == 1) {
        flame::logger("broker")->info("signal {}: shutting down (grace {}; signal again to stop at once)", sig,
                                      flame::formatDuration(grace));
        broker->stop();
      } else {
        flame::logger("broker")->warn("signal {} again: stopping now", sig);
        broker->stopNow();
      }
    }
  });
  signals.detach();
  broker->run();
  return 0;
}
