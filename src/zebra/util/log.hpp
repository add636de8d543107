// Minimal leveled logging to stderr.
#pragma once

#include <iostream>
#include <utility>

#include "zebra/util/error.hpp"

namespace zebra {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

LogLevel& log_level();

template <typename... Args>
void log(LogLevel level, Args&&... args) {
  if (level < log_level()) return;
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::cerr << "[zebra " << names[static_cast<int>(level)] << "] " << str_cat(std::forward<Args>(args)...) << '\n';
}

template <typename... Args>
void log_info(Args&&... args) {
  log(LogLevel::kInfo, std::forward<Args>(args)...);
}
template <typename... Args>
void log_warn(Args&&... args) {
  log(LogLevel::kWarn, std::forward<Args>(args)...);
}

}  // namespace zebra
