// flame-chaos: the chaos suite of issue #8. Real flame-broker and flame-worker processes, many
// flame::Client threads sending calls/casts/places, and fault injectors (RunnerKiller, Stopper,
// LinkCutter, BrokerRestarter) firing on a seeded schedule. When the faults stop and the
// system quiesces, it checks and prints:
//   1. every request got exactly one answer (success or an error code), none hung
//   2. no answer went to the wrong request (tag/checksum)
//   3. no slot leaked: status shows 0 used and 0 queued when idle
//   4. no runner outlives its failsafe once the broker is finally stopped
//   5. broker RSS back near its baseline     6. no fd leak in the broker
//   7. no answer with code `internal` (by the protocol's definition, a bug in flame)
// Exit status 0 when all hold, 1 when one fails, 2 on bad usage or a harness failure.
// See tests/chaos/README.md.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <random>
#include <thread>

#include "client/client.h"
#include "common/log.h"
#include "tests/chaos/client_load.h"
#include "tests/chaos/cluster.h"
#include "tests/chaos/faults.h"
#include "tests/chaos/ledger.h"
#include "tests/chaos/netns_link.h"

using namespace flame;
using namespace flame::chaos;
using WallClock = std::chrono::steady_clock;

namespace {

std::atomic<bool> gInterrupted{false};
void onSignal(int) { gInterrupted = true; }

struct Settings {
  int seconds = 45;
  uint64_t seed = 0;
  int clients = 4;
  int rootRunners = 4;
  int nsRunners = 2;
  bool netns = true;
  std::string runDir;
  bool keepLogs = false;
  Millis warmup{3000};
  std::string finalStop = "random";  // how the broker is stopped at the end: term, kill, random
};

struct Check {
  std::string name;
  bool ok;
  std::string detail;
};

WallClock::time_point gStart;
double elapsed() { return std::chrono::duration<double>(WallClock::now() - gStart).count(); }
void event(const std::string& text) {
  std::printf("[%6.1fs] %s\n", elapsed(), text.c_str());
  std::fflush(stdout);
}

// Asks the broker for status until the pool is idle (0 used, 0 queued) with every runner
// registered, up to `bound`. Returns the last status seen as text, and whether it was idle.
struct IdleResult {
  bool idle = false;
  bool reachable = false;
  uint32_t slotsUsed = 0, queued = 0, runners = 0, slotsTotal = 0;
  std::string text;
};
IdleResult waitIdle(Client& client, const std::string& pool, size_t expectedRunners, Millis bound) {
  IdleResult last;
  auto deadline = WallClock::now() + bound;
  for (;;) {
    auto st = client.status(Millis(2000));
    if (st) {
      last = IdleResult{};
      last.reachable = true;
      for (auto& p : st.value().pools) {
        if (p.name != pool) continue;
        last.slotsUsed = p.slotsUsed;
        last.queued = p.queued;
        last.slotsTotal = p.slotsTotal;
        last.runners = static_cast<uint32_t>(p.runners.size());
        last.text.clear();
        for (auto& r : p.runners)
          last.text += "    runner " + r.runnerId + " " + r.state + " slots " + std::to_string(r.slotsUsed) + "/" +
                       std::to_string(r.slotsTotal) + " pid " + std::to_string(r.pid) + "\n";
      }
      // Idle means no slot used and nothing queued; we keep polling (within the bound) until
      // every runner has re-registered too, so late re-registrations are counted.
      last.idle = last.slotsUsed == 0 && last.queued == 0;
      if (last.idle && last.runners >= expectedRunners) return last;
    }
    if (WallClock::now() >= deadline) return last;
    std::this_thread::sleep_for(Millis(250));  // polling interval of another process's state
  }
}

// The supervisor of static runners: a runner process that exited by itself (e.g. failsafe
// after a long outage) is reported and started again with the same id.
void superviseRunners(Cluster& cluster, std::map<std::string, size_t>& unexpectedExits) {
  for (auto& r : cluster.runners()) {
    if (r.state != RunnerSlot::State::Up || !r.process) continue;
    auto st = r.process->waitExit(Millis(0));
    if (!st) continue;
    ++unexpectedExits[describeStatus(*st)];
    event("supervisor: runner " + r.runnerId + " (" + r.name() + ", pid " + std::to_string(r.process->pid()) +
          ") exited by itself: " + describeStatus(*st) + "; restarting it (log " + r.process->logFile() + ")");
    cluster.startRunner(r, false);
  }
}

void printLogTails(const std::string& runDir) {
  std::printf("\nrelevant log lines, last ones per file (brokers: warn/error; runners: error and credit\n"
              "violations; at most 8 runner logs); all logs in %s\n", runDir.c_str());
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(runDir))
    if (entry.path().extension() == ".log") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  int runnerFiles = 0;
  for (auto& path : files) {
    bool broker = path.filename().string().rfind("broker-", 0) == 0;
    auto lines = broker ? grepTail(path.string(), {" warning ", " error ", " critical "}, 8)
                        : grepTail(path.string(), {" error ", " critical ", "slots busy"}, 4);
    if (lines.empty() || (!broker && ++runnerFiles > 8)) continue;
    std::printf("  == %s\n", path.filename().c_str());
    for (auto& l : lines) std::printf("    %s\n", l.c_str());
  }
}

