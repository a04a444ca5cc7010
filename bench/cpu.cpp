#include "bench/cpu.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace flame::bench {

RoleCpu sampleRoleCpu() {
  RoleCpu cpu;
  static const double kTick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const std::string mainTid = std::to_string(getpid());
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::string tid = entry.path().filename().string();
    std::ifstream statFile(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(statFile)), std::istreambuf_iterator<char>());
    // "tid (comm) state ppid ..." — comm may hold spaces or parentheses: split at the last ')'.
    auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string comm = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15 are utime, stime
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    double seconds = static_cast<double>(utime + stime) / kTick;
    if (comm == "broker") cpu.broker += seconds;
    else if (comm.rfind("1/", 0) == 0) cpu.brokerIo += seconds;
    else if (comm == "runners") cpu.runners += seconds;
    else if (comm.rfind("2/", 0) == 0) cpu.runnersIo += seconds;
    else if (tid == mainTid) cpu.clients += seconds;
    else if (comm.rfind("3/", 0) == 0) cpu.clientsIo += seconds;
    else if (comm == "echo") cpu.echo += seconds;
    else if (comm.rfind("4/", 0) == 0) cpu.echoIo += seconds;
    else cpu.other += seconds;
  }
  return cpu;
}

}  // namespace flame::bench
