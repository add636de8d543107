#include "zebra/ops/rope.hpp"

#include <cmath>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

template <typename T>
RopeTable<T> make_rope_table(const RopeParams& p, std::int64_t n_positions) {
  ZEBRA_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0, "rope: head_dim must be a positive even number, got ",
              p.head_dim);
  RopeTable<T> t;
  t.half = p.head_dim / 2;
  t.n_positions = n_positions;
  double theta = p.theta;
  double pos_scale = 1.0;
  if (p.scaling == RopeScaling::kNtk && p.head_dim > 2) {
    theta *= std::pow(p.factor, static_cast<double>(p.head_dim) / static_cast<double>(p.head_dim - 2));
  } else if (p.scaling == RopeScaling::kLinear) {
    pos_scale = 1.0 / p.factor;
  }
  t.cos.resize(static_cast<std::size_t>(n_positions * t.half));
  t.sin.resize(t.cos.size());
  for (std::int64_t k = 0; k < t.half; ++k) {
    double inv_freq = std::pow(theta, -2.0 * static_cast<double>(k) / static_cast<double>(p.head_dim));
    for (std::int64_t pos = 0; pos < n_positions; ++pos) {
      double angle = static_cast<double>(pos) * pos_scale * inv_freq;
      t.cos[static_cast<std::size_t>(pos * t.half + k)] = static_cast<T>(std::cos(angle));
      t.sin[static_cast<std::size_t>(pos * t.half + k)] = static_cast<T>(std::sin(angle));
    }
  }
  return t;
}

namespace {

// sign = +1 rotates forward, -1 applies the transpose.
template <typename T>
void rotate(T* x, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n, std::int64_t n_heads,
            std::int64_t row_stride, T sign) {
  const std::int64_t half = table.half;
  for (std::int64_t i = 0; i < n; ++i) {
    ZEBRA_CHECK(positions[i] >= 0 && positions[i] < table.n_positions, "rope: position ", positions[i],
                " outside the table [0, ", table.n_positions, ")");
  }
#pragma omp parallel for schedule(static) if (worth_parallel(n * n_heads * 2 * half))
  for (std::int64_t i = 0; i < n; ++i) {
    const T* c = table.cos.data() + static_cast<std::int64_t>(positions[i]) * half;
    const T* s = table.sin.data() + static_cast<std::int64_t>(positions[i]) * half;
    for (std::int64_t h = 0; h < n_heads; ++h) {
      T* a = x + i * row_stride + h * 2 * half;
      T* b = a + half;
      for (std::int64_t k = 0; k < half; ++k) {
        T x0 = a[k], x1 = b[k], sk = sign * s[k];
        a[k] = x0 * c[k] - x1 * sk;
        b[k] = x0 * sk + x1 * c[k];
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(T* x, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n,
                  std::int64_t n_heads, std::int64_t row_stride, const ComputeOptions& options) {
  const ThreadScope threads(options);
  rotate(x, positions, table, n, n_heads, row_stride, T(1));
}

template <typename T>
void rope_backward(T* dx, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n,
                   std::int64_t n_heads, std::int64_t row_stride, const ComputeOptions& options) {
  const ThreadScope threads(options);
  rotate(dx, positions, table, n, n_heads, row_stride, T(-1));
}

template RopeTable<float> make_rope_table<float>(const RopeParams&, std::int64_t);
template RopeTable<double> make_rope_table<double>(const RopeParams&, std::int64_t);
template void rope_forward<float>(float*, const std::int32_t*, const RopeTable<float>&, std::int64_t, std::int64_t,
                                  std::int64_t, const ComputeOptions&);
template void rope_forward<double>(double*, const std::int32_t*, const RopeTable<double>&, std::int64_t,
                                   std::int64_t, std::int64_t, const ComputeOptions&);
template void rope_backward<float>(float*, const std::int32_t*, const RopeTable<float>&, std::int64_t, std::int64_t,
                                   std::int64_t, const ComputeOptions&);
template void rope_backward<double>(double*, const std::int32_t*, const RopeTable<double>&, std::int64_t,
                                    std::int64_t, std::int64_t, const ComputeOptions&);

}  // namespace zebra
