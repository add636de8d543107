#include "zebra/ops/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "zebra/ops/compute.hpp"
#include "zebra/ops/parallel.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

std::vector<double> plain_inv_freq(double theta, std::int64_t head_dim) {
  std::vector<double> f(static_cast<std::size_t>(head_dim / 2));
  for (std::size_t k = 0; k < f.size(); ++k) {
    f[k] = std::pow(theta, -2.0 * static_cast<double>(k) / static_cast<double>(head_dim));
  }
  return f;
}

// YaRN's correction dimension: the (fractional) dimension whose wavelength makes `rotations` turns over
// `length` positions.
double yarn_correction_dim(double rotations, double head_dim, double theta, double length) {
  return head_dim * std::log(length / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(theta));
}

void check_params(const RopeParams& p) {
  ZEBRA_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0, "rope: head_dim must be a positive even number, got ", p.head_dim);
  ZEBRA_CHECK(p.theta > 0.0 && std::isfinite(p.theta), "rope: theta must be > 0, got ", p.theta);
  ZEBRA_CHECK(p.factor >= 1.0 && std::isfinite(p.factor), "rope: scaling factor must be >= 1, got ", p.factor);
  if (p.scaling == RopeScaling::kDynamic || p.scaling == RopeScaling::kYarn) {
    ZEBRA_CHECK(p.original_max_positions > 0, "rope: ", p.scaling == RopeScaling::kYarn ? "yarn" : "dynamic",
                " scaling needs original_max_positions > 0, got ", p.original_max_positions);
  }
  if (p.scaling == RopeScaling::kYarn) {
    // The correction range divides by ln(theta).
    ZEBRA_CHECK(p.theta > 1.0, "rope: yarn scaling needs theta > 1, got ", p.theta);
    ZEBRA_CHECK(p.beta_fast > 0.0 && p.beta_slow > 0.0 && std::isfinite(p.beta_fast) && std::isfinite(p.beta_slow),
                "rope: yarn beta_fast and beta_slow must be > 0, got ", p.beta_fast, " and ", p.beta_slow);
    ZEBRA_CHECK(p.attention_factor >= 0.0 && std::isfinite(p.attention_factor),
                "rope: yarn attention_factor must be >= 0 (0 = derived from the factor), got ", p.attention_factor);
  }
}

}  // namespace

std::int64_t rope_table_basis(const RopeParams& p, std::int64_t seq_len) {
  return p.scaling == RopeScaling::kDynamic ? std::max(seq_len, p.original_max_positions) : 0;
}

double rope_base(const RopeParams& p, std::int64_t seq_len) {
  const double d = static_cast<double>(p.head_dim);
  // d = 2 leaves the exponent d/(d-2) undefined: the base is kept (the only frequency is 1 anyway).
  if (p.head_dim <= 2) return p.theta;
  if (p.scaling == RopeScaling::kNtk) return p.theta * std::pow(p.factor, d / (d - 2.0));
  if (p.scaling == RopeScaling::kDynamic) {
    const double l0 = static_cast<double>(p.original_max_positions);
    const double len = static_cast<double>(rope_table_basis(p, seq_len));
    return p.theta * std::pow(p.factor * len / l0 - (p.factor - 1.0), d / (d - 2.0));
  }
  return p.theta;
}

double rope_attention_factor(const RopeParams& p) {
  if (p.scaling != RopeScaling::kYarn) return 1.0;
  if (p.attention_factor > 0.0) return p.attention_factor;
  return p.factor <= 1.0 ? 1.0 : 0.1 * std::log(p.factor) + 1.0;
}

