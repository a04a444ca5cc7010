// The libcurl wrapper: answers of any status are values, transport failures are values.
#include "backends/http.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>

#include "backends/fake_api_server.h"
#include "backends/local_files.h"
#include "backends/retry.h"
#include "common/log.h"

using namespace flame;
using namespace flame::testing;
using std::chrono::milliseconds;

TEST_CASE("http client returns status, body and lowercased headers", "[backends][http]") {
  FakeApiServer server;
  server.server().Put("/thing", [&](const httplib::Request& request, httplib::Response& response) {
    server.record(request);
    response.status = 500;
    response.set_header("X-Echo", request.get_header_value("X-Custom"));
    response.set_content("broken: " + request.body, "text/plain");
  });
  server.start();
  http::Client client;
  http::Request request;
  request.method = "PUT";
  request.url = server.baseUrl() + "/thing";
  request.headers = {"X-Custom: hello"};
  request.body = "payload";
  http::Response response = client.perform(request);
  REQUIRE(response.answered());
  CHECK(response.status == 500);
  CHECK(response.body == "broken: payload");
  CHECK(response.header("x-echo") == std::optional<std::string>("hello"));
  CHECK(response.header("X-ECHO") == std::optional<std::string>("hello"));
  CHECK_FALSE(response.header("x-missing"));

  // The same client is reusable.
  http::Response again = client.perform(request);
  CHECK(again.status == 500);
  CHECK(server.requestCount() == 2);
}

TEST_CASE("http client reports timeouts and refused connections as values", "[backends][http]") {
  FakeApiServer server;
  server.server().Get("/slow", [&](const httplib::Request&, httplib::Response& response) {
    server.waitGate(milliseconds(20'000));
    response.set_content("late", "text/plain");
  });
  server.start();
  http::Client client;
  http::Request request;
  request.url = server.baseUrl() + "/slow";
  request.timeout = milliseconds(200);
  http::Response slow = client.perform(request);
  CHECK(slow.error == http::TransportError::Timeout);
  CHECK_FALSE(slow.errorMessage.empty());
  server.releaseGate();

  request.url = "http://127.0.0.1:1/";
  CHECK(client.perform(request).error == http::TransportError::Connection);

  request.url = "not a url";
  CHECK_FALSE(client.perform(request).answered());
}

TEST_CASE("performWithRetry stops when prepare refuses", "[backends][http]") {
  FakeApiServer server;
  server.server().Get("/x", server.scripted({}, Reply{503, "{}", {}}));
  server.start();
  http::Client client;
  http::Request request;
  request.url = server.baseUrl() + "/x";
  int prepared = 0;
  auto prepare = [&](http::Request&) {
    ++prepared;
    return prepared < 3 ? BackendStatus::success() : BackendStatus::failure("no token", false);
  };
  std::vector<milliseconds> waits;
  HttpOutcome outcome = performWithRetry(
      client, request, RetryPolicy{5, milliseconds(10), milliseconds(100)},
      [&](milliseconds d) { waits.push_back(d); }, [](long status) { return status >= 500; },
      prepare, *logger("test"), "x");
  CHECK_FALSE(outcome.prepareStatus.ok);
  CHECK(outcome.attempts == 2);
  CHECK(server.requestCount() == 2);
  CHECK(waits == std::vector<milliseconds>{milliseconds(10), milliseconds(20)});
  CHECK_THAT(describeOutcome("x", outcome, ""), Catch::Contains("no token"));
}

TEST_CASE("performWithRetry: beforeRetry can settle a retry that is not needed",
          "[backends][http]") {
  FakeApiServer server;
  server.server().Post("/x", server.scripted({}, Reply{504, "gateway timeout", {}}));
  server.start();
  http::Client client;
  http::Request request;
  request.method = "POST";
  request.url = server.baseUrl() + "/x";
  std::vector<milliseconds> waits;
  std::vector<long> seen;
  HttpOutcome outcome = performWithRetry(
      client, request, RetryPolicy{5, milliseconds(10), milliseconds(100)},
      [&](milliseconds d) { waits.push_back(d); }, [](long status) { return status >= 500; },
      nullptr, *logger("test"), "x", [&](const http::Response& failed) {
        seen.push_back(failed.status);
        return seen.size() == 2;  // found done on the second look
      });
  CHECK(outcome.settled);
  CHECK(outcome.attempts == 2);
  CHECK(server.requestCount() == 2);
  CHECK(seen == std::vector<long>{504, 504});
  // The look comes after the wait: the retry it replaces would have waited too.
  CHECK(waits == std::vector<milliseconds>{milliseconds(10), milliseconds(20)});
}

TEST_CASE("http client abandons an exchange when its cancel flag turns true", "[backends][http]") {
  FakeApiServer server;
  server.server().Get("/hang", [&](const httplib::Request& request, httplib::Response& response) {
    server.record(request);
    server.waitGate(milliseconds(20'000));
    response.set_content("late", "text/plain");
  });
  server.start();
  std::atomic<bool> cancel{false};
  http::Request request;
  request.url = server.baseUrl() + "/hang";
  request.timeout = milliseconds(30'000);
  request.cancel = &cancel;
  auto exchange = std::async(std::launch::async, [&] {
    http::Client client;
    return client.perform(request);
  });
  REQUIRE(flame::test::waitFor([&] { return server.requestCount() == 1; }));
  auto started = std::chrono::steady_clock::now();
  cancel = true;
  http::Response response = exchange.get();
  CHECK(std::chrono::steady_clock::now() - started < milliseconds(3000));
  CHECK(response.error == http::TransportError::Cancelled);
  CHECK(std::string(http::toString(response.error)) == "cancelled");

  // Already cancelled: nothing is sent.
  http::Client client;
  CHECK(client.perform(request).error == http::TransportError::Cancelled);
  CHECK(server.requestCount() == 1);
  server.releaseGate();
}
