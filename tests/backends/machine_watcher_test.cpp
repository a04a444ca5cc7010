// MachineWatcher with a scripted probe: each end reported once, stopped machines never, reap()
// never waits for a probe, and the thread stops promptly.
#include "backends/machine_watcher.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>

#include "backends/local_files.h"

using namespace flame;
using std::chrono::milliseconds;

namespace {

// A provider whose machines end when the test says so; counts the rounds it was asked.
struct ScriptedProvider {
  std::mutex mutex;
  std::set<std::string> ended;
  int rounds = 0;
  size_t lastAsked = 0;

  MachineWatcher::Probe probe() {
    return [this](const std::vector<WatchedMachine>& watched) {
      std::lock_guard lock(mutex);
      ++rounds;
      lastAsked = watched.size();
      std::vector<ExitedMachine> out;
      for (const auto& w : watched)
        if (ended.count(w.machine.machineId)) out.push_back({w.machine, "ended"});
      return out;
    };
  }
  void end(const std::string& id) {
    std::lock_guard lock(mutex);
    ended.insert(id);
  }
};

MachineHandle machine(const std::string& id) { return MachineHandle{id, "r-" + id, "pool"}; }

}  // namespace

TEST_CASE("watcher reports each ended machine once and stops watching it", "[backends][watch]") {
  ScriptedProvider provider;
  MachineWatcher watcher(std::chrono::hours(1), provider.probe());
  watcher.watch(machine("a"), "broker");
  watcher.watch(machine("b"), "broker");
  watcher.pollOnce();
  CHECK(watcher.reap().empty());

  provider.end("a");
  watcher.pollOnce();
  auto exited = watcher.reap();
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == "a");
  CHECK(exited[0].machine.runnerId == "r-a");
  CHECK(watcher.reap().empty());
  CHECK(watcher.watchedCount() == 1);
  watcher.pollOnce();
  CHECK(watcher.reap().empty());
  CHECK(provider.lastAsked == 1);  // only b is still asked about
}

TEST_CASE("watcher forgets stopped machines, even with an unreaped end", "[backends][watch]") {
  ScriptedProvider provider;
  MachineWatcher watcher(std::chrono::hours(1), provider.probe());
  watcher.watch(machine("a"), "broker");
  watcher.watch(machine("b"), "broker");
  provider.end("a");
  provider.end("b");
  watcher.pollOnce();
  watcher.forget("a");  // the backend stops it before the scaler reaped
  auto exited = watcher.reap();
  REQUIRE(exited.size() == 1);
  CHECK(exited[0].machine.machineId == "b");
  CHECK(watcher.watchedCount() == 0);
  int rounds = provider.rounds;
  watcher.pollOnce();  // nothing watched: the provider is not asked
  CHECK(provider.rounds == rounds);
}

TEST_CASE("watcher reap does not wait for a probe in progress", "[backends][watch]") {
  std::mutex mutex;
  std::condition_variable changed;
  bool inProbe = false, release = false;
  MachineWatcher watcher(std::chrono::hours(1), [&](const std::vector<WatchedMachine>& watched) {
    std::unique_lock lock(mutex);
    inProbe = true;
    changed.notify_all();
    changed.wait_for(lock, std::chrono::seconds(10), [&] { return release; });
    return std::vector<ExitedMachine>{{watched[0].machine, "ended"}};
  });
  watcher.watch(machine("a"), "broker");
  auto round = std::async(std::launch::async, [&] { watcher.pollOnce(); });
  {
    std::unique_lock lock(mutex);
    REQUIRE(changed.wait_for(lock, std::chrono::seconds(5), [&] { return inProbe; }));
  }
  auto started = std::chrono::steady_clock::now();
  CHECK(watcher.reap().empty());
  watcher.forget("a");  // stopped while the provider was being asked: not reported
  watcher.watch(machine("b"), "broker");
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(500));
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  round.get();
  CHECK(watcher.reap().empty());
  CHECK(watcher.watchedCount() == 1);
}

TEST_CASE("watcher thread polls at its interval and stops promptly", "[backends][watch]") {
  ScriptedProvider provider;
  auto watcher = std::make_unique<MachineWatcher>(milliseconds(10), provider.probe());
  watcher->watch(machine("a"), "broker");
  provider.end("a");
  std::vector<ExitedMachine> exited;
  CHECK(flame::test::waitFor([&] {
    for (auto& e : watcher->reap()) exited.push_back(e);
    return !exited.empty();
  }));
  REQUIRE(exited.size() == 1);

  MachineWatcher slow(std::chrono::hours(1), provider.probe());
  slow.watch(machine("x"), "broker");  // starts a thread that waits an hour
  auto started = std::chrono::steady_clock::now();
  slow.stop();
  watcher.reset();
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(500));
  slow.watch(machine("y"), "broker");  // after stop: ignored
  CHECK(slow.watchedCount() == 1);
}

TEST_CASE("watcher with a zero interval is off", "[backends][watch]") {
  ScriptedProvider provider;
  MachineWatcher watcher(milliseconds(0), provider.probe());
  CHECK_FALSE(watcher.enabled());
  watcher.watch(machine("a"), "broker");
  provider.end("a");
  watcher.pollOnce();
  CHECK(watcher.reap().empty());
  CHECK(provider.rounds == 0);
  MachineWatcher infinite(kInfinite, provider.probe());
  CHECK_FALSE(infinite.enabled());
}
