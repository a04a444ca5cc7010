// embedded-app: "the whole app as a lambda". One binary holds the application code AND its
// FLAME runner. Started by a broker's scaler (FLAME_BROKER and friends in its environment), it
// serves; started by a person, it is the application: it runs runners in-process on threads
// (a static pool) and calls them through the broker with flame::Client, using typed Cap'n
// Proto payloads.
//
//   flame-broker &                                   # a broker with default endpoints
//   ./build/bin/embedded-app --clients tcp://127.0.0.1:5555 --runners tcp://127.0.0.1:5556
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "client/client.h"
#include "examples/wordcount.capnp.h"
#include "worker/runner.h"
#include "worker/typed.h"

namespace {

// The application's function: counts words and lines. It runs wherever a runner runs it.
void countWords(wordcount::Document::Reader doc, wordcount::Counts::Builder out, flame::JobContext& ctx,
                const std::string& runnerId) {
  uint32_t words = 0, lines = 0;
  bool inWord = false;
  for (char c : std::string_view(doc.getText().cStr(), doc.getText().size())) {
    if (c == '\n') ++lines;
    bool space = c == ' ' || c == '\n' || c == '\t';
    if (!space && !inWord) ++words;
    inWord = !space;
  }
  out.setWords(words);
  out.setLines(lines);
  out.setRunner(runnerId);
}

void registerFunctions(flame::Runner& runner) {
  std::string id = runner.runnerId();
  runner.handle("count_words", flame::typed<wordcount::Document, wordcount::Counts>(
                                   [id](auto doc, auto out, flame::JobContext& ctx) { countWords(doc, out, ctx, id); }));
}

// True once `pool` has at least one runner, polling the broker's status until `limit`.
bool waitForRunners(flame::Client& client, const std::string& pool, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (auto status = client.status(flame::Duration(1000))) {
      for (const auto& p : status.value().pools)
        if (p.name == pool && !p.runners.empty()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling interval, not a timer
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // Booted by a scaler: be a runner of ourselves, like FLAME.Parent.get() in Elixir.
  if (std::getenv("FLAME_BROKER") != nullptr) {
    flame::Runner runner(flame::RunnerOptions::fromEnvironment());
    registerFunctions(runner);
    auto exit = runner.run();
    std::_Exit(exit == flame::RunExit::Drained || exit == flame::RunExit::Stopped ? 0 : 3);
  }

  CLI::App app{"embedded-app: an application that is its own FLAME runner"};
  std::string clients = "tcp://127.0.0.1:5555", runners = "tcp://127.0.0.1:5556";
  int localRunners = 2;
  app.add_option("--clients", clients, "the broker's client endpoint")->capture_default_str();
  app.add_option("--runners", runners, "the broker's runner endpoint")->capture_default_str();
  app.add_option("--local-runners", localRunners, "runners to start in-process")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Static runners on threads of this process, serving pool "wordcount".
  std::vector<std::unique_ptr<flame::Runner>> pool;
  std::vector<std::thread> threads;
  for (int i = 0; i < localRunners; ++i) {
    flame::RunnerOptions o;
    o.broker = runners;
    o.pool = "wordcount";
    o.concurrency = 2;
    o.failsafeAfter = flame::Duration(5000);
    pool.push_back(std::make_unique<flame::Runner>(o));
    registerFunctions(*pool.back());
    threads.emplace_back([r = pool.back().get()] { r->run(); });
  }

  flame::ClientOptions co;
  co.broker = clients;
  flame::Client client(co);
  // A static pool exists once its first runner has registered: until then a call would get
  // unknown_pool. Wait (bounded) for our runners to be there.
  if (localRunners > 0 && !waitForRunners(client, "wordcount", std::chrono::seconds(10))) {
    std::cerr << "no runner of pool wordcount registered within 10 s\n";
    return 1;
  }
  flame::CallOptions options;
  options.timeout = flame::Duration(10000);
  const char* texts[] = {"the quick brown fox\njumps over\nthe lazy dog\n", "flame runs your code\nelsewhere\n",
                         "one\n"};
  int failures = 0;
  for (const char* text : texts) {
    auto r = client.callTyped<wordcount::Document, wordcount::Counts>(
        "wordcount", "count_words", [&](wordcount::Document::Builder d) { d.setText(text); }, options);
    if (!r) {
      std::cerr << "call failed: " << r.error().toString() << "\n";
      ++failures;
      continue;
    }
    auto counts = r.value().get();
    std::cout << counts.getWords() << " words, " << counts.getLines() << " lines (runner "
              << counts.getRunner().cStr() << ")\n";
  }
  for (auto& r : pool) r->requestDrain();
  for (auto& t : threads) t.join();
  return failures == 0 ? 0 : 1;
}
