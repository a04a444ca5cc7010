// Cap'n Proto <-> msg:: structs. Every field is read inside the one try block in decode(),
// because capnp checks traversal and nesting limits lazily, when a field is read.
#include "common/codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <array>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/utf8.h"
#include "schema/flame.capnp.h"

namespace flame {

std::string_view errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::None: return "none";
    case ErrorCode::BadRequest: return "bad_request";
    case ErrorCode::UnsupportedVersion: return "unsupported_version";
    case ErrorCode::UnknownPool: return "unknown_pool";
    case ErrorCode::UnknownFunction: return "unknown_function";
    case ErrorCode::PayloadTooLarge: return "payload_too_large";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::RunnerLost: return "runner_lost";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::HandlerError: return "handler_error";
    case ErrorCode::QueueFull: return "queue_full";
    case ErrorCode::BootFailed: return "boot_failed";
    case ErrorCode::Unauthorized: return "unauthorized";
    case ErrorCode::NotFound: return "not_found";
    case ErrorCode::ShuttingDown: return "shutting_down";
    case ErrorCode::UnknownPeer: return "unknown_peer";
    case ErrorCode::Internal: return "internal";
    case ErrorCode::BrokerUnreachable: return "broker_unreachable";
  }
  return "unknown_error";
}

std::string_view modeName(Mode mode) {
  switch (mode) {
    case Mode::Call: return "call";
    case Mode::Cast: return "cast";
    case Mode::Place: return "place";
  }
  return "unknown";
}

std::string_view eventKindName(EventKind kind) {
  switch (kind) {
    case EventKind::RunnerBooting: return "runner_booting";
    case EventKind::RunnerReady: return "runner_ready";
    case EventKind::RunnerDraining: return "runner_draining";
    case EventKind::RunnerStopped: return "runner_stopped";
    case EventKind::RunnerLost: return "runner_lost";
    case EventKind::BootFailed: return "boot_failed";
    case EventKind::PoolChanged: return "pool_changed";
    case EventKind::QueueFull: return "queue_full";
    case EventKind::JobRetried: return "job_retried";
  }
  return "unknown";
}

