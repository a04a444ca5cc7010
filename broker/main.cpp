// flame-broker: parses flags, builds the real clock and sockets, wires them, runs.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <thread>

#include "broker/server.h"
#include "common/duration.h"
#include "common/log.h"


int main(int argc, char** argv) {
  CLI::App app{"flame-broker: routes call/cast/place jobs from clients to runners"};
  flame::BrokerOptions options;
  std::string heartbeat = "1000ms", timeout = "30s", placement = "pack", logLevel = "info";
  app.add_option("--clients", options.clientsEndpoint, "client endpoint to bind")->capture_default_str();
  app.add_option("--runners", options.runnersEndpoint, "runner endpoint to bind")->capture_default_str();
  app.add_option("--heartbeat-interval", heartbeat, "heartbeat interval (e.g. 500ms, 1s)")->capture_default_str();
  app.add_option("--liveness", options.liveness, "missed heartbeats before a peer is dead")
      ->check(CLI::Range(1u, 1000u))->capture_default_str();
  app.add_option("--max-payload", options.maxPayloadBytes, "largest payload/result frame in bytes")
      ->check(CLI::Range(size_t(1), size_t(1) << 31))->capture_default_str();
  app.add_option("--default-timeout", timeout, "deadline of jobs that do not set one")->capture_default_str();
  app.add_option("--placement", placement, "pack or spread")->check(CLI::IsMember({"pack", "spread"}))->capture_default_str();
  app.add_option("--max-queue", options.maxQueue, "per-pool queue limit, 0 = unlimited")->capture_default_str();
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto hb = flame::parseDuration(heartbeat);
  if (!hb || *hb == flame::kInfinite || hb->count() < 10) {
    std::fprintf(stderr, "flame-broker: --heartbeat-interval: '%s' is not a duration of at least 10ms\n", heartbeat.c_str());
    return 2;
  }
  auto to = flame::parseDuration(timeout);
  if (!to || to->count() == 0) {
    std::fprintf(stderr, "flame-broker: --default-timeout: '%s' is not a positive duration or 'infinity'\n", timeout.c_str());
    return 2;
  }
  if (!flame::setLogLevel(logLevel)) {
    std::fprintf(stderr, "flame-broker: --log-level: unknown level '%s'\n", logLevel.c_str());
    return 2;
  }
  options.heartbeatInterval = *hb;
  options.defaultTimeout = *to;
  options.placement = placement == "spread" ? flame::Placement::Spread : flame::Placement::Pack;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  flame::SteadyClock clock;
  zmq::context_t ctx;
  std::unique_ptr<flame::BrokerServer> server;
  try {
    server = std::make_unique<flame::BrokerServer>(ctx, options, clock);
  } catch (const zmq::error_t& e) {
    flame::logger("broker")->error("cannot bind: {} (clients {}, runners {})", e.what(), options.clientsEndpoint,
                                   options.runnersEndpoint);
    return 1;
  }
  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    flame::logger("broker")->info("signal {}: stopping", sig);
    server->stop();
  });
  signals.detach();
  server->run();
  return 0;
}
