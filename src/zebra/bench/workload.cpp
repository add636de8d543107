#include "zebra/bench/workload.hpp"

#include "zebra/ops/matmul.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/rng.hpp"

namespace zebra::bench {

ModelConfig default_bench_model() {
  ModelConfig c;
  c.vocab_size = 4096;
  c.d_model = 512;
  c.n_layers = 8;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 64;
  c.ffn_dim = 1408;
  c.max_seq_len = 65536;
  c.tie_embeddings = true;
  c.group_size = 4;
  c.window = 512;
  c.resolve();
  return c;
}

void fill_random(float* x, std::size_t n, std::uint64_t seed, double scale) {
  Rng rng(seed);
  for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(scale * rng.normal());
}

Timing time_square_gemm(std::int64_t s, int repeats, const ComputeOptions& options) {
  AlignedBuffer<float> a(sz(s * s)), b(sz(s * s)), c(sz(s * s));
  fill_random(a.data(), a.size(), 1);
  fill_random(b.data(), b.size(), 2);
  return time_runs(
      [&] { gemm<float>(false, false, s, s, s, 1.0f, a.data(), s, b.data(), s, 0.0f, c.data(), s, options); }, repeats);
}

double square_gemm_gflops(std::int64_t s, double seconds) {
  return 2.0 * static_cast<double>(s) * static_cast<double>(s) * static_cast<double>(s) / seconds * 1e-9;
}

}  // namespace zebra::bench