namespace {

using wire::Envelope;

wire::Mode toWire(Mode m) { return static_cast<wire::Mode>(static_cast<uint16_t>(m)); }
wire::ErrorCode toWire(ErrorCode c) {
  // Client-only codes never travel; map them to internal rather than send a bogus number.
  if (static_cast<uint16_t>(c) > static_cast<uint16_t>(ErrorCode::Internal)) return wire::ErrorCode::INTERNAL;
  return static_cast<wire::ErrorCode>(static_cast<uint16_t>(c));
}
Mode fromWire(wire::Mode m) {
  auto v = static_cast<uint16_t>(m);
  if (v > 2) throw std::invalid_argument("unknown mode " + std::to_string(v));
  return static_cast<Mode>(v);
}
wire::EventKind toWire(EventKind k) { return static_cast<wire::EventKind>(static_cast<uint16_t>(k)); }
EventKind fromWire(wire::EventKind k) {
  auto v = static_cast<uint16_t>(k);
  // Kinds from a newer broker that we do not know are refused, not guessed.
  if (v > static_cast<uint16_t>(EventKind::JobRetried)) throw std::invalid_argument("unknown event kind " + std::to_string(v));
  return static_cast<EventKind>(v);
}
ErrorCode fromWire(wire::ErrorCode c) {
  auto v = static_cast<uint16_t>(c);
  // Codes from a newer peer that we do not know are reported as internal, not trusted.
  if (v > static_cast<uint16_t>(ErrorCode::Internal)) return ErrorCode::Internal;
  return static_cast<ErrorCode>(v);
}
// Every text field passes here: PROTOCOL.md promises that text is UTF-8, so anything else is
// refused (a name that is not text cannot be logged, shown or matched safely).
std::string str(capnp::Text::Reader t, const char* field) {
  std::string_view view(t.cStr(), t.size());
  if (!isValidUtf8(view)) throw std::invalid_argument(std::string("text field '") + field + "' is not valid UTF-8");
  return std::string(view);
}

// ---- encoding ----
struct Filler {
  Envelope::Body::Builder b;
  void operator()(const msg::Submit& m) {
    auto s = b.initSubmit();
    s.setRequestId(m.requestId);
    s.setMode(toWire(m.mode));
    s.setPool(m.pool);
    s.setFunction(m.function);
    s.setTimeoutMs(m.timeoutMs);
    s.setIdempotent(m.idempotent);
    s.setRetries(m.retries);
    s.setLink(m.link);
    s.setWaitTimeoutMs(m.waitTimeoutMs);
    s.setSplitBudget(m.splitBudget);
    s.setRetryHandlerError(m.retryHandlerError);
    s.setRetryTimeout(m.retryTimeout);
    s.setRetryBackoffMs(m.retryBackoffMs);
    s.setRetryBackoffMaxMs(m.retryBackoffMaxMs);
  }
  void operator()(const msg::Subscribe& m) {
    auto s = b.initSubscribe();
    s.setRequestId(m.requestId);
    s.setPool(m.pool);
  }
  void operator()(const msg::Subscribed& m) {
    auto s = b.initSubscribed();
    s.setRequestId(m.requestId);
    s.setLastSeq(m.lastSeq);
  }
  void operator()(const msg::Event& m) {
    auto e = b.initEvent();
    e.setRequestId(m.requestId);
    e.setSeq(m.seq);
    e.setTimeMs(m.timeMs);
    e.setKind(toWire(m.kind));
    e.setPool(m.pool);
    e.setRunnerId(m.runnerId);
    e.setMessage(m.message);
    e.setJobId(m.jobId);
    e.setAttempt(m.attempt);
    e.setDelayMs(m.delayMs);
    e.setRunners(m.runners);
    e.setBooting(m.booting);
  }
  void operator()(const msg::Cancel& m) { b.initCancel().setRequestId(m.requestId); }
  void operator()(const msg::StopChild& m) { b.initStopChild().setChildId(m.childId); }
  void operator()(const msg::StatusRequest& m) { b.initStatusRequest().setRequestId(m.requestId); }
  void operator()(const msg::Result& m) {
    auto r = b.initResult();
    r.setRequestId(m.requestId);
    r.setJobId(m.jobId);
  }
  void operator()(const msg::Error& m) {
    auto e = b.initError();
    e.setRequestId(m.requestId);
    e.setCode(toWire(m.code));
    e.setMessage(m.message);
    e.setJobId(m.jobId);
  }
  void operator()(const msg::Accepted& m) {
    auto a = b.initAccepted();
    a.setRequestId(m.requestId);
    a.setJobId(m.jobId);
  }
  void operator()(const msg::Placed& m) {
    auto p = b.initPlaced();
    p.setRequestId(m.requestId);
    p.setChildId(m.childId);
    p.setRunnerId(m.runnerId);
  }
  void operator()(const msg::ChildExited& m) {
    auto c = b.initChildExited();
    c.setChildId(m.childId);
    c.setCode(toWire(m.code));
    c.setMessage(m.message);
  }
  void operator()(const msg::Stopped& m) { b.initStopped().setChildId(m.childId); }
  void operator()(const msg::StatusReply& m) {
    auto s = b.initStatusReply();
    s.setRequestId(m.requestId);
    auto pools = s.initPools(static_cast<unsigned>(m.pools.size()));
    for (unsigned i = 0; i < m.pools.size(); ++i) {
      const auto& p = m.pools[i];
      auto w = pools[i];
      w.setName(p.name);
      w.setQueued(p.queued);
      w.setSlotsUsed(p.slotsUsed);
      w.setSlotsTotal(p.slotsTotal);
      w.setCompleted(p.completed);
      w.setFailed(p.failed);
      w.setBooting(p.booting);
      w.setBoots(p.boots);
      w.setBootFailures(p.bootFailures);
      w.setMin(p.min);
      w.setMax(p.max);
      w.setRetried(p.retried);
      auto runners = w.initRunners(static_cast<unsigned>(p.runners.size()));
      for (unsigned j = 0; j < p.runners.size(); ++j) {
        const auto& r = p.runners[j];
        auto rw = runners[j];
        rw.setRunnerId(r.runnerId);
        rw.setState(r.state);
        rw.setSlotsUsed(r.slotsUsed);
        rw.setSlotsTotal(r.slotsTotal);
        rw.setPid(r.pid);
        rw.setHost(r.host);
        rw.setIdleMs(r.idleMs);
      }
    }
  }
  void operator()(const msg::Heartbeat& m) {
    auto h = b.initHeartbeat();
    h.setSentMs(m.sentMs);
    h.setIntervalMs(m.intervalMs);
    h.setInstance(m.instance);
    h.setMaxPayloadBytes(m.maxPayloadBytes);
    h.setShuttingDown(m.shuttingDown);
  }
  void operator()(const msg::Ready& m) {
    auto r = b.initReady();
    r.setRunnerId(m.runnerId);
    r.setPool(m.pool);
    r.setSlots(m.slots);
    auto fns = r.initFunctions(static_cast<unsigned>(m.functions.size()));
    for (unsigned i = 0; i < m.functions.size(); ++i) fns.set(i, m.functions[i]);
    r.setToken(m.token);
    r.setBusy(m.busy);
    r.setPid(m.pid);
    r.setHost(m.host);
    if (!m.held.empty()) {
      auto held = r.initHeld(static_cast<unsigned>(m.held.size()));
      for (unsigned i = 0; i < m.held.size(); ++i) {
        held[i].setJobId(m.held[i].jobId);
        held[i].setInstance(m.held[i].instance);
      }
    }
  }
  void operator()(const msg::JobDone& m) {
    auto d = b.initJobDone();
    d.setJobId(m.jobId);
    d.setCode(toWire(m.code));
    d.setMessage(m.message);
    d.setInstance(m.instance);
  }
  void operator()(const msg::Leaving& m) {
    auto l = b.initLeaving();
    l.setReason(m.reason);
    l.setExiting(m.exiting);
  }
  void operator()(const msg::Welcome& m) {
    auto w = b.initWelcome();
    w.setHeartbeatIntervalMs(m.heartbeatIntervalMs);
    w.setLiveness(m.liveness);
    w.setInstance(m.instance);
    w.setMaxPayloadBytes(m.maxPayloadBytes);
  }
  void operator()(const msg::Job& m) {
    auto j = b.initJob();
    j.setJobId(m.jobId);
    j.setFunction(m.function);
    j.setMode(toWire(m.mode));
    j.setBudgetMs(m.budgetMs);
  }
  void operator()(const msg::CancelJob& m) { b.initCancelJob().setJobId(m.jobId); }
  void operator()(const msg::Drain& m) { b.initDrain().setGraceMs(m.graceMs); }
  void operator()(const msg::SetPool& m) {
    auto s = b.initSetPool();
    s.setRequestId(m.requestId);
    s.setPool(m.pool);
    s.setMin(m.min);
    s.setMax(m.max);
    s.setWarmSlots(m.warmSlots);
  }
};

template <class T>
zmq::message_t encodeVersioned(const T& m, uint16_t version) {
  // A stack first segment keeps small messages allocation-free until the copy into the frame.
  capnp::word scratch[32];  // fits every header but status replies (which then allocate)
  memset(scratch, 0, sizeof(scratch));
  capnp::MallocMessageBuilder builder(kj::arrayPtr(scratch, 32));
  auto env = builder.initRoot<Envelope>();
  env.setVersion(version);
  Filler fill{env.getBody()};
  if constexpr (std::is_same_v<T, Message>) {
    std::visit(fill, m);
  } else {
    fill(m);
  }
  size_t words = capnp::computeSerializedSizeInWords(builder);
  zmq::message_t out(words * sizeof(capnp::word));
  kj::ArrayOutputStream stream(kj::arrayPtr(static_cast<kj::byte*>(out.data()), out.size()));
  capnp::writeMessage(stream, builder);
  return out;
}

// ---- fast encoding of the hot headers ----
// `result`, `accepted`, `job` and a successful `jobDone` go out once per job. Their encodings differ only in a few
// fixed-width integers (and, for `job`, the function name, which a runner set repeats), so each
// is encoded once by Cap'n Proto with sentinel values, the sentinels are located, and later
// headers are a copy of those bytes with the integers patched in. A template is used only if
// every sentinel occurs exactly once and the patched bytes equal Cap'n Proto's own encoding of
// a second set of values; otherwise encoding falls back to the builder.
template <size_t N>
struct FastHeader {
  std::vector<unsigned char> bytes;
  std::array<size_t, N> offsets{};
  std::array<size_t, N> widths{};
  bool usable = false;

