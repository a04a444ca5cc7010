// flame::Client: submit jobs to a flame broker from C++ (docs/PROTOCOL.md, client side).
//
//   flame::Client client({.broker = "tcp://broker:5555"});
//   auto r = client.call("thumbs", "resize", bytes);
//   if (!r) std::cerr << r.error().toString();   // "timeout: ..."
//
// Threading: every method may be called from any thread. One background I/O thread owns the
// DEALER socket and the protocol state (ClientCore, client/client_core.h), on one Reactor loop.
// API calls encode the request on the calling thread and hand it to the I/O thread (a batch
// queue and an eventfd); calls made on the I/O thread itself (from a completion callback) go to
// the core directly. Completion callbacks (the std::function overloads, and place()'s onExit)
// run on that I/O thread: keep them short, and call only asynchronous methods from them (a
// synchronous method called there fails at once with `internal` instead of deadlocking).
//
// Deadlines and liveness (every request is answered exactly once, no caller hangs on a dead
// broker):
// - A call's timeout is enforced by the broker. The client adds a local safety deadline of
//   wait + timeout + 2 x heartbeatInterval (for calls and places with a finite, non-zero
//   timeout; a call that may be retried gets every attempt and the backoff delays between them,
//   or none when its backoff is the pool's: clientDeadlineBudget in client/client_core.h),
//   after which the request fails with `timeout` and a best-effort `cancel` is sent.
// - While anything is outstanding (a request, a linked child, a child placed with an onExit, an
//   event subscription), the client sends `heartbeat` every interval and adopts the broker's
//   interval when the broker's is smaller. If nothing at all is heard from the broker for
//   interval x liveness (the rule of common/liveness.h, counted from the last message or from
//   when work began, whichever is later: an idle client hears nothing and owes nothing), every
//   outstanding request fails with `broker_unreachable` and every watched child is reported
//   exited with `broker_unreachable`.
//   This also bounds requests that cannot even be sent (no broker listening).
// - A broker that restarts forgets requests in flight: its heartbeat answers carry a new run id,
//   and every outstanding request fails with `broker_unreachable` at once.
// - Payloads over the broker's limit (told in its heartbeat answers) fail with
//   `payload_too_large` without being sent; a payload over 1 MiB waits for that answer first.
// - A handshake the broker refuses (a key not on its allow-list, CURVE on one side only, a wrong
//   server key) fails every outstanding request at once with `unauthorized`, naming the key's
//   fingerprint, and so every new one until a later handshake succeeds (the client tries a fresh
//   connection after 0.5 s, backing off to 10 s). No request waits out a timeout for it.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "client/child_handle.h"
#include "client/outcome.h"
#include "client/typed.h"
#include "common/clock.h"
#include "common/function.h"
#include "common/messages.h"

namespace flame {

struct ClientOptions {
  std::string broker = "tcp://127.0.0.1:5555";  // the broker's client endpoint
  // Heartbeat period while work is outstanding. The broker is considered gone after
  // heartbeatInterval x liveness without any message from it. Raised to at least 1 ms and 1.
  Duration heartbeatInterval{1000};
  uint32_t liveness = 3;
  // Times deadlines, heartbeats and liveness. nullptr: the real steady clock. Not owned; must
  // outlive the Client.
  const Clock* clock = nullptr;
  // A ZeroMQ context to share (not owned; must outlive the Client): several Clients and Runners
  // of one process on one context share its I/O thread instead of starting one each (measured:
  // flame-bench library, "shared context"). nullptr: the Client's own context.
  zmq::context_t* context = nullptr;
  // CURVE (docs/PROTOCOL.md, "Encryption and authentication"): the broker's Z85 public key and
  // this client's Z85 secret key (its public key, derived from it, is what the broker's
  // allow-list names). Both empty: plaintext. Read key files with common/curve_keys.h.
  std::string serverKey;
  std::string secretKey;
};

struct CallOptions {
  // The run budget: counted from the moment a runner takes the work, so a cold boot does not
  // eat it (PROTOCOL.md, Deadlines). Duration(0) = the pool's default (a call: its `timeout`; a
  // cast: its `cast_timeout`, infinite unless set; a place: infinite — a child runs until it
  // returns or is stopped, unless given a maximum lifetime here); kInfinite = none.
  Duration timeout{0};
  // How long the work may wait for a runner (queue and boot) before it fails `timeout`.
  // Duration(0) = the pool's `wait_timeout` (default: its boot_timeout + 10 s; for a cast, its
  // cast_timeout); kInfinite = no bound. For a place, this bounds the placement.
  Duration waitTimeout{0};
  // Retries (call and cast; a place is never retried). The broker runs the work again, after a
  // backoff, when it failed for a reason allowed here, at most `retries` times:
  // - idempotent: its runner was lost (runner_lost); the work may run twice, so only for work
  //   that is safe to repeat;
  // - retryHandlerError: the handler failed (handler_error);
  // - retryTimeout: its run budget ran out on a runner (timeout; the wait bound is not retried).
  bool idempotent = false;
  uint8_t retries = 0;  // re-runs for every allowed reason together; 0 = the default, 1
  bool retryHandlerError = false;
  bool retryTimeout = false;
  // Delay before the first retry, doubled for each later one and jittered down by up to 25%.
  // Duration(0) = the pool's `retry_backoff` (default 0: at once).
  Duration retryBackoff{0};
  // Cap of that delay. Duration(0) = the pool's `retry_backoff_max` (default 10 min).
  Duration retryBackoffMax{0};
  // Tie the work to this client: the client heartbeats while it is outstanding, the broker
  // cancels it (and stops linked children) if the client goes away, and ~Client cancels it.
  bool link = true;
};

using CallResult = Outcome<std::string>;  // the function's result bytes

// New scaling limits for a pool; fields left empty stay as they are.
struct PoolLimitsUpdate {
  std::optional<uint32_t> min{};
  std::optional<uint32_t> max{};
  std::optional<uint32_t> warmSlots{};
};

// A live event subscription (Client::subscribe). Move-only; destroying it, or cancel(), ends the
// subscription. May outlive its Client (it then does nothing).
class Subscription {
 public:
  Subscription() = default;
  ~Subscription() { cancel(); }
  Subscription(Subscription&& other) noexcept { *this = std::move(other); }
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Ends the subscription: a `cancel` goes to the broker and onEnd runs once with `cancelled`
  // on the I/O thread (at once when called there, e.g. from onEvent), unless it had already
  // ended. No event is delivered after onEnd. Any thread; idempotent.
  void cancel();
  // The subscription's id (the requestId of its events); 0 for an empty handle.
  uint64_t id() const { return id_; }
  // The broker's last event number when it subscribed us: the first event is numbered above it.
  uint64_t lastSeq() const { return lastSeq_; }
  explicit operator bool() const { return id_ != 0; }

