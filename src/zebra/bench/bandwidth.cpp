#include "zebra/bench/bandwidth.hpp"

#include <omp.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "zebra/bench/report.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"

namespace zebra::bench {

namespace {

int threads_of(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

}  // namespace

std::uint64_t read_words(const std::uint64_t* words, std::int64_t n, int threads) {
  std::uint64_t sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum) num_threads(threads_of(threads))
  for (std::int64_t i = 0; i < n; ++i) sum += words[i];
  return sum;
}

BandwidthReport run_bandwidth(const BandwidthOptions& o) {
  ZEBRA_CHECK(o.bytes >= (std::int64_t{1} << 20), "bench bandwidth: --bytes must be at least 1 MiB, got ", o.bytes);
  BandwidthReport rep;
  rep.options = o;
  rep.machine = machine_info(o.compute);
  const int threads = threads_of(o.compute.threads);
  const std::int64_t n = o.bytes / 8;
  AlignedBuffer<std::uint64_t> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
  // First touch from the threads that use the pages later (static schedule, same split as the kernels).
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t i = 0; i < n; ++i) {
    a.data()[i] = static_cast<std::uint64_t>(i);
    b.data()[i] = 0;
  }
  std::uint64_t* pa = a.data();
  std::uint64_t* pb = b.data();
  auto add = [&](const char* kernel, std::int64_t bytes, const std::function<void()>& f) {
    BandwidthRow row;
    row.kernel = kernel;
    row.bytes = bytes;
    row.t = time_runs(f, o.repeats);
    row.gb_per_s = static_cast<double>(bytes) / row.t.min_s / 1e9;
    rep.rows.push_back(row);
  };
  add("read", n * 8, [&] { rep.checksum = read_words(pa, n, threads); });
  add("write", n * 8, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t i = 0; i < n; ++i) pb[i] = 7;
  });
  add("copy", n * 16, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t i = 0; i < n; ++i) pb[i] = pa[i];
  });
  finish_machine_info(rep.machine);
  return rep;
}

void BandwidthReport::print(std::FILE* out) const {
  std::fprintf(out, "memory bandwidth: buffers of %.0f MiB, minimum of %d runs\n",
               static_cast<double>(options.bytes) / (1 << 20), options.repeats);
  std::fprintf(out, "%-8s %12s %12s %12s\n", "kernel", "GB/s", "min ms", "median ms");
  for (const BandwidthRow& r : rows) {
    std::fprintf(out, "%-8s %12.2f %12.2f %12.2f\n", r.kernel.c_str(), r.gb_per_s, r.t.min_s * 1e3, r.t.median_s * 1e3);
  }
  print_machine(out, machine);
}

nlohmann::json BandwidthReport::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const BandwidthRow& r : rows) {
    rows_json.push_back(
        {{"kernel", r.kernel}, {"bytes", r.bytes}, {"gb_per_s", r.gb_per_s}, {"timing", timing_json(r.t)}});
  }
  return {{"mode", "bandwidth"},
          {"machine", machine_json(machine)},
          {"bytes", options.bytes},
          {"repeats", options.repeats},
          {"rows", rows_json}};
}

}  // namespace zebra::bench
