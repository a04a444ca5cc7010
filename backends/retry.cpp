#include "backends/retry.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <thread>

#include "backends/api_json.h"

namespace flame {

Sleeper realSleeper() {
  return [](Duration d) { std::this_thread::sleep_for(d); };
}

Duration backoffDelay(const RetryPolicy& policy, int retry) {
  if (retry < 1) retry = 1;
  Duration delay = policy.base;
  for (int i = 1; i < retry && delay < policy.max; ++i) delay *= 2;
  return std::min(delay, policy.max);
}

std::optional<Duration> parseRetryAfter(std::string_view value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
    value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
    value.remove_suffix(1);
  if (value.empty() || value.size() > 9) return std::nullopt;  // > 9 digits: not a sane delay
  long seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return Duration(seconds * 1000);
}

TokenBucket::TokenBucket(double ratePerSecond, int burst, const Clock& clock)
    : rate_(ratePerSecond),
      burst_(std::max(1, burst)),
      clock_(clock),
      tokens_(burst_),
      last_(clock.now()) {}

Duration TokenBucket::reserve() {
  if (rate_ <= 0) return Duration(0);
  TimePoint now = clock_.now();
  if (now > last_) {
    double elapsedSeconds = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsedSeconds * rate_);
    last_ = now;
  }
  tokens_ -= 1.0;
  if (tokens_ >= 0) return Duration(0);
  // Round up: waiting a hair too little would make the next reservation wait again.
  return Duration(static_cast<Duration::rep>(std::ceil(-tokens_ / rate_ * 1000.0 - 1e-6)));
}

bool isRetryableTransport(http::TransportError error) {
  return error == http::TransportError::Timeout || error == http::TransportError::Connection;
}

HttpOutcome performWithRetry(http::Client& client, http::Request request, const RetryPolicy& policy,
                             const Sleeper& sleeper,
                             const std::function<bool(long status)>& retryableStatus,
                             const std::function<BackendStatus(http::Request&)>& prepare,
                             spdlog::logger& log, std::string_view what,
                             const BeforeRetry& beforeRetry) {
  HttpOutcome outcome;
  for (int attempt = 1;; ++attempt) {
    if (prepare) {
      outcome.prepareStatus = prepare(request);
      if (!outcome.prepareStatus.ok) return outcome;
    }
    outcome.attempts = attempt;
    outcome.response = client.perform(request);
    const auto& response = outcome.response;
    bool retryable = response.answered() ? retryableStatus(response.status)
                                         : isRetryableTransport(response.error);
    if (!retryable) return outcome;
    int retry = attempt;  // the retry we are about to make
    if (retry > policy.maxRetries) return outcome;
    Duration delay = backoffDelay(policy, retry);
    if (response.answered()) {
      if (auto header = response.header("retry-after")) {
        if (auto retryAfter = parseRetryAfter(*header)) delay = std::min(*retryAfter, policy.max);
      }
      log.warn("{}: HTTP {}, retry {}/{} in {}ms", what, response.status, retry, policy.maxRetries,
               delay.count());
    } else {
      log.warn("{}: {} ({}), retry {}/{} in {}ms", what, http::toString(response.error),
               response.errorMessage, retry, policy.maxRetries, delay.count());
    }
    if (sleeper && delay > Duration(0)) sleeper(delay);
    if (beforeRetry && beforeRetry(response)) {
      outcome.settled = true;
      return outcome;
    }
  }
}

bool mayHaveBeenCarriedOut(const http::Response& response) {
  if (!response.answered())
    return response.error == http::TransportError::Timeout ||
           response.error == http::TransportError::Connection;
  return response.status >= 500 && response.status <= 599;
}

namespace {

std::string printablePrefix(std::string_view text, size_t limit) {
  std::string out;
  for (char c : text) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : ' ');
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::string apiErrorMessage(const std::string& body, std::initializer_list<const char*> fields) {
  constexpr size_t kLimit = 300;
  if (auto json = api::parseJson(body)) {
    for (const char* field : fields) {
      std::string text = api::stringField(*json, field);
      if (!text.empty()) return printablePrefix(text, kLimit);
    }
  }
  return printablePrefix(body, kLimit);
}

std::string describeOutcome(std::string_view what, const HttpOutcome& outcome,
                            const std::string& apiMessage) {
  std::string text(what);
  if (!outcome.prepareStatus.ok) return text + ": " + outcome.prepareStatus.message;
  const auto& response = outcome.response;
  if (response.answered()) {
    text += ": HTTP " + std::to_string(response.status);
    if (!apiMessage.empty()) text += ": " + apiMessage;
  } else {
    text += std::string(": ") + http::toString(response.error) + ": " + response.errorMessage;
  }
  text += " (after " + std::to_string(outcome.attempts) +
          (outcome.attempts == 1 ? " attempt)" : " attempts)");
  return text;
}

}  // namespace flame
