# flame wire protocol, version 1. docs/PROTOCOL.md is the normative description.
# Rules: fields are only ever added (new ordinals), never renumbered, retyped or removed.
@0xb3f1c2d4e5a69788;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("flame::wire");

const protocolVersion :UInt16 = 1;

# Every message (the header frame) is one Envelope. Bytes of a job's payload or result travel
# in a separate, opaque frame after the header so that the broker never copies or parses them.
struct Envelope {
  version @0 :UInt16;  # must equal protocolVersion
  body :union {
    # ---- client -> broker ----
    submit @1 :Submit;            # call, cast or place; payload frame follows (may be empty)
    cancel @2 :Cancel;            # cancel one of this client's calls/casts by request id
    stopChild @3 :StopChild;      # stop a placed child by id (any client may)
    statusRequest @4 :StatusRequest;
    # ---- broker -> client ----
    result @5 :Result;            # a call finished; payload frame follows
    error @6 :Error;              # a request failed, or a message was rejected
    accepted @7 :Accepted;        # a cast was queued
    placed @8 :Placed;            # a child was started
    childExited @9 :ChildExited;  # a child ended (to its placer, linked or not, while it is connected)
    stopped @10 :Stopped;         # answer to stopChild
    statusReply @11 :StatusReply;
    # ---- either direction, every peer ----
    heartbeat @12 :Heartbeat;
    # ---- runner -> broker ----
    ready @13 :Ready;             # register (or re-register) a runner
    jobDone @14 :JobDone;         # a job (call, cast or child) ended; payload frame follows
    leaving @15 :Leaving;         # runner stops taking work (drain, retire, failsafe)
    # ---- broker -> runner ----
    welcome @16 :Welcome;         # READY accepted
    job @17 :Job;                 # run this; payload frame follows
    cancelJob @18 :CancelJob;     # cooperative cancel of a running job
    drain @19 :Drain;             # finish in-flight work and exit
    # ---- client -> broker (added in v1, after the above) ----
    setPool @20 :SetPool;         # change a pool's scaling limits at runtime; answer: statusReply
    subscribe @21 :Subscribe;     # stream the broker's events; answer: subscribed, then events
    # ---- broker -> client (added in v1) ----
    subscribed @22 :Subscribed;   # a subscription is in force
    event @23 :Event;             # something the scaler or the broker did (to subscribers)
  }
}

enum Mode {
  call @0;   # synchronous; the client waits for `result` or `error`
  cast @1;   # fire and forget; the broker answers `accepted` at once
  place @2;  # long-running child; the broker answers `placed` once it runs
}

enum ErrorCode {
  none @0;
  badRequest @1;          # malformed, truncated, unparsable or missing fields
  unsupportedVersion @2;  # envelope.version differs from the broker's
  unknownPool @3;         # no pool of that name was ever declared
  unknownFunction @4;     # the pool's runners do not serve that function
  payloadTooLarge @5;     # payload frame bigger than the configured limit
  timeout @6;             # the job's deadline passed
  runnerLost @7;          # the runner died or vanished while running the job
  cancelled @8;           # the job was cancelled (by its client, or its client went away)
  handlerError @9;        # the function ran and returned an error; message is its text
  queueFull @10;          # the pool's queue is at its limit
  bootFailed @11;         # the pool cannot boot runners
  unauthorized @12;       # bad boot token
  notFound @13;           # stopChild/cancel for an unknown id
  shuttingDown @14;       # the broker or runner is stopping
  unknownPeer @15;        # runner message from an unregistered connection: send `ready`
  internal @16;           # a bug; please report
}

struct Submit {
  requestId @0 :UInt64;   # client-chosen, echoed in every answer; unique per client connection
  mode @1 :Mode;
  pool @2 :Text;
  function @3 :Text;
  timeoutMs @4 :UInt32;   # without splitBudget: budget from receipt (place: the placement bound);
                          # with it: the run budget, from the moment a runner takes the job.
                          # 0 = the pool's default; 0xFFFFFFFF = infinite
  idempotent @5 :Bool;    # may be retried on another runner if its runner is lost
  retries @6 :UInt8;      # how many retries (with idempotent or a retry* flag; 0 = the default, 1)
  link @7 :Bool;          # tie to this client's session (the client must heartbeat)
  waitTimeoutMs @8 :UInt32;  # with splitBudget: bound on waiting for a runner (queue and boot);
                             # 0 = the pool's wait_timeout; 0xFFFFFFFF = infinite
  splitBudget @9 :Bool;   # timeoutMs is the run budget and waitTimeoutMs bounds the wait (PROTOCOL.md, Deadlines)
  # Retries (PROTOCOL.md, Retries); `retries` is how many for every reason, calls and casts only.
  retryHandlerError @10 :Bool;  # re-run when the function fails (handler_error)
  retryTimeout @11 :Bool;       # re-run when the run budget runs out on a runner (needs splitBudget)
  retryBackoffMs @12 :UInt32;   # delay before the first retry, doubling per retry, jittered;
                                # 0 = the pool's retry_backoff
  retryBackoffMaxMs @13 :UInt32;  # cap of that delay; 0 = the pool's retry_backoff_max
}

struct Cancel { requestId @0 :UInt64; }
struct StopChild { childId @0 :UInt64; }
struct StatusRequest { requestId @0 :UInt64; }

struct Result {
  requestId @0 :UInt64;
  jobId @1 :UInt64;
}

struct Error {
  requestId @0 :UInt64;   # 0 when the request could not be read far enough to know it
  code @1 :ErrorCode;
  message @2 :Text;
  jobId @3 :UInt64;       # 0 when no job was created
}

struct Accepted { requestId @0 :UInt64; jobId @1 :UInt64; }

