// Google Benchmark micro-benchmarks of the kernels (docs/performance.md). The CPU column is the calling
// thread's CPU time: with OMP_NUM_THREADS=1 it is the kernel's own cost even on a busy machine, which makes it
// the figure to compare kernel variants by; the Time column is wall-clock.
//
//   OMP_NUM_THREADS=1 build/zebra_microbench --benchmark_filter=Attention
//
// Counters: FLOPS (per second of CPU time) counts visible attention pairs (forward 4 hd per pair and head,
// backward 2.5 x that) or 2 m n k for products; bytes/s for the memory-bound elementwise kernels.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "zebra/ops/adamw.hpp"
#include "zebra/ops/attention.hpp"
#include "zebra/ops/cross_entropy.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/ops/matmul.hpp"
#include "zebra/ops/rmsnorm.hpp"
#include "zebra/ops/rope.hpp"
#include "zebra/ops/swiglu.hpp"
#include "zebra/util/aligned_buffer.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

void fill(AlignedBuffer<float>& b, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  for (float& x : b) x = static_cast<float>(scale * rng.normal());
}

// The attention layer of the bench model: 8 heads over 4 KV heads of 64, fused QKV layout, one sequence.
struct AttentionData {
  std::int64_t t, h = 8, hkv = 4, hd = 64, width;
  AlignedBuffer<float> qkv, dqkv, out, dout, lse;
  explicit AttentionData(std::int64_t seq) : t(seq), width((h + 2 * hkv) * hd) {
    qkv.resize(static_cast<std::size_t>(t * width));
    dqkv.resize(qkv.size());
    out.resize(static_cast<std::size_t>(t * h * hd));
    dout.resize(out.size());
    lse.resize(static_cast<std::size_t>(h * t));
    fill(qkv, 1);
    fill(dout, 2);
  }
  AttentionShape shape() const { return AttentionShape{1, t, h, hkv, hd, width, width}; }
  const float* q() const { return qkv.data(); }
  const float* k() const { return qkv.data() + h * hd; }
  const float* v() const { return qkv.data() + (h + hkv) * hd; }
};

