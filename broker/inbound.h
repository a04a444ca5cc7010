// The broker's decode boundary for whole ZeroMQ messages as its ROUTER sockets receive them:
// frame layout and count, header decode (common/codec.h), then exactly one call into the core —
// the message, or an `Invalid` call that answers the peer with a clear error. BrokerServer and
// the fuzzers (fuzz/broker_core_fuzz.cpp) both go through here, so what is fuzzed is what runs.
#pragma once

#include "broker/broker_core.h"
#include "common/codec.h"
#include "common/transport.h"

namespace flame {

// Most frames a message may have, routing id included:
// clients [routing id][empty][header][payload?], runners [routing id][header][payload?].
inline constexpr size_t kMaxClientFrames = 4;
inline constexpr size_t kMaxRunnerFrames = 3;

// `frames` as recvFrames() left them (frames[0] = routing id; `truncated` = more frames than
// the maximum were sent). Frames may be moved from. `authenticated`: the socket is a CURVE
// server, and the peer's key (its ZAP User-Id) goes to the core with the message.
void deliverFromClient(BrokerCore& core, const DecodeLimits& limits, Frames& frames, bool truncated,
                       bool authenticated = false);
void deliverFromRunner(BrokerCore& core, const DecodeLimits& limits, Frames& frames, bool truncated,
                       bool authenticated = false);

}  // namespace flame
