// A local fake HTTP API for the Fly and Kubernetes backend tests: an httplib::Server on
// 127.0.0.1 with an OS-chosen port, run on its own thread, recording every request.
// Handlers that must be slow wait on the server's gate (released at the latest by the
// destructor), so shutdown is always bounded.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace flame::testing {

struct RecordedRequest {
  std::string method;
  std::string path;
  std::multimap<std::string, std::string> params;
  std::string body;
  std::string authorization;
  std::string contentType;

  std::string param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

// One scripted answer.
struct Reply {
  int status = 200;
  std::string body = "{}";
  std::map<std::string, std::string> headers;
};

class FakeApiServer {
 public:
  FakeApiServer() {
    server_.set_keep_alive_timeout(1);
    server_.set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40ms per answer
  }
  ~FakeApiServer() { stop(); }
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  // Register routes here before start().
  httplib::Server& server() { return server_; }

  // Binds 127.0.0.1:<any>, serves on a thread, and returns once the server accepts requests.
  void start() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("fake api server: bind failed");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!server_.is_running()) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("fake api server: did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // bounded poll for readiness
    }
  }

  // Releases the gate, stops serving and joins the thread. Idempotent.
  void stop() {
    releaseGate();
    if (thread_.joinable()) {
      server_.stop();
      thread_.join();
    }
  }

  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Call from handlers: remembers the request.
  void record(const httplib::Request& request) {
    RecordedRequest recorded;
    recorded.method = request.method;
    recorded.path = request.path;
    for (const auto& param : request.params) recorded.params.insert(param);
    recorded.body = request.body;
    recorded.authorization = request.get_header_value("Authorization");
    recorded.contentType = request.get_header_value("Content-Type");
    std::lock_guard lock(mutex_);
    requests_.push_back(std::move(recorded));
  }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  size_t requestCount() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
  }

  // For slow handlers: blocks until releaseGate() or `limit`. Returns true when released.
  bool waitGate(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex_);
    return gateChanged_.wait_for(lock, limit, [&] { return gateOpen_; });
  }
  void releaseGate() {
    std::lock_guard lock(mutex_);
    gateOpen_ = true;
    gateChanged_.notify_all();
  }

  // A handler that records the request and answers with `replies` in order, then `fallback`.
  httplib::Server::Handler scripted(std::vector<Reply> replies, Reply fallback) {
    auto queue = std::make_shared<std::deque<Reply>>(replies.begin(), replies.end());
    auto queueMutex = std::make_shared<std::mutex>();
    return [this, queue, queueMutex, fallback](const httplib::Request& request,
                                               httplib::Response& response) {
      record(request);
      Reply reply = fallback;
      {
        std::lock_guard lock(*queueMutex);
        if (!queue->empty()) {
          reply = queue->front();
          queue->pop_front();
        }
      }
      response.status = reply.status;
      for (const auto& [name, value] : reply.headers) response.set_header(name, value);
      response.set_content(reply.body, "application/json");
    };
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable gateChanged_;
  bool gateOpen_ = false;
  std::vector<RecordedRequest> requests_;
};

// A Sleeper for tests: records what it was asked to wait and optionally advances a ManualClock,
// never sleeping.
struct RecordingSleeper {
  std::shared_ptr<std::vector<std::chrono::milliseconds>> waits =
      std::make_shared<std::vector<std::chrono::milliseconds>>();
  std::function<void(std::chrono::milliseconds)> onWait;

  std::function<void(std::chrono::milliseconds)> sleeper() {
    auto recorded = waits;
    auto hook = onWait;
    return [recorded, hook](std::chrono::milliseconds d) {
      recorded->push_back(d);
      if (hook) hook(d);
    };
  }
};

}  // namespace flame::testing