struct Placed {
  requestId @0 :UInt64;
  childId @1 :UInt64;
  runnerId @2 :Text;
}

struct ChildExited {
  childId @0 :UInt64;
  code @1 :ErrorCode;     # none = returned normally
  message @2 :Text;
}

struct Stopped { childId @0 :UInt64; }

struct Heartbeat {
  sentMs @0 :UInt64;      # sender's clock, informational
  intervalMs @1 :UInt32;  # the sender's heartbeat interval (the broker tells clients its own)
  instance @2 :UInt64;    # the broker's random id for this run (0 from clients and runners):
                          # a change means the broker restarted and forgot what was in flight
  maxPayloadBytes @3 :UInt64;  # broker -> client: the largest payload frame it accepts (0 = unknown)
  shuttingDown @4 :Bool;  # broker -> client: it is stopping and accepts no new work
}

struct Ready {
  runnerId @0 :Text;      # stable for the life of the runner process
  pool @1 :Text;
  slots @2 :UInt32;       # max concurrency
  functions @3 :List(Text);
  token @4 :Text;         # one-time boot token (empty for static runners)
  busy @5 :UInt32;        # jobs still running here (non-zero on re-registration)
  pid @6 :UInt32;
  host @7 :Text;
  held @8 :List(HeldJob); # every job this runner still holds (running, or its jobDone not yet
                          # sent), with the broker run that gave it; authoritative when its
                          # length equals `busy` (older runners send only `busy`)
}

struct HeldJob {
  jobId @0 :UInt64;
  instance @1 :UInt64;    # Welcome.instance of the broker run that dispatched it (0 = unknown)
}

struct Welcome {
  heartbeatIntervalMs @0 :UInt32;
  liveness @1 :UInt32;    # peer is dead after interval x liveness of silence
  instance @2 :UInt64;    # the broker's random id for this run (as in heartbeats); the runner
                          # tags every job with it and echoes it in jobDone and ready.held
  maxPayloadBytes @3 :UInt64;  # the largest result frame the broker accepts (0 = unknown)
}

struct Job {
  jobId @0 :UInt64;
  function @1 :Text;
  mode @2 :Mode;
  budgetMs @3 :UInt32;    # remaining time from receipt; 0xFFFFFFFF = infinite
}

struct JobDone {
  jobId @0 :UInt64;
  code @1 :ErrorCode;     # none = success, payload frame is the result
  message @2 :Text;
  instance @3 :UInt64;    # the broker run that dispatched the job (Welcome.instance; 0 = unknown):
                          # a restarted broker reuses job ids, so it matches on both
}

struct CancelJob { jobId @0 :UInt64; }

struct Leaving {
  reason @0 :Text;
  exiting @1 :Bool;       # false: draining (finish in-flight, take nothing new); true: gone now
}

struct Drain {
  graceMs @0 :UInt32;
}

struct SetPool {
  requestId @0 :UInt64;
  pool @1 :Text;
  min @2 :Int64 = -1;        # -1 = unchanged
  max @3 :Int64 = -1;
  warmSlots @4 :Int64 = -1;
}

struct StatusReply {
  requestId @0 :UInt64;
  pools @1 :List(PoolStatus);
}

struct PoolStatus {
  name @0 :Text;
  queued @1 :UInt32;
  slotsUsed @2 :UInt32;
  slotsTotal @3 :UInt32;
  runners @4 :List(RunnerStatus);
  completed @5 :UInt64;
  failed @6 :UInt64;
  booting @7 :UInt32;
  boots @8 :UInt64;
  bootFailures @9 :UInt64;
  min @10 :UInt32;
  max @11 :UInt32;
  retried @12 :UInt64;    # retries scheduled (each attempt after the first counts once)
}

struct RunnerStatus {
  runnerId @0 :Text;
  state @1 :Text;         # booting | ready | draining
  slotsUsed @2 :UInt32;
  slotsTotal @3 :UInt32;
  pid @4 :UInt32;
  host @5 :Text;
  idleMs @6 :UInt64;
}

struct Subscribe {
  requestId @0 :UInt64;   # ends with `cancel` of this id (answer: error cancelled)
  pool @1 :Text;          # only this pool's events; empty = every pool
}

struct Subscribed {
  requestId @0 :UInt64;
  lastSeq @1 :UInt64;     # seq of the broker's latest event so far (0 = none yet)
}

enum EventKind {
  runnerBooting @0;   # the scaler asked the backend for a machine (runnerId)
  runnerReady @1;     # a runner registered and takes work
  runnerDraining @2;  # a runner takes no new work (idle, single use, drained, leaving by itself)
  runnerStopped @3;   # a draining runner left
  runnerLost @4;      # a runner vanished (no heartbeat, its connection closed, it exited)
  bootFailed @5;      # a boot failed; message: the backend's error
  poolChanged @6;     # the pool's limits changed; message: "min=0 max=10 warm_slots=0"
  queueFull @7;       # a submit was refused queue_full (at most one event per pool per second)
  jobRetried @8;      # a job will run again (jobId, attempt, delayMs); message: why
}

struct Event {
  requestId @0 :UInt64;   # the subscription
  seq @1 :UInt64;         # 1, 2, 3 ... per broker run; a gap means this subscriber missed events
  timeMs @2 :UInt64;      # the broker's wall clock, milliseconds since the Unix epoch
  kind @3 :EventKind;
  pool @4 :Text;
  runnerId @5 :Text;
  message @6 :Text;
  jobId @7 :UInt64;       # jobRetried
  attempt @8 :UInt32;     # jobRetried: 1 = the first retry
  delayMs @9 :UInt32;     # jobRetried: backoff before it is queued again
  runners @10 :UInt32;    # the pool's runners after the event (connected, draining included)
  booting @11 :UInt32;    # the pool's machines booting after the event
}
