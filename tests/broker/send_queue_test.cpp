// SendQueue: order, and what happens when a runner connection is found gone at flush.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

#include "broker/send_queue.h"

using namespace flame;

namespace {
zmq::message_t bytes(const std::string& s) { return zmq::message_t(s.data(), s.size()); }

struct FakeSockets {
  std::set<std::string> gone;                // connections that answer Unreachable
  std::vector<std::string> sent;             // frames joined with '|', in send order
  std::vector<std::pair<std::string, std::vector<JobId>>> reports;
  SendStatus send(const SendQueue::Message& m, zmq::message_t* frames) {
    if (gone.count(frames[0].to_string())) return SendStatus::Unreachable;
    std::string joined;
    for (uint8_t i = 0; i < m.count; ++i) joined += (i ? "|" : "") + frames[i].to_string();
    sent.push_back(joined);
    return SendStatus::Ok;
  }
};
}  // namespace

TEST_CASE("a flush sends every queued message in order, clients with the empty delimiter, then empties the queue", "[broker][send_queue]") {
  SendQueue q;
  FakeSockets s;
  auto p = bytes("pay");
  q.push(true, "r1", bytes("job1"), &p, 1);
  q.push(false, "c1", bytes("accepted"), nullptr, 0);
  q.push(true, "r2", bytes("job2"), nullptr, 2);
  CHECK(p.size() == 0);  // the payload was taken by the queue
  q.flush([&](const SendQueue::Message& m, zmq::message_t* f) { return s.send(m, f); },
          [&](const std::string& peer, const std::vector<JobId>& jobs, SendStatus) { s.reports.push_back({peer, jobs}); });
  CHECK(s.sent == std::vector<std::string>{"r1|job1|pay", "c1||accepted", "r2|job2"});
  CHECK(s.reports.empty());
  CHECK(q.size() == 0);
}

TEST_CASE("after a runner send fails, later messages to it are dropped and their jobs reported once",
          "[broker][send_queue]") {
  SendQueue q;
  FakeSockets s;
  s.gone.insert("r1");
  q.push(true, "r1", bytes("job1"), nullptr, 1);
  q.push(true, "r2", bytes("job2"), nullptr, 2);
  q.push(true, "r1", bytes("cancel"), nullptr, 0);
  q.push(true, "r1", bytes("job3"), nullptr, 3);
  int calls = 0;
  q.flush([&](const SendQueue::Message& m, zmq::message_t* f) {
            ++calls;
            return s.send(m, f);
          },
          [&](const std::string& peer, const std::vector<JobId>& jobs, SendStatus why) {
            CHECK(why == SendStatus::Unreachable);
            s.reports.push_back({peer, jobs});
          });
  CHECK(calls == 2);  // r1 was tried once; its later messages were never attempted
  CHECK(s.sent == std::vector<std::string>{"r2|job2"});
  REQUIRE(s.reports.size() == 1);
  CHECK(s.reports[0].first == "r1");
  CHECK(s.reports[0].second == std::vector<JobId>{1, 3});
}

TEST_CASE("what the report queues (a requeued job sent elsewhere) goes out in the same flush",
          "[broker][send_queue]") {
  SendQueue q;
  FakeSockets s;
  s.gone.insert("r1");
  q.push(true, "r1", bytes("job1"), nullptr, 1);
  q.flush([&](const SendQueue::Message& m, zmq::message_t* f) { return s.send(m, f); },
          [&](const std::string&, const std::vector<JobId>& jobs, SendStatus) {
            for (JobId j : jobs) q.push(true, "r2", bytes("job" + std::to_string(j)), nullptr, j);
          });
  CHECK(s.sent == std::vector<std::string>{"r2|job1"});
  CHECK(q.size() == 0);
}

TEST_CASE("a reply to a client that is gone is dropped without a report", "[broker][send_queue]") {
  SendQueue q;
  FakeSockets s;
  s.gone.insert("c1");
  q.push(false, "c1", bytes("result"), nullptr, 0);
  q.push(false, "c2", bytes("result"), nullptr, 0);
  bool reported = false;
  q.flush([&](const SendQueue::Message& m, zmq::message_t* f) { return s.send(m, f); },
          [&](const std::string&, const std::vector<JobId>&, SendStatus) { reported = true; });
  CHECK_FALSE(reported);
  CHECK(s.sent == std::vector<std::string>{"c2||result"});
}

TEST_CASE("a placer's `placed` for an undelivered dispatch is dropped with it", "[broker][send_queue]") {
  SendQueue q;
  FakeSockets s;
  s.gone.insert("r1");
  q.push(true, "r1", bytes("job7"), nullptr, 7);
  q.push(false, "c1", bytes("placed7"), nullptr, 7);
  q.push(false, "c1", bytes("result3"), nullptr, 0);
  q.flush([&](const SendQueue::Message& m, zmq::message_t* f) { return s.send(m, f); },
          [&](const std::string&, const std::vector<JobId>& jobs, SendStatus) {
            // The core places it again elsewhere: that placed goes out.
            for (JobId j : jobs) {
              q.push(true, "r2", bytes("job" + std::to_string(j)), nullptr, j);
              q.push(false, "c1", bytes("placed" + std::to_string(j)), nullptr, j);
            }
          });
  CHECK(s.sent == std::vector<std::string>{"c1||result3", "r2|job7", "c1||placed7"});
}
