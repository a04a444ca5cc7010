// A small HTTP client over libcurl for the API backends (Fly Machines, Kubernetes).
// HTTP error statuses are not errors here: every answer comes back as a Response with its status
// code, and transport failures (timeout, refused connection, TLS) come back as a value too.
// Nothing in this file throws for network or server behaviour.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace flame::http {

enum class TransportError {
  None,        // an HTTP answer arrived (any status)
  Timeout,     // no complete answer within Request::timeout
  Connection,  // could not resolve, connect, send or receive
  Tls,         // certificate or handshake problem
  TooLarge,    // the answer exceeded kMaxResponseBytes
  Cancelled,   // Request::cancel turned true
  Other,       // bad URL, out of memory, ...
};

// Answers larger than this are cut off and reported as TooLarge: the body is untrusted input.
inline constexpr size_t kMaxResponseBytes = 16 * 1024 * 1024;

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent when not empty (or when method is POST/PUT/PATCH)
  Duration timeout{30'000};          // whole exchange, connection included
  std::string caPath;                // PEM bundle to trust; empty: the system's default
  bool insecureSkipTlsVerify = false;
  // Not owned; when set and it turns true, the exchange is abandoned (checked about once a
  // second and on every bit of progress) and answers Cancelled. For threads that must stop.
  const std::atomic<bool>* cancel = nullptr;
};

struct Response {
  TransportError error = TransportError::None;
  std::string errorMessage;  // curl's explanation when error != None
  long status = 0;           // HTTP status when error == None
  std::string body;
  // Header names lowercased, values trimmed, in arrival order (final response only).
  std::vector<std::pair<std::string, std::string>> headers;

  bool answered() const { return error == TransportError::None; }
  // First header with this (case-insensitive) name.
  std::optional<std::string> header(std::string_view name) const;
};

// One reusable connection handle (keeps connections alive between requests).
// Move-only; not thread-safe: use one Client per thread, or serialise calls.
class Client {
 public:
  Client();
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Performs one exchange; blocks for at most about request.timeout.
  Response perform(const Request& request);

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

// Percent-encodes everything but RFC 3986 unreserved characters (for path segments and
// query values).
std::string urlEncode(std::string_view text);

// "timeout", "connection", ... for log and status messages.
const char* toString(TransportError error);

}  // namespace flame::http
