// The broker's Prometheus endpoint (issue 11; docs/OPERATIONS.md lists every metric).
//
// MetricsServer serves `GET /metrics` with cpp-httplib on a thread of its own, never on the
// broker's loop: the loop renders the text (renderBrokerMetrics) and publish()es it, at most every
// 250 ms (a loop timer) and when a scrape asks for a fresh one (freshWanted(), set by the HTTP
// thread, which also wakes the loop). A scrape waits at most 500 ms for that fresh snapshot and
// otherwise serves the last one: a busy or stopped loop never blocks a scrape, and a scrape
// never blocks dispatch (the loop only takes a mutex to swap a string).
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace flame {

class BrokerCore;
class Scaler;

class MetricsServer {
 public:
  // Binds `address` ("host:port", "[::1]:port"; port 0 = one the OS chooses) and starts serving.
  // `wake` (thread-safe) makes the loop come round so it publishes. Throws std::runtime_error
  // naming the address when it cannot bind.
  MetricsServer(const std::string& address, std::function<void()> wake);
  ~MetricsServer();  // stops the HTTP thread (a scrape in progress finishes first)
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // "host:port" actually bound (port 0 resolved).
  const std::string& boundAddress() const;
  // Thread-safe: replaces the text scrapes get.
  void publish(std::string text);
  // Thread-safe: true once per scrape that asked for a fresh snapshot since the last call.
  bool freshWanted();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" / "[v6]:port"; false if malformed. Port 0..65535.
bool splitHostPort(const std::string& address, std::string& host, int& port);
// True for 127.0.0.0/8, ::1 and localhost.
bool isLoopbackHost(const std::string& host);

struct MetricsIdentity {
  std::string version;   // flame's version (flame_broker_info)
  std::string brokerId;  // broker_id
};

// The exposition text of the broker's state and counters. Loop thread (reads the core and the
// scaler, which may be nullptr).
std::string renderBrokerMetrics(const BrokerCore& core, const Scaler* scaler, const MetricsIdentity& identity);

}  // namespace flame
