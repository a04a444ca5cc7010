// Backoff, Retry-After parsing and the token bucket, on a manual clock.
#include "backends/retry.h"

#include <catch2/catch.hpp>

#include "backends/http.h"

using namespace flame;
using std::chrono::milliseconds;

TEST_CASE("backoff doubles from base and is capped", "[backends][retry]") {
  RetryPolicy policy{5, milliseconds(200), milliseconds(1000)};
  CHECK(backoffDelay(policy, 1) == milliseconds(200));
  CHECK(backoffDelay(policy, 2) == milliseconds(400));
  CHECK(backoffDelay(policy, 3) == milliseconds(800));
  CHECK(backoffDelay(policy, 4) == milliseconds(1000));
  CHECK(backoffDelay(policy, 60) == milliseconds(1000));  // no overflow for large retry counts
  CHECK(backoffDelay(policy, 0) == milliseconds(200));
}

TEST_CASE("Retry-After in seconds parses, dates and garbage do not", "[backends][retry]") {
  CHECK(parseRetryAfter("3") == milliseconds(3000));
  CHECK(parseRetryAfter(" 0 ") == milliseconds(0));
  CHECK_FALSE(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"));
  CHECK_FALSE(parseRetryAfter("-1"));
  CHECK_FALSE(parseRetryAfter(""));
  CHECK_FALSE(parseRetryAfter("1.5"));
  CHECK_FALSE(parseRetryAfter("99999999999999999999"));
}

TEST_CASE("token bucket allows a burst, then the rate", "[backends][retry]") {
  ManualClock clock;
  TokenBucket bucket(2.0, 3, clock);  // 2 per second, burst 3
  CHECK(bucket.reserve() == milliseconds(0));
  CHECK(bucket.reserve() == milliseconds(0));
  CHECK(bucket.reserve() == milliseconds(0));
  CHECK(bucket.reserve() == milliseconds(500));
  // Reservations queue when nobody waits: the next one is a full interval later.
  CHECK(bucket.reserve() == milliseconds(1000));
  clock.advance(milliseconds(1000));
  CHECK(bucket.reserve() == milliseconds(500));
  clock.advance(milliseconds(60'000));  // refills to the burst, not beyond
  CHECK(bucket.reserve() == milliseconds(0));
  CHECK(bucket.reserve() == milliseconds(0));
  CHECK(bucket.reserve() == milliseconds(0));
  CHECK(bucket.reserve() > milliseconds(0));
}

TEST_CASE("token bucket with a non-positive rate never waits", "[backends][retry]") {
  ManualClock clock;
  TokenBucket bucket(0, 1, clock);
  for (int i = 0; i < 100; ++i) CHECK(bucket.reserve() == milliseconds(0));
}

TEST_CASE("API error messages come from the JSON body, else the text", "[backends][retry]") {
  CHECK(apiErrorMessage(R"({"error":"bad token"})", {"error", "message"}) == "bad token");
  CHECK(apiErrorMessage(R"({"message":"forbidden","error":7})", {"error", "message"}) ==
        "forbidden");
  CHECK(apiErrorMessage("<html>\n  Bad Gateway\n</html>", {"error"}) ==
        "<html>   Bad Gateway </html>");
  CHECK(apiErrorMessage(std::string(1000, 'x'), {"error"}).size() == 303);
}

TEST_CASE("urlEncode keeps unreserved characters only", "[backends][retry]") {
  CHECK(http::urlEncode("broker-a_1.~") == "broker-a_1.~");
  CHECK(http::urlEncode("flame/broker-id=b 1") == "flame%2Fbroker-id%3Db%201");
}

TEST_CASE("which failed creates may have been carried out", "[backends][retry]") {
  http::Response timedOut;
  timedOut.error = http::TransportError::Timeout;
  CHECK(mayHaveBeenCarriedOut(timedOut));
  http::Response dropped;
  dropped.error = http::TransportError::Connection;
  CHECK(mayHaveBeenCarriedOut(dropped));
  http::Response cancelled;
  cancelled.error = http::TransportError::Cancelled;
  CHECK_FALSE(mayHaveBeenCarriedOut(cancelled));
  CHECK_FALSE(isRetryableTransport(http::TransportError::Cancelled));
  for (long status : {500L, 502L, 503L, 504L}) {
    http::Response answered;
    answered.status = status;
    CHECK(mayHaveBeenCarriedOut(answered));
  }
  for (long status : {400L, 408L, 409L, 422L, 429L}) {
    http::Response answered;
    answered.status = status;
    CHECK_FALSE(mayHaveBeenCarriedOut(answered));
  }
}
