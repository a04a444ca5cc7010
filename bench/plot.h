// --plot FILE.png: throughput and latency percentiles of every request/reply row, drawn by
// gnuplot (Debian: gnuplot-nox). Rows without a rate (memory, elastic) are left out.
#pragma once

#include <string>
#include <vector>

#include "bench/report.h"

namespace flame::bench {

// True if a `gnuplot` executable is on PATH.
bool gnuplotAvailable();

// Writes `file` (PNG). `title` heads the figure. Throws std::runtime_error when gnuplot is
// missing or fails (with its output).
void plotRows(const std::vector<Row>& rows, const std::string& file, const std::string& title);

}  // namespace flame::bench
