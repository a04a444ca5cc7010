// The `flame` command line, as a library function so tests can run it in-process.
// main.cpp only wires the process's streams and environment to runCli().
#pragma once

#include <iosfwd>
#include <string>

namespace flame {

// Environment variable that overrides the default broker endpoint of the CLI.
inline constexpr const char* kEnvClientEndpoint = "FLAME_CLIENT_ENDPOINT";
inline constexpr const char* kDefaultClientEndpoint = "tcp://127.0.0.1:5555";
// Environment variables that give --server-key and --key-file their defaults (CURVE).
inline constexpr const char* kEnvClientServerKey = "FLAME_SERVER_KEY";
inline constexpr const char* kEnvClientKeyFile = "FLAME_KEY_FILE";

// What the global options default to when not given (main.cpp reads them from the environment).
struct CliDefaults {
  std::string broker = kDefaultClientEndpoint;  // --broker
  std::string serverKey;                        // --server-key: a Z85 public key or a .pub file
  std::string keyFile;                          // --key-file: a secret key file (mode 0600)
};

struct CliStreams {
  std::istream& in;   // read for a PAYLOAD of "-"
  std::ostream& out;  // results (call's bytes verbatim), help
  std::ostream& err;  // "error: <code_name>: <message>" and usage errors
  // `out` is a terminal: `status --watch` redraws in place instead of appending tables.
  bool outIsTerminal = false;
};

// Runs `flame <subcommand> ...` (argv[0] is the program name). Returns the exit code:
// 0 success, 1 the request failed (the error is printed on err), 2 bad usage.
// `defaultBroker` is the endpoint used without --broker. Blocks until the request is answered,
// which the client's liveness rules bound for every subcommand except a foreground
// `place --link`/`--wait` (which waits for its child), a `call --timeout infinity`, and
// `status --watch` and `events` without --count (which run until SIGINT or SIGTERM: while they
// run, those signals are caught and end the command with exit 0).
int runCli(int argc, const char* const* argv, CliStreams io, const std::string& defaultBroker);
// Same, with every global option's default. With --server-key and --key-file (both, or
// neither) every subcommand that talks to a broker uses CURVE; a key that cannot be read is bad
// usage (exit 2, naming the option or variable and the fault); a broker that refuses the
// handshake fails the request with `unauthorized: ...` (exit 1) within a second.
int runCli(int argc, const char* const* argv, CliStreams io, const CliDefaults& defaults);

}  // namespace flame
