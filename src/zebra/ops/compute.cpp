#include "zebra/ops/compute.hpp"

#include <omp.h>

#include <cstdlib>
#include <string>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

GemmBackend initial_backend() {
  const char* env = std::getenv("ZEBRA_GEMM");
  if (env == nullptr || *env == '\0') return GemmBackend::kAuto;
  const std::string v(env);
  if (v == "blas") return GemmBackend::kBlasThreads;
  if (v == "chunked") return GemmBackend::kChunked;
  if (v == "auto") return GemmBackend::kAuto;
  fail("ZEBRA_GEMM must be blas, chunked or auto, got '", v.substr(0, 64), "'");
}

}  // namespace

GemmBackend default_gemm_backend() {
  static const GemmBackend backend = initial_backend();
  return backend;
}

const char* to_string(GemmBackend backend) {
  switch (backend) {
    case GemmBackend::kBlasThreads: return "blas-threads";
    case GemmBackend::kChunked: return "chunked";
    case GemmBackend::kAuto: return "auto";
  }
  return "?";
}

const char* to_string(AttentionKernel kernel) {
  switch (kernel) {
    case AttentionKernel::kDefault: return "default";
    case AttentionKernel::kScalar: return "scalar";
    case AttentionKernel::kAvx2: return "avx2";
    case AttentionKernel::kAvx512: return "avx512";
    case AttentionKernel::kAvx512OnAvx2: return "avx512-layout-on-avx2";
  }
  return "?";
}

ThreadScope::ThreadScope(const ComputeOptions& options) {
  ZEBRA_CHECK(options.threads >= 0, "ComputeOptions::threads must be >= 0 (0: the OpenMP default), got ",
              options.threads);
  if (options.threads == 0) return;
  const int current = omp_get_max_threads();
  if (current == options.threads) return;
  saved_ = current;
  omp_set_num_threads(options.threads);
}

ThreadScope::~ThreadScope() {
  if (saved_ > 0) omp_set_num_threads(saved_);
}

}  // namespace zebra
