// Failure and Outcome<T>: how the client reports expected failures (a timeout, an unknown
// pool, a broker that stopped answering) as values rather than exceptions, like a small
// std::expected. Bugs in the caller (reading value() of a failure) throw std::bad_variant_access.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "common/messages.h"

namespace flame {

// Why a request failed: a wire error code (or ErrorCode::BrokerUnreachable, which only the
// client produces) and a human-readable message. errorCodeName(code) gives "runner_lost".
struct Failure {
  ErrorCode code = ErrorCode::Internal;
  std::string message;

  // "<code_name>: <message>", the form the CLI prints after "error: ".
  std::string toString() const { return std::string(errorCodeName(code)) + ": " + message; }
  bool operator==(const Failure&) const = default;
};

// Either a T or a Failure. Implicitly constructible from both, so functions can
// `return value;` or `return Failure{...};`.
template <class T>
class [[nodiscard]] Outcome {
 public:
  Outcome(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  Outcome(Failure failure) : state_(std::in_place_index<1>, std::move(failure)) {}

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: ok().
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // Precondition: !ok().
  const Failure& error() const { return std::get<1>(state_); }

  // The value, or `fallback` on failure.
  T valueOr(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Failure> state_;
};

// Success carrying nothing, or a Failure. Default-constructed means success.
template <>
class [[nodiscard]] Outcome<void> {
 public:
  Outcome() = default;
  Outcome(Failure failure) : failure_(std::move(failure)) {}

  bool ok() const noexcept { return !failure_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: !ok() (throws std::bad_optional_access otherwise).
  const Failure& error() const { return failure_.value(); }

 private:
  std::optional<Failure> failure_;
};

}  // namespace flame
