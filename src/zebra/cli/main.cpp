// The zebra program: one binary, one file per subcommand (DESIGN.md §4).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "zebra/cli/commands.hpp"
#include "zebra/train/communicator.hpp"
#include "zebra/util/error.hpp"

namespace {

// OpenBLAS 0.3.21 does not know Zen 5 and falls back to its Zen (AVX2) kernels; its SkylakeX
// (AVX-512) kernels are about 1.7x faster here (DESIGN.md §5). The core type is read when the
// library loads, before main, so the program re-executes itself once with it set. A user's own
// OPENBLAS_CORETYPE is respected.
void select_blas_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("ZEBRA_NO_REEXEC") != nullptr) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl")) {
    return;
  }
  ::setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run with the default kernels
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argv);
  // Under mpirun this process is one rank of a job; alone, no MPI call is made.
  const zebra::MpiSession mpi(&argc, &argv);
  const zebra::Communicator world = zebra::Communicator::world();
  CLI::App app{"zebra: train and run long-context models with grouped local-global attention"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "zebra 0.1.0");
  zebra::add_info_command(app);
  zebra::add_prepare_command(app);
  zebra::add_train_command(app);
  zebra::add_tasks_command(app);
  zebra::add_plot_command(app);
  zebra::add_bench_command(app);
  zebra::add_generate_command(app);
  zebra::add_chat_command(app);
  zebra::add_eval_command(app);
  zebra::add_convert_command(app);
  zebra::add_quantize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // One rank's failure ends the job: the other ranks would wait for it forever.
    if (world.distributed()) {
      world.abort_job(zebra::str_cat("zebra: error on rank ", world.rank(), " of ", world.size(), ": ", e.what()), 1);
    }
    std::fprintf(stderr, "zebra: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
