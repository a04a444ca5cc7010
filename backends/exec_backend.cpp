#include "backends/exec_backend.h"

#include <sys/wait.h>

#include <cctype>
#include <sstream>

#include "backends/runner_env.h"
#include "backends/subprocess.h"
#include "common/log.h"

namespace flame {

namespace {

std::shared_ptr<spdlog::logger> log() { return logger("backend.exec"); }

constexpr size_t kStderrTail = 500;

std::string trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return std::string(text);
}

std::string stderrTail(const std::string& err) {
  std::string tail = trim(err);
  if (tail.size() > kStderrTail) tail = "..." + tail.substr(tail.size() - kStderrTail);
  return tail;
}

bool isShellSafe(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '@' || c == '%' ||
         c == '+' || c == '=' || c == ':' || c == ',' || c == '.' || c == '/' || c == '-';
}

std::string joinEnv(const std::map<std::string, std::string>& env) {
  std::string out;
  for (const auto& [name, value] : env) {
    if (!out.empty()) out.push_back(' ');
    out += name + "=" + shellQuote(value);
  }
  return out;
}

// Expands one argument that is not exactly "{env}". Single pass: substituted values are never
// scanned again, so a value containing "{pool}" stays literal.
std::string expandOne(const std::string& arg, const ExecContext& context) {
  std::string out;
  size_t i = 0;
  while (i < arg.size()) {
    if (arg[i] != '{') {
      out.push_back(arg[i++]);
      continue;
    }
    size_t close = arg.find('}', i + 1);
    if (close == std::string::npos) {
      out.append(arg, i, std::string::npos);
      break;
    }
    std::string_view name(arg.data() + i + 1, close - i - 1);
    const std::string* value = nullptr;
    std::string computed;
    if (name == "runner_id") {
      value = &context.runnerId;
    } else if (name == "pool") {
      value = &context.pool;
    } else if (name == "broker_id") {
      value = &context.brokerId;
    } else if (name == "machine_id") {
      value = &context.machineId;
    } else if (name == "env") {
      computed = joinEnv(context.env);
      value = &computed;
    } else if (name.rfind("env:", 0) == 0) {
      auto it = context.env.find(std::string(name.substr(4)));
      value = it != context.env.end() ? &it->second : &computed;
    }
    if (value == nullptr) {
      out.push_back('{');  // not a placeholder (JSON, shell braces): keep it
      ++i;
      continue;
    }
    out += *value;
    i = close + 1;
  }
  return out;
}

}  // namespace

std::string shellQuote(const std::string& value) {
  if (value.empty()) return "''";
  bool safe = true;
  for (char c : value) safe = safe && isShellSafe(c);
  if (safe) return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

std::vector<std::string> expandPlaceholders(const std::vector<std::string>& argv,
                                            const ExecContext& context) {
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (const auto& arg : argv) {
    if (arg == "{env}") {
      for (const auto& [name, value] : context.env) out.push_back(name + "=" + value);
    } else {
      out.push_back(expandOne(arg, context));
    }
  }
  return out;
}

struct ExecBackend::Outcome {
  BackendStatus status;
  std::string out;
};

ExecBackend::ExecBackend(ExecOptions options) : options_(std::move(options)) {}

ExecBackend::Outcome ExecBackend::run(const std::vector<std::string>& argv,
                                      const std::map<std::string, std::string>& env,
                                      const std::string& what) {
  Outcome outcome;
  if (argv.empty()) {
    outcome.status =
        BackendStatus::failure("exec backend: no " + what + " command configured", false);
    return outcome;
  }
  proc::SpawnRequest request;
  request.argv = argv;
  request.env = proc::currentEnvironment();
  for (const auto& [name, value] : env) request.env[name] = value;
  proc::CommandResult result = proc::runCommand(std::move(request), options_.commandTimeout);
  outcome.out = std::move(result.out);
  if (!result.started) {
    outcome.status = BackendStatus::failure("exec " + what + ": " + result.spawnError, false);
  } else if (result.timedOut) {
    outcome.status = BackendStatus::failure(
        "exec " + what + ": timed out after " + std::to_string(options_.commandTimeout.count()) +
            "ms" + (result.err.empty() ? "" : ": " + stderrTail(result.err)),
        true);
  } else if (!result.succeeded()) {
    bool exited = WIFEXITED(result.waitStatus);
    int code = exited ? WEXITSTATUS(result.waitStatus) : -1;
    // 126/127 are the shell's "cannot execute" / "not found": retrying will not fix them.
    bool retryable = !(exited && (code == 126 || code == 127));
    std::string message =
        "exec " + what + ": " + argv[0] + ": " + proc::describeWaitStatus(result.waitStatus);
    std::string tail = stderrTail(result.err);
    if (!tail.empty()) message += ": " + tail;
    outcome.status = BackendStatus::failure(std::move(message), retryable);
  }
  if (!outcome.status.ok) log()->warn("{}", outcome.status.message);
  return outcome;
}

BootResult ExecBackend::boot(const BootSpec& spec) {
  std::lock_guard lock(mutex_);
  brokerId_ = spec.brokerId;
  ExecContext context{spec.runnerId, spec.pool, spec.brokerId, "", runnerEnvironment(spec, {})};
  Outcome outcome = run(expandPlaceholders(options_.bootCommand, context), context.env, "boot");
  BootResult result;
  result.status = outcome.status;
  if (!outcome.status.ok) return result;
  std::string firstLine = outcome.out.substr(0, outcome.out.find('\n'));
  std::string machineId = trim(firstLine);
  if (machineId.empty()) machineId = spec.runnerId;
  result.handle = MachineHandle{machineId, spec.runnerId, spec.pool};
  log()->info("pool={} runner={} booted machine={}", spec.pool, spec.runnerId, machineId);
  return result;
}

BackendStatus ExecBackend::stop(const MachineHandle& machine) {
  std::lock_guard lock(mutex_);
  ExecContext context{machine.runnerId, machine.pool, brokerId_, machine.machineId, {}};
  std::map<std::string, std::string> env{{"FLAME_MACHINE_ID", machine.machineId}};
  if (!machine.runnerId.empty()) env[kEnvRunnerId] = machine.runnerId;
  if (!machine.pool.empty()) env[kEnvPool] = machine.pool;
  if (!brokerId_.empty()) env[kEnvBrokerId] = brokerId_;
  Outcome outcome = run(expandPlaceholders(options_.stopCommand, context), env, "stop");
  if (outcome.status.ok) {
    log()->info("pool={} runner={} stopped machine={}", machine.pool, machine.runnerId,
                machine.machineId);
  }
  return outcome.status;
}

ListResult ExecBackend::list(const std::string& brokerId) {
  std::lock_guard lock(mutex_);
  brokerId_ = brokerId;
  ListResult result;
  if (options_.listCommand.empty()) return result;
  ExecContext context{"", "", brokerId, "", {}};
  std::map<std::string, std::string> env{{kEnvBrokerId, brokerId}};
  Outcome outcome = run(expandPlaceholders(options_.listCommand, context), env, "list");
  result.status = outcome.status;
  if (!outcome.status.ok) return result;
  std::istringstream lines(outcome.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    MachineHandle machine;
    if (!(fields >> machine.machineId)) continue;  // blank line
    fields >> machine.runnerId >> machine.pool;
    result.machines.push_back(std::move(machine));
  }
  return result;
}

}  // namespace flame
