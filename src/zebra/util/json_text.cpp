#include "zebra/util/json_text.hpp"

namespace zebra {

JsonDepth json_depth(std::string_view text, std::size_t stop_after) {
  JsonDepth out;
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  std::size_t string_start = 0;
  std::string_view last_top_string;  // the latest string at depth 1: the key of the value being scanned
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  const bool root_is_object = first != std::string_view::npos && text[first] == '{';
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        if (depth == 1) last_top_string = text.substr(string_start, i - string_start);
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      string_start = i + 1;
    } else if (c == '[' || c == '{') {
      ++depth;
      if (depth > out.depth) {
        out.depth = depth;
        out.offset = i;
        out.field = root_is_object && depth > 1 ? std::string(last_top_string) : std::string();
        if (depth > stop_after) return out;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return out;
}

void check_json_depth(std::string_view text, const std::string& where, std::size_t max_depth) {
  const JsonDepth d = json_depth(text, max_depth);
  if (d.depth <= max_depth) return;
  fail(where, ": JSON nested more than ", max_depth, " levels deep",
       d.field.empty() ? std::string() : str_cat(" in field '", bounded(d.field), "'"), " (at byte ", d.offset,
       "; the limit guards the stack of the JSON library)");
}

}  // namespace zebra
