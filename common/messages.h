// Plain C++ forms of every wire message. The rest of the code speaks only these; the Cap'n
// Proto schema (schema/flame.capnp) is touched only by codec.cpp, the one place that decodes
// untrusted bytes and encodes outgoing ones.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace flame {

inline constexpr uint16_t kProtocolVersion = 1;
// Wire value of an infinite timeout/budget.
inline constexpr uint32_t kInfiniteMs = 0xFFFFFFFFu;

enum class Mode : uint8_t { Call = 0, Cast = 1, Place = 2 };

// Mirrors wire::ErrorCode one to one (same numbering).
enum class ErrorCode : uint16_t {
  None = 0,
  BadRequest,
  UnsupportedVersion,
  UnknownPool,
  UnknownFunction,
  PayloadTooLarge,
  Timeout,
  RunnerLost,
  Cancelled,
  HandlerError,
  QueueFull,
  BootFailed,
  Unauthorized,
  NotFound,
  ShuttingDown,
  UnknownPeer,
  Internal,
  // Client-side only, never on the wire: the broker stopped answering.
  BrokerUnreachable = 1000,
};

// snake_case name used in logs, the CLI and docs/PROTOCOL.md ("runner_lost").
std::string_view errorCodeName(ErrorCode code);
std::string_view modeName(Mode mode);

// Mirrors wire::EventKind one to one (same numbering).
enum class EventKind : uint8_t {
  RunnerBooting = 0,
  RunnerReady,
  RunnerDraining,
  RunnerStopped,
  RunnerLost,
  BootFailed,
  PoolChanged,
  QueueFull,
  JobRetried,
};
// snake_case name used by `flame events` and docs/PROTOCOL.md ("runner_ready").
std::string_view eventKindName(EventKind kind);

namespace msg {

struct Submit {
  uint64_t requestId = 0;
  Mode mode = Mode::Call;
  std::string pool;
  std::string function;
  uint32_t timeoutMs = 0;  // 0 = pool default, kInfiniteMs = infinite; see splitBudget
  bool idempotent = false;
  uint8_t retries = 0;
  bool link = false;
  // With splitBudget, timeoutMs is the run budget (from the moment a runner takes the job) and
  // waitTimeoutMs bounds the wait for a runner; without, timeoutMs counts from receipt.
  uint32_t waitTimeoutMs = 0;  // 0 = the pool's wait_timeout, kInfiniteMs = infinite
  bool splitBudget = false;
  // Retries (PROTOCOL.md, Retries): runner_lost with idempotent; these two on request.
  bool retryHandlerError = false;
  bool retryTimeout = false;
  uint32_t retryBackoffMs = 0;     // 0 = the pool's retry_backoff
  uint32_t retryBackoffMaxMs = 0;  // 0 = the pool's retry_backoff_max
};
struct Cancel { uint64_t requestId = 0; };
struct StopChild { uint64_t childId = 0; };
struct StatusRequest { uint64_t requestId = 0; };

struct Result { uint64_t requestId = 0; uint64_t jobId = 0; };
struct Error {
  uint64_t requestId = 0;
  ErrorCode code = ErrorCode::Internal;
  std::string message;
  uint64_t jobId = 0;
};
struct Accepted { uint64_t requestId = 0; uint64_t jobId = 0; };
struct Placed { uint64_t requestId = 0; uint64_t childId = 0; std::string runnerId; };
struct ChildExited { uint64_t childId = 0; ErrorCode code = ErrorCode::None; std::string message; };
struct Stopped { uint64_t childId = 0; };

struct RunnerStatus {
  std::string runnerId;
  std::string state;  // booting | ready | draining
  uint32_t slotsUsed = 0;
  uint32_t slotsTotal = 0;
  uint32_t pid = 0;
  std::string host;
  uint64_t idleMs = 0;
};
struct PoolStatus {
  std::string name;
  uint32_t queued = 0;
  uint32_t slotsUsed = 0;
  uint32_t slotsTotal = 0;
  std::vector<RunnerStatus> runners;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint32_t booting = 0;
  uint64_t boots = 0;
  uint64_t bootFailures = 0;
  uint32_t min = 0;
  uint32_t max = 0;
  uint64_t retried = 0;
};
struct StatusReply { uint64_t requestId = 0; std::vector<PoolStatus> pools; };

struct Heartbeat {
  uint64_t sentMs = 0;
  uint32_t intervalMs = 0;
  uint64_t instance = 0;
  uint64_t maxPayloadBytes = 0;  // broker -> client only; 0 = unknown
  bool shuttingDown = false;     // broker -> client only
};

// A job a runner still holds when it (re-)registers, tagged with the broker run that gave it.
struct HeldJob {
  uint64_t jobId = 0;
  uint64_t instance = 0;
  bool operator==(const HeldJob&) const = default;
};

struct Ready {
  std::string runnerId;
  std::string pool;
  uint32_t slots = 0;
  std::vector<std::string> functions;
  std::string token;
  uint32_t busy = 0;
  uint32_t pid = 0;
  std::string host;
  std::vector<HeldJob> held;  // authoritative when held.size() == busy
};
struct SetPool {
  uint64_t requestId = 0;
  std::string pool;
  int64_t min = -1;  // -1 = unchanged
  int64_t max = -1;
  int64_t warmSlots = -1;
};
struct Welcome {
  uint32_t heartbeatIntervalMs = 0;
  uint32_t liveness = 0;
  uint64_t instance = 0;
  uint64_t maxPayloadBytes = 0;
};
struct Job { uint64_t jobId = 0; std::string function; Mode mode = Mode::Call; uint32_t budgetMs = kInfiniteMs; };
struct JobDone {
  uint64_t jobId = 0;
  ErrorCode code = ErrorCode::None;
  std::string message;
  uint64_t instance = 0;  // the broker run that dispatched the job (0 = unknown)
};
struct CancelJob { uint64_t jobId = 0; };
struct Leaving { std::string reason; bool exiting = false; };
struct Drain { uint32_t graceMs = 0; };

struct Subscribe {
  uint64_t requestId = 0;
  std::string pool;  // empty = every pool
};
struct Subscribed { uint64_t requestId = 0; uint64_t lastSeq = 0; };
struct Event {
  uint64_t requestId = 0;  // the subscription
  uint64_t seq = 0;
  uint64_t timeMs = 0;     // wall clock, ms since the Unix epoch
  EventKind kind = EventKind::RunnerReady;
  std::string pool;
  std::string runnerId;
  std::string message;
  uint64_t jobId = 0;
  uint32_t attempt = 0;
  uint32_t delayMs = 0;
  uint32_t runners = 0;
  uint32_t booting = 0;
};

}  // namespace msg

// Every message kind; the variant order is not the wire order (the codec maps them).
using Message = std::variant<msg::Submit, msg::Cancel, msg::StopChild, msg::StatusRequest,
                             msg::Result, msg::Error, msg::Accepted, msg::Placed,
                             msg::ChildExited, msg::Stopped, msg::StatusReply, msg::Heartbeat,
                             msg::Ready, msg::JobDone, msg::Leaving, msg::Welcome, msg::Job,
                             msg::CancelJob, msg::Drain, msg::SetPool, msg::Subscribe,
                             msg::Subscribed, msg::Event>;

}  // namespace flame
