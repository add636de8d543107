// One registration function per subcommand; main.cpp calls each. A subcommand's file parses its
// arguments and calls the library; the work itself lives in the library.
#pragma once

namespace CLI {
class App;
}

namespace zebra {

void add_info_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_tasks_command(CLI::App& app);
void add_plot_command(CLI::App& app);
// `zebra bench gemm|attention|train|bf16`: speed measurements (src/zebra/bench/, docs/performance.md).
void add_bench_command(CLI::App& app);
// `zebra generate MODEL`: text generation with the KV cache (model/generator.hpp).
void add_generate_command(CLI::App& app);
// `zebra chat MODEL`: interactive chat keeping the KV cache between turns.
void add_chat_command(CLI::App& app);
// `zebra eval ppl|...`: evaluations (eval/).
void add_eval_command(CLI::App& app);
// `zebra convert IN OUT`: any loadable model to a zebra / Hugging Face model directory.
void add_convert_command(CLI::App& app);
void add_quantize_command(CLI::App& app);

}  // namespace zebra
