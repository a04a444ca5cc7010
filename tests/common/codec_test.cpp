#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/codec.h"
#include "common/utf8.h"

using namespace flame;

TEST_CASE("every message kind survives a round trip", "[codec]") {
  msg::Submit s;
  s.requestId = 42;
  s.mode = Mode::Place;
  s.pool = "thumbs";
  s.function = "resize";
  s.timeoutMs = 1500;
  s.idempotent = true;
  s.retries = 3;
  s.link = true;
  auto frame = encode(s);
  auto d = decode(frame);
  REQUIRE(d.ok());
  auto& got = std::get<msg::Submit>(*d.message);
  CHECK(got.requestId == 42);
  CHECK(got.mode == Mode::Place);
  CHECK(got.pool == "thumbs");
  CHECK(got.function == "resize");
  CHECK(got.timeoutMs == 1500);
  CHECK(got.idempotent);
  CHECK(got.retries == 3);
  CHECK(got.link);
  CHECK(d.requestId == 42);

  msg::Ready r{"r-1", "thumbs", 4, {"echo", "sleep"}, "tok", 2, 1234, "host-a"};
  auto rd = decode(encode(r));
  REQUIRE(rd.ok());
  auto& gr = std::get<msg::Ready>(*rd.message);
  CHECK(gr.runnerId == "r-1");
  CHECK(gr.functions == std::vector<std::string>{"echo", "sleep"});
  CHECK(gr.busy == 2);
  CHECK(gr.pid == 1234);

  msg::StatusReply sr;
  sr.requestId = 9;
  msg::PoolStatus ps;
  ps.name = "p";
  ps.queued = 3;
  ps.runners.push_back({"r-1", "ready", 1, 2, 99, "h", 10});
  sr.pools.push_back(ps);
  auto sd = decode(encode(sr));
  REQUIRE(sd.ok());
  auto& gs = std::get<msg::StatusReply>(*sd.message);
  REQUIRE(gs.pools.size() == 1);
  CHECK(gs.pools[0].queued == 3);
  CHECK(gs.pools[0].runners[0].state == "ready");

  auto ed = decode(encode(msg::Error{7, ErrorCode::RunnerLost, "gone", 5}));
  REQUIRE(ed.ok());
  CHECK(std::get<msg::Error>(*ed.message).code == ErrorCode::RunnerLost);
  CHECK(std::get<msg::Error>(*ed.message).message == "gone");

  auto ld = decode(encode(msg::Leaving{"retired", true}));
  REQUIRE(ld.ok());
  CHECK(std::get<msg::Leaving>(*ld.message).exiting);
}

TEST_CASE("a wrong protocol version is refused with the request id", "[codec]") {
  msg::Submit s;
  s.requestId = 77;
  s.pool = "p";
  s.function = "f";
  auto frame = encodeWithVersion(Message(s), 2);
  auto d = decode(frame);
  REQUIRE_FALSE(d.ok());
  CHECK(d.code == ErrorCode::UnsupportedVersion);
  CHECK(d.requestId == 77);
  CHECK(d.error.find("version 2") != std::string::npos);
}

TEST_CASE("bad bytes give a clear error, never a crash", "[codec]") {
  SECTION("empty") {
    auto d = decode(nullptr, 0);
    CHECK(d.code == ErrorCode::BadRequest);
  }
  SECTION("not a multiple of 8") {
    char buf[13] = {};
    auto d = decode(buf, sizeof buf);
    CHECK(d.code == ErrorCode::BadRequest);
    CHECK(d.error.find("8-byte") != std::string::npos);
  }
  SECTION("too large") {
    std::vector<char> big(128 * 1024);
    auto d = decode(big.data(), big.size());
    CHECK(d.code == ErrorCode::BadRequest);
    CHECK(d.error.find("exceeds") != std::string::npos);
  }
  SECTION("truncated message") {
    auto frame = encode(msg::Ready{"r-1", "pool", 2, {"a", "b", "c"}, "", 0, 0, ""});
    for (size_t len = 8; len < frame.size(); len += 8) {
      auto d = decode(frame.data(), len);
      CHECK_FALSE(d.ok());
    }
  }
  SECTION("random bytes") {
    std::mt19937_64 rng(1234);
    int decoded = 0;
    for (int i = 0; i < 2000; ++i) {
      std::vector<uint64_t> words(1 + rng() % 32);
      for (auto& w : words) w = rng();
      auto d = decode(words.data(), words.size() * 8);
      decoded += d.ok();
    }
    CHECK(decoded < 2000);  // no crash is the point; almost all must be rejected
  }
  SECTION("unaligned buffer is accepted") {
    auto frame = encode(msg::Cancel{5});
    std::vector<char> buf(frame.size() + 1);
    memcpy(buf.data() + 1, frame.data(), frame.size());
    auto d = decode(buf.data() + 1, frame.size());
    REQUIRE(d.ok());
    CHECK(std::get<msg::Cancel>(*d.message).requestId == 5);
  }
}

