#include "tests/chaos/client_load.h"

#include <random>

#include "client/client.h"

namespace flame::chaos {

namespace {
using Ms = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;
using Rng = std::mt19937_64;

std::string codeName(const Failure& f) { return std::string(errorCodeName(f.code)); }

// How long draining may take: the longest request's timeout plus the client's local safety
// margin (2 heartbeats) plus slack.
constexpr Ms kDrainBound{20000};

struct PlacedChild {
  uint64_t tag;
  ChildHandle handle;
  SteadyClock::time_point stopAt;
};
}  // namespace

ClientLoad::ClientLoad(LoadOptions options, RequestLedger& ledger) : options_(std::move(options)), ledger_(ledger) {}

ClientLoad::~ClientLoad() {
  stop();
  {
    std::lock_guard lock(mutex_);
    release_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void ClientLoad::start() {
  for (int i = 0; i < options_.clients; ++i) threads_.emplace_back([this, i] { runClient(i); });
}

void ClientLoad::stop() { stopping_ = true; }

bool ClientLoad::waitDrained(Ms bound) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, bound, [&] { return drained_ == options_.clients; });
}

bool ClientLoad::finish(Ms bound) {
  std::unique_lock lock(mutex_);
  release_ = true;
  cv_.notify_all();
  bool ok = cv_.wait_for(lock, bound, [&] { return finished_ == options_.clients; });
  lock.unlock();
  if (ok) {
    for (auto& t : threads_) t.join();
  } else {
    stuck_ = static_cast<size_t>(options_.clients - finished_);
    for (auto& t : threads_) t.detach();  // stuck in the client library: cannot be joined
  }
  threads_.clear();
  return ok;
}

void ClientLoad::runClient(int index) {
  // Declared before the client: its callbacks (run until ~Client) use them.
  std::mutex m;
  std::condition_variable cv;
  int inFlight = 0;
  std::vector<PlacedChild> children;
  Rng rng(options_.seed * 1000003 + static_cast<uint64_t>(index));
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  auto coin = [&](double p) { return std::bernoulli_distribution(p)(rng); };

  {
    Client client(ClientOptions{.broker = options_.broker, .heartbeatInterval = options_.heartbeat,
                                .liveness = options_.liveness});
    auto sendCall = [&](Kind kind, const std::string& function, const std::string& payload, std::string expected,
                        CallOptions opts, uint64_t tag) {
      ledger_.openReserved(tag, kind, std::move(expected));
      {
        std::lock_guard lock(m);
        ++inFlight;
      }
      client.callAsync(options_.pool, function, payload, opts, [&, tag](CallResult r) {
        if (r) ledger_.answerOk(tag, r.value());
        else ledger_.answerError(tag, codeName(r.error()), r.error().message);
        std::lock_guard lock(m);
        --inFlight;
        cv.notify_all();
      });
    };
    auto stopChild = [&](const PlacedChild& c) {
      auto s = client.stop(c.handle, Ms(3000));
      ledger_.stopOutcome(c.tag, s ? "ok" : codeName(s.error()));
    };

    while (!stopping_) {
      auto now = SteadyClock::now();
      for (auto it = children.begin(); it != children.end();) {
        if (it->stopAt <= now) {
          stopChild(*it);
          it = children.erase(it);
        } else {
          ++it;
        }
      }
      {
        // Waiting for an answer to free room (an event), re-checking stopping_ now and then.
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, Ms(100), [&] { return inFlight < options_.maxInFlight; })) continue;
      }
      int roll = static_cast<int>(uniform(0, 99));
      uint64_t tag = ledger_.reserveTag();
      if (roll < 40) {  // call echo
        auto payload = tagPayload(tag, rng());
        sendCall(Kind::CallEcho, "echo", payload, payload,
                 CallOptions{.timeout = Ms(4000), .link = coin(0.5)}, tag);
      } else if (roll < 65) {  // idempotent call echo with retries
        auto payload = tagPayload(tag, rng());
        sendCall(Kind::CallEchoIdempotent, "echo", payload, payload,
                 CallOptions{.timeout = Ms(6000), .idempotent = true, .retries = 2, .link = coin(0.5)}, tag);
      } else if (roll < 72) {  // call sleep: long, so runners are mid-job when faults hit
        int64_t ms = uniform(200, 2500);
        bool idem = coin(0.3);
        sendCall(Kind::CallSleep, "sleep", std::to_string(ms), "slept " + std::to_string(ms),
                 CallOptions{.timeout = Ms(ms + 3000), .idempotent = idem, .retries = uint8_t(idem ? 1 : 0),
                             .link = coin(0.5)},
                 tag);
      } else if (roll < 86) {  // cast echo
        ledger_.openReserved(tag, Kind::CastEcho, {});
        auto r = client.cast(options_.pool, "echo", tagPayload(tag, rng()),
                             CallOptions{.timeout = Ms(4000), .link = coin(0.5)});
        if (r) ledger_.answerOk(tag, std::nullopt);
        else ledger_.answerError(tag, codeName(r.error()), r.error().message);
      } else if (roll < 92) {  // cast sleep
        ledger_.openReserved(tag, Kind::CastSleep, {});
        int64_t ms = uniform(200, 2500);
        auto r = client.cast(options_.pool, "sleep", std::to_string(ms),
                             CallOptions{.timeout = Ms(ms + 3000), .link = coin(0.5)});
        if (r) ledger_.answerOk(tag, std::nullopt);
        else ledger_.answerError(tag, codeName(r.error()), r.error().message);
      } else if (children.size() < 2) {  // place a long child, stop it later
        ledger_.openReserved(tag, Kind::Place, {});
        int64_t ms = uniform(1500, 5000);
        bool link = coin(0.7);
        auto onExit = [this, tag](uint64_t, std::optional<Failure> why) {
          ledger_.childExit(tag, why ? codeName(*why) : "none", why ? why->message : "");
        };
        auto r = client.place(options_.pool, "sleep", std::to_string(ms),
                              CallOptions{.timeout = Ms(ms + 4000), .link = link}, onExit);
        if (r) {
          ledger_.answerOk(tag, std::nullopt);
          if (link) ledger_.expectChildExit(tag);
          children.push_back(PlacedChild{tag, r.value(), SteadyClock::now() + Ms(uniform(300, 4000))});
        } else {
          ledger_.answerError(tag, codeName(r.error()), r.error().message);
        }
      } else {  // one more echo call instead of a third child
        auto payload = tagPayload(tag, rng());
        sendCall(Kind::CallEcho, "echo", payload, payload, CallOptions{.timeout = Ms(4000), .link = false}, tag);
      }
      // Pacing of this client's requests (load shape, not synchronisation).
      std::this_thread::sleep_for(Ms(uniform(10, 40)));
    }

    // Drain: stop our children, then wait (bounded) for every call to be answered.
    for (auto& c : children) stopChild(c);
    children.clear();
    {
      std::unique_lock lock(m);
      cv.wait_for(lock, kDrainBound, [&] { return inFlight == 0; });
    }
    {
      std::unique_lock lock(mutex_);
      ++drained_;
      cv_.notify_all();
      // The driver closes the books, then releases us (bounded: the driver may be gone).
      cv_.wait_for(lock, Ms(120000), [&] { return release_; });
    }
  }  // ~Client: answers anything still outstanding with shutting_down
  std::lock_guard lock(mutex_);
  ++finished_;
  cv_.notify_all();
}

}  // namespace flame::chaos
