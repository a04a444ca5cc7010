#include "worker/builtins.h"

#include <charconv>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace flame {

namespace {

HandlerResult echo(JobContext& job) { return std::string(job.payload()); }

HandlerResult sleepFn(JobContext& job) {
  std::string_view text = job.payload();
  uint64_t ms = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || ms > kInfiniteMs)
    return fail("sleep: payload must be decimal milliseconds, got '" + std::string(text) + "'");
  // Cancelled or past the deadline: the runner reports cancelled/timeout, not this result.
  job.sleepFor(Duration(static_cast<int64_t>(ms)));
  return "slept " + std::to_string(ms);
}

HandlerResult failFn(JobContext& job) { return fail(std::string(job.payload())); }

[[noreturn]] HandlerResult crash(JobContext&) { std::abort(); }

// "N:text": the first N calls with this payload in this process fail, the next ones return
// `text` (for retry tests: a failure that goes away).
HandlerResult flaky(JobContext& job) {
  static std::mutex mutex;
  static std::map<std::string, unsigned> calls;
  std::string payload(job.payload());
  auto colon = payload.find(':');
  unsigned failures = 0;
  if (colon == std::string::npos ||
      std::from_chars(payload.data(), payload.data() + colon, failures).ec != std::errc())
    return fail("flaky: payload must be N:text, got '" + payload + "'");
  unsigned call;
  {
    std::lock_guard lock(mutex);
    call = ++calls[payload];
  }
  if (call <= failures)
    return fail("flaky: failure " + std::to_string(call) + " of " + std::to_string(failures));
  return payload.substr(colon + 1);
}

HandlerResult hang(JobContext&) {
  // Deliberately never looks at the stop token.
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace

void registerBuiltinFunctions(Runner& runner, bool enableTestFunctions) {
  runner.handle("echo", echo);
  runner.handle("sleep", sleepFn);
  runner.handle("fail", failFn);
  if (enableTestFunctions) {
    runner.handle("crash", crash);
    runner.handle("hang", hang);
    runner.handle("flaky", flaky);
  }
}

}  // namespace flame
