// embedded-app: "the whole app as a lambda". One binary holds the application code AND its
// FLAME runner. Booted by a broker's backend (FLAME_BOOT_TOKEN, FLAME_BROKER and friends in its
// environment), flame::serveIfBooted makes it a runner of its own functions; started by a
// person, it is the application: it runs runners in-process on threads (a static pool) and
// calls the functions declared in examples/wordcount_api.h through the broker.
//
//   flame-broker &                                   # a broker with default endpoints
//   ./build/bin/embedded-app --clients tcp://127.0.0.1:5555 --runners tcp://127.0.0.1:5556
//   FLAME_BROKER=tcp://127.0.0.1:5556 FLAME_POOL=wordcount ./build/bin/embedded-app  # a runner
#include <CLI/CLI.hpp>

#include <cctype>
#include <chrono>
#include <iostream>
#include <thread>

#include "client/client.h"
#include "examples/wordcount_api.h"
#include "worker/serve.h"

namespace {

// The application's functions. They run wherever a runner runs them.
void countWords(wordcount::Document::Reader doc, wordcount::Counts::Builder out, const std::string& runnerId) {
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

// Registers every function, once: for the booted runner and for the in-process ones alike.
void serveAll(flame::Runner& runner) {
  runner.serve(wordcount::countWords,
               [id = runner.runnerId()](wordcount::Document::Reader doc, wordcount::Counts::Builder out) {
                 countWords(doc, out, id);
               });
  runner.serve(wordcount::shout, [](std::string text) {
    for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
  });
  runner.serve(wordcount::square, [](uint64_t n) -> flame::Reply<uint64_t> {
    if (n > 0xffffffffu) return flame::fail("too large to square: " + std::to_string(n));
    return n * n;
  });
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
  // Booted by a backend: be a runner of ourselves (FLAME.Parent), and exit with its code.
  flame::serveIfBooted(serveAll);

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
    serveAll(*pool.back());
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
  auto failed = [&](const flame::Failure& f) {
    std::cerr << "call failed: " << f.toString() << "\n";
    ++failures;
  };
  for (const char* text : texts) {
    capnp::MallocMessageBuilder doc;
    doc.initRoot<wordcount::Document>().setText(text);
    auto r = client.call("wordcount", wordcount::countWords, doc.getRoot<wordcount::Document>(), options);
    if (!r) {
      failed(r.error());
      continue;
    }
    auto counts = r->get();
    std::cout << counts.getWords() << " words, " << counts.getLines() << " lines (runner "
              << counts.getRunner().cStr() << ")\n";
  }
  auto loud = client.callAsync("wordcount", wordcount::shout, "flame", options);
  auto squared = client.call("wordcount", wordcount::square, 12, options);
  if (auto r = loud.get())
    std::cout << "shout: " << *r << "\n";
  else
    failed(r.error());
  if (squared)
    std::cout << "square: " << *squared << "\n";
  else
    failed(squared.error());

  for (auto& r : pool) r->requestDrain();
  for (auto& t : threads) t.join();
  return failures == 0 ? 0 : 1;
}
