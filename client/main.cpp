// `flame`: the command-line client. Thin: the environment and the process streams go in,
// everything else is in client/cli.cpp.
#include <cstdlib>
#include <iostream>

#include "client/cli.h"

int main(int argc, char** argv) {
  const char* endpoint = std::getenv(flame::kEnvClientEndpoint);
  std::string broker =
      endpoint != nullptr && *endpoint != '\0' ? endpoint : flame::kDefaultClientEndpoint;
  return flame::runCli(argc, argv, flame::CliStreams{std::cin, std::cout, std::cerr}, broker);
}
