#include "backends/api_json.h"

#include <limits>
#include <map>

namespace flame::api {

std::optional<Json> parseJson(std::string_view body) {
  if (body.size() > kMaxJsonBytes) return std::nullopt;
  // allow_exceptions=false turns syntax errors into a discarded value; the catch is for what the
  // library may still throw (it documents no other case, but this is the boundary for untrusted
  // bytes, so nothing may escape it).
  try {
    Json parsed = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return std::nullopt;
    return parsed;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

std::string stringField(const Json& object, const char* key) {
  if (!object.is_object()) return {};
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get_ref<const std::string&>() : std::string();
}

const Json* objectField(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

const Json* arrayField(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_array() ? &*it : nullptr;
}

std::optional<int> intField(const Json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    auto value = it->get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int>::max())) return std::nullopt;
    return static_cast<int>(value);
  }
  if (it->is_number_integer()) {
    auto value = it->get<int64_t>();
    if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max())
      return std::nullopt;
    return static_cast<int>(value);
  }
  return std::nullopt;
}

std::map<std::string, std::string> stringMapField(const Json& object, const char* key) {
  std::map<std::string, std::string> out;
  const Json* map = objectField(object, key);
  if (map == nullptr) return out;
  for (auto it = map->begin(); it != map->end(); ++it) {
    if (it->is_string()) out.emplace(it.key(), it->get_ref<const std::string&>());
  }
  return out;
}

}  // namespace flame::api
