// What the machine has and what this process uses, for the memory plan printed before training.
#pragma once

#include <cstdint>

namespace zebra {

// MemAvailable from /proc/meminfo in bytes (0 when unknown).
std::int64_t available_memory_bytes();
// Peak resident set size of this process in bytes (VmHWM).
std::int64_t peak_rss_bytes();

}  // namespace zebra
