// Typed reads of config.json fields with errors that name the field (prefix + key), what was found (bounded)
// and what was expected. A field that is absent or null takes the fallback.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra::json_fields {

inline bool has(const nlohmann::json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

inline std::string shown(const nlohmann::json& v) { return shown_json(v); }

inline std::int64_t get_int(const nlohmann::json& j, const char* key, std::int64_t fallback, const char* prefix = "") {
  if (!has(j, key)) return fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_number_integer()) fail("config field '", prefix, key, "': expected an integer, found ", shown(v));
  return v.get<std::int64_t>();
}

inline double get_double(const nlohmann::json& j, const char* key, double fallback, const char* prefix = "") {
  if (!has(j, key)) return fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_number()) fail("config field '", prefix, key, "': expected a number, found ", shown(v));
  return v.get<double>();
}

inline bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const char* prefix = "") {
  if (!has(j, key)) return fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_boolean()) fail("config field '", prefix, key, "': expected true or false, found ", shown(v));
  return v.get<bool>();
}

inline std::string get_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                              const char* prefix = "") {
  if (!has(j, key)) return fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_string()) fail("config field '", prefix, key, "': expected a string, found ", shown(v));
  return v.get<std::string>();
}

inline std::string shown(const std::string& s) { return bounded(s); }

}  // namespace zebra::json_fields
