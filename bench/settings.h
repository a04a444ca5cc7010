// Settings shared by every scenario (from the command line), and the progress line.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/harness.h"
#include "common/clock.h"

namespace flame::bench {

struct Settings {
  Duration duration{2000};      // measured interval per measurement
  Duration warmup{300};         // not counted, before each measurement
  bool smoke = false;           // CI: every scenario briefly, small sizes, no thresholds
  uint32_t window = 1000;       // pipelined in-flight requests per client
  std::vector<std::string> modes{"sync", "pipelined"};
  std::vector<uint32_t> clients{1, 4};
  std::vector<uint32_t> runners{1, 4};
  std::vector<size_t> payloads{64, 4096};
  std::vector<Transport> transports{Transport::Tcp, Transport::Ipc};
  std::vector<uint32_t> fanoutRunners{1, 10, 100, 1000};
  uint32_t fanoutInFlight = 1000;  // total in flight in fan-out, whatever the pool size
  uint32_t libraryConcurrency = 16;  // flame::Runner slots (a thread per running job)
  // elastic
  uint32_t burstJobs = 200;
  uint32_t burstJobMs = 20;     // each job sleeps this long on its runner
  uint32_t poolMax = 4;
  uint32_t poolConcurrency = 4;
  Duration idleShutdown{1000};
  // memory
  std::vector<uint64_t> memoryQueued{0, 100'000, 1'000'000};
  // scale (bench/scale.h): simulated peers on one in-process BrokerCore
  uint32_t scaleRunners = 10'000;
  uint32_t scaleSessions = 100'000;
  uint64_t scaleJobs = 500'000;  // calls per dispatch measurement (5 pairs of them)
  // Diagnosis: measure an in-process broker (this process's RSS) instead of flame-broker, with
  // or without libzmq's zero-copy receive.
  bool memoryInProcess = false;
  bool zeroCopyRecv = true;
  std::string binDir;           // where flame-broker and flame-worker are
  uint32_t repeat = 1;          // headline: runs per figure, the median is kept
};

// Progress on stderr: one line per finished measurement, and live updates during long ones.
// Silent when disabled (short runs, --quiet). Thread-safe enough for one driver thread.
class Progress {
 public:
  void enable(bool on) { on_ = on; }
  bool enabled() const { return on_; }
  void setTotal(size_t total) { total_ = total; done_ = 0; }
  // A measurement finished: "[3/12] label: text".
  void finished(const std::string& label, const std::string& text) {
    ++done_;
    if (!on_) return;
    clearLive();
    if (total_ > 0) std::fprintf(stderr, "[%zu/%zu] %s: %s\n", done_, total_, label.c_str(), text.c_str());
    else std::fprintf(stderr, "%s: %s\n", label.c_str(), text.c_str());
  }
  // A live status of the current measurement (overwritten in place on a terminal).
  void live(const std::string& text) {
    if (!on_) return;
    if (tty_) std::fprintf(stderr, "\r\033[K... %s", text.c_str());
    else std::fprintf(stderr, "... %s\n", text.c_str());
    liveShown_ = tty_;
  }
  void note(const std::string& text) {
    if (!on_) return;
    clearLive();
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  void setTty(bool tty) { tty_ = tty; }

 private:
  void clearLive() {
    if (liveShown_) std::fprintf(stderr, "\r\033[K");
    liveShown_ = false;
  }
  bool on_ = false;
  bool tty_ = false;
  bool liveShown_ = false;
  size_t total_ = 0;
  size_t done_ = 0;
};

}  // namespace flame::bench
