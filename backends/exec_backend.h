// ExecBackend: machines are booted and stopped by user commands (ssh, systemd-run, nomad,
// docker, ...). Commands run without a shell (argv, execvp-style PATH lookup), with captured
// output and a timeout that kills the command's whole process group. Wrap in ["/bin/sh", "-c",
// "..."] to get a shell.
//
// Placeholders, expanded in every argument:
//   {runner_id} {pool} {broker_id} {machine_id}
//   {env}       the runner environment as KEY=VALUE pairs: an argument that is exactly "{env}"
//               becomes one argument per pair (so ["env", "{env}", "runner"] works without a
//               shell); inside a longer argument it is space-separated with values shell-quoted
//               when needed (for "sh -c" / ssh command strings).
//   {env:NAME}  one variable of the runner environment (empty when unset)
// Unknown {...} text is left as is. The runner environment (FLAME_* and pool extras) is also
// exported into the command's own environment, plus FLAME_MACHINE_ID for stop.
//
// Thread-safety: calls are serialised by an internal mutex.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "common/clock.h"

namespace flame {

struct ExecOptions {
  // Boots one machine. Its stdout's first line (trimmed) is the machine id; empty: the runner id.
  std::vector<std::string> bootCommand;
  // Stops one machine ({machine_id}). Required. Must treat "already gone" as success.
  std::vector<std::string> stopCommand;
  // Optional: prints the machines of {broker_id}, one per line: "machine_id [runner_id [pool]]"
  // (whitespace-separated; blank lines ignored). Empty: supportsList() is false.
  std::vector<std::string> listCommand;
  // Each command is SIGKILLed (with its process group) after this long.
  Duration commandTimeout{30'000};
};

// Values substituted into placeholders.
struct ExecContext {
  std::string runnerId;
  std::string pool;
  std::string brokerId;
  std::string machineId;
  std::map<std::string, std::string> env;
};

// Expands placeholders in `argv` (see the file comment). Pure function, exposed for tests.
std::vector<std::string> expandPlaceholders(const std::vector<std::string>& argv,
                                            const ExecContext& context);

// Quotes `value` for a POSIX shell when it contains anything beyond [A-Za-z0-9_@%+=:,./-].
std::string shellQuote(const std::string& value);

class ExecBackend final : public Backend {
 public:
  explicit ExecBackend(ExecOptions options);

  std::string kind() const override { return "exec"; }

  // Runs bootCommand. Failures: the command cannot be executed (not retryable), exits with 126 or
  // 127 (not retryable: the shell could not find or run something), other non-zero exits, signals
  // and timeouts (retryable). Messages include the stderr tail.
  BootResult boot(const BootSpec& spec) override;

  // Runs stopCommand with {machine_id}, {runner_id}, {pool}; {broker_id} is the id of the last
  // boot()/list() call (one broker per backend instance); {env} is empty.
  BackendStatus stop(const MachineHandle& machine) override;

  // Runs listCommand; not ok when it fails; ok and empty when no listCommand is configured.
  ListResult list(const std::string& brokerId) override;
  bool supportsList() const override { return !options_.listCommand.empty(); }

 private:
  // Runs `argv` (already expanded) with `env` exported. `what` names it in messages.
  struct Outcome;
  Outcome run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
              const std::string& what);

  ExecOptions options_;
  std::mutex mutex_;
  std::string brokerId_;  // last broker id seen; guarded by mutex_
};

}  // namespace flame
