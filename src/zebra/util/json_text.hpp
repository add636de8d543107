// Untrusted JSON text: a nesting bound checked before parsing, and values shown in errors at a bounded length.
//
// nlohmann::json parses iteratively, but copies, compares and dumps recursively: a value nested ~10^5 deep (a
// few hundred kilobytes of '[') parses, then overflows the stack when a reader copies or prints it. Every
// reader of a JSON file calls check_json_depth on the text before json::parse.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "zebra/util/error.hpp"

namespace zebra {

// Far above any real config, index, trainer state or tokenizer.json (they nest fewer than 10 levels).
constexpr std::size_t kMaxJsonDepth = 64;

// Deepest nesting of arrays and objects in `text` (brackets inside strings do not count), scanning no further
// than the first point deeper than `stop_after`. Exact for valid JSON; for invalid text a value the parser
// would refuse anyway.
struct JsonDepth {
  std::size_t depth = 0;
  std::size_t offset = 0;  // byte at which `depth` was first reached
  std::string field;       // the top-level key whose value holds that point, when the root is an object
};
JsonDepth json_depth(std::string_view text, std::size_t stop_after = kMaxJsonDepth);

// Fails with "<where>: JSON nested more than 64 levels deep in field 'f' (at byte N)" when too deep.
void check_json_depth(std::string_view text, const std::string& where, std::size_t max_depth = kMaxJsonDepth);

// A value from an untrusted file as JSON text fit for an error message (at most `max_bytes` of it, then the
// full size).
inline std::string shown_json(const nlohmann::json& v, std::size_t max_bytes = 64) {
  return bounded(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), max_bytes);
}

}  // namespace zebra
