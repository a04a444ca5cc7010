#include "broker/broker.h"

#include "broker/boot_token.h"
#include "common/duration.h"
#include "common/log.h"

namespace flame {

const Clock& Broker::defaultClock() {
  static const SteadyClock clock;
  return clock;
}

Broker::Broker(BrokerConfig config, const Clock& clock, const BackendFactory& factory)
    : config_(std::move(config)), clock_(clock) {
  // Refused before anything is bound: plaintext endpoints other machines can reach.
  for (const std::string& warning : checkPlaintextExposure(config_)) logger("broker")->warn("{}", warning);
  // Backends first: a pool whose backend cannot work is a start-up error, before binding.
  std::vector<std::unique_ptr<Backend>> backends;
  for (auto& pool : config_.pools) backends.push_back(factory ? factory(pool) : makeBackend(pool));
  std::string secret;
  if (!config_.tokenSecretFile.empty()) {
    try {
      secret = loadOrCreateSecret(config_.tokenSecretFile);
    } catch (const std::exception& e) {
      throw ConfigError(std::string("broker.token_secret_file: ") + e.what());
    }
  }

  if (config_.security.enabled()) {
    keys_ = KeyRing::load(config_.security);  // ConfigError naming the key and file
    zap_ = std::make_unique<ZapHandler>(ctx_, *keys_, clock_);
    logger("security")->info("CURVE on both endpoints; broker key {} ({})", keys_->publicKey(),
                             config_.security.secretKeyFile);
  }
  server_ = std::make_unique<BrokerServer>(ctx_, config_.broker, clock_, keys_.get());
  server_->core().setKeyRing(keys_.get());
  advertise_ = config_.advertiseRunners.empty() ? server_->runnersEndpoint() : config_.advertiseRunners;
  scaler_ = std::make_unique<Scaler>(server_->core(), clock_, config_.brokerId, advertise_);
  firstSweep_ = clock_.now();
  if (!secret.empty()) {
    firstSweep_ = clock_.now() + config_.adoptWindow;
    scaler_->setTokenSecret(std::move(secret), firstSweep_);
    if (keys_) keys_->admitUnlistedRunnersUntil(firstSweep_);
    logger("broker")->info("runners booted by a previous run of broker_id={} may re-register for {}",
                           config_.brokerId, formatDuration(config_.adoptWindow));
  }
  scaler_->setKeyRing(keys_.get());
  for (size_t i = 0; i < config_.pools.size(); ++i)
    scaler_->addPool(config_.pools[i], std::move(backends[i]), std::make_unique<ThreadBackendExecutor>());
  server_->core().setListener(scaler_.get());
  scaler_->setWake([server = server_.get()] { server->wake(); });
  scaler_->sweepOrphans();  // deferred while runners of a previous run may come back
  if (!config_.metrics.empty()) {
    try {
      metrics_ = std::make_unique<MetricsServer>(config_.metrics, [server = server_.get()] { server->wake(); });
    } catch (const std::runtime_error& e) {
      throw ConfigError(std::string("broker.metrics: ") + e.what());
    }
    publishMetrics();
  }
}

void Broker::publishMetrics() {
  metrics_->publish(renderBrokerMetrics(server_->core(), scaler_.get(), MetricsIdentity{FLAME_VERSION, config_.brokerId}));
}

void Broker::reloadKeys() {
  reloadKeys_ = true;
  server_->wake();
}

void Broker::applyKeyReload() {
  if (!keys_) {
    logger("security")->info("reload: no [security] section, nothing to re-read");
    return;
  }
  try {
    logger("security")->info("reloaded the key lists: {}", keys_->reload());
  } catch (const ConfigError& e) {
    logger("security")->error("reload failed, the current key lists stay: {}", e.what());
    return;
  }
  server_->core().keysReloaded();
}

Broker::~Broker() {
  if (server_) server_->core().setListener(nullptr);
}

void Broker::run() {
  BrokerServer::Hooks hooks;
  hooks.setup = [this](Reactor& reactor) {
    // The orphan sweep: first when the adoption window closes (or at once), then periodically.
    auto sweep = [this] { scaler_->sweepOrphans(); };
    if (firstSweep_ > clock_.now()) reactor.at(firstSweep_, sweep);
    reactor.every(config_.orphanSweepInterval, sweep);
    if (zap_) reactor.add(zap_->socket(), [this] { zap_->onReadable(); });
    // Metrics: a snapshot every 250 ms, and one per scrape (onTick); rendering is the loop's only cost.
    if (metrics_) reactor.every(Duration(250), [this] { publishMetrics(); });
  };
  hooks.onTick = [this] {
    if (reloadKeys_.exchange(false)) applyKeyReload();
    scaler_->tick();
    if (metrics_ && metrics_->freshWanted()) publishMetrics();
  };
  hooks.nextWakeup = [this] { return scaler_->nextWakeup(); };
  // Drains go out with the server's last flush and closing time (they used to be dropped).
  hooks.onStopped = [this] { scaler_->shutdown(config_.broker.keepRunnersOnShutdown); };
  server_->run(hooks);
  if (metrics_) publishMetrics();  // the final counts, for a last scrape during shutdown
  server_->core().setListener(nullptr);
}

}  // namespace flame
