// Renders a broker status reply for `flame status` and the broker's events for `flame events`:
// text for humans, JSON for programs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/messages.h"

namespace flame {

// One aligned table of pools (POOL QUEUED SLOTS RUNNERS BOOTING MIN MAX COMPLETED FAILED RETRIED
// BOOTS BOOT_FAILURES; RETRIED: jobs queued again for a retry), then for each pool with runners an indented table of them (RUNNER STATE SLOTS
// PID HOST IDLE). "no pools\n" when there are none. Ends with a newline.
std::string formatStatusTable(const msg::StatusReply& status);

// One JSON object on one line, no trailing newline, keys in this order:
// {"pools":[{"name","queued","slots_used","slots_total","runners":[{"id","state","slots_used",
// "slots_total","pid","host","idle_ms"}],"booting","boots","boot_failures","completed","failed",
// "retried","min","max"}]}. Invalid UTF-8 in names is replaced with U+FFFD.
// With a non-empty `time` (an ISO-8601 stamp, `flame status --watch --json`), the object starts
// with "time":"<time>".
std::string formatStatusJson(const msg::StatusReply& status, std::string_view time = {});

// `unixMs` (milliseconds since the Unix epoch) as ISO-8601 UTC with milliseconds:
// "2026-12-03T18:50:01.123Z".
std::string formatIsoTime(uint64_t unixMs);

// One line, no newline: "<time> pool=<pool> <kind>[ runner=<id>] runners=<n> booting=<n>", then
// for job_retried " job=<id> attempt=<n> delay=<duration>", then ` message="<message>"` when
// there is one (with \" \\ and control characters escaped).
std::string formatEventLine(const msg::Event& event);

// One JSON object on one line, no newline, keys in this order: seq, time (ISO-8601 UTC), timeMs,
// kind (snake_case), pool, runner, message, jobId, attempt, delayMs, runners, booting.
std::string formatEventJson(const msg::Event& event);

}  // namespace flame
