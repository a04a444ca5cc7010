// Retries with exponential backoff and a client-side token bucket for the API backends.
// Time is injected: waiting goes through a Sleeper and the bucket reads a Clock, so tests see
// every wait and never actually sleep.
#pragma once

#include <spdlog/logger.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "backends/backend.h"
#include "backends/http.h"
#include "common/clock.h"

namespace flame {

// Blocks the calling thread for the given duration (the real one is std::this_thread::sleep_for).
using Sleeper = std::function<void(Duration)>;

// A Sleeper that really sleeps.
Sleeper realSleeper();

struct RetryPolicy {
  int maxRetries = 5;  // retries after the first attempt (total attempts = maxRetries + 1)
  Duration base{200};  // delay before the first retry
  Duration max{5000};  // cap of any single delay, Retry-After included
};

// Delay before retry number `retry` (1 = first retry): base * 2^(retry-1), capped at max.
// No jitter: a broker serialises its calls per backend, there is no herd to spread.
Duration backoffDelay(const RetryPolicy& policy, int retry);

// Parses a Retry-After value in delta-seconds ("3"). The HTTP-date form and garbage give nullopt
// (the caller then uses its backoff).
std::optional<Duration> parseRetryAfter(std::string_view value);

// Token bucket: `burst` tokens, refilled at `ratePerSecond`. Not thread-safe.
class TokenBucket {
 public:
  // ratePerSecond <= 0 disables the limit. `clock` is not owned and must outlive the bucket.
  TokenBucket(double ratePerSecond, int burst, const Clock& clock);

  // Takes one token and returns how long the caller must wait before acting (zero when a token
  // was available). Reservations queue up: the bucket may go into debt, so callers that each
  // wait what they were told act at the configured rate, even if the clock only moves when they
  // sleep.
  Duration reserve();

 private:
  double rate_;
  double burst_;
  const Clock& clock_;
  double tokens_;
  TimePoint last_;
};

// True for transport failures worth retrying (timeouts, connection problems; not Cancelled).
bool isRetryableTransport(http::TransportError error);

struct HttpOutcome {
  BackendStatus prepareStatus;  // not ok: `prepare` refused and no request was sent
  http::Response response;      // the last answer (or transport failure)
  int attempts = 0;
  bool settled = false;  // `beforeRetry` said the retry was not needed; `response` is the last failure
};

// Called after the backoff wait, before a retry, with the failed attempt's response. Returns true
// when the retry is not needed after all (a create whose answer was lost but that the caller
// found done), which ends performWithRetry with outcome.settled. It may use the same Client.
using BeforeRetry = std::function<bool(const http::Response& failed)>;

// Sends `request` until it gets an answer whose status is not retryable, or a non-retryable
// transport failure, or maxRetries retries were spent, or `beforeRetry` settles it. Between
// attempts it sleeps the backoff, or the answer's Retry-After (capped at policy.max). `prepare`
// runs before every attempt (to re-read a rotating token, or to wait for the rate limit) and may
// refuse. Logs a warning per retry on `log`, naming `what`.
HttpOutcome performWithRetry(http::Client& client, http::Request request, const RetryPolicy& policy,
                             const Sleeper& sleeper,
                             const std::function<bool(long status)>& retryableStatus,
                             const std::function<BackendStatus(http::Request&)>& prepare,
                             spdlog::logger& log, std::string_view what,
                             const BeforeRetry& beforeRetry = nullptr);

// True when a failed create may have been carried out all the same: its answer was lost (timeout,
// dropped connection) or came from a server or gateway that failed after forwarding it (5xx).
// Such a create is looked up before it is retried.
bool mayHaveBeenCarriedOut(const http::Response& response);

// The API's own explanation from an error body: the first string among `fields` of a JSON object
// ("error", "message"), else the start of the body, printable and at most 300 characters.
std::string apiErrorMessage(const std::string& body, std::initializer_list<const char*> fields);

// "fly create machine: HTTP 401: unauthorized (after 1 attempt)" / "...: timeout: ... ".
std::string describeOutcome(std::string_view what, const HttpOutcome& outcome,
                            const std::string& apiMessage);

}  // namespace flame
