#include <catch2/catch.hpp>

#include <vector>

#include "common/timers.h"

using namespace flame;
using namespace std::chrono_literals;

TEST_CASE("timers run at their deadline, earliest first, and not before") {
  ManualClock clock;
  TimerQueue timers;
  std::vector<int> ran;
  timers.at(clock.now() + 500ms, [&] { ran.push_back(500); });
  timers.at(clock.now() + 100ms, [&] { ran.push_back(100); });
  CHECK(timers.nextDeadline() == clock.now() + 100ms);
  clock.advance(99ms);
  CHECK(timers.runDue(clock.now()) == 0);
  clock.advance(1ms);
  CHECK(timers.runDue(clock.now()) == 1);
  CHECK(ran == std::vector<int>{100});
  CHECK(timers.nextDeadline() == clock.now() + 400ms);
  clock.advance(1000ms);
  timers.runDue(clock.now());
  CHECK(ran == std::vector<int>{100, 500});
  CHECK(timers.size() == 0);
  CHECK(timers.nextDeadline() == TimePoint::max());
}

TEST_CASE("a periodic timer re-arms one period after it ran and can be cancelled") {
  ManualClock clock;
  TimerQueue timers;
  int ticks = 0;
  TimerId id = timers.every(1000ms, clock.now() + 1000ms, [&] { ++ticks; });
  clock.advance(1000ms);
  timers.runDue(clock.now());
  CHECK(ticks == 1);
  clock.advance(3500ms);  // three periods missed: runs once, not three times
  timers.runDue(clock.now());
  CHECK(ticks == 2);
  CHECK(timers.nextDeadline() == clock.now() + 1000ms);
  CHECK(timers.cancel(id));
  CHECK_FALSE(timers.cancel(id));
  clock.advance(5000ms);
  CHECK(timers.runDue(clock.now()) == 0);
  CHECK(ticks == 2);
}

TEST_CASE("cancelled and rescheduled timers do not run at their old deadline") {
  ManualClock clock;
  TimerQueue timers;
  int a = 0, b = 0;
  TimerId ta = timers.at(clock.now() + 10ms, [&] { ++a; });
  TimerId tb = timers.at(clock.now() + 10ms, [&] { ++b; });
  CHECK(timers.cancel(ta));
  CHECK(timers.reschedule(tb, clock.now() + 50ms));
  clock.advance(10ms);
  CHECK(timers.runDue(clock.now()) == 0);
  CHECK(timers.nextDeadline() == clock.now() + 40ms);
  clock.advance(40ms);
  CHECK(timers.runDue(clock.now()) == 1);
  CHECK(a == 0);
  CHECK(b == 1);
  CHECK_FALSE(timers.reschedule(tb, clock.now()));  // a one-shot that ran is gone
}

TEST_CASE("a handler may cancel timers and schedule new ones, a new due timer waits a round") {
  ManualClock clock;
  TimerQueue timers;
  int second = 0, again = 0;
  TimerId victim = timers.at(clock.now() + 20ms, [&] { ++second; });
  timers.at(clock.now() + 10ms, [&] {
    timers.cancel(victim);
    timers.at(clock.now(), [&] { ++again; });  // already due
  });
  clock.advance(30ms);
  CHECK(timers.runDue(clock.now()) == 1);
  CHECK(second == 0);
  CHECK(again == 0);
  CHECK(timers.nextDeadline() <= clock.now());
  CHECK(timers.runDue(clock.now()) == 1);
  CHECK(again == 1);
}

TEST_CASE("timers with the same deadline run in the order they were set") {
  ManualClock clock;
  TimerQueue timers;
  std::vector<int> ran;
  for (int i = 0; i < 5; ++i) timers.at(clock.now() + 5ms, [&ran, i] { ran.push_back(i); });
  clock.advance(5ms);
  timers.runDue(clock.now());
  CHECK(ran == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("a periodic timer needs a positive period") {
  ManualClock clock;
  TimerQueue timers;
  CHECK_THROWS_AS(timers.every(0ms, clock.now(), [] {}), std::invalid_argument);
}
