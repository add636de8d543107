#include "zebra/cli/list_options.hpp"

#include <cstdlib>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// The comma-separated items of `text`, spaces around each trimmed; empty items are refused.
std::vector<std::string> split_list(const std::string& flag, const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    item = a == std::string::npos ? std::string() : item.substr(a, b - a + 1);
    ZEBRA_CHECK(!item.empty(), flag, ": expected a comma-separated list, got '", text, "' (an empty item)");
    items.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return items;
}

}  // namespace

std::vector<std::int64_t> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<std::int64_t> out;
  for (const std::string& item : split_list(flag, text)) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    ZEBRA_CHECK(end != nullptr && *end == '\0', flag, ": expected integers, got '", item, "' in '", text, "'");
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> parse_string_list(const std::string& flag, const std::string& text) {
  return split_list(flag, text);
}

std::vector<double> parse_double_list(const std::string& flag, const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split_list(flag, text)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    ZEBRA_CHECK(end != nullptr && *end == '\0', flag, ": expected numbers, got '", item, "' in '", text, "'");
    out.push_back(v);
  }
  return out;
}

}  // namespace zebra
