// When an elementwise or row-wise op is worth a parallel region.
//
// Waking the OpenMP team and joining it costs a few microseconds when its threads are spinning and far more when
// they sleep or another process holds a core (the barrier then waits for a descheduled thread). A small model
// makes dozens of calls per layer on a few thousand elements each, where that cost dominated a training step;
// below this size a loop runs on the calling thread. 2^15 floats is ~10 us of one core's memory-bound work.
#pragma once

#include <cstdint>

namespace zebra {

inline constexpr std::int64_t kParallelMinElements = std::int64_t{1} << 15;

inline bool worth_parallel(std::int64_t elements) { return elements >= kParallelMinElements; }

}  // namespace zebra