  // (The shell's side: what a handle reaches to cancel. Opaque to callers.)
  struct Link;

 private:
  friend class Client;
  Subscription(std::shared_ptr<Link> link, uint64_t id, uint64_t lastSeq)
      : link_(std::move(link)), id_(id), lastSeq_(lastSeq) {}
  std::shared_ptr<Link> link_;
  uint64_t id_ = 0;
  uint64_t lastSeq_ = 0;
};

class Client {
 public:
  // Connects to options.broker (asynchronously: no broker needs to be up yet) and starts the
  // I/O thread. Throws zmq::error_t for an invalid endpoint, std::invalid_argument for a key
  // without the other or one that is not Z85.
  explicit Client(ClientOptions options = {});
  // Sends `cancel` for outstanding linked calls and places and `stopChild` for linked children
  // (best effort), fails every outstanding request with `shutting_down`, reports every watched
  // child exited with `shutting_down`, and joins the I/O thread. No method may be running or
  // called concurrently with the destructor, and it must not run inside a completion callback.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs `function` on a runner of `pool` with `payload` and waits for its result bytes.
  CallResult call(std::string_view pool, std::string_view function, std::string_view payload,
                  CallOptions options = {});
  // Same, without waiting. The future is always satisfied (see the liveness rules above).
  std::future<CallResult> callAsync(std::string_view pool, std::string_view function,
                                    std::string_view payload, CallOptions options = {});
  // Same; `done` runs once, on the I/O thread (or on the calling thread if the client is
  // already shutting down).
  void callAsync(std::string_view pool, std::string_view function, std::string_view payload,
                 CallOptions options, std::function<void(CallResult)> done);

  // Queues a fire-and-forget job and returns its job id once the broker accepted it. With
  // link = true (the default) the job is dropped or cancelled if this client goes away.
  Outcome<uint64_t> cast(std::string_view pool, std::string_view function, std::string_view payload,
                         CallOptions options = {});

  // Starts a long-running child and returns its handle once a runner has taken it.
  // options.timeout 0 means infinite here (it bounds the child's whole life otherwise).
  // `onExit`, linked child or not, runs exactly once on the I/O thread: on `childExited`
  // (nullopt when the function returned normally), when `stop()` ends it (`cancelled`), when the
  // broker is lost or restarts (`broker_unreachable`) or when the client is destroyed
  // (`shutting_down`). The broker tells the placer of every child's exit while the placer is
  // connected, so the client heartbeats while it watches a child. At destruction a linked child
  // is stopped; an unlinked one keeps running (its shutting_down message says the client stopped
  // watching it). An unlinked child placed without onExit is not watched at all.
  Outcome<ChildHandle> place(
      std::string_view pool, std::string_view function, std::string_view payload,
      CallOptions options = {},
      std::function<void(uint64_t childId, std::optional<Failure>)> onExit = {});