// args: T, window (0 = global), kernel (AttentionKernel)
ComputeOptions kernel_options(benchmark::State& state, std::int64_t arg) {
  ComputeOptions o;
  o.attention = static_cast<AttentionKernel>(arg);
  try {
    resolve_attention_kernel(o);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  return o;
}

void BM_AttentionForward(benchmark::State& state) {
  AttentionData a(state.range(0));
  const std::int64_t w = state.range(1) == 0 ? kGlobalWindow : state.range(1);
  const ComputeOptions o = kernel_options(state, state.range(2));
  const AttentionMask mask{w, nullptr, nullptr};
  for (auto _ : state) {
    attention_forward(a.out.data(), a.lse.data(), a.q(), a.k(), a.v(), a.shape(), mask, o);
    benchmark::ClobberMemory();
  }
  const double flops = 4.0 * static_cast<double>(a.hd * a.h) * attention_visible_pairs(a.t, w);
  state.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_AttentionBackward(benchmark::State& state) {
  AttentionData a(state.range(0));
  const std::int64_t w = state.range(1) == 0 ? kGlobalWindow : state.range(1);
  const ComputeOptions o = kernel_options(state, state.range(2));
  const AttentionMask mask{w, nullptr, nullptr};
  attention_forward(a.out.data(), a.lse.data(), a.q(), a.k(), a.v(), a.shape(), mask, o);
  float* dq = a.dqkv.data();
  for (auto _ : state) {
    attention_backward(dq, dq + a.h * a.hd, dq + (a.h + a.hkv) * a.hd, a.dout.data(), a.out.data(), a.lse.data(), a.q(),
                       a.k(), a.v(), a.shape(), mask, o);
    benchmark::ClobberMemory();
  }
  const double flops = 10.0 * static_cast<double>(a.hd * a.h) * attention_visible_pairs(a.t, w);
  state.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

void attention_args(benchmark::internal::Benchmark* b) {
  for (int kernel : {static_cast<int>(AttentionKernel::kScalar), static_cast<int>(AttentionKernel::kAvx2),
                     static_cast<int>(AttentionKernel::kAvx512)}) {
    b->Args({1024, 0, kernel});
    b->Args({4096, 0, kernel});
    b->Args({4096, 512, kernel});
    b->Args({4096, 128, kernel});
  }
  b->ArgNames({"T", "window", "kernel"});
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_AttentionForward)->Apply(attention_args);
BENCHMARK(BM_AttentionBackward)->Apply(attention_args);

// A product of a training step of the bench model: [4096, in] x [out, in]^T.
void BM_MatmulForward(benchmark::State& state) {
  const std::int64_t n = 4096, in = state.range(0), out = state.range(1);
  AlignedBuffer<float> x(static_cast<std::size_t>(n * in)), w(static_cast<std::size_t>(out * in)),
      y(static_cast<std::size_t>(n * out));
  fill(x, 1);
  fill(w, 2, 0.02);
  MatmulOptions o;
  o.bf16 = state.range(2) != 0;
  for (auto _ : state) {
    matmul_forward(y.data(), x.data(), w.data(), n, in, out, o);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] =
      benchmark::Counter(2.0 * static_cast<double>(n * in * out), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MatmulForward)
    ->Args({512, 1024, 0})
    ->Args({512, 2816, 0})
    ->Args({1408, 512, 0})
    ->Args({512, 2816, 1})
    ->ArgNames({"in", "out", "bf16"})
    ->Unit(benchmark::kMillisecond);

// Square sgemm: the reference rate the kernels are compared with.
void BM_SquareSgemm(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  AlignedBuffer<float> a(static_cast<std::size_t>(n * n)), b(a.size()), c(a.size());
  fill(a, 1);
  fill(b, 2);
  for (auto _ : state) {
    gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] =
      benchmark::Counter(2.0 * static_cast<double>(n * n * n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SquareSgemm)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond);

// Elementwise kernels on [rows, d] activations of the bench model (d 512, ffn 1408).
void BM_RmsNorm(benchmark::State& state) {
  const std::int64_t n = state.range(0), d = 512;
  AlignedBuffer<float> x(static_cast<std::size_t>(n * d)), y(x.size()), dx(x.size()), dy(x.size()), g(512), dg(512),
      rstd(static_cast<std::size_t>(n));
  fill(x, 1);
  fill(dy, 2);
  for (float& v : g) v = 1.0f;
  for (auto _ : state) {
    rmsnorm_forward(y.data(), rstd.data(), x.data(), g.data(), n, d, 1e-5);
    rmsnorm_backward(dx.data(), dg.data(), dy.data(), x.data(), g.data(), rstd.data(), n, d);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * n * d * 4 * 6);
}
BENCHMARK(BM_RmsNorm)->Arg(96)->Arg(4096)->Unit(benchmark::kMicrosecond);

void BM_SwiGlu(benchmark::State& state) {
  const std::int64_t n = state.range(0), f = 1408;
  AlignedBuffer<float> gu(static_cast<std::size_t>(n * 2 * f)), dgu(gu.size()), y(static_cast<std::size_t>(n * f)),
      dy(y.size());
  fill(gu, 1);
  fill(dy, 2);
  for (auto _ : state) {
    swiglu_forward(y.data(), gu.data(), n, f);
    swiglu_backward(dgu.data(), dy.data(), gu.data(), n, f);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * n * f * 4 * 7);
}
BENCHMARK(BM_SwiGlu)->Arg(96)->Arg(4096)->Unit(benchmark::kMicrosecond);

void BM_Rope(benchmark::State& state) {
  const std::int64_t n = state.range(0), heads = 8, hd = 64, stride = 16 * 64;
  AlignedBuffer<float> x(static_cast<std::size_t>(n * stride));
  fill(x, 1);
  std::vector<std::int32_t> pos(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i);
  const RopeTable<float> table = make_rope_table<float>(RopeParams{hd, 10000.0, RopeScaling::kNone, 1.0}, n);
  for (auto _ : state) {
    rope_forward(x.data(), pos.data(), table, n, heads, stride);
    rope_backward(x.data(), pos.data(), table, n, heads, stride);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * n * heads * hd * 4 * 4);
}
BENCHMARK(BM_Rope)->Arg(96)->Arg(4096)->Unit(benchmark::kMicrosecond);

void BM_CrossEntropy(benchmark::State& state) {
  const std::int64_t rows = 256, vocab = state.range(0);
  AlignedBuffer<float> logits(static_cast<std::size_t>(rows * vocab)), work(logits.size());
  fill(logits, 1);
  std::vector<std::int32_t> targets(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) targets[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(i % vocab);
  for (auto _ : state) {
    work = logits;
    std::int64_t valid = 0;
    benchmark::DoNotOptimize(cross_entropy_forward(work.data(), targets.data(), rows, vocab, &valid));
    cross_entropy_backward(work.data(), work.data(), targets.data(), rows, vocab, 1.0f / rows);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * rows * vocab * 4 * 4);
}
BENCHMARK(BM_CrossEntropy)->Arg(4096)->Arg(32000)->Unit(benchmark::kMicrosecond);

void BM_AdamW(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  AlignedBuffer<float> p(static_cast<std::size_t>(n)), g(p.size()), m(p.size()), v(p.size());
  fill(p, 1, 0.02);
  fill(g, 2, 1e-3);
  AdamWHyper h;
  std::int64_t step = 0;
  for (auto _ : state) {
    adamw_update(p.data(), g.data(), m.data(), v.data(), n, h, ++step, true);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * n * 4 * 7);
}
BENCHMARK(BM_AdamW)->Arg(1 << 16)->Arg(25 << 20)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace zebra

BENCHMARK_MAIN();
