// flame-broker: reads the config file and flags, builds the real clock, sockets, backends and
// scaler, wires them, runs. Everything else lives in the flame_broker library.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "broker/boot_token.h"
#include "broker/config.h"
#include "broker/scaler.h"
#include "broker/server.h"
#include "common/duration.h"
#include "common/log.h"

namespace {

int usage(const std::string& message) {
  std::fprintf(stderr, "flame-broker: %s\n", message.c_str());
  return 2;
}

void writeEndpoints(const std::string& file, flame::BrokerServer& server) {
  bool toStdout = file == "-";
  std::string tmp = file + ".tmp";
  FILE* f = toStdout ? stdout : std::fopen(tmp.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write --endpoints-file " + file);
  std::fprintf(f, "{\"clients\": \"%s\", \"runners\": \"%s\", \"pid\": %d}\n", server.clientsEndpoint().c_str(),
               server.runnersEndpoint().c_str(), static_cast<int>(getpid()));
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
  app.add_option("--endpoints-file", endpointsFile,
                 "once bound, write the actual endpoints as one JSON line to this file ('-' = stdout)");
  CLI11_PARSE(app, argc, argv);

  flame::BrokerConfig config;
  try {
    if (!configFile.empty()) config = flame::loadConfig(configFile);
    else config = flame::parseConfig("", "defaults");
  } catch (const flame::ConfigError& e) {
    return usage(e.what());
  }
  auto& o = config.broker;
  if (*oClients) o.clientsEndpoint = clients;
  if (*oRunners) o.runnersEndpoint = runners;
  if (*oHeartbeat) {
    auto hb = flame::parseDuration(heartbeat);
    if (!hb || *hb == flame::kInfinite || hb->count() < 10)
      return usage("--heartbeat-interval: '" + heartbeat + "' is not a duration of at least 10ms");
    o.heartbeatInterval = *hb;
  }
  if (*oLiveness) o.liveness = liveness;
  if (*oMaxPayload) o.maxPayloadBytes = maxPayload;
  if (*oTimeout) {
    auto to = flame::parseDuration(timeout);
    if (!to || to->count() == 0) return usage("--default-timeout: '" + timeout + "' is not a positive duration or 'infinity'");
    o.defaultTimeout = *to;
  }
  if (*oPlacement) o.placement = placement == "spread" ? flame::Placement::Spread : flame::Placement::Pack;
  if (*oMaxQueue) o.maxQueue = maxQueue;
  if (*oShutdownGrace) {
    auto grace = flame::parseDuration(shutdownGrace);
    if (!grace || *grace == flame::kInfinite)
      return usage("--shutdown-grace: '" + shutdownGrace + "' is not a finite duration");
    o.shutdownGrace = *grace;
  }
  if (*oKeepRunners) o.keepRunnersOnShutdown = keepRunners;
  if (*oLogLevel) config.logLevel = logLevel;
  if (!flame::setLogLevel(config.logLevel)) return usage("log level: unknown level '" + config.logLevel + "'");

  // Backends first: a pool whose backend cannot work is a start-up error, before binding.
  std::vector<std::pair<const flame::PoolConfig*, std::unique_ptr<flame::Backend>>> backends;
  try {
    for (auto& pool : config.pools) backends.emplace_back(&pool, flame::makeBackend(pool));
  } catch (const flame::ConfigError& e) {
    return usage(e.what());
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  flame::SteadyClock clock;
  zmq::context_t ctx;
  std::unique_ptr<flame::BrokerServer> server;
  try {
    server = std::make_unique<flame::BrokerServer>(ctx, o, clock);
  } catch (const zmq::error_t& e) {
    flame::logger("broker")->error("cannot bind: {} (clients {}, runners {})", e.what(), o.clientsEndpoint,
                                   o.runnersEndpoint);
    return 1;
  }
  std::string advertise = config.advertiseRunners.empty() ? server->runnersEndpoint() : config.advertiseRunners;
  flame::Scaler scaler(server->core(), clock, config.brokerId, advertise);
  auto firstSweep = clock.now();
  if (!config.tokenSecretFile.empty()) {
    try {
      firstSweep = clock.now() + config.adoptWindow;
      scaler.setTokenSecret(flame::loadOrCreateSecret(config.tokenSecretFile), firstSweep);
    } catch (const std::exception& e) {
      return usage(std::string("token_secret_file: ") + e.what());
    }
    flame::logger("broker")->info("runners booted by a previous run of broker_id={} may re-register for {}",
                                  config.brokerId, flame::formatDuration(config.adoptWindow));
  }
  for (auto& [pool, backend] : backends)
    scaler.addPool(*pool, std::move(backend), std::make_unique<flame::ThreadBackendWorker>());
  server->core().setListener(&scaler);
  scaler.setWake([&] { server->wake(); });
  scaler.sweepOrphans();  // deferred while runners of a previous run may come back

  if (!endpointsFile.empty()) {
    try {
      writeEndpoints(endpointsFile, *server);
    } catch (const std::exception& e) {
      flame::logger("broker")->error("{}", e.what());
      return 1;
    }
  }
  // First SIGTERM/SIGINT: clean shutdown (running work finishes within the grace); second: now.
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    flame::logger("broker")->info("signal {}: shutting down (grace {}; signal again to stop at once)", sig,
                                  flame::formatDuration(o.shutdownGrace));
    server->stop();
    sigwait(&set, &sig);
    flame::logger("broker")->warn("signal {} again: stopping now", sig);
    server->stopNow();
  });
  signals.detach();

  auto nextSweep = firstSweep > clock.now() ? firstSweep : clock.now() + config.orphanSweepInterval;
  server->run([&] {
    scaler.tick();
    if (clock.now() >= nextSweep) {
      nextSweep = clock.now() + config.orphanSweepInterval;
      scaler.sweepOrphans();
    }
  });
  scaler.shutdown(o.keepRunnersOnShutdown);
  server->core().setListener(nullptr);
  return 0;
}
