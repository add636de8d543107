// zebra convert IN OUT [--group-size L --window W] [--dtype f32|bf16|f16] [--tokenizer F]
// Any loadable model (model directory, llama2.c .bin) to a zebra / Hugging Face model directory, optionally
// re-laid as Zebra, with its tokenizer copied beside the weights.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/io/safetensors.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

struct ConvertArgs {
  std::string in, out, dtype = "f32", tokenizer;
  AdjustArgs adjust;
};

void run_convert(const ConvertArgs& a) {
  const DType dtype = parse_dtype(a.dtype);
  ZEBRA_CHECK(dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16,
              "convert: --dtype must be f32, bf16 or f16, got ", a.dtype);
  std::error_code ec;
  ZEBRA_CHECK(std::filesystem::weakly_canonical(a.in, ec) != std::filesystem::weakly_canonical(a.out, ec),
              "convert: OUT must differ from IN ('", a.in, "')");
  const LoadedModel m = load_any_model(a.in, adjustment_of(a.adjust), a.tokenizer);
  SaveModelOptions options;
  options.dtype = dtype;
  // Saved under the tokenizer's canonical name (tokenizer.model / tokenizer.bin, not e.g. tok512.bin) so
  // that the directory finds it again; loading it also checks that it fits the model's vocabulary.
  std::unique_ptr<Tokenizer> tok;
  if (!m.tokenizer_path.empty()) tok = load_model_tokenizer(m);
  options.tokenizer = tok.get();
  options.metadata["zebra.converted_from"] = a.in;
  save_model_dir(a.out, m.params, options);
  const ModelConfig& c = m.params.config;
  std::printf("converted %s (%s) -> %s\n", a.in.c_str(), to_string(m.format), a.out.c_str());
  std::printf("  %lld parameters, %lld layers %s (window %lld), %s weights%s%s\n",
              static_cast<long long>(parameter_count(c)), static_cast<long long>(c.n_layers),
              c.pattern_string().c_str(), static_cast<long long>(c.window), to_string(dtype),
              m.tokenizer_path.empty() ? ", no tokenizer found" : ", tokenizer ",
              m.tokenizer_path.empty() ? "" : std::filesystem::path(m.tokenizer_path).filename().string().c_str());
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a model (model directory, llama2.c .bin) to a zebra / Hugging Face model directory");
  cmd->add_option("in", a->in, "model directory or llama2.c .bin checkpoint")->required();
  cmd->add_option("out", a->out, "output model directory (replaced atomically if it exists)")->required();
  add_adjust_options(cmd, a->adjust, "write the model");
  cmd->add_option("--dtype", a->dtype, "weight dtype: f32, bf16 or f16");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer file to copy (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace zebra
