// flame::Broker: a whole broker in one object. It takes a merged config (config file + flags:
// broker/config.h, loadConfig with BrokerOverrides), builds every pool's backend, binds the two
// endpoints, wires the scaler to the core, and runs the one loop (BrokerServer) with the
// scaler's deadlines and the orphan sweep as timers. flame-broker's main is argument parsing
// around it; a test or an application embeds a broker with it:
//
//   flame::Broker broker(flame::parseConfig(toml, "app"));   // throws ConfigError, zmq::error_t
//   std::thread loop([&] { broker.run(); });
//   ... broker.clientsEndpoint() ...
//   broker.stop();  loop.join();
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "broker/config.h"
#include "broker/metrics_server.h"
#include "broker/scaler.h"
#include "broker/server.h"
#include "broker/zap.h"
#include "common/clock.h"

namespace flame {

class Broker {
 public:
  // Builds a pool's backend (default: makeBackend, from the pool's config). Tests and embedders
  // may supply their own.
  using BackendFactory = std::function<std::unique_ptr<Backend>(const PoolConfig&)>;

  // Builds the backends (a pool whose backend cannot work throws ConfigError, before anything is
  // bound), binds (zmq::error_t if a bind fails) and wires the scaler. `clock` (not owned; the
  // real steady clock by default) must outlive the broker.
  explicit Broker(BrokerConfig config, const Clock& clock = defaultClock(), const BackendFactory& backends = {});
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // The endpoints actually bound (a "*" port resolved) and the one booted runners are given.
  const std::string& clientsEndpoint() const { return server_->clientsEndpoint(); }
  const std::string& runnersEndpoint() const { return server_->runnersEndpoint(); }
  const std::string& advertisedRunnersEndpoint() const { return advertise_; }
  // The Prometheus endpoint actually bound ("127.0.0.1:9464", a port 0 resolved); "" when off.
  std::string metricsAddress() const { return metrics_ ? metrics_->boundAddress() : std::string(); }

  // Serves until stop() (clean: running work finishes within shutdown_grace) or stopNow().
  // Before it returns, the scaler has drained and stopped every machine (or left them, with
  // keep_runners_on_shutdown) and every message queued until then has been sent.
  void run();
  // Thread-safe (also from a signal-handling thread): see BrokerServer::stop()/stopNow().
  void stop() { server_->stop(); }
  void stopNow() { server_->stopNow(); }
  // Thread-safe (SIGHUP): the loop re-reads the [security] allow-lists on its next turn. A bad
  // file keeps the current lists (logged). Keys no longer listed: new handshakes are refused,
  // their open connections get `unauthorized` for every further request, their static runners
  // are drained. Without [security], logs that there is nothing to reload.
  void reloadKeys();

  const BrokerConfig& config() const { return config_; }
  BrokerCore& core() { return server_->core(); }
  Scaler& scaler() { return *scaler_; }

  static const Clock& defaultClock();

 private:
  void applyKeyReload();  // on the loop
  BrokerConfig config_;
  const Clock& clock_;
  zmq::context_t ctx_;
  std::unique_ptr<KeyRing> keys_;
  std::unique_ptr<ZapHandler> zap_;  // bound before the endpoints, so no handshake goes unchecked
  std::atomic<bool> reloadKeys_{false};
  std::unique_ptr<BrokerServer> server_;
  std::unique_ptr<Scaler> scaler_;
  std::string advertise_;
  TimePoint firstSweep_{};
  std::unique_ptr<MetricsServer> metrics_;  // [broker] metrics; its HTTP thread never touches the core
  void publishMetrics();                    // on the loop
};

}  // namespace flame
