// Comma-separated list flags ("--ctx 512,2048", "--depths 0,0.5,1", "--global-layers 0,4").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zebra {

// "512,1024, 2048" -> {512, 1024, 2048}. Throws naming `flag` and the bad item (empty, not an integer).
std::vector<std::int64_t> parse_int_list(const std::string& flag, const std::string& text);
// "fact, next" -> {"fact", "next"}. Throws naming `flag` on an empty item.
std::vector<std::string> parse_string_list(const std::string& flag, const std::string& text);
// "0,0.25,.5" -> {0, 0.25, 0.5}. Throws naming `flag` and the bad item.
std::vector<double> parse_double_list(const std::string& flag, const std::string& text);

}  // namespace zebra