std::vector<double> rope_inv_freq(const RopeParams& p, std::int64_t seq_len) {
  check_params(p);
  const double d = static_cast<double>(p.head_dim);
  switch (p.scaling) {
    case RopeScaling::kNone: return plain_inv_freq(p.theta, p.head_dim);
    case RopeScaling::kLinear: {
      std::vector<double> f = plain_inv_freq(p.theta, p.head_dim);
      for (double& x : f) x /= p.factor;
      return f;
    }
    case RopeScaling::kNtk:
    case RopeScaling::kDynamic: return plain_inv_freq(rope_base(p, seq_len), p.head_dim);
    case RopeScaling::kYarn: {
      const double l0 = static_cast<double>(p.original_max_positions);
      double lo = yarn_correction_dim(p.beta_fast, d, p.theta, l0);
      double hi = yarn_correction_dim(p.beta_slow, d, p.theta, l0);
      if (p.truncate) {
        lo = std::floor(lo);
        hi = std::ceil(hi);
      }
      lo = std::max(lo, 0.0);
      hi = std::min(hi, d - 1.0);
      if (lo == hi) hi += 0.001;  // as transformers: no division by zero
      std::vector<double> f = plain_inv_freq(p.theta, p.head_dim);
      for (std::size_t k = 0; k < f.size(); ++k) {
        const double ramp = std::clamp((static_cast<double>(k) - lo) / (hi - lo), 0.0, 1.0);
        f[k] = f[k] / p.factor * ramp + f[k] * (1.0 - ramp);
      }
      return f;
    }
  }
  fail("rope: unknown scaling kind ", static_cast<int>(p.scaling));
}

template <typename T>
RopeTable<T> make_rope_table(const RopeParams& p, std::int64_t n_positions, std::int64_t basis) {
  ZEBRA_CHECK(n_positions >= 0, "rope: n_positions must be >= 0, got ", n_positions);
  const std::vector<double> inv_freq = rope_inv_freq(p, basis);
  const double scale = rope_attention_factor(p);
  RopeTable<T> t;
  t.half = p.head_dim / 2;
  t.n_positions = n_positions;
  t.basis = rope_table_basis(p, basis);
  t.cos.resize(static_cast<std::size_t>(n_positions * t.half));
  t.sin.resize(t.cos.size());
  for (std::int64_t k = 0; k < t.half; ++k) {
    for (std::int64_t pos = 0; pos < n_positions; ++pos) {
      const double angle = static_cast<double>(pos) * inv_freq[static_cast<std::size_t>(k)];
      t.cos[static_cast<std::size_t>(pos * t.half + k)] = static_cast<T>(scale * std::cos(angle));
      t.sin[static_cast<std::size_t>(pos * t.half + k)] = static_cast<T>(scale * std::sin(angle));
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
void rope_forward(T* x, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n, std::int64_t n_heads,
                  std::int64_t row_stride, const ComputeOptions& options) {
  const ThreadScope threads(options);
  rotate(x, positions, table, n, n_heads, row_stride, T(1));
}

template <typename T>
void rope_backward(T* dx, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n,
                   std::int64_t n_heads, std::int64_t row_stride, const ComputeOptions& options) {
  const ThreadScope threads(options);
  rotate(dx, positions, table, n, n_heads, row_stride, T(-1));
}

template RopeTable<float> make_rope_table<float>(const RopeParams&, std::int64_t, std::int64_t);
template RopeTable<double> make_rope_table<double>(const RopeParams&, std::int64_t, std::int64_t);
template void rope_forward<float>(float*, const std::int32_t*, const RopeTable<float>&, std::int64_t, std::int64_t,
                                  std::int64_t, const ComputeOptions&);
template void rope_forward<double>(double*, const std::int32_t*, const RopeTable<double>&, std::int64_t, std::int64_t,
                                   std::int64_t, const ComputeOptions&);
template void rope_backward<float>(float*, const std::int32_t*, const RopeTable<float>&, std::int64_t, std::int64_t,
                                   std::int64_t, const ComputeOptions&);
template void rope_backward<double>(double*, const std::int32_t*, const RopeTable<double>&, std::int64_t, std::int64_t,
                                    std::int64_t, const ComputeOptions&);

}  // namespace zebra
