#include <catch2/catch.hpp>

#include <set>

#include "common/liveness.h"

using namespace flame;
using namespace std::chrono_literals;

TEST_CASE("a peer is dead from the instant interval x liveness of silence is reached") {
  ManualClock clock;
  Liveness peer(1000ms, 3);
  peer.heard(clock.now());
  CHECK(peer.deadline() == clock.now() + 3000ms);
  clock.advance(2999ms);
  CHECK_FALSE(peer.dead(clock.now()));
  clock.advance(1ms);
  CHECK(peer.dead(clock.now()));
  peer.heard(clock.now());
  CHECK_FALSE(peer.dead(clock.now()));
  CHECK(peer.silence(clock.now()) == 0ms);
}

TEST_CASE("liveness windows saturate instead of overflowing") {
  CHECK(livenessWindow(kInfinite, 3) == kInfinite);
  CHECK(livenessWindow(Duration(kInfinite.count() / 2), 3) == kInfinite);
  CHECK(livenessWindow(1000ms, 1000) == 1'000'000ms);
  ManualClock clock;
  Liveness peer(kInfinite, 5);
  peer.heard(clock.now());
  CHECK(peer.deadline() == TimePoint::max());
  clock.advance(Duration(1'000'000'000));
  CHECK_FALSE(peer.dead(clock.now()));
}

TEST_CASE("a new rule and stall credit move the deadline") {
  ManualClock clock;
  Liveness peer(1000ms, 3);
  peer.heard(clock.now());
  peer.setRule(200ms, 2);
  CHECK(peer.deadline() == clock.now() + 400ms);
  peer.credit(5000ms);
  CHECK(peer.deadline() == clock.now() + 5400ms);
}

TEST_CASE("backoff doubles from min to max and starts again after reset") {
  Backoff backoff(100ms, 1000ms, 0.0);
  CHECK(backoff.next() == 100ms);
  CHECK(backoff.next() == 200ms);
  CHECK(backoff.next() == 400ms);
  CHECK(backoff.next() == 800ms);
  CHECK(backoff.next() == 1000ms);
  CHECK(backoff.next() == 1000ms);
  backoff.reset();
  CHECK(backoff.next() == 100ms);
}

TEST_CASE("backoff jitter only shortens a delay, by at most its fraction, never below min") {
  Backoff backoff(100ms, 5000ms, 0.25, 42);
  std::set<Duration::rep> seen;
  for (int round = 0; round < 50; ++round) {
    backoff.reset();
    Duration base = 100ms;
    for (int i = 0; i < 8; ++i) {
      Duration d = backoff.next();
      CHECK(d <= std::min(base, Duration(5000ms)));
      CHECK(d >= std::max(Duration(100ms), std::min(base, Duration(5000ms)) * 3 / 4 - 1ms));
      if (i == 4) seen.insert(d.count());
      base *= 2;
    }
  }
  CHECK(seen.size() > 5);  // really jittered: peers do not reconnect in lockstep
}

TEST_CASE("backoff refuses unusable bounds") {
  CHECK_THROWS_AS(Backoff(0ms, 10ms), std::invalid_argument);
  CHECK_THROWS_AS(Backoff(20ms, 10ms), std::invalid_argument);
  CHECK_THROWS_AS(Backoff(10ms, 20ms, 1.0), std::invalid_argument);
}

TEST_CASE("backoffDelay: doubles from first, capped at max, jittered down by at most the jitter", "[liveness][backoff]") {
  using namespace std::chrono_literals;
  CHECK(backoffDelay(Duration(0), Duration(1000), 3, 0.25, 0.5) == Duration(0));  // no backoff
  CHECK(backoffDelay(Duration(100), Duration(1000), 0, 0.0, 0.9) == Duration(100));
  CHECK(backoffDelay(Duration(100), Duration(1000), 1, 0.0, 0.9) == Duration(200));
  CHECK(backoffDelay(Duration(100), Duration(1000), 3, 0.0, 0.9) == Duration(800));
  CHECK(backoffDelay(Duration(100), Duration(1000), 4, 0.0, 0.9) == Duration(1000));   // capped
  CHECK(backoffDelay(Duration(100), Duration(1000), 200, 0.0, 0.9) == Duration(1000));  // no overflow
  CHECK(backoffDelay(Duration(100), Duration(1000), 3, 0.25, 0.0) == Duration(800));
  CHECK(backoffDelay(Duration(100), Duration(1000), 3, 0.25, 0.999) == Duration(600));  // 800 less 25 %
  CHECK(backoffDelay(Duration(100), Duration(1000), 0, 0.25, 0.999) == Duration(100));  // never below first
  CHECK(backoffDelay(Duration(500), Duration(100), 2, 0.0, 0.0) == Duration(500));      // max below first: first
}