  void patch(unsigned char* p, const std::array<uint64_t, N>& values) const {
    for (size_t i = 0; i < N; ++i)
      for (size_t b = 0; b < widths[i]; ++b) p[offsets[i] + b] = static_cast<unsigned char>(values[i] >> (8 * b));
  }
  zmq::message_t make(const std::array<uint64_t, N>& values) const {
    zmq::message_t out(bytes.size());
    auto* p = static_cast<unsigned char*>(out.data());
    memcpy(p, bytes.data(), bytes.size());
    patch(p, values);
    return out;
  }
};

// `encodeWith(values)` is the Cap'n Proto path for the same message with those field values.
template <size_t N, class Encode>
FastHeader<N> learn(Encode encodeWith, const std::array<size_t, N>& widths) {
  FastHeader<N> t;
  t.widths = widths;
  std::array<uint64_t, N> sentinels{};
  for (size_t i = 0; i < N; ++i)
    sentinels[i] = widths[i] == 8 ? 0xF1E2D3C4B5A69780ull + i : 0xC3B2A190ull + i;
  zmq::message_t encoded = encodeWith(sentinels);
  const auto* p = static_cast<const unsigned char*>(encoded.data());
  t.bytes.assign(p, p + encoded.size());
  for (size_t i = 0; i < N; ++i) {
    size_t found = 0;
    for (size_t at = 0; at + widths[i] <= t.bytes.size(); ++at) {
      bool match = true;
      for (size_t b = 0; b < widths[i] && match; ++b)
        match = t.bytes[at + b] == static_cast<unsigned char>(sentinels[i] >> (8 * b));
      if (match) {
        t.offsets[i] = at;
        ++found;
      }
    }
    if (found != 1) return t;
  }
  std::array<uint64_t, N> check{};
  for (size_t i = 0; i < N; ++i) check[i] = widths[i] == 8 ? 0x0102030405060708ull * (i + 1) : 12345u * (i + 1);
  zmq::message_t expected = encodeWith(check);
  std::vector<unsigned char> patched = t.bytes;
  t.patch(patched.data(), check);
  t.usable = expected.size() == patched.size() && memcmp(expected.data(), patched.data(), patched.size()) == 0;
  return t;
}

zmq::message_t encodeResult(const msg::Result& m) {
  static const auto t = learn<2>(
      [](const std::array<uint64_t, 2>& v) {
        return encodeVersioned(msg::Result{v[0], v[1]}, kProtocolVersion);
      },
      {8, 8});
  return t.usable ? t.make({m.requestId, m.jobId}) : encodeVersioned(m, kProtocolVersion);
}

zmq::message_t encodeAccepted(const msg::Accepted& m) {
  static const auto t = learn<2>(
      [](const std::array<uint64_t, 2>& v) {
        return encodeVersioned(msg::Accepted{v[0], v[1]}, kProtocolVersion);
      },
      {8, 8});
  return t.usable ? t.make({m.requestId, m.jobId}) : encodeVersioned(m, kProtocolVersion);
}

zmq::message_t encodeJobDone(const msg::JobDone& m) {
  // Only a success (no code, no message) has a fixed shape: failures are rare and built.
  static const auto t = learn<2>(
      [](const std::array<uint64_t, 2>& v) {
        return encodeVersioned(msg::JobDone{v[0], ErrorCode::None, "", v[1]}, kProtocolVersion);
      },
      {8, 8});
  if (t.usable && m.code == ErrorCode::None && m.message.empty()) return t.make({m.jobId, m.instance});
  return encodeVersioned(m, kProtocolVersion);
}

zmq::message_t encodeJob(const msg::Job& m) {
  // One template per (function, mode), per thread; a few functions cover a pool.
  struct Entry {
    std::string function;
    Mode mode;
    FastHeader<2> header;
  };
  constexpr size_t kMaxEntries = 16;
  thread_local std::vector<Entry> cache;
  for (auto& e : cache)
    if (e.mode == m.mode && e.function == m.function)
      return e.header.usable ? e.header.make({m.jobId, m.budgetMs}) : encodeVersioned(m, kProtocolVersion);
  if (cache.size() >= kMaxEntries) return encodeVersioned(m, kProtocolVersion);
  Entry& e = cache.emplace_back(Entry{m.function, m.mode, {}});
  e.header = learn<2>(
      [&](const std::array<uint64_t, 2>& v) {
        return encodeVersioned(msg::Job{v[0], m.function, m.mode, static_cast<uint32_t>(v[1])}, kProtocolVersion);
      },
      {8, 4});
  return e.header.usable ? e.header.make({m.jobId, m.budgetMs}) : encodeVersioned(m, kProtocolVersion);
}

// ---- decoding ----
Message read(Envelope::Reader env) {
  auto b = env.getBody();
  switch (b.which()) {
    case Envelope::Body::SUBMIT: {
      auto s = b.getSubmit();
      msg::Submit m;
      m.requestId = s.getRequestId();
      m.mode = fromWire(s.getMode());
      m.pool = str(s.getPool(), "pool");
      m.function = str(s.getFunction(), "function");
      m.timeoutMs = s.getTimeoutMs();
      m.idempotent = s.getIdempotent();
      m.retries = s.getRetries();
      m.link = s.getLink();
      m.waitTimeoutMs = s.getWaitTimeoutMs();
      m.splitBudget = s.getSplitBudget();
      m.retryHandlerError = s.getRetryHandlerError();
      m.retryTimeout = s.getRetryTimeout();
      m.retryBackoffMs = s.getRetryBackoffMs();
      m.retryBackoffMaxMs = s.getRetryBackoffMaxMs();
      return m;
    }
    case Envelope::Body::SUBSCRIBE: {
      auto s = b.getSubscribe();
      return msg::Subscribe{s.getRequestId(), str(s.getPool(), "pool")};
    }
    case Envelope::Body::SUBSCRIBED: {
      auto s = b.getSubscribed();
      return msg::Subscribed{s.getRequestId(), s.getLastSeq()};
    }
    case Envelope::Body::EVENT: {
      auto e = b.getEvent();
      msg::Event m;
      m.requestId = e.getRequestId();
      m.seq = e.getSeq();
      m.timeMs = e.getTimeMs();
      m.kind = fromWire(e.getKind());
      m.pool = str(e.getPool(), "pool");
      m.runnerId = str(e.getRunnerId(), "runnerId");
      m.message = str(e.getMessage(), "message");
      m.jobId = e.getJobId();
      m.attempt = e.getAttempt();
      m.delayMs = e.getDelayMs();
      m.runners = e.getRunners();
      m.booting = e.getBooting();
      return m;
    }
    case Envelope::Body::CANCEL: return msg::Cancel{b.getCancel().getRequestId()};
    case Envelope::Body::STOP_CHILD: return msg::StopChild{b.getStopChild().getChildId()};
    case Envelope::Body::STATUS_REQUEST: return msg::StatusRequest{b.getStatusRequest().getRequestId()};
    case Envelope::Body::RESULT: {
      auto r = b.getResult();
      return msg::Result{r.getRequestId(), r.getJobId()};
    }
    case Envelope::Body::ERROR: {
      auto e = b.getError();
      return msg::Error{e.getRequestId(), fromWire(e.getCode()), str(e.getMessage(), "message"), e.getJobId()};
    }
    case Envelope::Body::ACCEPTED: {
      auto a = b.getAccepted();
      return msg::Accepted{a.getRequestId(), a.getJobId()};
    }
    case Envelope::Body::PLACED: {
      auto p = b.getPlaced();
      return msg::Placed{p.getRequestId(), p.getChildId(), str(p.getRunnerId(), "runnerId")};
    }
    case Envelope::Body::CHILD_EXITED: {
      auto c = b.getChildExited();
      return msg::ChildExited{c.getChildId(), fromWire(c.getCode()), str(c.getMessage(), "message")};
    }
    case Envelope::Body::STOPPED: return msg::Stopped{b.getStopped().getChildId()};
    case Envelope::Body::STATUS_REPLY: {
      auto s = b.getStatusReply();
      msg::StatusReply m;
      m.requestId = s.getRequestId();
      for (auto p : s.getPools()) {
        msg::PoolStatus ps;
        ps.name = str(p.getName(), "name");
        ps.queued = p.getQueued();
        ps.slotsUsed = p.getSlotsUsed();
        ps.slotsTotal = p.getSlotsTotal();
        ps.completed = p.getCompleted();
        ps.failed = p.getFailed();
        ps.booting = p.getBooting();
        ps.boots = p.getBoots();
        ps.bootFailures = p.getBootFailures();
        ps.min = p.getMin();
        ps.max = p.getMax();
        ps.retried = p.getRetried();
        for (auto r : p.getRunners()) {
          ps.runners.push_back(msg::RunnerStatus{str(r.getRunnerId(), "runnerId"), str(r.getState(), "state"),
                                                 r.getSlotsUsed(), r.getSlotsTotal(), r.getPid(),
                                                 str(r.getHost(), "host"), r.getIdleMs()});
        }
        m.pools.push_back(std::move(ps));
      }
      return m;
    }
    case Envelope::Body::HEARTBEAT: {
      auto h = b.getHeartbeat();
      return msg::Heartbeat{h.getSentMs(), h.getIntervalMs(), h.getInstance(), h.getMaxPayloadBytes(),
                            h.getShuttingDown()};
    }
    case Envelope::Body::READY: {
      auto r = b.getReady();
      msg::Ready m;
      m.runnerId = str(r.getRunnerId(), "runnerId");
      m.pool = str(r.getPool(), "pool");
      m.slots = r.getSlots();
      for (auto f : r.getFunctions()) m.functions.push_back(str(f, "functions"));
      m.token = str(r.getToken(), "token");
      m.busy = r.getBusy();
      m.pid = r.getPid();
      m.host = str(r.getHost(), "host");
      for (auto held : r.getHeld()) m.held.push_back(msg::HeldJob{held.getJobId(), held.getInstance()});
      return m;
    }
    case Envelope::Body::JOB_DONE: {
      auto d = b.getJobDone();
      return msg::JobDone{d.getJobId(), fromWire(d.getCode()), str(d.getMessage(), "message"), d.getInstance()};
    }
    case Envelope::Body::LEAVING: {
      auto l = b.getLeaving();
      return msg::Leaving{str(l.getReason(), "reason"), l.getExiting()};
    }
    case Envelope::Body::WELCOME: {
      auto w = b.getWelcome();
      return msg::Welcome{w.getHeartbeatIntervalMs(), w.getLiveness(), w.getInstance(), w.getMaxPayloadBytes()};
    }
    case Envelope::Body::JOB: {
      auto j = b.getJob();
      return msg::Job{j.getJobId(), str(j.getFunction(), "function"), fromWire(j.getMode()), j.getBudgetMs()};
    }
    case Envelope::Body::CANCEL_JOB: return msg::CancelJob{b.getCancelJob().getJobId()};
    case Envelope::Body::DRAIN: return msg::Drain{b.getDrain().getGraceMs()};
    case Envelope::Body::SET_POOL: {
      auto s = b.getSetPool();
      return msg::SetPool{s.getRequestId(), str(s.getPool(), "pool"), s.getMin(), s.getMax(), s.getWarmSlots()};
    }
  }
  throw std::invalid_argument("unknown message kind " + std::to_string(static_cast<int>(b.which())));
}

DecodeResult fail(ErrorCode code, std::string why, uint64_t requestId = 0) {
  DecodeResult r;
  r.code = code;
  // The reason is sent back to the peer in an `error`, and Cap'n Proto's exception texts quote
  // the offending bytes: keep it text, or the peer would refuse the answer itself.
  r.error = toValidUtf8(why);
  r.requestId = requestId;
  return r;
}

}  // namespace

