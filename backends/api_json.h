// The one place where the API backends turn an HTTP answer's bytes (untrusted input) into JSON,
// and type-checked accessors for reading it: a field of the wrong type reads as absent, never
// as an exception. Everything above this (fly_api.h, kubernetes_api.h, retry.h) reads answers
// only through these functions.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace flame::api {

using Json = nlohmann::json;

// Bodies larger than this are not parsed (the HTTP client already cuts answers at 16 MiB).
inline constexpr size_t kMaxJsonBytes = 16 * 1024 * 1024;

// The parsed document, or nullopt for anything that is not one complete JSON value (truncated,
// HTML error page, invalid UTF-8, too large). Never throws.
std::optional<Json> parseJson(std::string_view body);

// `object[key]` when `object` is an object and the field has the asked type; else the empty
// string / nullptr / nullopt.
std::string stringField(const Json& object, const char* key);
const Json* objectField(const Json& object, const char* key);
const Json* arrayField(const Json& object, const char* key);
// An integer field that fits in an int (a float, bool or huge number reads as absent).
std::optional<int> intField(const Json& object, const char* key);

// The string-valued members of an object field (labels, annotations, metadata); members of
// other types are skipped.
std::map<std::string, std::string> stringMapField(const Json& object, const char* key);

}  // namespace flame::api
