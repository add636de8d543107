// The inputs the modes share: the bench model, random buffers, and the square sgemm that stands for "the best
// the machine reaches" (the gemm mode's peak, the train mode's MFU denominator).
#pragma once

#include <cstddef>
#include <cstdint>

#include "zebra/bench/statistics.hpp"
#include "zebra/model/config.hpp"
#include "zebra/ops/compute.hpp"

namespace zebra::bench {

inline std::size_t sz(std::int64_t v) { return static_cast<std::size_t>(v); }

// The model the train and gemm modes use unless given a config: about 25 M parameters (d 512, 8 layers,
// 8 heads over 4 KV heads of 64, ffn 1408, vocab 4096, tied), Zebra pattern GLLLGLLL with window 512.
ModelConfig default_bench_model();

// x[n] = scale * N(0, 1) draws from Rng(seed).
void fill_random(float* x, std::size_t n, std::uint64_t seed, double scale = 1.0);

// C = A B on random s x s fp32 matrices through zebra::gemm (with `options`' backend and threads), timed as
// time_runs.
Timing time_square_gemm(std::int64_t s, int repeats, const ComputeOptions& options = {});
// 2 s^3 FLOPs over `seconds`, in GFLOP/s.
double square_gemm_gflops(std::int64_t s, double seconds);

}  // namespace zebra::bench
