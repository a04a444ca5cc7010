// The functions of the embedded-app example, declared once: the application calls them through
// flame::Client and its runners serve them, and both sides read their types from here (a
// mismatch is a compile error). Any other program (a test, another service) includes this too.
#pragma once

#include <string>

#include "common/function.h"
#include "examples/wordcount.capnp.h"

namespace wordcount {

// Counts the words and lines of a document; the result names the runner that counted.
inline constexpr flame::Function<Document, Counts> countWords{"count_words"};
// Upper-cases text (bytes in, bytes out).
inline constexpr flame::Function<std::string, std::string> shout{"shout"};
// Squares a number (a trivially copyable value in and out).
inline constexpr flame::Function<uint64_t, uint64_t> square{"square"};

}  // namespace wordcount
