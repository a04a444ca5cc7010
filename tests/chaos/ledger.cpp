#include "tests/chaos/ledger.h"

#include <cinttypes>
#include <cstdio>

namespace flame::chaos {

namespace {
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
constexpr size_t kExamples = 8;
}  // namespace

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::CallEcho: return "call echo";
    case Kind::CallEchoIdempotent: return "call echo (idempotent, retries 2)";
    case Kind::CallSleep: return "call sleep";
    case Kind::CastEcho: return "cast echo";
    case Kind::CastSleep: return "cast sleep";
    case Kind::Place: return "place sleep (+stop)";
  }
  return "?";
}

std::string tagPayload(uint64_t tag, uint64_t nonce) {
  char body[64];
  std::snprintf(body, sizeof body, "chaos:%" PRIu64 ":%016" PRIx64, tag, nonce);
  char full[96];
  std::snprintf(full, sizeof full, "%s:%016" PRIx64, body, fnv1a(body));
  return full;
}

std::optional<uint64_t> parseTagPayload(const std::string& payload) {
  auto last = payload.rfind(':');
  if (payload.rfind("chaos:", 0) != 0 || last == std::string::npos || last < 6) return std::nullopt;
  std::string body = payload.substr(0, last);
  char sum[17];
  std::snprintf(sum, sizeof sum, "%016" PRIx64, fnv1a(body));
  if (payload.substr(last + 1) != sum) return std::nullopt;
  return std::strtoull(body.c_str() + 6, nullptr, 10);
}

uint64_t RequestLedger::reserveTag() {
  std::lock_guard lock(mutex_);
  entries_.emplace_back();
  return nextTag_++;
}

void RequestLedger::openReserved(uint64_t tag, Kind kind, std::string expected) {
  std::lock_guard lock(mutex_);
  Entry& e = entries_.at(tag - 1);
  e.kind = kind;
  e.expected = std::move(expected);
  e.opened = std::chrono::steady_clock::now();
}

uint64_t RequestLedger::open(Kind kind, std::string expected) {
  uint64_t tag = reserveTag();
  openReserved(tag, kind, std::move(expected));
  return tag;
}

RequestLedger::Entry* RequestLedger::find(uint64_t tag) {
  if (tag == 0 || tag > entries_.size()) return nullptr;
  return &entries_[tag - 1];
}

void RequestLedger::record(uint64_t tag, Verdict verdict, const std::string& outcome, const std::string& detail) {
  std::lock_guard lock(mutex_);
  Entry* e = find(tag);
  if (!e) return;
  if (closed_) ++e->lateAnswers;
  if (++e->answers == 1) e->firstOutcome = outcome;
  if (verdict == Verdict::Crossed || verdict == Verdict::Corrupt) {
    e->verdict = verdict;
    e->wrongDetail = detail;
  }
}

void RequestLedger::answerOk(uint64_t tag, const std::optional<std::string>& result) {
  Verdict verdict = Verdict::Ok;
  std::string detail;
  {
    std::lock_guard lock(mutex_);
    Entry* e = find(tag);
    if (e && result && !e->expected.empty() && *result != e->expected) {
      auto other = parseTagPayload(*result);
      verdict = other ? Verdict::Crossed : Verdict::Corrupt;
      detail = "tag " + std::to_string(tag) + " (" + kindName(e->kind) + ") expected '" + e->expected + "' got '" +
               result->substr(0, 80) + "'" + (other ? " = the payload of tag " + std::to_string(*other) : "");
    }
  }
  record(tag, verdict, verdict == Verdict::Ok ? "ok" : "WRONG", detail);
}

void RequestLedger::answerError(uint64_t tag, const std::string& code, const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    noteMessage(code, message);
  }
  record(tag, Verdict::Error, code, "");
}

void RequestLedger::noteMessage(const std::string& code, const std::string& message) {
  if (message.empty()) return;
  auto& texts = errorMessages_[code];
  // Distinct texts modulo digits (job ids, durations), a few per code.
  auto shape = [](const std::string& t) {
    std::string out;
    for (char ch : t) out += (ch >= '0' && ch <= '9') ? '#' : ch;
    return out;
  };
  for (auto& t : texts)
    if (shape(t) == shape(message)) return;
  if (texts.size() < 3) texts.push_back(message.substr(0, 160));
}

void RequestLedger::expectChildExit(uint64_t tag) {
  std::lock_guard lock(mutex_);
  if (Entry* e = find(tag)) e->linkedChild = true;
}

void RequestLedger::childExit(uint64_t tag, const std::string& code, const std::string& message) {
  std::lock_guard lock(mutex_);
  noteMessage("child exit " + code, message);
  if (Entry* e = find(tag)) ++e->exits;
  ++exitCodes_[code];
}

void RequestLedger::stopOutcome(uint64_t, const std::string& outcome) {
  std::lock_guard lock(mutex_);
  ++stopOutcomes_[outcome];
}

size_t RequestLedger::closeBooks() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  size_t n = 0;
  for (auto& e : entries_)
    if (e.answers == 0) ++n;
  return n;
}

RequestLedger::Summary RequestLedger::summarize() const {
  std::lock_guard lock(mutex_);
  Summary s;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    uint64_t tag = i + 1;
    ++s.requests;
    ++s.byKind[static_cast<int>(e.kind)];
    size_t onTime = e.answers - e.lateAnswers;
    ++s.answersHistogram[e.answers];
    s.outcomes[kindName(e.kind)][onTime == 0 ? "UNANSWERED" : e.firstOutcome]++;
    if (onTime == 0) {
      ++s.unanswered;
      if (s.unansweredExamples.size() < kExamples) {
        auto age = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - e.opened);
        s.unansweredExamples.push_back("tag " + std::to_string(tag) + " (" + kindName(e.kind) + "), sent " +
                                       std::to_string(age.count()) + " ms before the summary" +
                                       (e.lateAnswers ? ", answered late: " + e.firstOutcome : ""));
      }
    }
    if (e.answers > 1) ++s.duplicated;
    s.late += e.lateAnswers;
    if (e.verdict == Verdict::Crossed) ++s.crossed;
    if (e.verdict == Verdict::Corrupt) ++s.corrupt;
    if ((e.verdict == Verdict::Crossed || e.verdict == Verdict::Corrupt) && s.wrongExamples.size() < kExamples)
      s.wrongExamples.push_back(e.wrongDetail);
    if (e.linkedChild) {
      ++s.linkedChildren;
      ++s.exitHistogram[e.exits];
    }
  }
  s.exitCodes = exitCodes_;
  s.stopOutcomes = stopOutcomes_;
  s.errorMessages = errorMessages_;
  return s;
}

}  // namespace flame::chaos
