// `flame`: the command-line client. Thin: the environment and the process streams go in,
// everything else is in client/cli.cpp.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "client/cli.h"

namespace {
// The variable's value, or `fallback` when it is unset or empty.
std::string envOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}
}  // namespace

int main(int argc, char** argv) {
  flame::CliDefaults defaults;
  defaults.broker = envOr(flame::kEnvClientEndpoint, flame::kDefaultClientEndpoint);
  defaults.serverKey = envOr(flame::kEnvClientServerKey, "");
  defaults.keyFile = envOr(flame::kEnvClientKeyFile, "");
  return flame::runCli(argc, argv, flame::CliStreams{std::cin, std::cout, std::cerr, ::isatty(STDOUT_FILENO) == 1},
                       defaults);
}
