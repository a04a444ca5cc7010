// What every scenario starts: endpoints for tcp or ipc, an in-process broker on its own thread
// (with its own ZeroMQ context, so its I/O thread is not shared with the load, as if it were a
// separate process), and real child processes killed by pid.
#pragma once

#include <sys/types.h>

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/key_ring.h"
#include "broker/metrics_server.h"
#include "broker/options.h"
#include "broker/server.h"
#include "broker/zap.h"
#include "common/clock.h"
#include "common/curve_keys.h"
#include "common/transport.h"

namespace flame::bench {

enum class Transport { Tcp, Ipc };
const char* transportName(Transport t);

// A fresh endpoint to bind: "tcp://127.0.0.1:*" (the OS picks the port) or a unique
// "ipc:///tmp/flame-bench-<pid>-<n>-<role>". Thread-safe.
std::string bindEndpoint(Transport t, const std::string& role);
// Removes the socket file of an ipc endpoint (no-op for tcp).
void removeIpcFile(const std::string& endpoint);

// Monotonic nanoseconds (for latencies).
inline int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// CURVE for one measurement (issue 10): fresh key pairs for the server (the broker or the echo),
// for all the clients (one pair shared by every lean client) and for all the runners (one pair,
// listed as a static runner key), as a deployment with `client_keys` and `runner_keys` would
// have them. Generating them costs microseconds; nothing is written to disk.
struct BenchKeys {
  CurveKeyPair server, client, runner;

  static BenchKeys generate();
  // What a client / a runner connects with: the server's public key and its own pair.
  CurveClient clientSide() const { return {server.publicKey, client.publicKey, client.secretKey}; }
  CurveClient runnerSide() const { return {server.publicKey, runner.publicKey, runner.secretKey}; }
  // The server's KeyRing: its pair, the client key in client_keys, the runner key in runner_keys.
  std::unique_ptr<KeyRing> keyRing() const;
};

// flame::BrokerServer running on its own thread with its own zmq::context_t. The constructor
// returns once both sockets are bound; the destructor stops the loop and joins.
class BrokerThread {
 public:
  // zeroCopyRecv = false turns off libzmq's zero-copy receive on the broker's context (an
  // experiment knob: flame-broker keeps the libzmq default, on). With `curve` (read during the
  // constructor only), the broker is wired as flame::Broker wires it with a [security] section:
  // a KeyRing, a ZapHandler bound before the endpoints and served on the broker's loop, CURVE
  // on both endpoints, and the core told the KeyRing (it checks each client's key per message).
  // With `metrics`, the broker serves /metrics as flame::Broker does with [broker] metrics (a
  // MetricsServer on 127.0.0.1:0, a snapshot every 250 ms and one per scrape, rendered on the
  // loop), and a scraper thread GETs it every 100 ms for as long as the broker runs (issue 11).
  explicit BrokerThread(Transport transport, BrokerOptions options = {}, bool zeroCopyRecv = true,
                        const BenchKeys* curve = nullptr, bool metrics = false);
  ~BrokerThread();
  BrokerThread(const BrokerThread&) = delete;
  BrokerThread& operator=(const BrokerThread&) = delete;

  const std::string& clientsEndpoint() const { return server_->clientsEndpoint(); }
  const std::string& runnersEndpoint() const { return server_->runnersEndpoint(); }

 private:
  SteadyClock clock_;
  zmq::context_t ctx_;
  std::unique_ptr<KeyRing> keys_;    // CURVE only
  std::unique_ptr<ZapHandler> zap_;  // CURVE only; bound before server_'s endpoints
  std::unique_ptr<BrokerServer> server_;
  std::unique_ptr<MetricsServer> metrics_;  // metrics only
  std::thread scraper_;                     // metrics only
  std::atomic<bool> stopScraping_{false};
  std::thread thread_;
};

// A child process (fork + exec) with stdout and stderr sent to `logFile`, killed by pid: the
// destructor sends SIGTERM, waits up to `termGrace`, then SIGKILLs and reaps. The child also
// gets SIGKILL if this process dies (PR_SET_PDEATHSIG), so nothing outlives a crashed bench.
class ChildProcess {
 public:
  static std::unique_ptr<ChildProcess> start(const std::vector<std::string>& argv, const std::string& logFile,
                                             std::chrono::milliseconds termGrace = std::chrono::milliseconds(5000));
  ~ChildProcess();
  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it if it has).
  bool running();
  // Terminates as described above. Idempotent.
  void terminate();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::chrono::milliseconds termGrace_{5000};
};

// Resident set size of `pid` in bytes (VmRSS), or nullopt if unreadable.
std::optional<uint64_t> residentBytes(pid_t pid);

// Directory of the flame-bench executable (where flame-broker and flame-worker are built).
std::string executableDir();

// A private scratch directory /tmp/flame-bench-<pid>-XXXXXX, removed with its files by the
// destructor.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Thread names, so a profiler (perf, top -H) tells the roles apart: the calling thread gets
// `name` (at most 15 bytes), and a context's I/O threads become "<prefix>/ZMQbg/IO/n".
enum class Role { Broker = 1, Runners = 2, Clients = 3, Echo = 4 };
void nameThread(const char* name);
void nameContext(zmq::context_t& ctx, Role role);

// The thread of a set of in-process peers (the runner farm, the relay's echo runners): runs
// `body` until the destructor asks it to stop (stopping(), plus a write to wakeFd() so a
// blocking wait returns), turns an exception from `body` into failure(), and counts peers
// that became ready (markReady) for the owner to wait on (waitReady). Construct it as the
// owner's last member: its thread then starts after, and is joined before, everything the
// body uses.
class PeerThread {
 public:
  explicit PeerThread(std::function<void()> body);
  ~PeerThread();
  PeerThread(const PeerThread&) = delete;
  PeerThread& operator=(const PeerThread&) = delete;

  int wakeFd() const { return wakeFd_; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  void markReady();
  // Waits until `count` peers are ready (true), the body failed or `bound` passed (false).
  bool waitReady(uint32_t count, Duration bound);
  std::string failure() const;

 private:
  int wakeFd_ = -1;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  uint32_t ready_ = 0;   // guarded by mutex_
  std::string failure_;  // guarded by mutex_
  std::thread thread_;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (fan-out opens thousands of descriptors).
void raiseFileLimit();

}  // namespace flame::bench
