#include "zebra/util/log.hpp"

namespace zebra {

LogLevel& log_level() {
  static LogLevel level = LogLevel::kInfo;
  return level;
}

}  // namespace zebra