  // Stops a child (any client may) and waits until it has ended. Fails with `not_found` for an
  // unknown child, `timeout` when `timeout` passes first (the stop may still happen).
  Outcome<void> stop(const ChildHandle& child, Duration timeout = kInfinite);

  // The broker's view of every pool. Fails with `broker_unreachable` after `timeout`.
  Outcome<msg::StatusReply> status(Duration timeout = Duration(5000));

  // Changes the scaling limits of a pool declared in the broker's config (message setPool) and
  // returns the status of that pool afterwards. Fails with `unknown_pool`, `bad_request`
  // (e.g. min > max), or `broker_unreachable` after `timeout`.
  Outcome<msg::StatusReply> setPool(std::string_view pool, const PoolLimitsUpdate& update,
                                    Duration timeout = Duration(5000));

  // Subscribes to the broker's events (docs/OPERATIONS.md, "Events") of `pool`, or of every
  // pool when `pool` is empty, and returns once the broker confirmed it. Fails with
  // `unknown_pool`, or `broker_unreachable` after `timeout`. Then `onEvent` runs for each event,
  // in the broker's order, and `onEnd` exactly once when the subscription ends: `cancelled`
  // (Subscription::cancel or its destructor), `broker_unreachable` (a silent broker, or a broker
  // restart: the new run knows no subscriber), `unauthorized` (a refused handshake),
  // `shutting_down` (~Client) or an error the broker ends it with. Both run on the I/O thread
  // (the first events may run before subscribe() returns); keep them short. While subscribed
  // the client heartbeats, so the broker keeps the subscription. A slow consumer may miss
  // events: `seq` then jumps (detectable without a pool filter, where seq counts every event).
  Outcome<Subscription> subscribe(std::string_view pool, std::function<void(const msg::Event&)> onEvent,
                                  std::function<void(Failure)> onEnd = {}, Duration timeout = Duration(5000));

  // Typed call: builds a Req (a Cap'n Proto struct) with `build`, sends it as the payload and
  // parses the result bytes as a Resp. Bad result bytes fail with {BadRequest, "bad result: ..."}.
  //   auto r = client.callTyped<Resize, Image>("thumbs", "resize",
  //                                            [](Resize::Builder b) { b.setWidth(64); });
  //   if (r) use(r->get().getData());   // r->get() is an Image::Reader, valid while r lives
  template <class Req, class Resp>
  Outcome<Typed<Resp>> callTyped(std::string_view pool, std::string_view function,
                                 const std::function<void(typename Req::Builder)>& build,
                                 CallOptions options = {}) {
    auto result = call(pool, function, toBytes<Req>(build), options);
    if (!result) return result.error();
    return fromBytes<Resp>(result.value());
  }

  // Typed call of a flame::Function<In, Out> (common/function.h), declared once and shared
  // with the runner that serves it: `args` is encoded as In, the result bytes decoded as Out
  // (a Typed<Out> for a Cap'n Proto struct, std::string, or the trivially copyable type).
  // Passing arguments of another type is a compile error. A result that does not decode fails
  // with {BadRequest, "bad result of <function>: <why>"}.
  //   inline constexpr flame::Function<Document, Counts> countWords{"count_words"};
  //   auto r = client.call("wordcount", countWords, doc.asReader());
  //   if (r) use(r->get().getWords());
  template <class In, class Out>
  Outcome<typename PayloadCodec<Out>::Value> call(std::string_view pool, const Function<In, Out>& function,
                                                  typename PayloadCodec<In>::Arg args,
                                                  CallOptions options = {}) {
    return decodeResult<Out>(function.name,
                             call(pool, function.name, PayloadCodec<In>::encode(args), options));
  }
  // Same, without waiting (the result is decoded on the I/O thread). Always satisfied.
  template <class In, class Out>
  std::future<Outcome<typename PayloadCodec<Out>::Value>> callAsync(std::string_view pool,
                                                                    const Function<In, Out>& function,
                                                                    typename PayloadCodec<In>::Arg args,
                                                                    CallOptions options = {}) {
    auto promise = std::make_shared<std::promise<Outcome<typename PayloadCodec<Out>::Value>>>();
    auto future = promise->get_future();
    callAsync(pool, function.name, PayloadCodec<In>::encode(args), options,
              [promise, name = std::string(function.name)](CallResult result) {
                promise->set_value(decodeResult<Out>(name, std::move(result)));
              });
    return future;
  }

 private:
  template <class Out>
  static Outcome<typename PayloadCodec<Out>::Value> decodeResult(std::string_view function, CallResult result) {
    if (!result) return result.error();
    auto decoded = PayloadCodec<Out>::decode(result.value());
    if (!decoded.value)
      return Failure{ErrorCode::BadRequest, "bad result of " + std::string(function) + ": " + decoded.error};
    return std::move(*decoded.value);
  }

  class Impl;
  friend class Subscription;  // its Link reaches the Impl
  std::unique_ptr<Impl> impl_;
};

}  // namespace flame
