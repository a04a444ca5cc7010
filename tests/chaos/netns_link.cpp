#include "tests/chaos/netns_link.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace flame::chaos {

bool runCommand(const std::string& command, const std::string& log) {
  std::string line = command + (log.empty() ? " >/dev/null 2>&1" : " >>'" + log + "' 2>&1");
  int rc = std::system(line.c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

std::string NetnsLink::unavailableReason() {
  if (geteuid() != 0) return "not running as root";
  if (!runCommand("command -v ip")) return "no `ip` command (iproute2)";
  std::string probe = "fchaos-probe-" + std::to_string(getpid());
  if (!runCommand("ip netns add " + probe)) return "`ip netns add` is not permitted here";
  bool vethOk = runCommand("ip link add fcp" + std::to_string(getpid() % 100000) + "a type veth peer name fcp" +
                           std::to_string(getpid() % 100000) + "b netns " + probe);
  runCommand("ip netns del " + probe);
  if (!vethOk) return "cannot create a veth pair";
  return "";
}

void NetnsLink::sweepStale() {
  FILE* p = popen("ip netns list 2>/dev/null", "r");
  if (!p) return;
  char buf[256];
  std::vector<std::string> stale;
  while (std::fgets(buf, sizeof buf, p)) {
    std::string name(buf);
    name = name.substr(0, name.find_first_of(" \n"));
    if (name.rfind("fchaos-", 0) != 0) continue;
    auto rest = name.substr(7);
    auto dash = rest.find('-');
    if (dash == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(rest.substr(0, dash).c_str()));
    if (rest.rfind("probe-", 0) == 0) pid = static_cast<pid_t>(std::atoi(rest.substr(6).c_str()));
    if (pid > 0 && ::kill(pid, 0) != 0) stale.push_back(name);
  }
  pclose(p);
  for (auto& name : stale) runCommand("ip netns del " + name);
}

NetnsLink::NetnsLink(int index, int net, const std::string& log) : log_(log) {
  std::string id = std::to_string(getpid() % 100000) + std::to_string(index);
  netns_ = "fchaos-" + std::to_string(getpid()) + "-" + std::to_string(index);
  rootIf_ = "fc" + id + "r";  // at most 2 + 6 + 1 + 1 = 10 characters (IFNAMSIZ is 16)
  nsIf_ = "fc" + id + "n";
  std::string base = "10.251." + std::to_string(net) + ".";
  rootAddress_ = base + std::to_string(index * 4 + 1);
  nsAddress_ = base + std::to_string(index * 4 + 2);
  const std::vector<std::string> steps{
      "ip netns add " + netns_,
      "ip link add " + rootIf_ + " type veth peer name " + nsIf_ + " netns " + netns_,
      "ip addr add " + rootAddress_ + "/30 dev " + rootIf_,
      "ip link set " + rootIf_ + " up",
      "ip -n " + netns_ + " link set lo up",
      "ip -n " + netns_ + " addr add " + nsAddress_ + "/30 dev " + nsIf_,
      "ip -n " + netns_ + " link set " + nsIf_ + " up",
      "ip -n " + netns_ + " route add default via " + rootAddress_,
  };
  for (auto& step : steps) {
    if (!runCommand(step, log_)) {
      runCommand("ip link del " + rootIf_);
      runCommand("ip netns del " + netns_);
      throw std::runtime_error("`" + step + "` failed");
    }
  }
}

NetnsLink::~NetnsLink() {
  runCommand("ip link del " + rootIf_);
  runCommand("ip netns del " + netns_);
}

bool NetnsLink::cut() {
  if (!runCommand("ip -n " + netns_ + " link set " + nsIf_ + " down", log_)) return false;
  cut_ = true;
  return true;
}

bool NetnsLink::restore() {
  bool ok = runCommand("ip -n " + netns_ + " link set " + nsIf_ + " up", log_) &&
            runCommand("ip -n " + netns_ + " route replace default via " + rootAddress_, log_);
  if (ok) cut_ = false;
  return ok;
}

}  // namespace flame::chaos
