// Rotary position embedding in the Hugging Face "rotate half" layout: within each head of size hd,
// element k pairs with element k + hd/2 (k < hd/2) and the pair rotates by angle pos * inv_freq[k],
// inv_freq[k] = theta^(-2k/hd).
// Context extension: linear scaling divides positions by `factor`; NTK-aware scaling raises the base
// to theta * factor^(hd / (hd - 2)).
#pragma once

#include <cstdint>
#include <vector>

#include "zebra/ops/compute.hpp"

namespace zebra {

enum class RopeScaling { kNone, kLinear, kNtk };

struct RopeParams {
  std::int64_t head_dim = 0;
  double theta = 10000.0;
  RopeScaling scaling{};
  double factor = 1.0;
};

// cos/sin of every (position, frequency) for positions [0, n_positions).
template <typename T>
struct RopeTable {
  std::int64_t half = 0;         // head_dim / 2
  std::int64_t n_positions = 0;
  std::vector<T> cos;            // [n_positions, half]
  std::vector<T> sin;            // [n_positions, half]
};

template <typename T>
RopeTable<T> make_rope_table(const RopeParams& p, std::int64_t n_positions);

// Rotates x in place. x: [N, n_heads, head_dim] with row stride `row_stride` elements between tokens;
// positions[N] < table.n_positions. options: threads (ops/compute.hpp).
template <typename T>
void rope_forward(T* x, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n,
                  std::int64_t n_heads, std::int64_t row_stride, const ComputeOptions& options = {});

// In place: turns d(rotated x) into d(x) (the rotation is orthogonal: apply its transpose).
template <typename T>
void rope_backward(T* dx, const std::int32_t* positions, const RopeTable<T>& table, std::int64_t n,
                   std::int64_t n_heads, std::int64_t row_stride, const ComputeOptions& options = {});

}  // namespace zebra
