// A real flame-broker process (the elastic and memory scenarios): started with
// --endpoints-file in a scratch directory, its output in broker.log there, killed by pid.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bench/harness.h"

namespace flame::bench {

struct BrokerProcess {
  std::unique_ptr<ChildProcess> process;
  std::string clients;  // bound client endpoint
  std::string runners;  // bound runner endpoint
  std::string logFile;
};

// `binDir`/flame-broker with `args` (plus --endpoints-file). Waits up to 15 s for the endpoints.
// Throws std::runtime_error (with the end of its log) if the binary is missing or the broker does
// not come up.
BrokerProcess startBrokerProcess(const std::string& binDir, const std::string& scratch, std::vector<std::string> args);

// `binDir`/`name`, or throws std::runtime_error saying where it was looked for.
std::string requireBinary(const std::string& binDir, const std::string& name);

}  // namespace flame::bench