DecodeResult decode(const void* data, size_t size, const DecodeLimits& limits) {
  if (size == 0) return fail(ErrorCode::BadRequest, "empty header frame");
  if (size > limits.maxHeaderBytes)
    return fail(ErrorCode::BadRequest, "header frame of " + std::to_string(size) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(limits.maxHeaderBytes));
  if (size % sizeof(capnp::word) != 0)
    return fail(ErrorCode::BadRequest,
                "header frame of " + std::to_string(size) + " bytes is not a whole number of 8-byte words");
  // Cap'n Proto refuses unaligned data; libzmq hands out unaligned buffers for many sizes.
  const capnp::word* words = static_cast<const capnp::word*>(data);
  capnp::word stackCopy[64];  // typical headers fit: no allocation on the hot path
  std::unique_ptr<capnp::word[]> heapCopy;
  if (reinterpret_cast<uintptr_t>(data) % alignof(capnp::word) != 0) {
    capnp::word* copy = stackCopy;
    if (size > sizeof(stackCopy)) {
      heapCopy.reset(new capnp::word[size / sizeof(capnp::word)]);
      copy = heapCopy.get();
    }
    memcpy(copy, data, size);
    words = copy;
  }
  uint64_t requestId = 0;
  try {
    capnp::ReaderOptions options;
    // A message can never legitimately traverse more words than it has (plus list overhead).
    options.traversalLimitInWords = size / sizeof(capnp::word) * 4 + 64;
    options.nestingLimit = limits.nestingLimit;
    capnp::FlatArrayMessageReader reader(kj::arrayPtr(words, size / sizeof(capnp::word)), options);
    auto env = reader.getRoot<Envelope>();
    auto body = env.getBody();
    if (body.which() == Envelope::Body::SUBMIT) requestId = body.getSubmit().getRequestId();
    if (body.which() == Envelope::Body::SET_POOL) requestId = body.getSetPool().getRequestId();
    if (body.which() == Envelope::Body::SUBSCRIBE) requestId = body.getSubscribe().getRequestId();
    if (env.getVersion() != kProtocolVersion)
      return fail(ErrorCode::UnsupportedVersion,
                  "protocol version " + std::to_string(env.getVersion()) +
                      " is not supported; this peer speaks version " + std::to_string(kProtocolVersion),
                  requestId);
    DecodeResult r;
    r.message = read(env);
    r.requestId = requestId;
    return r;
  } catch (const kj::Exception& e) {
    return fail(ErrorCode::BadRequest, std::string("malformed message: ") + e.getDescription().cStr(), requestId);
  } catch (const std::exception& e) {
    return fail(ErrorCode::BadRequest, std::string("malformed message: ") + e.what(), requestId);
  }
}

