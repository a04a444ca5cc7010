// RequestLedger: every request the chaos clients send and every answer they get, so the end of
// a run can prove "exactly one answer per request, none to the wrong request".
//
// Payloads are self-checking: tagPayload(tag) = "chaos:<tag>:<nonce>:<checksum>", and an echo
// result must be byte-for-byte that payload. A result that parses with a valid checksum but
// another tag is a crossed answer (it belongs to another request); anything else is corrupt.
// `sleep` jobs cannot carry a tag (their payload is the milliseconds), so their durations are
// drawn per request and the result "slept N" must name this request's N.
//
// Threading: every method is thread-safe (one mutex; answers arrive on client I/O threads).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace flame::chaos {

enum class Kind { CallEcho, CallEchoIdempotent, CallSleep, CastEcho, CastSleep, Place };
inline constexpr int kKinds = 6;
const char* kindName(Kind kind);

// The payload of an echo request with this tag (nonce from `nonce`).
std::string tagPayload(uint64_t tag, uint64_t nonce);
// The tag a payload carries if its checksum is valid.
std::optional<uint64_t> parseTagPayload(const std::string& payload);

// How an answer compares with what its request expects.
enum class Verdict { Ok, Error, Crossed, Corrupt };

class RequestLedger {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Records a request about to be sent. `expected` is the exact success result for calls,
  // empty for casts and places (any success value is fine). Returns its tag (unique, from 1).
  uint64_t open(Kind kind, std::string expected = {});
  // The tag a request will get: open() with it reserved (so the payload can carry the tag).
  uint64_t reserveTag();
  void openReserved(uint64_t tag, Kind kind, std::string expected);

  // An answer for `tag`: a success with its bytes (calls) or nullopt bytes (cast/place
  // success), or an error code name ("runner_lost").
  void answerOk(uint64_t tag, const std::optional<std::string>& result);
  void answerError(uint64_t tag, const std::string& code, const std::string& message = {});
  // A linked child's exit notice (onExit) for the place request `tag`; code "none" = normal.
  void childExit(uint64_t tag, const std::string& code, const std::string& message = {});
  // The outcome of stop() for the child of `tag` ("ok" or an error code name).
  void stopOutcome(uint64_t tag, const std::string& outcome);

  // From now on, answers are counted as late (after the quiesce bound); returns how many
  // requests had no answer at this point.
  size_t closeBooks();

  struct Summary {
    size_t requests = 0;
    size_t byKind[kKinds] = {};
    // kind -> outcome ("ok", error code name, "none"=unanswered) -> count (first answer)
    std::map<std::string, std::map<std::string, size_t>> outcomes;
    std::map<size_t, size_t> answersHistogram;  // answers per request -> requests
    size_t unanswered = 0;                       // at closeBooks()
    size_t duplicated = 0;                       // more than one answer
    size_t late = 0;                             // answers after closeBooks()
    size_t crossed = 0, corrupt = 0;             // wrong answers
    std::vector<std::string> wrongExamples;      // a few, for the report
    std::vector<std::string> unansweredExamples;
    // Linked children placed successfully: exit notices per child -> children.
    size_t linkedChildren = 0;
    std::map<size_t, size_t> exitHistogram;
    std::map<std::string, size_t> exitCodes;
    std::map<std::string, size_t> stopOutcomes;
    std::map<std::string, std::vector<std::string>> errorMessages;  // code -> a few distinct texts
  };
  Summary summarize() const;

  // Marks a place request as a linked child whose exit notice is expected.
  void expectChildExit(uint64_t tag);

 private:
  struct Entry {
    Kind kind{};
    std::string expected;
    TimePoint opened{};
    size_t answers = 0;
    size_t lateAnswers = 0;
    std::string firstOutcome;  // "" until answered
    Verdict verdict = Verdict::Ok;
    std::string wrongDetail;
    bool linkedChild = false;
    size_t exits = 0;
  };
  Entry* find(uint64_t tag);
  void noteMessage(const std::string& code, const std::string& message);  // mutex_ held
  void record(uint64_t tag, Verdict verdict, const std::string& outcome, const std::string& detail);

  mutable std::mutex mutex_;
  std::vector<Entry> entries_;  // index = tag - 1
  std::map<std::string, size_t> exitCodes_, stopOutcomes_;
  std::map<std::string, std::vector<std::string>> errorMessages_;
  bool closed_ = false;
  uint64_t nextTag_ = 1;
};

}  // namespace flame::chaos
