#include "bench/plot.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "bench/harness.h"

namespace flame::bench {

namespace {
std::string rowLabel(const Row& r) {
  std::string s = r.scenario;
  s += " ";
  s += r.mode;
  s += " c";
  s += std::to_string(r.clients);
  if (r.runners) {
    s += " r";
    s += std::to_string(r.runners);
  }
  s += " ";
  s += std::to_string(r.payload);
  s += "B ";
  s += r.transport;
  s += " w";
  s += std::to_string(r.window);
  return s;
}

// gnuplot strings are single-quoted; labels never hold quotes, but be safe.
std::string quoted(std::string s) {
  for (auto& c : s)
    if (c == '\'' || c == '"') c = ' ';
  return "\"" + s + "\"";
}
}  // namespace

bool gnuplotAvailable() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && access((dir + "/gnuplot").c_str(), X_OK) == 0) return true;
  return false;
}

void plotRows(const std::vector<Row>& rows, const std::string& file, const std::string& title) {
  if (!gnuplotAvailable())
    throw std::runtime_error("--plot needs gnuplot on PATH (Debian: apt-get install gnuplot-nox)");
  ScratchDir scratch;
  std::string data = scratch.path() + "/rows.dat", script = scratch.path() + "/plot.gp",
              log = scratch.path() + "/gnuplot.log";
  size_t n = 0;
  {
    std::ofstream out(data);
    for (auto& r : rows) {
      if (!r.jobsPerS || !r.p50Us || r.completed == 0) continue;
      out << quoted(rowLabel(r)) << " " << *r.jobsPerS << " " << *r.p50Us << " " << r.p99Us.value_or(0) << " "
          << r.p999Us.value_or(0) << "\n";
      ++n;
    }
  }
  if (n == 0) throw std::runtime_error("--plot: no throughput rows to draw");
  int width = static_cast<int>(std::max<size_t>(900, 60 * n + 300));
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size " << width << ",1100 font 'sans,9'\n"
       << "set output " << quoted(file) << "\n"
       << "set multiplot layout 2,1 title " << quoted(title) << "\n"
       << "set style data histogram\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
       << "set boxwidth 0.9\nset grid ytics\nset xtics rotate by -40 scale 0\nset key top right\n"
       << "set bmargin 12\nset ylabel 'jobs/s'\nset format y '%.0s%c'\n"
       << "plot " << quoted(data) << " using 2:xtic(1) title 'throughput (jobs/s)' lc rgb '#3070b0'\n"
       << "set logscale y\nset ylabel 'latency (us, log)'\nset format y '%g'\n"
       << "plot " << quoted(data) << " using 3:xtic(1) title 'p50' lc rgb '#60a060', '' using 4 title 'p99' "
          "lc rgb '#e0a030', '' using 5 title 'p99.9' lc rgb '#c04040'\n"
       << "unset multiplot\n";
  }
  std::string cmd = "gnuplot " + quoted(script) + " > " + quoted(log) + " 2>&1";
  int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    throw std::runtime_error("gnuplot failed: " + text.str());
  }
}

}  // namespace flame::bench
