#include "bench/broker_process.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace flame::bench {

std::string requireBinary(const std::string& binDir, const std::string& name) {
  std::string path = binDir + "/" + name;
  if (access(path.c_str(), X_OK) != 0)
    throw std::runtime_error(path + " not found: build it (cmake --build <dir> --target " + name +
                             ") or pass --bin-dir");
  return path;
}

BrokerProcess startBrokerProcess(const std::string& binDir, const std::string& scratch, std::vector<std::string> args) {
  BrokerProcess b;
  std::string endpoints = scratch + "/endpoints.json";
  b.logFile = scratch + "/broker.log";
  std::vector<std::string> argv{requireBinary(binDir, "flame-broker")};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("--endpoints-file");
  argv.push_back(endpoints);
  b.process = ChildProcess::start(argv, b.logFile);
  // The broker renames the file into place once bound: poll for it, bounded.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream in(endpoints);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      auto j = nlohmann::json::parse(text.str(), nullptr, false);
      if (!j.is_discarded() && j.contains("clients") && j.contains("runners")) {
        b.clients = j["clients"].get<std::string>();
        b.runners = j["runners"].get<std::string>();
        return b;
      }
    }
    if (!b.process->running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The scratch directory goes away with the run: show the end of the log now.
  std::ifstream log(b.logFile);
  std::stringstream text;
  text << log.rdbuf();
  std::string tail = text.str();
  if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
  throw std::runtime_error("flame-broker did not start; its output:\n" + tail);
}

}  // namespace flame::bench
