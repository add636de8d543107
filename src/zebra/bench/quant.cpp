#include "zebra/bench/quant.hpp"

#include <omp.h>

#include <nlohmann/json.hpp>

#include "zebra/bench/bandwidth.hpp"
#include "zebra/bench/report.hpp"
#include "zebra/ops/quant/quant.hpp"
#include "zebra/ops/weight_kernels.hpp"
#include "zebra/ops/weight_matmul.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::bench {

namespace {

// The rows of `matrices` copies of one random matrix in dtype (each copy its own memory).
AlignedBuffer<std::uint8_t> make_weights(DType dtype, const QuantOptions& o, std::int64_t matrices) {
  const std::size_t rb = dtype_row_bytes(dtype, o.cols), one = rb * static_cast<std::size_t>(o.rows);
  AlignedBuffer<std::uint8_t> bytes(one * static_cast<std::size_t>(matrices));
  Rng rng(3);
  std::vector<float> row(static_cast<std::size_t>(o.cols));
  for (std::int64_t r = 0; r < o.rows; ++r) {
    for (float& x : row) x = static_cast<float>(0.05 * rng.normal());
    quant::quantize_row(dtype, row.data(), bytes.data() + static_cast<std::size_t>(r) * rb, o.cols);
  }
  for (std::int64_t m = 1; m < matrices; ++m)
    std::memcpy(bytes.data() + one * static_cast<std::size_t>(m), bytes.data(), one);
  return bytes;
}

}  // namespace

QuantReport run_quant(const QuantOptions& o) {
  ZEBRA_CHECK(o.rows > 0 && o.cols > 0 && o.cols % 32 == 0,
              "bench quant: --rows must be > 0 and --cols a multiple of 32, got ", o.rows, " x ", o.cols);
  QuantReport rep;
  rep.options = o;
  rep.machine = machine_info(o.compute);
  rep.matrices = std::max<std::int64_t>(1, o.total_bytes / (o.rows * o.cols * 4));
  std::vector<float> x(static_cast<std::size_t>(o.cols)), out(static_cast<std::size_t>(o.rows));
  Rng rng(5);
  for (float& v : x) v = static_cast<float>(rng.normal());

  struct Case {
    DType dtype;
    const char* route;
  };
  const Case cases[] = {{DType::kF32, "blas"},      {DType::kBF16, "16-bit"},   {DType::kF16, "16-bit"},
                        {DType::kQ8_0, "q8act"},    {DType::kQ8_0, "unpacked"}, {DType::kQ4_0, "q8act"},
                        {DType::kQ4_0, "unpacked"}, {DType::kQ4_1, "q8act"},    {DType::kQ4_1, "unpacked"},
                        {DType::kQ8_0R, "q8act"},   {DType::kQ4_0R, "q8act"},   {DType::kQ4_1R, "q8act"}};
  for (const Case& c : cases) {
    const AlignedBuffer<std::uint8_t> w = make_weights(c.dtype, o, rep.matrices);
    const std::size_t rb = dtype_row_bytes(c.dtype, o.cols), one = rb * static_cast<std::size_t>(o.rows);
    const bool unpacked = std::string(c.route) == "unpacked";
    const WeightTypeKernels* k = unpacked ? unpacked_weight_kernels(c.dtype) : nullptr;
    const int threads = o.compute.threads > 0 ? o.compute.threads : omp_get_max_threads();
    QuantRow row;
    row.dtype = to_string(c.dtype);
    row.route = c.route;
    row.bytes = static_cast<std::int64_t>(one) * rep.matrices;
    row.t = time_runs(
        [&] {
          for (std::int64_t m = 0; m < rep.matrices; ++m) {
            const WeightMatrix wm{c.dtype, w.data() + one * static_cast<std::size_t>(m), o.rows, o.cols, rb};
            if (!unpacked) {
              weight_matmul(out.data(), o.rows, x.data(), 1, wm, o.compute);
              continue;
            }
            // The unpacked kernel, threaded over row tasks as weight_matmul threads its entries.
            constexpr std::int64_t kTask = 16;
            const std::int64_t tasks = (o.rows + kTask - 1) / kTask;
#pragma omp parallel for schedule(static) num_threads(threads)
            for (std::int64_t t = 0; t < tasks; ++t) {
              const std::int64_t r0 = t * kTask;
              k->gemv(out.data() + r0, o.rows, x.data(), 1, wm, r0, std::min(kTask, o.rows - r0), o.compute.simd);
            }
          }
        },
        o.repeats);
    row.gb_per_s = static_cast<double>(row.bytes) / row.t.min_s / 1e9;
    row.weights_per_ns = static_cast<double>(o.rows * o.cols * rep.matrices) / row.t.min_s / 1e9;
    rep.rows.push_back(row);
  }
  {
    // The read bound over as many bytes as the F32 weights.
    const std::int64_t n = o.rows * o.cols * rep.matrices / 2;
    AlignedBuffer<std::uint64_t> words(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) words.data()[i] = static_cast<std::uint64_t>(i);
    std::uint64_t sink = 0;
    const Timing t = time_runs([&] { sink += read_words(words.data(), n, o.compute.threads); }, o.repeats);
    rep.read_gb_per_s = static_cast<double>(n * 8) / t.min_s / 1e9 + static_cast<double>(sink & 0);
  }
  finish_machine_info(rep.machine);
  return rep;
}

void QuantReport::print(std::FILE* out) const {
  std::fprintf(out, "matrix-vector products: %lld matrices [%lld, %lld] per run, minimum of %d runs\n",
               static_cast<long long>(matrices), static_cast<long long>(options.rows),
               static_cast<long long>(options.cols), options.repeats);
  std::fprintf(out, "%-6s %-9s %10s %10s %10s %12s %10s\n", "dtype", "route", "MB", "min ms", "GB/s", "weights/ns",
               "of read");
  for (const QuantRow& r : rows) {
    std::fprintf(out, "%-6s %-9s %10.1f %10.2f %10.2f %12.2f %9.0f%%\n", r.dtype.c_str(), r.route.c_str(),
                 static_cast<double>(r.bytes) / 1e6, r.t.min_s * 1e3, r.gb_per_s, r.weights_per_ns,
                 100.0 * r.gb_per_s / read_gb_per_s);
  }
  std::fprintf(out, "read bandwidth (bench bandwidth's read kernel, same bytes as F32): %.2f GB/s\n", read_gb_per_s);
  print_machine(out, machine);
}

nlohmann::json QuantReport::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const QuantRow& r : rows) {
    rows_json.push_back({{"dtype", r.dtype},
                         {"route", r.route},
                         {"bytes", r.bytes},
                         {"gb_per_s", r.gb_per_s},
                         {"weights_per_ns", r.weights_per_ns},
                         {"timing", timing_json(r.t)}});
  }
  return {{"mode", "quant"},
          {"machine", machine_json(machine)},
          {"rows", options.rows},
          {"cols", options.cols},
          {"matrices", matrices},
          {"repeats", options.repeats},
          {"read_gb_per_s", read_gb_per_s},
          {"results", rows_json}};
}

}  // namespace zebra::bench
