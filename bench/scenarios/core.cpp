// core: the broker's logic alone, with no sockets. BrokerCore is fed decoded submits and
// jobDones exactly as BrokerServer feeds it (decode of each header included, a CachedClock
// refreshed once per 256 messages as the loop does, tick() as often), with 4 clients, 4 runners
// of 1000 slots and 4000 jobs in flight; the outbox only counts. What it measures is the CPU
// the broker thread spends per job on top of ZeroMQ's own work: the part this project owns.
#include <chrono>
#include <deque>
#include <string>
#include <vector>

#include "bench/scenarios/scenarios.h"
#include "broker/broker_core.h"
#include "common/codec.h"

namespace flame::bench {

namespace {
class CountingOutbox final : public Outbox {
 public:
  std::deque<std::pair<std::string, JobId>> dispatched;  // (runner connection, job), in order
  uint64_t toClients = 0;
  SendStatus toClient(const std::string&, zmq::message_t, zmq::message_t* payload, JobId) override {
    if (payload) *payload = zmq::message_t();
    ++toClients;
    return SendStatus::Ok;
  }
  SendStatus toRunner(const std::string& routingId, zmq::message_t, zmq::message_t* payload, JobId job) override {
    if (payload) *payload = zmq::message_t();
    if (job != 0) dispatched.emplace_back(routingId, job);
    return SendStatus::Ok;
  }
};
}  // namespace

Rows runCore(const Settings& settings, Progress& progress) {
  constexpr uint32_t kClients = 4, kRunners = 4, kSlots = 1000, kBatch = 256;
  const uint64_t jobs = settings.smoke ? 20'000 : 2'000'000;
  SteadyClock steady;
  CachedClock clock(steady);
  CountingOutbox outbox;
  BrokerCore core(BrokerOptions{}, clock, outbox);
  for (uint32_t r = 0; r < kRunners; ++r) {
    msg::Ready ready;
    ready.runnerId = "core-runner-" + std::to_string(r);
    ready.pool = "bench";
    ready.slots = kSlots;
    ready.functions = {"noop"};
    core.onRunner("R" + std::to_string(r) + "xyz", ready, zmq::message_t());
  }
  // Headers encoded up front (that is the clients' and runners' work); request ids cycle
  // through more values than are ever in flight.
  constexpr uint64_t kRequestIds = 8192;
  std::vector<zmq::message_t> submits;
  for (uint64_t i = 0; i < kRequestIds; ++i)
    submits.push_back(encode(msg::Submit{i + 1, Mode::Call, "bench", "noop", 0, false, 0, false}));
  std::vector<std::string> clients;
  for (uint32_t c = 0; c < kClients; ++c) clients.push_back("C" + std::to_string(c) + "xyz");
  const std::string payload(64, 'x');
  const zmq::message_t jobDone = encode(msg::JobDone{0xFFFFFFFFFFull, ErrorCode::None, ""});
  const uint64_t inFlight = uint64_t{kRunners} * kSlots;

  uint64_t done = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < jobs; ++i) {
    if (i % kBatch == 0) {
      clock.refresh();
      core.tick();
    }
    // Each client owns a contiguous block of request ids per round, so none is reused while
    // still in flight.
    auto d = decode(submits[i % kRequestIds]);
    core.onClient(clients[(i / kRequestIds) % kClients], std::move(*d.message),
                  zmq::message_t(payload.data(), payload.size()));
    if (outbox.dispatched.size() >= inFlight) {
      auto [runner, job] = outbox.dispatched.front();
      outbox.dispatched.pop_front();
      // The decode of a jobDone is paid on a header of the same shape; the job id is then set
      // directly (encoding one per job would be the runner's work, not the broker's).
      auto dd = decode(jobDone);
      std::get<msg::JobDone>(*dd.message).jobId = job;
      core.onRunner(runner, std::move(*dd.message), zmq::message_t(payload.data(), payload.size()));
      ++done;
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Row row;
  row.scenario = "core";
  row.mode = "logic";
  row.clients = kClients;
  row.runners = kRunners;
  row.payload = payload.size();
  row.transport = "none";
  row.window = static_cast<uint32_t>(inFlight / kClients);
  row.completed = done;
  row.seconds = seconds;
  row.jobsPerS = static_cast<double>(jobs) / seconds;
  row.extra["ns_per_job"] = std::round(seconds * 1e9 / static_cast<double>(jobs));
  row.extra["results_sent"] = outbox.toClients;
  row.parts = "BrokerCore alone (no sockets): 2 decodes + core + 2 encodes per job on this thread "
              "(what the broker thread does besides ZeroMQ's own work)";
  progress.finished("core logic", std::to_string(row.extra["ns_per_job"].get<double>()) + " ns per job");
  return {row};
}

}  // namespace flame::bench
