// HandshakeMonitor: tells a connecting peer (flame::Client, flame::Runner) at once when the
// broker refuses its ZeroMQ handshake — a key not on the broker's allow-list, CURVE on one side
// only, a wrong server key — instead of leaving it to wait for a timeout. It watches a DEALER
// with zmq_socket_monitor: libzmq publishes the socket's events on an inproc PAIR, and a PAIR of
// ours reads them on the owner's Reactor (the one poll loop), so no thread is added.
//
// What a CURVE client's DEALER sees (libzmq 4.3.4, probed on this machine; the monitor event and
// its value, time from connect on loopback):
//
//   case                                         event (client side)           value          again?
//   allowed key                                  HANDSHAKE_SUCCEEDED           0              -
//   unknown client key (the ZAP handler: 400)    HANDSHAKE_FAILED_AUTH         400 (ZAP code) no
//   wrong server key                             HANDSHAKE_FAILED_NO_DETAIL    32 (EPIPE)     every ~140 ms
//   plaintext client -> CURVE server             HANDSHAKE_FAILED_PROTOCOL     0x11000002     no
//   CURVE client -> plaintext server             HANDSHAKE_FAILED_PROTOCOL     0x11000002     no
//
// (0x11000002 = ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH.) Each arrives within about 5 ms.
// "again?": after an AUTH or PROTOCOL failure libzmq ends that connection for good and never
// reconnects (observed for 3 s): whoever wants another attempt must open a new socket. With a
// wrong server key the server cannot open our HELLO and just closes the connection, so the
// client learns no detail and libzmq keeps reconnecting, failing the same way each time (the
// server's own monitor sees HANDSHAKE_FAILED_PROTOCOL 0x11000001, ZMTP_CRYPTOGRAPHIC).
// Against flame-broker with [security] the `flame` CLI printed `unauthorized: ...` after 22 ms
// (unknown key), 27 ms (plaintext) and 200 ms (wrong server key: two attempts), process start
// included; a runner with an unknown key exited 5 after 32 ms.
//
// The table is for a client and server on one context (one libzmq I/O thread). Across processes
// (or contexts) a mechanism mismatch races: the server closes the connection as soon as it reads
// the client's greeting, and in about half the attempts (4 of 8 measured) the client's next write
// fails first, so it sees NO_DETAIL (EPIPE) instead of PROTOCOL, and libzmq reconnects after
// ~110-160 ms to try again; one attempt in 8 saw that twice in a row.
//
// So: AUTH and PROTOCOL are refusals at once. NO_DETAIL is a refusal when it repeats without a
// success between: twice for a CURVE client (a wrong key repeats within ~150 ms), three times for
// a plaintext client (a mismatch is usually read as PROTOCOL by then). One alone may be a broker
// that died in the middle of a handshake. The worst case is thus about half a second.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/transport.h"

namespace flame {

// The CURVE side of a connecting peer from its options (`owner` names them in errors, e.g.
// "ClientOptions"): nullopt when both keys are empty (plaintext); else both must be Z85 keys
// (40 characters), the public key is derived from the secret one. Throws std::invalid_argument
// for one key without the other or a key that is not Z85 (never echoing the secret).
std::optional<CurveClient> curveClientFor(std::string_view owner, const std::string& serverKey,
                                          const std::string& secretKey);

// One handshake event of the monitored socket, as libzmq reported it.
enum class HandshakeEventKind { Succeeded, FailedNoDetail, FailedProtocol, FailedAuth };
struct HandshakeEvent {
  HandshakeEventKind kind = HandshakeEventKind::Succeeded;
  uint32_t value = 0;  // the ZAP status code (Auth), a ZMQ_PROTOCOL_ERROR_* (Protocol), an errno
};

// What a run of handshake events means, by the rules at the top of this file. Pure: unit-tested.
class HandshakeVerdicts {
 public:
  // `curve`: the monitored socket is a CURVE client; `who`: "client" or "runner", for the texts;
  // `publicKey`: its Z85 public key (empty without CURVE), named by fingerprint in the texts.
  HandshakeVerdicts(bool curve, std::string who, std::string publicKey);

  enum class Verdict { None, Succeeded, Refused };
  // Feeds one event; Refused comes with why() set to a sentence for the caller's error.
  Verdict onEvent(const HandshakeEvent& event);
  const std::string& why() const { return why_; }

 private:
  bool curve_;
  std::string who_;
  std::string publicKey_;
  int silentFailures_ = 0;  // NO_DETAIL failures since the last success
  std::string why_;
};

// Watches one connecting socket's handshakes. Create it BEFORE the socket connects (newDealer(),
// then the monitor, then connect()): a mechanism mismatch is refused within the greeting, about
// 0.1 ms on loopback, sooner than a monitor attached after connect() was ready in tests. Add it
// to the socket owner's Reactor with watch(), and destroy it before the socket closes.
// Callbacks run on the Reactor's thread, inside pollOnce(); a callback may destroy the monitor
// (e.g. by closing the connection it watches). Not thread-safe: one thread owns it.
class HandshakeMonitor {
 public:
  struct Callbacks {
    std::function<void()> succeeded;                     // a handshake completed
    std::function<void(const std::string& why)> refused;  // the broker refused it (see above)
  };
  // Starts monitoring `socket` (not owned; must outlive the monitor) in `context` (the socket's).
  // Throws zmq::error_t if libzmq refuses the monitor.
  HandshakeMonitor(zmq::context_t& context, zmq::socket_t& socket, HandshakeVerdicts verdicts, Callbacks callbacks);
  // Stops monitoring and closes the PAIR (removing it from the Reactor it watches on).
  ~HandshakeMonitor();
  HandshakeMonitor(const HandshakeMonitor&) = delete;
  HandshakeMonitor& operator=(const HandshakeMonitor&) = delete;

  // Reads events whenever they arrive on `reactor` (the loop of the monitored socket's owner).
  void watch(Reactor& reactor);
  // Reads and handles every event waiting now (watch() calls it on input).
  void poll();

 private:
  zmq::socket_t& monitored_;
  zmq::socket_t pair_;
  HandshakeVerdicts verdicts_;
  Callbacks callbacks_;
  Reactor* reactor_ = nullptr;
  // Cleared by the destructor: poll() stops if a callback destroyed the monitor.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flame
