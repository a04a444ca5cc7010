// CPU time per role, from /proc/self/task/*/{comm,stat}: which part of the in-process system
// burned the cores during a measurement. Threads are told apart by the names nameThread() and
// nameContext() give them (harness.h): "broker" + "1/ZMQbg/..." is the broker with its ZeroMQ
// I/O thread, "runners" + "2/..." the runner farm, "3/..." + the main thread the clients,
// "echo" + "4/..." the ceiling's echo server. Resolution: one clock tick (10 ms).
#pragma once

#include <cstdint>

namespace flame::bench {

struct RoleCpu {
  // Seconds of CPU (user + system). *Io: that role's ZeroMQ I/O thread(s).
  double broker = 0, brokerIo = 0;
  double runners = 0, runnersIo = 0;
  double clients = 0, clientsIo = 0;
  double echo = 0, echoIo = 0;
  double other = 0;  // any other thread of this process (flame::Client/Runner threads, ...)
  double total() const { return broker + brokerIo + runners + runnersIo + clients + clientsIo + echo + echoIo + other; }
  RoleCpu operator-(const RoleCpu& o) const {
    return {broker - o.broker,   brokerIo - o.brokerIo, runners - o.runners, runnersIo - o.runnersIo,
            clients - o.clients, clientsIo - o.clientsIo, echo - o.echo,     echoIo - o.echoIo,
            other - o.other};
  }
};

// CPU consumed so far by the threads alive now, per role. Threads that already exited are
// not counted, so take both samples while the measured threads run.
RoleCpu sampleRoleCpu();

}  // namespace flame::bench