TEST_CASE("error codes have stable snake_case names", "[codec]") {
  CHECK(errorCodeName(ErrorCode::RunnerLost) == "runner_lost");
  CHECK(errorCodeName(ErrorCode::Timeout) == "timeout");
  CHECK(errorCodeName(ErrorCode::UnknownPool) == "unknown_pool");
}

namespace {
bool sameBytes(const zmq::message_t& a, const zmq::message_t& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

TEST_CASE("the fast-path headers (result, accepted, job, jobDone) are byte for byte Cap'n Proto's", "[codec]") {
  // encode<T> patches a learned template for these kinds; encodeWithVersion always builds with
  // Cap'n Proto. Any difference would be a wire bug.
  std::mt19937_64 rng(42);
  const std::vector<uint64_t> edges{0, 1, 0xFFFFFFFFull, 0x100000000ull, ~0ull, 0xF1E2D3C4B5A69780ull};
  for (int i = 0; i < 2000; ++i) {
    uint64_t a = i < 6 ? edges[i] : rng(), b = i < 6 ? edges[5 - i] : rng();
    CHECK(sameBytes(encode(msg::Result{a, b}), encodeWithVersion(msg::Result{a, b}, kProtocolVersion)));
    CHECK(sameBytes(encode(msg::Accepted{a, b}), encodeWithVersion(msg::Accepted{a, b}, kProtocolVersion)));
    msg::JobDone ok{a, ErrorCode::None, "", b};
    CHECK(sameBytes(encode(ok), encodeWithVersion(ok, kProtocolVersion)));
    msg::JobDone failed{a, ErrorCode::HandlerError, "boom", b};  // not the fast shape: built
    CHECK(sameBytes(encode(failed), encodeWithVersion(failed, kProtocolVersion)));
  }
  // Functions of every length up to the limit, each mode, budgets including none and infinite;
  // more distinct functions than the template cache holds; and names containing the sentinels.
  std::vector<std::string> functions;
  for (size_t len = 1; len <= 128; len += 7) functions.push_back(std::string(len, static_cast<char>('a' + len % 26)));
  functions.push_back(std::string("\x80\x97\xA6\xB5\xC4\xD3\xE2\xF1", 8));  // the 8-byte sentinel
  functions.push_back(std::string("\x90\xA1\xB2\xC3", 4));                  // the 4-byte one
  for (int round = 0; round < 3; ++round)
    for (auto& f : functions)
      for (Mode mode : {Mode::Call, Mode::Cast, Mode::Place})
        for (uint32_t budget : {0u, 1u, 30000u, kInfiniteMs, static_cast<uint32_t>(rng())}) {
          msg::Job job{rng(), f, mode, budget};
          auto fast = encode(job);
          REQUIRE(sameBytes(fast, encodeWithVersion(job, kProtocolVersion)));
          auto back = decode(fast);
          if (!isValidUtf8(f)) {  // the sentinel names are not text: the decoder refuses them
            CHECK_FALSE(back.ok());
            continue;
          }
          REQUIRE(back.ok());
          auto& j = std::get<msg::Job>(*back.message);
          CHECK(j.jobId == job.jobId);
          CHECK(j.function == f);
          CHECK(j.mode == mode);
          CHECK(j.budgetMs == budget);
        }
}

TEST_CASE("the fields that tie jobs to a broker run survive a round trip", "[codec]") {
  msg::Ready r{"r-1", "p", 4, {"echo"}, "tok", 2, 1, "h", {{7, 0xABCD}, {9, 0xABCD}}};
  auto rd = decode(encode(r));
  REQUIRE(rd.ok());
  CHECK(std::get<msg::Ready>(*rd.message).held == r.held);

  auto dd = decode(encode(msg::JobDone{7, ErrorCode::None, "", 0xABCD}));
  REQUIRE(dd.ok());
  CHECK(std::get<msg::JobDone>(*dd.message).instance == 0xABCD);

  auto wd = decode(encode(msg::Welcome{1000, 3, 0xABCD, 1 << 20}));
  REQUIRE(wd.ok());
  CHECK(std::get<msg::Welcome>(*wd.message).instance == 0xABCD);
  CHECK(std::get<msg::Welcome>(*wd.message).maxPayloadBytes == 1 << 20);

  auto hd = decode(encode(msg::Heartbeat{1, 1000, 0xABCD, 4096, true}));
  REQUIRE(hd.ok());
  CHECK(std::get<msg::Heartbeat>(*hd.message).maxPayloadBytes == 4096);
  CHECK(std::get<msg::Heartbeat>(*hd.message).shuttingDown);
}

TEST_CASE("text fields that are not UTF-8 are refused, naming the field", "[codec]") {
  CHECK(isValidUtf8("thumbs"));
  CHECK(isValidUtf8("\xC3\xA9t\xC3\xA9 \xF0\x9F\x94\xA5"));    // été 🔥
  CHECK_FALSE(isValidUtf8("\xFF"));                             // never valid
  CHECK_FALSE(isValidUtf8("\xC0\xAF"));                         // overlong '/'
  CHECK_FALSE(isValidUtf8("\xED\xA0\x80"));                     // a surrogate
  CHECK_FALSE(isValidUtf8("\xF4\x90\x80\x80"));                 // above U+10FFFF
  CHECK_FALSE(isValidUtf8("abc\xE2\x82"));                      // truncated
  CHECK(toValidUtf8("ok\xFFok") == "ok\xEF\xBF\xBDok");
  CHECK(toValidUtf8("fine") == "fine");

  msg::Submit s;
  s.requestId = 5;
  s.pool = "po\xFFol";
  s.function = "echo";
  auto d = decode(encode(s));
  REQUIRE_FALSE(d.ok());
  CHECK(d.code == ErrorCode::BadRequest);
  CHECK(d.requestId == 5);
  CHECK(d.error.find("'pool' is not valid UTF-8") != std::string::npos);

  msg::Ready r{"r-1", "p", 1, {"ec\xC0\xAFho"}, "", 0, 0, "h"};
  auto rd = decode(encode(r));
  REQUIRE_FALSE(rd.ok());
  CHECK(rd.error.find("'functions'") != std::string::npos);
}

TEST_CASE("a decode error's reason is always text, so the peer can be told it", "[codec]") {
  // A text field cut short: Cap'n Proto's exception quotes the raw byte (0xff here).
  msg::Submit s;
  s.requestId = 9;
  s.pool = "p";
  s.function = "f";
  auto frame = encode(s);
  std::string bytes(static_cast<const char*>(frame.data()), frame.size());
  int changed = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\0' && i > 0 && (bytes[i - 1] == 'p' || bytes[i - 1] == 'f')) {
      bytes[i] = '\xff';  // the NUL terminator of a text field
      ++changed;
    }
  }
  REQUIRE(changed > 0);
  auto d = decode(bytes.data(), bytes.size());
  REQUIRE_FALSE(d.ok());
  CHECK(isValidUtf8(d.error));
  // And the error that carries it decodes on the other side.
  CHECK(decode(encode(msg::Error{d.requestId, d.code, d.error, 0})).ok());
}
