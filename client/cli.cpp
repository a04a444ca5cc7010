#include "client/cli.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>
#include <iostream>
#include <iterator>
#include <optional>
#include <zmq.hpp>

#include "client/client.h"
#include "client/status_format.h"
#include "common/duration.h"
#include "common/curve_keys.h"
#include "common/log.h"

namespace flame {

namespace {

// Flags shared by call, cast and place.
struct JobArgs {
  std::string pool;
  std::string function;
  std::string payload;  // "-" = read stdin
  std::string timeout = "0";
  std::string waitTimeout = "0";
  bool idempotent = false;
  unsigned retries = 0;
  bool link = false;
  // call and cast only (see addRetryArgs)
  std::vector<std::string> retryOn;  // runner_lost, handler_error, timeout
  std::string retryBackoff = "0";
  std::string retryBackoffMax = "0";
};

constexpr const char* kRetryReasons[] = {"runner_lost", "handler_error", "timeout"};

const CLI::Validator kDurationCheck(
    [](std::string& text) -> std::string {
      return parseDuration(text) ? std::string()
                                 : "not a duration (e.g. 250ms, 30s, 5m, infinity): " + text;
    },
    "DURATION");

void addJobArgs(CLI::App* cmd, JobArgs& args, const char* timeoutHelp) {
  cmd->add_option("--timeout", args.timeout, timeoutHelp)->check(kDurationCheck);
  cmd->add_option("--wait-timeout", args.waitTimeout,
                  "how long to wait for a runner (queue and boot) before failing with timeout; the run budget "
                  "starts after it (default 0: the pool's wait_timeout; infinity: none)")
      ->check(kDurationCheck);
  cmd->add_flag("--idempotent", args.idempotent,
                "the job may be re-run on another runner if its runner is lost (once, or --retries times); "
                "same as --retry-on runner_lost");
  cmd->add_option("--retries", args.retries,
                  "re-runs allowed, for every reason --idempotent/--retry-on allow (default 0: one)")
      ->check(CLI::Range(0u, 255u));
  cmd->add_option("POOL", args.pool, "pool name")->required();
  cmd->add_option("FUNCTION", args.function, "function name")->required();
  cmd->add_option("PAYLOAD", args.payload, "payload bytes; - reads stdin; default: empty");
}

// call and cast: which failures are retried, and how long to wait between attempts.
void addRetryArgs(CLI::App* cmd, JobArgs& args) {
  cmd->add_option("--retry-on", args.retryOn,
                  "failures to retry, comma-separated: runner_lost (= --idempotent: the job may run twice), "
                  "handler_error, timeout (its run budget ran out on a runner)")
      ->delimiter(',')
      ->allow_extra_args(false)  // one comma-separated word: POOL after it is not taken for a reason
      ->check(CLI::IsMember(std::vector<std::string>(std::begin(kRetryReasons), std::end(kRetryReasons))));
  cmd->add_option("--retry-backoff", args.retryBackoff,
                  "delay before the first retry, doubled for each later one, jittered down by up to 25% "
                  "(default 0: the pool's retry_backoff)")
      ->check(kDurationCheck);
  cmd->add_option("--retry-backoff-max", args.retryBackoffMax,
                  "cap of that delay, at least --retry-backoff (default 0: the pool's retry_backoff_max)")
      ->check(kDurationCheck);
}

// Checks what a validator of one option cannot: returns a usage error, or nullopt.
std::optional<std::string> retryUsageError(const JobArgs& args) {
  Duration backoff = parseDuration(args.retryBackoff).value_or(Duration(0));
  Duration max = parseDuration(args.retryBackoffMax).value_or(Duration(0));
  if (backoff > Duration(0) && max > Duration(0) && max < backoff)
    return "--retry-backoff-max (" + args.retryBackoffMax + ") is below --retry-backoff (" + args.retryBackoff + ")";
  return std::nullopt;
}

CallOptions callOptions(const JobArgs& args, bool link) {
  CallOptions options;
  options.timeout =
      parseDuration(args.timeout).value_or(Duration(0));  // validated by kDurationCheck
  options.waitTimeout = parseDuration(args.waitTimeout).value_or(Duration(0));
  options.idempotent = args.idempotent;
  options.retries = static_cast<uint8_t>(args.retries);
  options.link = link;
  for (const auto& reason : args.retryOn) {  // validated by addRetryArgs
    if (reason == "runner_lost") options.idempotent = true;
    if (reason == "handler_error") options.retryHandlerError = true;
    if (reason == "timeout") options.retryTimeout = true;
  }
  options.retryBackoff = parseDuration(args.retryBackoff).value_or(Duration(0));
  options.retryBackoffMax = parseDuration(args.retryBackoffMax).value_or(Duration(0));
  return options;
}

std::string payloadOf(const JobArgs& args, std::istream& in) {
  if (args.payload != "-") return args.payload;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Fills options.serverKey/secretKey from --server-key and --key-file (or their variables: the
// `...Given` flags say which, for the error). Returns a usage error, or nullopt.
std::optional<std::string> readKeys(const std::string& serverKey, bool serverKeyGiven, const std::string& keyFile,
                                    bool keyFileGiven, ClientOptions& options) {
  std::string serverKeySource = serverKeyGiven ? "--server-key" : std::string("$") + kEnvClientServerKey;
  std::string keyFileSource = keyFileGiven ? "--key-file" : std::string("$") + kEnvClientKeyFile;
  if (serverKey.empty() && keyFile.empty()) return std::nullopt;  // plaintext
  if (serverKey.empty())
    return keyFileSource + " is set but --server-key is not: CURVE needs the broker's public key too";
  if (keyFile.empty())
    return serverKeySource + " is set but --key-file is not: CURVE needs this client's secret key too";
  try {
    options.serverKey = readPublicKey(serverKey);
  } catch (const KeyFileError& e) {
    return serverKeySource + ": " + e.what();
  }
  try {
    options.secretKey = readSecretKeyFile(keyFile);
  } catch (const KeyFileError& e) {
    return keyFileSource + ": " + e.what();
  }
  return std::nullopt;
}

int fail(std::ostream& err, const Failure& failure) {
  err << "error: " << failure.toString() << "\n";
  return 1;
}

const CLI::Validator kPositiveDurationCheck(
    [](std::string& text) -> std::string {
      auto d = parseDuration(text);
      if (!d) return "not a duration (e.g. 250ms, 1s, 5m): " + text;
      if (*d <= Duration(0) || *d >= kInfinite) return "must be more than 0 and finite: " + text;
      return std::string();
    },
    "DURATION");

// SIGINT and SIGTERM end `status --watch` and `events` cleanly (exit 0). While a StopSignals
// lives, those signals set a flag instead of killing the process; the waits below poll it.
// (A condition variable cannot be notified from a signal handler; 50 ms polling is the bound on
// how late Ctrl-C is noticed.)
std::atomic<int> gStopSignal{0};
extern "C" void onStopSignal(int signal) { gStopSignal.store(signal); }

class StopSignals {
 public:
  StopSignals() {
    gStopSignal.store(0);
    struct sigaction action {};
    action.sa_handler = onStopSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &oldInt_);
    ::sigaction(SIGTERM, &action, &oldTerm_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &oldInt_, nullptr);
    ::sigaction(SIGTERM, &oldTerm_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static bool raised() { return gStopSignal.load() != 0; }

 private:
  struct sigaction oldInt_ {};
  struct sigaction oldTerm_ {};
};

constexpr std::chrono::milliseconds kSignalPoll{50};

// Waits until `deadline`; false if a stop signal came first.
bool waitUntil(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (StopSignals::raised()) return false;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(deadline - now, kSignalPoll));
  }
}

std::string isoNow() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  return formatIsoTime(static_cast<uint64_t>(ms.count()));
}

struct WatchArgs {
  bool json = false;
  Duration interval{1000};
  std::optional<unsigned> count;  // tables to show; none: until a signal
  Duration timeout{5000};         // of each status request
  std::string broker;             // for the header
};

// `flame status --watch`: one status per interval (counted from the start of the previous one;
// a slow answer delays the next rather than bursting to catch up). On a terminal each redraws
// the screen; otherwise each is appended, after a header line, so logs and pipes work; --json
// prints one object per line. A broker that does not answer is a line, and the watch goes on.
// Exit 0, or 1 when --count ran out on a failure.
int watchStatus(Client& client, const CliStreams& io, const WatchArgs& args) {
  StopSignals signals;
  auto next = std::chrono::steady_clock::now();
  bool lastFailed = false;
  for (unsigned shown = 0; !args.count || shown < *args.count;) {
    auto reply = client.status(args.timeout);
    if (StopSignals::raised()) return 0;
    std::string time = isoNow();
    lastFailed = !reply;
    if (args.json) {
      if (reply) {
        io.out << formatStatusJson(*reply, time) << "\n";
      } else {
        nlohmann::ordered_json line{{"time", time},
                                    {"error", std::string(errorCodeName(reply.error().code))},
                                    {"message", reply.error().message}};
        io.out << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
      }
    } else {
      // Clear the screen and home the cursor: the table is redrawn in place.
      if (io.outIsTerminal) io.out << "\x1b[H\x1b[2J";
      io.out << "# " << time << " broker " << args.broker << "\n";
      if (reply)
        io.out << formatStatusTable(*reply);
      else
        io.out << reply.error().toString() << "\n";
      if (!io.outIsTerminal) io.out << "\n";
    }
    io.out.flush();
    if (args.count && ++shown >= *args.count) break;
    next += args.interval;
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;
    if (!waitUntil(next)) return 0;
  }
  return lastFailed ? 1 : 0;
}

struct EventsArgs {
  std::string pool;               // empty: every pool
  bool json = false;
  std::optional<unsigned> count;  // events to print; none: until a signal
  Duration timeout{5000};         // for the broker to confirm the subscription
};

// `flame events`: prints each event as it comes (flushed: pipes see it at once). Exit 0 after
// --count events or on SIGINT/SIGTERM; 1 when the subscription fails or ends otherwise.
int followEvents(Client& client, const CliStreams& io, const EventsArgs& args) {
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    unsigned printed = 0;
    bool done = false;                  // --count reached, or the command is ending: print no more
    std::optional<Failure> ended;       // the subscription ended on its own
    std::optional<uint64_t> lastSeq;    // of the last event seen (or the broker's, at subscribe)
  };
  auto state = std::make_shared<State>();
  // Without a pool filter seq counts every event, so a gap means events were dropped for us (a
  // slow consumer). With one, other pools' numbers are skipped: a gap says nothing.
  bool detectGaps = args.pool.empty();
  StopSignals signals;
  // After the wait below, `done` is set under the lock and nothing else is touched: the I/O
  // thread may still deliver an event before the subscription's cancel reaches it.
  auto onEvent = [state, &io, json = args.json, count = args.count, detectGaps](const msg::Event& event) {
    std::lock_guard lock(state->mutex);
    if (state->done) return;
    if (detectGaps && state->lastSeq && event.seq > *state->lastSeq + 1) {
      // On stderr with --json, so stdout stays one JSON object per line.
      (json ? io.err : io.out) << "(missed " << (event.seq - *state->lastSeq - 1) << " events)\n";
    }
    state->lastSeq = std::max(state->lastSeq.value_or(0), event.seq);
    io.out << (json ? formatEventJson(event) : formatEventLine(event)) << "\n";
    io.out.flush();
    if (count && ++state->printed >= *count) {
      state->done = true;
      state->changed.notify_all();
    }
  };
  auto onEnd = [state](Failure why) {
    std::lock_guard lock(state->mutex);
    state->ended = std::move(why);
    state->changed.notify_all();
  };
  auto subscription = client.subscribe(args.pool, onEvent, onEnd, args.timeout);
  if (!subscription) return fail(io.err, subscription.error());
  std::optional<Failure> ended;
  {
    std::unique_lock lock(state->mutex);
    // Events may have come before subscribe() returned; else the broker's count is the start.
    if (!state->lastSeq) state->lastSeq = subscription->lastSeq();
    while (!state->done && !state->ended && !StopSignals::raised()) state->changed.wait_for(lock, kSignalPoll);
    state->done = true;  // nothing more is printed, whatever still arrives
    bool countReached = args.count && state->printed >= *args.count;
    if (!countReached && !StopSignals::raised()) ended = state->ended;
  }
  subscription->cancel();
  return ended ? fail(io.err, *ended) : 0;
}

}  // namespace

