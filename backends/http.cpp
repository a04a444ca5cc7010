#include "backends/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

namespace flame::http {

namespace {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

// curl_global_init must run before the first handle; it is process-wide state owned by libcurl,
// initialised once and never torn down (other libraries may share it).
void initCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

struct Sink {
  Response* response;
  bool tooLarge = false;
};

// CURLOPT_XFERINFOFUNCTION: a non-zero return aborts with CURLE_ABORTED_BY_CALLBACK.
int onProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel->load() ? 1 : 0;
}

size_t onBody(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t bytes = size * count;
  if (sink->response->body.size() + bytes > kMaxResponseBytes) {
    sink->tooLarge = true;
    return 0;  // makes curl abort with CURLE_WRITE_ERROR
  }
  sink->response->body.append(data, bytes);
  return bytes;
}

size_t onHeader(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t bytes = size * count;
  std::string_view line(data, bytes);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new status line (after "100 Continue" or a proxy's answer): keep only the final headers.
    sink->response->headers.clear();
    return bytes;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  sink->response->headers.emplace_back(lowercase(trim(line.substr(0, colon))),
                                       std::string(trim(line.substr(colon + 1))));
  return bytes;
}

TransportError classify(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return TransportError::Timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TransportError::Connection;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
      return TransportError::Tls;
    default:
      return TransportError::Other;
  }
}

}  // namespace

struct Client::Handle {
  CurlEasy easy;
};

Client::Client() : handle_(std::make_unique<Handle>()) {
  initCurlOnce();
  handle_->easy.reset(curl_easy_init());
}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

std::optional<std::string> Response::header(std::string_view name) const {
  std::string wanted = lowercase(name);
  for (const auto& [key, value] : headers) {
    if (key == wanted) return value;
  }
  return std::nullopt;
}

Response Client::perform(const Request& request) {
  Response response;
  CURL* easy = handle_ ? handle_->easy.get() : nullptr;
  if (easy == nullptr) {
    response.error = TransportError::Other;
    response.errorMessage = "curl_easy_init failed";
    return response;
  }
  // Reset per request so no option leaks from one call into the next; the connection cache
  // survives a reset.
  curl_easy_reset(easy);

  Sink sink{&response};
  char errorBuffer[CURL_ERROR_SIZE] = {0};
  CurlSlist headers;
  for (const auto& header : request.headers) {
    curl_slist* appended = curl_slist_append(headers.get(), header.c_str());
    if (appended != nullptr) {
      headers.release();
      headers.reset(appended);
    }
  }
  // libcurl would otherwise send "Expect: 100-continue" for larger bodies and wait for it.
  if (curl_slist* appended = curl_slist_append(headers.get(), "Expect:")) {
    headers.release();
    headers.reset(appended);
  }

  long timeoutMs = request.timeout == kInfinite
                       ? 0L
                       : std::max<long>(1, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);  // we are multithreaded; no SIGALRM tricks
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeoutMs);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeoutMs);
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &onBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &onHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &sink);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errorBuffer);
  bool sendsBody = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                   request.method == "PATCH";
  if (sendsBody) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }
  if (request.cancel != nullptr) {
    if (request.cancel->load()) {
      response.error = TransportError::Cancelled;
      response.errorMessage = "cancelled before sending";
      return response;
    }
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &onProgress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(request.cancel));
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  }
  if (!request.caPath.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, request.caPath.c_str());
  if (request.insecureSkipTlsVerify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  CURLcode code = curl_easy_perform(easy);
  if (code != CURLE_OK) {
    response.error = sink.tooLarge                      ? TransportError::TooLarge
                     : code == CURLE_ABORTED_BY_CALLBACK ? TransportError::Cancelled
                                                         : classify(code);
    response.errorMessage =
        sink.tooLarge ? "response larger than " + std::to_string(kMaxResponseBytes) + " bytes"
        : errorBuffer[0] != '\0' ? std::string(errorBuffer)
                                 : std::string(curl_easy_strerror(code));
    response.status = 0;
    return response;
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string urlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

const char* toString(TransportError error) {
  switch (error) {
    case TransportError::None:
      return "none";
    case TransportError::Timeout:
      return "timeout";
    case TransportError::Connection:
      return "connection";
    case TransportError::Tls:
      return "tls";
    case TransportError::TooLarge:
      return "too large";
    case TransportError::Cancelled:
      return "cancelled";
    case TransportError::Other:
      return "other";
  }
  return "other";
}

}  // namespace flame::http
