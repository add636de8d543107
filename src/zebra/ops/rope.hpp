// Rotary position embedding in the Hugging Face "rotate half" layout: within each head of size hd,
// element k pairs with element k + hd/2 (k < hd/2) and the pair rotates by angle pos * inv_freq[k],
// inv_freq[k] = theta^(-2k/hd) without scaling.
//
// Context extension: the formulas of transformers' `rope_type` variants (modeling_rope_utils.py), with
// d = head_dim, f = factor, b = theta:
//   kLinear  ("linear")   inv_freq[k] = b^(-2k/d) / f (positions divided by f).
//   kNtk     (zebra's "ntk", static NTK-aware) the base becomes b * f^(d/(d-2)) for every length.
//   kDynamic ("dynamic")  for a forward pass whose largest position is L - 1, with L0 = original_max_positions:
//                         the base becomes b * (f L'/L0 - (f - 1))^(d/(d-2)), L' = max(L, L0); so it is the
//                         plain base up to L0 and grows with the length past it (the table depends on L).
//   kYarn    ("yarn")     inv_freq[k] = interp[k] ramp[k] + extrap[k] (1 - ramp[k]), extrap = b^(-2k/d),
//                         interp = extrap / f, ramp[k] = clamp((k - lo) / (hi - lo), 0, 1) where lo/hi are the
//                         dimensions at which a wavelength makes beta_fast / beta_slow turns over L0,
//                         dim(r) = d ln(L0 / (2 pi r)) / (2 ln b), lo = max(floor(dim(beta_fast)), 0),
//                         hi = min(ceil(dim(beta_slow)), d - 1) (without `truncate`: no floor/ceil), and
//                         hi = lo + 0.001 when equal; cos and sin are multiplied by the attention factor
//                         (0.1 ln f + 1 unless given), so that q·k scales by its square.
#pragma once

#include <cstdint>
#include <vector>

#include "zebra/ops/compute.hpp"

namespace zebra {

enum class RopeScaling { kNone, kLinear, kNtk, kDynamic, kYarn };

struct RopeParams {
  std::int64_t head_dim = 0;
  double theta = 10000.0;
  RopeScaling scaling{};
  double factor = 1.0;
  std::int64_t original_max_positions = 0;  // L0 of kDynamic and kYarn (> 0 for them)
  double beta_fast = 32.0;                  // kYarn
  double beta_slow = 1.0;                   // kYarn
  double attention_factor = 0.0;            // kYarn: cos/sin multiplier; 0 = 0.1 ln(factor) + 1
  bool truncate = true;                     // kYarn: floor/ceil the correction range
};

// inv_freq[head_dim / 2] for a forward pass over positions [0, seq_len) (only kDynamic depends on seq_len).
std::vector<double> rope_inv_freq(const RopeParams& p, std::int64_t seq_len);
// The base the frequencies of kNone, kNtk and kDynamic are powers of (theta for the other kinds).
double rope_base(const RopeParams& p, std::int64_t seq_len);
// The multiplier of cos and sin: 1 except for kYarn.
double rope_attention_factor(const RopeParams& p);
// The length a table for a forward pass over [0, seq_len) is built for: max(seq_len, L0) for kDynamic, 0 for
// every other kind (their tables do not depend on the length, so any table with enough rows serves).
std::int64_t rope_table_basis(const RopeParams& p, std::int64_t seq_len);

// cos/sin of every (position, frequency) for positions [0, n_positions), attention factor included.
template <typename T>
struct RopeTable {
  std::int64_t half = 0;  // head_dim / 2
  std::int64_t n_positions = 0;
  std::int64_t basis = 0;  // rope_table_basis() it was built for
  std::vector<T> cos;      // [n_positions, half]
  std::vector<T> sin;      // [n_positions, half]
};

// The table for positions [0, n_positions), with the frequencies of a pass whose basis is `basis`
// (rope_table_basis(p, seq_len); 0 for kinds that do not depend on the length).
template <typename T>
RopeTable<T> make_rope_table(const RopeParams& p, std::int64_t n_positions, std::int64_t basis = 0);

// Rotates x in place. x: [N, n_heads, head_dim] with row stride `row_stride` elements between tokens;
// positions[N] < table.n_positions. options: threads (ops/compute.hpp).
template <typename T>
void rope_forward(T* x, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n, std::int64_t n_heads,
                  std::int64_t row_stride, const ComputeOptions& options = {});

// In place: turns d(rotated x) into d(x). The map is a times a rotation (a = attention factor), so its
// transpose is a times the inverse rotation: the same table with the sine negated.
template <typename T>
void rope_backward(T* dx, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n,
                   std::int64_t n_heads, std::int64_t row_stride, const ComputeOptions& options = {});

}  // namespace zebra