int runCli(int argc, const char* const* argv, CliStreams io, const std::string& defaultBroker) {
  CliDefaults defaults;
  defaults.broker = defaultBroker;
  return runCli(argc, argv, io, defaults);
}

int runCli(int argc, const char* const* argv, CliStreams io, const CliDefaults& defaults) {
  CLI::App app{"flame: run jobs on a flame broker's pools and inspect them", "flame"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand: `flame call --broker EP ...`
  std::string broker = defaults.broker;
  std::string logLevel = "warn";
  app.add_option("--broker", broker,
                 std::string("the broker's client endpoint (default: $") + kEnvClientEndpoint +
                     ", else " + kDefaultClientEndpoint + ")");
  std::string serverKey = defaults.serverKey, keyFile = defaults.keyFile;
  auto* serverKeyOption = app.add_option(
      "--server-key", serverKey,
      std::string("CURVE: the broker's public key, as 40 Z85 characters or a NAME.pub file; with --key-file "
                  "(default: $") + kEnvClientServerKey + ")");
  serverKeyOption->type_name("FILE_OR_KEY");
  auto* keyFileOption = app.add_option(
      "--key-file", keyFile,
      std::string("CURVE: this client's secret key file (a NAME.key from flame keygen, mode 0600), whose "
                  "public key the broker must list; with --server-key (default: $") + kEnvClientKeyFile + ")");
  keyFileOption->type_name("FILE");
  app.add_option("--log-level", logLevel, "trace, debug, info, warn, error or off (default: warn)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  JobArgs callArgs;
  auto* call = app.add_subcommand(
      "call", "run FUNCTION on a runner of POOL and print its result bytes verbatim");
  addJobArgs(call, callArgs,
             "run budget, from the moment a runner takes the call (default 0: the pool's; infinity: none)");
  addRetryArgs(call, callArgs);

  JobArgs castArgs;
  auto* cast =
      app.add_subcommand("cast", "queue FUNCTION on POOL without waiting; prints the job id");
  addJobArgs(cast, castArgs,
             "run budget (default 0: the pool's cast_timeout, infinite unless set; infinity: none)");
  addRetryArgs(cast, castArgs);

  JobArgs placeArgs;
  auto* place =
      app.add_subcommand("place", "start a long-running child; prints its handle childId@runnerId");
  addJobArgs(place, placeArgs,
             "the child's maximum lifetime once placed (default 0: none, it runs until it returns or is stopped); "
             "--wait-timeout bounds the placement");
  place->add_flag("--link", placeArgs.link,
                  "stay in the foreground until the child exits (exit 1 if it failed); "
                  "the child is stopped if this command goes away");
  bool placeWait = false;
  place->add_flag("--wait", placeWait,
                  "after the handle, wait for the child's exit and print it (exited: ok, or exited: <code>: "
                  "<message>; exit 1 unless it returned normally); without --link the child keeps running if "
                  "this command goes away");

  std::string handleText;
  std::string stopTimeout = "infinity";
  auto* stop = app.add_subcommand("stop", "stop a placed child and wait until it has ended");
  stop->add_option("HANDLE", handleText, "childId@runnerId as printed by place, or a bare childId")
      ->required()
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            return ChildHandle::parse(text) ? std::string()
                                            : "not a child handle (childId@runnerId): " + text;
          },
          "HANDLE"));
  stop->add_option("--timeout", stopTimeout, "give up waiting after this long (default: infinity)")
      ->check(kDurationCheck);

  bool json = false;
  std::string statusTimeout = "5s";
  auto* status = app.add_subcommand("status", "show pools, queues, slots and runners");
  status->add_flag("--json", json, "print one JSON object instead of tables");
  status
      ->add_option("--timeout", statusTimeout,
                   "fail with broker_unreachable after this long (default: 5s)")
      ->check(kDurationCheck);
  bool statusWatch = false;
  std::string watchInterval = "1s";
  std::optional<unsigned> watchCount;
  auto* watchFlag = status->add_flag(
      "--watch", statusWatch,
      "show the status again every --interval until SIGINT/SIGTERM: redrawn in place on a terminal, else one "
      "table per interval after a timestamp line (with --json: one object per line); a broker that does not "
      "answer is reported on a line and the watch goes on");
  status->add_option("--interval", watchInterval, "with --watch: time between two tables (default: 1s)")
      ->check(kPositiveDurationCheck)
      ->needs(watchFlag);
  status->add_option("--count", watchCount, "with --watch: stop after this many tables")
      ->check(CLI::Range(1u, std::numeric_limits<unsigned>::max()))
      ->needs(watchFlag);

  auto* pool = app.add_subcommand("pool", "manage pools");
  pool->require_subcommand(1);
  std::string poolName;
  std::optional<uint32_t> poolMin, poolMax, poolWarm;
  bool poolJson = false;
  std::string poolTimeout = "5s";
  auto* poolSet =
      pool->add_subcommand("set", "change a configured pool's scaling limits; prints its status");
  poolSet->add_option("POOL", poolName, "pool name")->required();
  poolSet->add_option("--min", poolMin, "runners kept up even when idle");
  poolSet->add_option("--max", poolMax, "most runners at once (at least 1)");
  poolSet->add_option("--warm-slots", poolWarm, "free slots kept ready ahead of demand");
  poolSet->add_flag("--json", poolJson, "print the pool's status as JSON");
  poolSet
      ->add_option("--timeout", poolTimeout,
                   "fail with broker_unreachable after this long (default: 5s)")
      ->check(kDurationCheck);

  std::string eventsPool;
  bool eventsJson = false;
  std::optional<unsigned> eventsCount;
  std::string eventsTimeout = "5s";
  auto* events = app.add_subcommand(
      "events", "print the broker's events as they happen (runners booting, ready, draining, stopped, lost; boot "
                "failures; pool changes; full queues; retried jobs) until SIGINT/SIGTERM");
  events->add_option("--pool", eventsPool, "only this pool's events (default: every pool)");
  events->add_flag("--json", eventsJson, "one JSON object per line (NDJSON)");
  events->add_option("--count", eventsCount, "exit 0 after this many events")
      ->check(CLI::Range(1u, std::numeric_limits<unsigned>::max()));
  events
      ->add_option("--timeout", eventsTimeout,
                   "fail with broker_unreachable if the broker does not confirm the subscription within this "
                   "long (default: 5s)")
      ->check(kDurationCheck);

  std::string keyName;
  auto* keygen = app.add_subcommand(
      "keygen", "write a CURVE key pair: NAME.key (the secret, mode 0600) and NAME.pub; prints the public key");
  keygen->add_option("NAME", keyName, "path of the two files, without .key/.pub")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e, io.out, io.err);  // prints help (code 0) or the error
    return code == 0 ? 0 : 2;
  }
  for (auto [cmd, args] : {std::pair{call, &callArgs}, std::pair{cast, &castArgs}}) {
    if (!cmd->parsed()) continue;
    if (auto usage = retryUsageError(*args)) {
      io.err << cmd->get_name() << ": " << *usage << "\n";
      return 2;
    }
  }
  if (poolSet->parsed() && !poolMin && !poolMax && !poolWarm) {
    io.err << "pool set: give at least one of --min, --max, --warm-slots\n";
    return 2;
  }
  setLogLevel(logLevel);
  if (keygen->parsed()) {  // needs no broker
    try {
      CurveKeyPair keys = generateCurveKeyPair();
      writeKeyPair(keyName, keys);
      io.out << keys.publicKey << "\n";
      return 0;
    } catch (const KeyFileError& e) {
      io.err << "error: " << e.what() << "\n";
      return 1;
    }
  }

  ClientOptions options;
  options.broker = broker;
  if (auto usage = readKeys(serverKey, serverKeyOption->count() > 0, keyFile, keyFileOption->count() > 0, options)) {
    io.err << "error: " << *usage << "\n";
    return 2;
  }
  std::optional<Client> client;
  try {
    client.emplace(std::move(options));
  } catch (const zmq::error_t& e) {
    io.err << "error: bad broker endpoint '" << broker << "': " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    io.err << "error: " << e.what() << "\n";
    return 2;
  }

  if (call->parsed()) {
    auto result = client->call(callArgs.pool, callArgs.function, payloadOf(callArgs, io.in),
                               callOptions(callArgs, /*link=*/true));
    if (!result) return fail(io.err, result.error());
    io.out.write(result->data(), static_cast<std::streamsize>(result->size()));
    io.out.flush();
    return 0;
  }
  if (cast->parsed()) {
    // Unlinked: the job must survive this command's exit.
    auto jobId = client->cast(castArgs.pool, castArgs.function, payloadOf(castArgs, io.in),
                              callOptions(castArgs, /*link=*/false));
    if (!jobId) return fail(io.err, jobId.error());
    io.out << *jobId << "\n";
    return 0;
  }
  if (place->parsed()) {
    using OnExit = std::function<void(uint64_t, std::optional<Failure>)>;
    auto exited = std::make_shared<std::promise<std::optional<Failure>>>();
    auto handle = client->place(
        placeArgs.pool, placeArgs.function, payloadOf(placeArgs, io.in),
        callOptions(placeArgs, placeArgs.link),
        placeArgs.link || placeWait
            ? OnExit([exited](uint64_t, std::optional<Failure> why) { exited->set_value(std::move(why)); })
            : OnExit());
    if (!handle) return fail(io.err, handle.error());
    io.out << handle->toString() << "\n";
    io.out.flush();
    if (!placeArgs.link && !placeWait) return 0;
    // onExit runs exactly once for a watched child, linked or not (the client's liveness rules
    // bound the wait for a lost broker).
    auto why = exited->get_future().get();
    if (placeWait) {
      io.out << "exited: " << (why ? why->toString() : std::string("ok")) << "\n";
      io.out.flush();
      return why ? 1 : 0;
    }
    return why ? fail(io.err, *why) : 0;
  }
  if (stop->parsed()) {
    auto done = client->stop(*ChildHandle::parse(handleText),
                             parseDuration(stopTimeout).value_or(kInfinite));
    return done ? 0 : fail(io.err, done.error());
  }
  if (status->parsed() && statusWatch) {
    WatchArgs args;
    args.json = json;
    args.interval = parseDuration(watchInterval).value_or(Duration(1000));
    args.count = watchCount;
    args.timeout = parseDuration(statusTimeout).value_or(Duration(5000));
    args.broker = broker;
    return watchStatus(*client, io, args);
  }
  if (status->parsed()) {
    auto reply = client->status(parseDuration(statusTimeout).value_or(Duration(5000)));
    if (!reply) return fail(io.err, reply.error());
    io.out << (json ? formatStatusJson(*reply) + "\n" : formatStatusTable(*reply));
    return 0;
  }
  if (events->parsed()) {
    EventsArgs args;
    args.pool = eventsPool;
    args.json = eventsJson;
    args.count = eventsCount;
    args.timeout = parseDuration(eventsTimeout).value_or(Duration(5000));
    return followEvents(*client, io, args);
  }
  if (poolSet->parsed()) {
    auto reply = client->setPool(poolName, PoolLimitsUpdate{poolMin, poolMax, poolWarm},
                                 parseDuration(poolTimeout).value_or(Duration(5000)));
    if (!reply) return fail(io.err, reply.error());
    io.out << (poolJson ? formatStatusJson(*reply) + "\n" : formatStatusTable(*reply));
    return 0;
  }
  return 2;  // unreachable: a subcommand is required
}

}  // namespace flame
