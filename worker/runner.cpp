// The runner's socket shell. RunnerCore (worker/runner_core.h) decides everything; this file
// gives it a DEALER, handler threads and time: one thread (the caller of run()) runs a Reactor
// (common/transport.h) that watches the DEALER and the completion queue's eventfd and holds one
// timer, armed at the core's next deadline after every event. A fixed pool of handler threads
// (HandlerThreads, at most `concurrency`, started on demand and reused) only runs handlers and posts
// outcomes to a CompletionQueue.
//
// Untrusted bytes from the broker are decoded here, at the codec boundary (common/codec.h), and
// only decoded messages reach the core.
#include "worker/runner.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>

#include "common/codec.h"
#include "common/handshake_monitor.h"
#include "common/log.h"
#include "common/transport.h"
#include "common/utf8.h"
#include "worker/completion_queue.h"
#include "worker/runner_core.h"
#include "worker/handler_threads.h"

namespace flame {

namespace {

constexpr size_t kMaxNameBytes = 128;
// Broker -> runner messages are a header and at most one payload frame.
constexpr size_t kMaxInboundFrames = 2;
// Messages handled per wake-up before timers get a turn, so a flood cannot starve heartbeats.
constexpr int kMaxMessagesPerWake = 256;
// How long the last messages (results, leaving) may take to reach the broker at exit.
constexpr Duration kFinalLinger{1000};

std::string hostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "unknown";
  return buf;
}

std::string randomHex(size_t words) {
  std::random_device random;
  std::string out;
  char hex[9];
  for (size_t i = 0; i < words; ++i) {
    std::snprintf(hex, sizeof(hex), "%08x", static_cast<unsigned>(random()));
    out += hex;
  }
  return out;
}

RunnerIdentity makeIdentity(const RunnerOptions& options) {
  RunnerIdentity id;
  id.host = hostName();
  id.pid = static_cast<uint32_t>(::getpid());
  id.runnerId = options.runnerId.empty()
                    ? options.pool + "-" + id.host + "-" + std::to_string(id.pid) + "-" + randomHex(1)
                    : options.runnerId;
  // Every ready proves the identity of the first one with this token: the boot token of a
  // booted runner, a random secret of a static one (so nobody can take over its runner id).
  id.secret = options.token.empty() ? randomHex(4) : options.token;
  return id;
}

}  // namespace

class Runner::Impl final : public RunnerEffects {
 public:
  explicit Impl(RunnerOptions options);
  ~Impl() override;

  void handle(std::string function, Handler handler, bool runInline);
  RunExit run();
  const std::string& runnerId() const { return core_.runnerId(); }

  // RunnerEffects: called by core_ on the loop thread.
  void connect() override;
  void disconnect() override;
  SendStatus send(zmq::message_t& header, zmq::message_t* payload) override;
  std::string startJob(std::shared_ptr<RunningJob> job, const std::string& function) override;
  void cancelJob(RunningJob& job) override { job.stop.request_stop(); }
  size_t finish(RunExit exit) override;

  std::atomic<bool> drainRequested_{false};
  std::atomic<bool> stopRequested_{false};
  std::atomic<size_t> stranded_{0};
  const std::shared_ptr<CompletionQueue> completions_ = std::make_shared<CompletionQueue>();

 private:
  void onReadable();
  void onWritable();
  void onWake();
  // Hands every queued outcome to the core until the queue is empty (which arms its wake-up).
  void drainCompletions();
  // After every event: lets the core fire what is due, then re-arms the one timer at its next
  // deadline and watches writability while a ready waits.
  void afterEvent();

  // Tells the core about the handshake of the connection just opened (dealer_).
  void monitorHandshakes();

  RunnerOptions options_;
  const std::optional<CurveClient> curve_;  // from options_.serverKey/secretKey
  const Clock& clock_;
  std::shared_ptr<spdlog::logger> log_ = logger("runner");
  struct Registered {
    std::shared_ptr<const Handler> handler;
    bool runInline = false;  // on the I/O thread (handleInline)
  };
  std::map<std::string, Registered> handlers_;
  std::vector<JobOutcome> inlineOutcomes_;  // inline jobs done, handed to the core by the loop
  std::atomic<bool> started_{false};
  bool done_ = false;

  // ctx_ is declared before dealer_ so that the socket is closed first.
  std::optional<zmq::context_t> ownCtx_;  // unless options_.context
  zmq::context_t& ctx_;
  std::optional<zmq::socket_t> dealer_;
  bool watchingWritable_ = false;
  Reactor reactor_;
  std::unique_ptr<HandshakeMonitor> monitor_;  // of dealer_; closed before it
  TimerId wakeTimer_ = 0;
  std::vector<JobOutcome> outcomes_;  // reused batch buffer
  HandlerThreads threads_{completions_};
  std::shared_ptr<SlotTable> slots_ = std::make_shared<SlotTable>(options_.concurrency);  // JobContext::slot()
  RunnerCore core_;
};