// Lines where a runner reports a job beyond its slots (the broker broke the credit rule).
size_t creditViolations(const std::string& runDir) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(runDir))
    if (entry.path().filename().string().rfind("runner-", 0) == 0)
      n += grepTail(entry.path().string(), {"slots busy"}, SIZE_MAX).size();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  if (const char* env = std::getenv("FLAME_CHAOS_SECONDS")) s.seconds = std::atoi(env);
  if (const char* env = std::getenv("FLAME_CHAOS_SEED")) s.seed = std::strtoull(env, nullptr, 10);
  bool longForm = false, noNetns = false;
  CLI::App app{"flame-chaos: faults against a real broker and runners while clients send jobs"};
  app.add_option("--seconds", s.seconds, "seconds of chaos (env FLAME_CHAOS_SECONDS)")->capture_default_str();
  app.add_flag("--long", longForm, "long form: 600 s of chaos");
  app.add_option("--seed", s.seed, "RNG seed (env FLAME_CHAOS_SEED; default random, printed)");
  app.add_option("--clients", s.clients, "client threads (one flame::Client each)")->capture_default_str();
  app.add_option("--runners", s.rootRunners, "runners in the root namespace")->capture_default_str();
  app.add_option("--netns-runners", s.nsRunners, "runners each in its own network namespace (link cuts)")
      ->capture_default_str();
  app.add_flag("--no-netns", noNetns, "skip the namespaces and the LinkCutter");
  app.add_option("--run-dir", s.runDir, "where logs go (default /tmp/flame-chaos-<pid>)");
  app.add_option("--final-stop", s.finalStop, "stop the broker at the end by SIGTERM or kill -9 (default: by the seed)")
      ->check(CLI::IsMember({"term", "kill", "random"}))
      ->capture_default_str();
  app.add_flag("--keep-logs", s.keepLogs, "keep the run directory even when every check passes");
  CLI11_PARSE(app, argc, argv);
  if (longForm) s.seconds = 600;
  if (noNetns) s.netns = false;
  if (s.seconds < 5) s.seconds = 5;
  if (s.seed == 0) s.seed = std::random_device{}() | (uint64_t(std::random_device{}()) << 32);
  if (s.runDir.empty()) s.runDir = "/tmp/flame-chaos-" + std::to_string(getpid());
  std::filesystem::create_directories(s.runDir);

  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // The in-process flame::Client loggers: their warnings ("broker restarted: failing N
  // requests") are expected here and counted by the ledger instead.
  flame::setLogLevel("error");
  gStart = WallClock::now();
  std::printf("flame-chaos: seed %llu, %d s of chaos, %d clients, %d+%d runners; replay with --seed %llu "
              "--seconds %d\nlogs: %s\n",
              (unsigned long long)s.seed, s.seconds, s.clients, s.rootRunners, s.nsRunners,
              (unsigned long long)s.seed, s.seconds, s.runDir.c_str());
  std::fflush(stdout);
  Rng rng(s.seed);

  // --- network namespaces (optional) ---
  std::vector<std::unique_ptr<NetnsLink>> links;
  std::string bindHost = "127.0.0.1";
  if (s.netns && s.nsRunners > 0) {
    NetnsLink::sweepStale();
    std::string why = NetnsLink::unavailableReason();
    if (!why.empty()) {
      std::printf("SKIP LinkCutter: network namespaces unavailable (%s); runners stay in the root namespace\n",
                  why.c_str());
    } else {
      int net = static_cast<int>(getpid() % 250) + 1;
      try {
        for (int i = 0; i < s.nsRunners; ++i)
          links.push_back(std::make_unique<NetnsLink>(i, net, s.runDir + "/netns.log"));
        bindHost = links.front()->rootAddress();
      } catch (const std::exception& e) {
        links.clear();
        std::printf("SKIP LinkCutter: cannot set up namespaces (%s); runners stay in the root namespace\n", e.what());
      }
    }
  } else {
    std::printf("SKIP LinkCutter: disabled (--no-netns or --netns-runners 0)\n");
  }
  if (links.empty()) s.rootRunners += s.nsRunners;

  ClusterOptions co;
  co.runDir = s.runDir;
  co.rootRunners = s.rootRunners;
  for (auto& l : links) co.links.push_back(l.get());
  co.runnerBindHost = bindHost;
  const Millis livenessWindow = co.heartbeat * co.liveness;
  RequestLedger ledger;
  std::vector<Check> checks;
  int exitCode = 0;
  {
    auto clusterOwner = std::make_unique<Cluster>(co);
    Cluster& cluster = *clusterOwner;
    try {
      cluster.start();
    } catch (const std::exception& e) {
      std::printf("HARNESS FAILURE: %s\n", e.what());
      return 2;
    }
    event("broker pid " + std::to_string(cluster.brokerPid()) + " clients " + cluster.clientsEndpoint() +
          " runners " + cluster.runnersEndpoint());
    const size_t totalRunners = cluster.runners().size();
    Client monitor(ClientOptions{.broker = cluster.clientsEndpoint(), .heartbeatInterval = Millis(200), .liveness = 5});
    auto ready = waitIdle(monitor, co.pool, totalRunners, Millis(15000));
    if (!ready.idle || ready.runners < totalRunners) {
      std::printf("HARNESS FAILURE: %zu runners did not register within 15 s (saw %u)\n%s", totalRunners,
                  ready.runners, ready.text.c_str());
      printLogTails(s.runDir);
      return 2;
    }
    event(std::to_string(totalRunners) + " runners ready, " + std::to_string(ready.slotsTotal) + " slots");

    ClientLoad load(LoadOptions{.broker = cluster.clientsEndpoint(), .pool = co.pool, .clients = s.clients,
                                .heartbeat = Millis(200), .liveness = 5, .seed = s.seed},
                    ledger);
    load.start();

    RunnerKiller killer(cluster, event);
    Stopper stopper(cluster, event);
    LinkCutter cutter(cluster, [&] {
      std::vector<NetnsLink*> v;
      for (auto& l : links) v.push_back(l.get());
      return v;
    }(), event);
    BrokerRestarter restarter(cluster, event);
    BrokerFreezer freezer(cluster, event);
    std::vector<Fault*> faults{&killer, &stopper, &restarter, &freezer};
    if (!links.empty()) faults.push_back(&cutter);

    // Baselines: the first broker after warm-up, and each new incarnation after its warm-up;
    // the last one taken is compared with the end (broker restarts stop at 50% of the run, so
    // the final broker lives through the second half of the faults).
    std::map<std::string, size_t> unexpectedExits;  // runner exits the driver did not cause
    ProcSample firstBaseline, baseline;
    int baselineIncarnation = -1;
    auto takeBaseline = [&] {
      if (!cluster.brokerUp() || cluster.brokerIncarnation() == baselineIncarnation) return;
      if (WallClock::now() - cluster.brokerStartedAt() < s.warmup) return;
      baseline = sampleProcess(cluster.brokerPid());
      baselineIncarnation = cluster.brokerIncarnation();
      if (firstBaseline.rssKb < 0) firstBaseline = baseline;
      event("baseline of broker incarnation " + std::to_string(baselineIncarnation) + ": RSS " +
            std::to_string(baseline.rssKb) + " kB, " + std::to_string(baseline.fds) + " fds");
    };

    // --- warm-up, then chaos ---
    auto warmEnd = WallClock::now() + s.warmup;
    // Warm-up under load is wall-clock time by nature.
    while (WallClock::now() < warmEnd && !gInterrupted) std::this_thread::sleep_for(Millis(100));
    takeBaseline();
    event("chaos starts");
    auto chaosStart = WallClock::now();
    auto chaosEnd = chaosStart + std::chrono::seconds(s.seconds);
    auto restartsUntil = chaosStart + std::chrono::seconds(s.seconds) / 2;
    auto nextFault = chaosStart + uniformMs(rng, 300, 1200);
    // One broker restart is guaranteed, at 15-40% of the run; more may come by the dice.
    bool forcedRestartPending = true;
    WallClock::time_point forcedRestart =
        chaosStart + std::chrono::duration_cast<Millis>(std::chrono::seconds(s.seconds) *
                                                        std::uniform_real_distribution<double>(0.15, 0.4)(rng));
    while (WallClock::now() < chaosEnd && !gInterrupted) {
      auto now = WallClock::now();
      for (auto* f : faults) f->tick(now);
      superviseRunners(cluster, unexpectedExits);
      takeBaseline();
      if (forcedRestartPending && now >= forcedRestart && cluster.brokerUp()) {
        forcedRestartPending = false;
        restarter.inject(rng, now);
      } else if (now >= nextFault) {
        // Weighted choice; the broker is restarted in the first half only.
        std::vector<std::pair<Fault*, int>> menu{{&killer, 4}, {&stopper, 3}};
        if (!links.empty()) menu.push_back({&cutter, 3});
        if (now < restartsUntil && cluster.brokerUp()) menu.push_back({&restarter, 1});
        if (cluster.brokerUp()) menu.push_back({&freezer, 1});
        int total = 0;
        for (auto& [f, w] : menu) total += w;
        int roll = static_cast<int>(std::uniform_int_distribution<int>(0, total - 1)(rng));
        for (auto& [f, w] : menu) {
          if (roll < w) {
            f->inject(rng, now);
            break;
          }
          roll -= w;
        }
        nextFault = now + uniformMs(rng, 700, 2200);
      }
      // Real time by nature: the next event is a wall-clock instant (a fault or a heal).
      std::this_thread::sleep_for(Millis(50));
    }
    if (gInterrupted) event("interrupted: ending the chaos phase early");

    // --- heal everything, let the system quiesce ---
    for (auto* f : faults) f->healAll();
    superviseRunners(cluster, unexpectedExits);
    if (!cluster.brokerUp()) cluster.restartBroker();
    event("faults healed; stopping the load");
    load.stop();
    bool drained = load.waitDrained(Millis(30000));
    size_t unanswered = ledger.closeBooks();
    event(std::string("load ") + (drained ? "drained" : "did NOT drain within 30 s") + "; " +
          std::to_string(unanswered) + " requests unanswered at the bound");
    bool finished = load.finish(Millis(30000));
    if (!finished) event(std::to_string(load.stuckThreads()) + " client threads stuck; not joined");

    auto idle = waitIdle(monitor, co.pool, totalRunners, Millis(20000));
    event(std::string("status: ") + (idle.reachable ? "" : "broker unreachable; ") + std::to_string(idle.runners) +
          " runners, slots used " + std::to_string(idle.slotsUsed) + "/" + std::to_string(idle.slotsTotal) +
          ", queued " + std::to_string(idle.queued));
    ProcSample end;
    pid_t brokerPid = cluster.brokerPid();
    if (cluster.brokerUp()) end = sampleProcess(brokerPid);

    // --- stop the broker; every runner must exit by its failsafe ---
    std::vector<std::pair<std::string, ChildProcess*>> live;
    for (auto& r : cluster.runners())
      if (r.process) live.push_back({r.runnerId, r.process.get()});
    // SIGTERM (runners are drained, or left for a successor) or kill -9 (runners find the broker
    // gone and must exit by their failsafe), by the seed.
    bool finalKill = std::bernoulli_distribution(0.5)(rng);
    if (s.finalStop == "term") finalKill = false;
    if (s.finalStop == "kill") finalKill = true;
    std::string brokerExit;
    if (finalKill) {
      cluster.killBroker();
      brokerExit = "kill -9";
    } else {
      brokerExit = cluster.stopBroker(Millis(10000));
    }
    event("broker stopped: " + brokerExit);
    Millis failsafeBound = co.failsafe + livenessWindow + Millis(4000);
    auto failsafeDeadline = WallClock::now() + failsafeBound;
    std::vector<std::string> survivors, undrained;
    std::string exits;
    for (auto& [id, p] : live) {
      auto left = std::chrono::duration_cast<Millis>(failsafeDeadline - WallClock::now());
      auto st = p->waitExit(std::max(left, Millis(0)));
      if (!st) survivors.push_back(id + " (pid " + std::to_string(p->pid()) + ")");
      else exits += " " + id + ":" + describeStatus(*st);
      // After SIGTERM the broker sends every runner `drain` (docs/PROTOCOL.md, Shutdown step 4):
      // a runner must exit 0 (drained), not 3 (failsafe: the drain never reached it).
      if (!finalKill && (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0))
        undrained.push_back(id + " (" + (st ? describeStatus(*st) : std::string("still running")) + ")");
    }
    event("runner exits:" + exits);

    // --- summary ---
    auto sum = ledger.summarize();
    std::printf("\n================ flame-chaos summary (seed %llu, %d s) ================\n",
                (unsigned long long)s.seed, s.seconds);
    std::printf("requests: %zu\n", sum.requests);
    for (auto& [kind, outcomes] : sum.outcomes) {
      std::printf("  %-36s", kind.c_str());
      for (auto& [o, n] : outcomes) std::printf(" %s=%zu", o.c_str(), n);
      std::printf("\n");
    }
    std::printf("answers per request:");
    for (auto& [answers, n] : sum.answersHistogram) std::printf(" %zu->%zu", answers, n);
    std::printf("  (late answers after the bound: %zu)\n", sum.late);
    std::printf("linked children placed: %zu; exit notices per child:", sum.linkedChildren);
    for (auto& [exitsN, n] : sum.exitHistogram) std::printf(" %zu->%zu", exitsN, n);
    std::printf("; exit codes:");
    for (auto& [code, n] : sum.exitCodes) std::printf(" %s=%zu", code.c_str(), n);
    std::printf("\nstop outcomes:");
    for (auto& [o, n] : sum.stopOutcomes) std::printf(" %s=%zu", o.c_str(), n);
    std::printf("\nerror texts (a few per code):\n");
    for (auto& [code, texts] : sum.errorMessages)
      for (auto& t : texts) std::printf("    %-22s %s\n", code.c_str(), t.c_str());
    std::printf("wrong answers: %zu crossed, %zu corrupt\n", sum.crossed, sum.corrupt);
    for (auto& w : sum.wrongExamples) std::printf("    %s\n", w.c_str());
    for (auto& u : sum.unansweredExamples) std::printf("    unanswered: %s\n", u.c_str());
    std::printf("faults injected:");
    size_t totalFaults = 0;
    for (auto* f : std::vector<Fault*>{&killer, &stopper, &cutter, &restarter, &freezer}) {
      std::printf("\n  %-58s %zu", f->name(), f->injected());
      totalFaults += f->injected();
    }
    if (links.empty()) std::printf(" (skipped: no namespaces)");
    std::printf("\n  total %zu; broker restarts failed: %zu\n", totalFaults, restarter.failedRestarts());
    std::printf("jobs a runner received beyond its slots (runner log \"arrived with all N slots busy\"): %zu\n",
                creditViolations(s.runDir));
    std::printf("runner exits the driver did not cause (restarted by the supervisor):");
    for (auto& [how, n] : unexpectedExits) std::printf(" %s=%zu", how.c_str(), n);
    std::printf("%s\n", unexpectedExits.empty() ? " none" : "");
    std::printf("leaked slots at idle: used %u, queued %u (%u runners registered of %zu)\n%s", idle.slotsUsed,
                idle.queued, idle.runners, totalRunners, idle.text.c_str());
    std::printf("runners surviving the failsafe (%lld ms bound): %zu\n", (long long)failsafeBound.count(),
                survivors.size());
    for (auto& sv : survivors) std::printf("    %s\n", sv.c_str());
    std::printf("broker RSS: first baseline %ld kB; baseline (incarnation %d) %ld kB -> end %ld kB\n",
                firstBaseline.rssKb, baselineIncarnation, baseline.rssKb, end.rssKb);
    std::printf("broker fds: first baseline %ld; baseline (incarnation %d) %ld -> end %ld\n", firstBaseline.fds,
                baselineIncarnation, baseline.fds, end.fds);

    // --- the assertions ---
    size_t answeredOnce = sum.answersHistogram.count(1) ? sum.answersHistogram.at(1) : 0;
    checks.push_back({"1. exactly one answer per request, none hung",
                      sum.unanswered == 0 && sum.duplicated == 0 && finished && drained &&
                          answeredOnce == sum.requests,
                      std::to_string(answeredOnce) + "/" + std::to_string(sum.requests) + " answered once, " +
                          std::to_string(sum.unanswered) + " unanswered, " + std::to_string(sum.duplicated) +
                          " answered more than once" + (finished ? "" : ", client threads stuck")});
    size_t oneExit = sum.exitHistogram.count(1) ? sum.exitHistogram.at(1) : 0;
    checks.push_back({"1b. exactly one exit notice per linked child", oneExit == sum.linkedChildren,
                      std::to_string(oneExit) + "/" + std::to_string(sum.linkedChildren)});
    checks.push_back({"2. no answer to the wrong request", sum.crossed == 0 && sum.corrupt == 0,
                      std::to_string(sum.crossed) + " crossed, " + std::to_string(sum.corrupt) + " corrupt"});
    checks.push_back({"3. no leaked slot when idle", idle.idle,
                      "used " + std::to_string(idle.slotsUsed) + ", queued " + std::to_string(idle.queued) + ", " +
                          std::to_string(idle.runners) + "/" + std::to_string(totalRunners) + " runners" +
                          (idle.reachable ? "" : ", broker unreachable")});
    checks.push_back({"4. no runner outlives its failsafe", survivors.empty(),
                      std::to_string(survivors.size()) + " survivors after " +
                          std::to_string(failsafeBound.count()) + " ms"});
    {
      std::string list;
      for (auto& u : undrained) list += " " + u;
      checks.push_back({"4b. after SIGTERM, every runner drains (exit 0)", undrained.empty(),
                        finalKill ? std::string("not applicable: the broker was stopped by kill -9")
                                  : std::to_string(live.size() - undrained.size()) + "/" + std::to_string(live.size()) +
                                        " drained" + (list.empty() ? "" : "; not:" + list)});
    }
    long rssLimit = baseline.rssKb + std::max(16L * 1024, baseline.rssKb / 2);
    checks.push_back({"5. broker RSS near its baseline", baseline.rssKb > 0 && end.rssKb > 0 && end.rssKb <= rssLimit,
                      std::to_string(baseline.rssKb) + " kB -> " + std::to_string(end.rssKb) + " kB (limit " +
                          std::to_string(rssLimit) + " kB)"});
    long fdLimit = baseline.fds + 8;
    checks.push_back({"6. no fd leak in the broker", baseline.fds > 0 && end.fds > 0 && end.fds <= fdLimit,
                      std::to_string(baseline.fds) + " -> " + std::to_string(end.fds) + " (limit " +
                          std::to_string(fdLimit) + ")"});
    // Not a liveness property but a contract one: `internal` means "a bug in flame"
    // (docs/PROTOCOL.md), e.g. a runner sent more jobs than its slots.
    size_t internal = 0;
    for (auto& [kind, outcomes] : sum.outcomes)
      if (outcomes.count("internal")) internal += outcomes.at("internal");
    size_t internalExits = sum.exitCodes.count("internal") ? sum.exitCodes.at("internal") : 0;
    checks.push_back({"7. no `internal` error (a bug in flame by definition)", internal == 0 && internalExits == 0,
                      std::to_string(internal) + " requests and " + std::to_string(internalExits) +
                          " child exits answered internal"});
    std::printf("\nchecks:\n");
    for (auto& c : checks) {
      std::printf("  [%s] %s: %s\n", c.ok ? "PASS" : "FAIL", c.name.c_str(), c.detail.c_str());
      if (!c.ok) exitCode = 1;
    }
    if (gInterrupted) exitCode = exitCode ? exitCode : 2;
    if (exitCode != 0) printLogTails(s.runDir);
    std::printf("\n%s (seed %llu; replay: flame-chaos --seed %llu --seconds %d)\n",
                exitCode == 0 ? "CHAOS PASSED" : "CHAOS FAILED", (unsigned long long)s.seed,
                (unsigned long long)s.seed, s.seconds);
    std::fflush(stdout);
    if (!finished) {
      // Client threads are stuck inside the client library: exiting normally would run
      // destructors under them. Clean up what we own, then leave.
      clusterOwner.reset();
      links.clear();
      std::_Exit(exitCode ? exitCode : 1);
    }
  }
  links.clear();  // namespaces and veth pairs removed
  if (exitCode == 0 && !s.keepLogs) std::filesystem::remove_all(s.runDir);
  return exitCode;
}
