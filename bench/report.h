// Results: one Row per measurement, printed as a table (default) or as one JSON object per line
// (--json), plus the issue-4 targets with PASS/MISS.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bench/histogram.h"
#include "bench/load.h"

namespace flame::bench {

struct Row {
  std::string scenario;   // ceiling | call | cast | fanout | library | elastic | memory
  std::string mode;       // sync | pipelined | burst | queued
  uint32_t clients = 0;
  uint32_t runners = 0;
  size_t payload = 0;     // bytes
  std::string transport = "tcp";
  uint32_t window = 0;    // requests in flight per client
  std::optional<double> jobsPerS;
  std::optional<double> p50Us, p99Us, p999Us;
  std::optional<double> ratioToCeiling;  // jobs/s over the matching ceiling's jobs/s
  uint64_t completed = 0;
  uint64_t errors = 0;
  double seconds = 0;
  // What ran and where, e.g. "lean protocol clients + lean protocol runners; broker, runners,
  // clients: in-process threads".
  std::string parts;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // scenario-specific fields

  // Fills jobs/s, percentiles, counts and seconds from a load run.
  void setLoad(const LoadStats& stats);
};

// The one JSON object of a row (the fixed keys first, then `extra`).
nlohmann::ordered_json toJson(const Row& row);

// Prints rows as an aligned table, then each distinct `parts` note once.
void printTable(std::FILE* out, const std::vector<Row>& rows);

struct TargetCheck {
  std::string name;      // "pipelined call >= 0.45 x ceiling"
  std::string measured;  // "0.52 x (412k/s vs 790k/s)"
  bool pass = false;
};
void printTargets(std::FILE* out, const std::vector<TargetCheck>& targets);

// "412.3k", "1.20M", "950"
std::string humanRate(double perSecond);

}  // namespace flame::bench