template <class T>
zmq::message_t encode(const T& message) {
  if constexpr (std::is_same_v<T, msg::Result>) return encodeResult(message);
  else if constexpr (std::is_same_v<T, msg::Accepted>) return encodeAccepted(message);
  else if constexpr (std::is_same_v<T, msg::Job>) return encodeJob(message);
  else if constexpr (std::is_same_v<T, msg::JobDone>) return encodeJobDone(message);
  else return encodeVersioned(message, kProtocolVersion);
}
zmq::message_t encodeMessage(const Message& message) { return encodeVersioned(message, kProtocolVersion); }
zmq::message_t encodeWithVersion(const Message& message, uint16_t version) {
  return encodeVersioned(message, version);
}

#define FLAME_ENCODE(T) template zmq::message_t encode<msg::T>(const msg::T&);
FLAME_ENCODE(Submit)
FLAME_ENCODE(Cancel)
FLAME_ENCODE(StopChild)
FLAME_ENCODE(StatusRequest)
FLAME_ENCODE(Result)
FLAME_ENCODE(Error)
FLAME_ENCODE(Accepted)
FLAME_ENCODE(Placed)
FLAME_ENCODE(ChildExited)
FLAME_ENCODE(Stopped)
FLAME_ENCODE(StatusReply)
FLAME_ENCODE(Heartbeat)
FLAME_ENCODE(Ready)
FLAME_ENCODE(JobDone)
FLAME_ENCODE(Leaving)
FLAME_ENCODE(Welcome)
FLAME_ENCODE(Job)
FLAME_ENCODE(CancelJob)
FLAME_ENCODE(Drain)
FLAME_ENCODE(SetPool)
FLAME_ENCODE(Subscribe)
FLAME_ENCODE(Subscribed)
FLAME_ENCODE(Event)
#undef FLAME_ENCODE

}  // namespace flame
