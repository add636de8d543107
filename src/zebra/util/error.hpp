// Errors: one exception type whose message says what was expected and what was found.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace zebra {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str_cat(std::forward<Args>(args)...));
}

// A value from an untrusted input as it may appear in an error message: at most `max_bytes` of it.
inline std::string bounded(std::string_view s, std::size_t max_bytes = 60) {
  return s.size() <= max_bytes ? std::string(s) : str_cat(s.substr(0, max_bytes), "... (", s.size(), " bytes)");
}

}  // namespace zebra

// Checks an input condition (never compiled out): bad input must produce an error, not a crash.
#define ZEBRA_CHECK(cond, ...)               \
  do {                                       \
    if (!(cond)) ::zebra::fail(__VA_ARGS__); \
  } while (0)