Runner::Impl::Impl(RunnerOptions options)
    : options_(std::move(options)),
      curve_(curveClientFor("RunnerOptions", options_.serverKey, options_.secretKey)),
      clock_(options_.clock ? *options_.clock : Reactor::steadyClock()),
      ownCtx_(options_.context ? std::nullopt : std::make_optional<zmq::context_t>()),
      ctx_(options_.context ? *options_.context : *ownCtx_),
      reactor_(clock_),
      core_(options_, makeIdentity(options_), clock_, *this) {
  // Reject a malformed endpoint here, with a clear message, rather than deep inside run().
  try {
    connectDealer(ctx_, options_.broker, {}, curve_ ? &*curve_ : nullptr);
  } catch (const zmq::error_t& e) {
    throw std::invalid_argument("bad broker endpoint '" + options_.broker + "': " + e.what());
  }
}

Runner::Impl::~Impl() {
  // Only reached with jobs if run() was never completed (it threw): never join a handler here.
  core_.abandon();
  stranded_.fetch_add(threads_.shutdown());
  monitor_.reset();
  if (dealer_) {
    reactor_.remove(*dealer_);
    dealer_.reset();
  }
}

void Runner::Impl::handle(std::string function, Handler handler, bool runInline) {
  if (started_) throw std::logic_error("Runner::handle() called after run()");
  if (function.empty() || function.size() > kMaxNameBytes || !isValidUtf8(function))
    throw std::invalid_argument("function name must be 1-128 bytes of UTF-8, got '" + toValidUtf8(function) + "'");
  if (!handler) throw std::invalid_argument("empty handler for function '" + function + "'");
  core_.addFunction(function);
  handlers_[std::move(function)] = Registered{std::make_shared<const Handler>(std::move(handler)), runInline};
}

RunExit Runner::Impl::run() {
  if (started_.exchange(true)) throw std::logic_error("Runner::run() called twice");
  log_->info("runner={} broker={}", core_.runnerId(), options_.broker);
  // Requests made before run() left the eventfd readable: the first poll sees them.
  reactor_.addFd(completions_->fd(), [this] { onWake(); });
  core_.start();
  afterEvent();
  for (;;) {
    // Outcomes are taken here, before every sleep: handler threads write the eventfd only when
    // this found the queue empty, so a busy loop gets no wake-ups (completion_queue.h).
    drainCompletions();
    if (done_) break;
    reactor_.pollOnce();
    if (done_) break;
  }
  return core_.exitReason();
}

// ---- effects ----

void Runner::Impl::connect() {
  dealer_.emplace(newDealer(ctx_, {}, curve_ ? &*curve_ : nullptr));
  monitorHandshakes();  // before connect(): the first handshake may fail within ~0.1 ms
  dealer_->connect(options_.broker);
  reactor_.add(*dealer_, [this] { onReadable(); }, [this] { onWritable(); });
  watchingWritable_ = false;
  log_->debug("runner={} connecting to {}", core_.runnerId(), options_.broker);
}

void Runner::Impl::monitorHandshakes() {
  HandshakeMonitor::Callbacks callbacks;
  callbacks.succeeded = [this] {
    core_.onHandshakeSucceeded();
    afterEvent();
  };
  // The core gives up and disconnects, which destroys the monitor inside this callback: the
  // monitor allows it (common/handshake_monitor.h).
  callbacks.refused = [this](const std::string& why) {
    core_.onHandshakeRefused(why);
    afterEvent();
  };
  monitor_ = std::make_unique<HandshakeMonitor>(
      ctx_, *dealer_, HandshakeVerdicts(curve_.has_value(), "runner", curve_ ? curve_->publicKey : ""),
      std::move(callbacks));
  monitor_->watch(reactor_);
}

void Runner::Impl::disconnect() {
  if (!dealer_) return;
  monitor_.reset();  // before the socket it watches
  reactor_.remove(*dealer_);
  dealer_.reset();  // linger 0: whatever was queued for the old connection is dropped
  watchingWritable_ = false;
}

SendStatus Runner::Impl::send(zmq::message_t& header, zmq::message_t* payload) {
  if (!dealer_) return SendStatus::WouldBlock;
  auto flags = zmq::send_flags::dontwait;
  if (payload) flags = flags | zmq::send_flags::sndmore;
  // On EAGAIN nothing is consumed; once the first frame is queued the rest of a multipart
  // message always is (ZeroMQ counts whole messages against the high-water mark).
  if (!dealer_->send(header, flags)) return SendStatus::WouldBlock;
  if (payload) (void)dealer_->send(*payload, zmq::send_flags::dontwait);
  return SendStatus::Ok;
}

