// The zero-logic reference that issue 4 quotes ("a ROUTER-ROUTER relay with credit reaches
// about 0.5 x the ceiling"), rebuilt with the same sockets, loop and clients as everything else
// here, so flame's broker can be compared with it in one run.
//
// RelayServer: two ROUTERs (clients, runners) on one thread. A client message goes, frames
// untouched and prefixed with the client's routing id, to a runner that has credit (or waits in
// a FIFO); the runner's echo goes back to the client. No decode, no deadlines, no heartbeats,
// no accounting beyond credit: the least any broker with one extra hop can cost.
// EchoRunners: DEALERs on one thread; each announces its credit ("credit N"), then sends every
// message straight back.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "bench/harness.h"

namespace flame::bench {

class RelayServer {
 public:
  // Binds both endpoints (throws zmq::error_t on failure) and starts serving.
  explicit RelayServer(Transport transport);
  ~RelayServer();
  RelayServer(const RelayServer&) = delete;
  RelayServer& operator=(const RelayServer&) = delete;

  const std::string& clientsEndpoint() const { return clientsEndpoint_; }
  const std::string& runnersEndpoint() const { return runnersEndpoint_; }

 private:
  zmq::context_t ctx_;
  zmq::socket_t clients_;
  zmq::socket_t runners_;
  std::string clientsEndpoint_, runnersEndpoint_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

class EchoRunners {
 public:
  EchoRunners(const std::string& endpoint, uint32_t runners, uint32_t creditEach);
  ~EchoRunners();
  EchoRunners(const EchoRunners&) = delete;
  EchoRunners& operator=(const EchoRunners&) = delete;

  // Waits until the relay acknowledged every runner's credit, up to `bound`.
  bool waitRegistered(Duration bound);

 private:
  void loop();

  std::string endpoint_;
  uint32_t runners_, credit_;
  PeerThread thread_;  // last: runs loop() (a runner is ready when the relay acknowledged it)
};

}  // namespace flame::bench
