// Renders a broker status reply for `flame status`: a table for humans, JSON for programs.
#pragma once

#include <string>

#include "common/messages.h"

namespace flame {

// One aligned table of pools (POOL QUEUED SLOTS RUNNERS BOOTING MIN MAX COMPLETED FAILED BOOTS
// BOOT_FAILURES), then for each pool with runners an indented table of them (RUNNER STATE SLOTS
// PID HOST IDLE). "no pools\n" when there are none. Ends with a newline.
std::string formatStatusTable(const msg::StatusReply& status);

// One JSON object on one line, no trailing newline, keys in this order:
// {"pools":[{"name","queued","slots_used","slots_total","runners":[{"id","state","slots_used",
// "slots_total","pid","host","idle_ms"}],"booting","boots","boot_failures","completed","failed",
// "min","max"}]}. Invalid UTF-8 in names is replaced with U+FFFD.
std::string formatStatusJson(const msg::StatusReply& status);

}  // namespace flame