std::string Runner::Impl::startJob(std::shared_ptr<RunningJob> job, const std::string& function) {
  auto handler = handlers_.find(function);
  if (handler == handlers_.end()) return "no handler for function '" + function + "'";  // a bug: the core checks
  auto slot = slots_->acquire();
  if (!slot) return "no free slot";  // a bug: the core runs at most `concurrency` jobs
  job->slot = *slot;
  job->slots = slots_;
  if (handler->second.runInline) {
    // Done now; the core hears of it from the loop, like any outcome (never from inside its
    // own call).
    HandlerResult result = runHandler(*job, *handler->second.handler);
    inlineOutcomes_.push_back(JobOutcome{job->jobId, std::move(result), job->instance});
    return {};
  }
  try {
    // Threads start on demand, one per running job at most, and are then reused.
    threads_.ensureThreads(core_.runningJobs() + 1);
  } catch (const std::system_error& e) {
    slots_->release(job->slot);
    return std::string("cannot start a handler thread: ") + e.what();
  }
  threads_.submit(std::move(job), handler->second.handler);
  return {};
}

size_t Runner::Impl::finish(RunExit) {
  // Idle handler threads are joined; those still inside a handler are detached and counted.
  size_t abandoned = threads_.shutdown();
  stranded_.fetch_add(abandoned);
  monitor_.reset();
  if (dealer_) {
    // Give the last results and `leaving` a moment to reach the broker: closing the context
    // waits for them (up to the linger).
    reactor_.remove(*dealer_);
    dealer_->set(zmq::sockopt::linger, static_cast<int>(kFinalLinger.count()));
    dealer_.reset();
  }
  if (ownCtx_) ownCtx_->close();  // a shared context sends what the socket left (linger) itself
  done_ = true;
  return abandoned;
}

// ---- events ----

void Runner::Impl::onReadable() {
  Frames frames;
  bool truncated = false;
  for (int i = 0; i < kMaxMessagesPerWake && dealer_ && !done_; ++i) {
    if (!recvFrames(*dealer_, frames, kMaxInboundFrames, truncated)) break;
    if (truncated)
      log_->warn("runner={} broker sent more than {} frames; extra frames ignored", core_.runnerId(),
                 kMaxInboundFrames);
    DecodeResult decoded = decode(frames[0]);
    if (!decoded.ok()) {
      core_.onUndecodable(decoded.error);
      continue;
    }
    core_.onMessage(std::move(*decoded.message), frames.size() > 1 ? std::move(frames[1]) : zmq::message_t());
  }
  afterEvent();
}

void Runner::Impl::onWritable() {
  core_.onWritable();
  afterEvent();
}

void Runner::Impl::onWake() {
  // Cleared first: a request stored after this point writes it again. Outcomes are taken by
  // the loop before it sleeps again.
  completions_->clearWake();
  if (stopRequested_.exchange(false)) core_.requestStop();
  if (drainRequested_.exchange(false)) core_.requestDrain();
  afterEvent();
}

void Runner::Impl::drainCompletions() {
  for (;;) {
    if (!inlineOutcomes_.empty()) {
      outcomes_.swap(inlineOutcomes_);
      for (JobOutcome& outcome : outcomes_) core_.onJobDone(std::move(outcome));
      outcomes_.clear();
      afterEvent();
      if (done_) return;
      continue;
    }
    completions_->takeAll(outcomes_);
    if (outcomes_.empty()) return;  // armed: the next outcome wakes the poll
    for (JobOutcome& outcome : outcomes_) core_.onJobDone(std::move(outcome));
    outcomes_.clear();
    afterEvent();
    if (done_) return;
  }
}

void Runner::Impl::afterEvent() {
  if (done_) return;
  core_.tick();
  if (done_) return;
  TimePoint wake = core_.nextWakeup();
  if (wakeTimer_ == 0 || !reactor_.reschedule(wakeTimer_, wake))
    wakeTimer_ = reactor_.at(wake, [this] {
      wakeTimer_ = 0;  // a one-shot timer is gone once it ran
      afterEvent();
    });
  bool want = dealer_ && core_.wantsWritable();
  if (dealer_ && want != watchingWritable_) {
    reactor_.wantWritable(*dealer_, want);
    watchingWritable_ = want;
  }
}

// ---- Runner ----

Runner::Runner(RunnerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Runner::~Runner() = default;

void Runner::handle(std::string function, Handler handler) {
  impl_->handle(std::move(function), std::move(handler), false);
}

void Runner::handleInline(std::string function, Handler handler) {
  impl_->handle(std::move(function), std::move(handler), true);
}

RunExit Runner::run() { return impl_->run(); }

void Runner::requestDrain() noexcept {
  impl_->drainRequested_.store(true);
  impl_->completions_->wake();
}

void Runner::requestStop() noexcept {
  impl_->stopRequested_.store(true);
  impl_->completions_->wake();
}

const std::string& Runner::runnerId() const { return impl_->runnerId(); }

size_t Runner::strandedHandlers() const { return impl_->stranded_.load(); }

}  // namespace flame
