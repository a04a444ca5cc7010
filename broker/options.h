// Broker settings that flags (and later the config file) set. Plain data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/liveness.h"

namespace flame {

enum class Placement : uint8_t {
  Pack,    // fill the busiest runner that has a free slot, so others can go idle
  Spread,  // the least busy runner
};

struct BrokerOptions {
  std::string clientsEndpoint = "tcp://127.0.0.1:5555";
  std::string runnersEndpoint = "tcp://127.0.0.1:5556";
  Duration heartbeatInterval{1000};
  uint32_t liveness = 3;                      // a peer is dead after interval x liveness of silence
  size_t maxPayloadBytes = 16 * 1024 * 1024;  // per payload/result frame
  size_t maxHeaderBytes = 64 * 1024;
  Duration defaultTimeout{30000};             // call/cast deadline when the client sends 0
  Placement placement = Placement::Pack;      // for pools created on the fly
  uint32_t maxQueue = 0;                      // per pool, 0 = unlimited
  // On SIGTERM: how long running jobs may take to finish before they are answered shuttingDown.
  Duration shutdownGrace{20000};
  // On SIGTERM: leave runners running (no drain), for a successor broker to re-adopt them.
  bool keepRunnersOnShutdown = false;
  Duration livenessWindow() const { return flame::livenessWindow(heartbeatInterval, liveness); }
};

}  // namespace flame
