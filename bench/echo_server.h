// EchoServer: the ceiling. A bare ROUTER (bound with the broker's own socket options, from
// common/transport.h) on its own thread and ZeroMQ context that sends every message straight
// back to its sender: the most any broker design can do with one hop on this machine.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "bench/harness.h"

namespace flame::bench {

class EchoServer {
 public:
  // Binds (throws zmq::error_t on failure) and starts serving. With `curve` (read during the
  // constructor only) the ROUTER is a CURVE server in the clients' ZAP domain, with its own
  // KeyRing and ZapHandler (bound first, served on the echo's loop): the ceiling under CURVE.
  explicit EchoServer(Transport transport, const BenchKeys* curve = nullptr);
  // Stops and joins.
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  const std::string& endpoint() const { return endpoint_; }

 private:
  zmq::context_t ctx_;
  std::unique_ptr<KeyRing> keys_;    // CURVE only
  std::unique_ptr<ZapHandler> zap_;  // CURVE only; bound before router_
  zmq::socket_t router_;
  std::string endpoint_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace flame::bench
