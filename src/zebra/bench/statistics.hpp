// Repeated timings and their summary. Every figure of `zebra bench` is the minimum over its timed runs (the
// machine is shared and noisy: the minimum is the best estimate of what the code can do); the median is kept
// next to it to show the spread.
#pragma once

#include <functional>
#include <vector>

namespace zebra::bench {

// Minimum and median of repeated timings, and the runs in the order they were taken.
struct Timing {
  double min_s = 0.0;
  double median_s = 0.0;
  std::vector<double> runs_s;
};

// Summary of `runs_s` (at least one run): the median of an even count is the mean of the middle two.
Timing summarize(std::vector<double> runs_s);

// Runs f once to warm up (unless `warmup` is false), then max(1, repeats) timed runs.
Timing time_runs(const std::function<void()>& f, int repeats, bool warmup = true);

}  // namespace zebra::bench
