#include "zebra/bench/statistics.hpp"

#include <algorithm>
#include <utility>

#include "zebra/util/error.hpp"
#include "zebra/util/timer.hpp"

namespace zebra::bench {

Timing summarize(std::vector<double> runs_s) {
  ZEBRA_CHECK(!runs_s.empty(), "bench: a timing needs at least one run");
  Timing t;
  t.runs_s = std::move(runs_s);
  std::vector<double> sorted = t.runs_s;
  std::sort(sorted.begin(), sorted.end());
  t.min_s = sorted.front();
  const std::size_t mid = sorted.size() / 2;
  t.median_s = sorted.size() % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);
  return t;
}

Timing time_runs(const std::function<void()>& f, int repeats, bool warmup) {
  if (warmup) f();
  std::vector<double> runs;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    Timer timer;
    f();
    runs.push_back(timer.seconds());
  }
  return summarize(std::move(runs));
}

}  // namespace zebra::bench
