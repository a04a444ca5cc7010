#include "client/status_format.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/duration.h"

namespace flame {

namespace {

using Row = std::vector<std::string>;

// Left-aligned columns separated by two spaces, no trailing spaces.
std::string renderTable(const std::vector<Row>& rows, const std::string& indent) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = indent;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string fraction(uint32_t used, uint32_t total) {
  return std::to_string(used) + "/" + std::to_string(total);
}

}  // namespace

std::string formatStatusTable(const msg::StatusReply& status) {
  if (status.pools.empty()) return "no pools\n";
  std::vector<Row> pools{{"POOL", "QUEUED", "SLOTS", "RUNNERS", "BOOTING", "MIN", "MAX",
                          "COMPLETED", "FAILED", "RETRIED", "BOOTS", "BOOT_FAILURES"}};
  for (const auto& p : status.pools) {
    pools.push_back({p.name, std::to_string(p.queued), fraction(p.slotsUsed, p.slotsTotal),
                     std::to_string(p.runners.size()), std::to_string(p.booting),
                     std::to_string(p.min), std::to_string(p.max), std::to_string(p.completed),
                     std::to_string(p.failed), std::to_string(p.retried), std::to_string(p.boots),
                     std::to_string(p.bootFailures)});
  }
  std::string out = renderTable(pools, "");
  for (const auto& p : status.pools) {
    if (p.runners.empty()) continue;
    std::vector<Row> runners{{"RUNNER", "STATE", "SLOTS", "PID", "HOST", "IDLE"}};
    for (const auto& r : p.runners) {
      runners.push_back({r.runnerId, r.state, fraction(r.slotsUsed, r.slotsTotal),
                         std::to_string(r.pid), r.host.empty() ? "-" : r.host,
                         formatDuration(Duration(static_cast<int64_t>(r.idleMs)))});
    }
    out += "\n" + p.name + " runners:\n" + renderTable(runners, "  ");
  }
  return out;
}

std::string formatStatusJson(const msg::StatusReply& status, std::string_view time) {
  // ordered_json keeps the documented key order (plain json sorts keys).
  using Json = nlohmann::ordered_json;
  Json pools = Json::array();
  for (const auto& p : status.pools) {
    Json runners = Json::array();
    for (const auto& r : p.runners) {
      runners.push_back(Json{{"id", r.runnerId},
                             {"state", r.state},
                             {"slots_used", r.slotsUsed},
                             {"slots_total", r.slotsTotal},
                             {"pid", r.pid},
                             {"host", r.host},
                             {"idle_ms", r.idleMs}});
    }
    pools.push_back(Json{{"name", p.name},
                         {"queued", p.queued},
                         {"slots_used", p.slotsUsed},
                         {"slots_total", p.slotsTotal},
                         {"runners", std::move(runners)},
                         {"booting", p.booting},
                         {"boots", p.boots},
                         {"boot_failures", p.bootFailures},
                         {"completed", p.completed},
                         {"failed", p.failed},
                         {"retried", p.retried},
                         {"min", p.min},
                         {"max", p.max}});
  }
  Json root = Json::object();
  if (!time.empty()) root["time"] = std::string(time);
  root["pools"] = std::move(pools);
  // Names come from peers: never throw on bad UTF-8, replace it.
  return root.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string formatEventLine(const msg::Event& event) {
  std::string line = formatIsoTime(event.timeMs) + " pool=" + event.pool + " " +
                     std::string(eventKindName(event.kind));
  if (!event.runnerId.empty()) line += " runner=" + event.runnerId;
  line += " runners=" + std::to_string(event.runners) + " booting=" + std::to_string(event.booting);
  if (event.kind == EventKind::JobRetried) {
    line += " job=" + std::to_string(event.jobId) + " attempt=" + std::to_string(event.attempt) +
            " delay=" + formatDuration(Duration(static_cast<int64_t>(event.delayMs)));
  }
  if (!event.message.empty()) {
    // The message comes from peers (a backend's error, a runner's reason): one line, quoted.
    line += " message=\"";
    for (unsigned char c : event.message) {
      if (c == '"' || c == '\\') {
        line += '\\';
        line += static_cast<char>(c);
      } else if (c == '\n') {
        line += "\\n";
      } else if (c < 0x20 || c == 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        line += hex;
      } else {
        line += static_cast<char>(c);
      }
    }
    line += '"';
  }
  return line;
}

std::string formatEventJson(const msg::Event& event) {
  using Json = nlohmann::ordered_json;
  Json json{{"seq", event.seq},         {"time", formatIsoTime(event.timeMs)},
            {"timeMs", event.timeMs},   {"kind", std::string(eventKindName(event.kind))},
            {"pool", event.pool},       {"runner", event.runnerId},
            {"message", event.message}, {"jobId", event.jobId},
            {"attempt", event.attempt}, {"delayMs", event.delayMs},
            {"runners", event.runners}, {"booting", event.booting}};
  // Strings come from peers: never throw on bad UTF-8, replace it.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string formatIsoTime(uint64_t unixMs) {
  std::time_t seconds = static_cast<std::time_t>(unixMs / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<unsigned>(unixMs % 1000));
  return text;
}

}  // namespace flame
