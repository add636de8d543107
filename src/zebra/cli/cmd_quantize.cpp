// zebra quantize IN OUT --type q8_0|q4_0|q4_1 [--embed-type T] [--group-size L --window W ...]
// Any model zebra loads (model directory, llama2.c .bin, GGUF), optionally re-laid as Zebra, written as a GGUF
// of architecture "zebra" (io/gguf_export.hpp) with its matrices quantized. A GGUF input's vocabulary is
// copied into the file; other inputs keep their tokenizer file, which loading OUT then needs as --tokenizer.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/io/gguf.hpp"
#include "zebra/io/gguf_export.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/flops.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

struct QuantizeArgs {
  std::string in, out, type, embed_type;
  AdjustArgs adjust;
};

DType parse_type(const std::string& s, const char* flag) {
  for (const auto& [name, d] : {std::pair<const char*, DType>{"q8_0", DType::kQ8_0},
                                {"q4_0", DType::kQ4_0},
                                {"q4_1", DType::kQ4_1},
                                {"f16", DType::kF16},
                                {"bf16", DType::kBF16},
                                {"f32", DType::kF32}}) {
    if (s == name) return d;
  }
  fail("quantize: ", flag, " must be q8_0, q4_0, q4_1, f16, bf16 or f32, got '", s.substr(0, 32), "'");
}

void run_quantize(const QuantizeArgs& a) {
  GgufExportOptions o;
  o.matrix_dtype = parse_type(a.type, "--type");
  // The embedding (and an untied head) keeps 8 bits when the matrices get 4, as llama.cpp keeps its output
  // tensor at higher precision: the logits are the most sensitive product.
  o.embed_dtype =
      a.embed_type.empty()
          ? (o.matrix_dtype == DType::kQ4_0 || o.matrix_dtype == DType::kQ4_1 ? DType::kQ8_0 : o.matrix_dtype)
          : parse_type(a.embed_type, "--embed-type");
  std::error_code ec;
  ZEBRA_CHECK(std::filesystem::weakly_canonical(a.in, ec) != std::filesystem::weakly_canonical(a.out, ec),
              "quantize: OUT must differ from IN ('", a.in, "')");
  ZEBRA_CHECK(!std::filesystem::is_directory(a.out, ec), "quantize: OUT '", a.out,
              "' is a directory; expected the path of the .gguf file to write");
  const LoadedModel m = load_any_model(a.in, adjustment_of(a.adjust));
  std::vector<std::pair<std::string, GgufValue>> vocab;
  if (m.format == ModelFormat::kGguf) vocab = GgufFile::open(a.in).metadata();
  o.name = std::filesystem::path(a.in).filename().string();
  const GgufExportSummary s = write_model_gguf(a.out, m.params, vocab, o);
  const ModelConfig& c = m.params.config;
  std::printf("quantized %s (%s) -> %s\n", a.in.c_str(), to_string(m.format), a.out.c_str());
  std::printf("  %lld parameters, %lld layers %s (window %lld); matrices %s, embedding %s; %zu tensors, %.1f MiB\n",
              static_cast<long long>(parameter_count(c)), static_cast<long long>(c.n_layers),
              c.pattern_string().c_str(), static_cast<long long>(c.window), to_string(o.matrix_dtype),
              to_string(o.embed_dtype), s.tensors, static_cast<double>(s.tensor_bytes) / (1 << 20));
  if (m.format != ModelFormat::kGguf) {
    std::printf("  no vocabulary in the file: load it with --tokenizer %s\n",
                m.tokenizer_path.empty() ? "FILE" : m.tokenizer_path.c_str());
  }
}

}  // namespace

void add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Write any model zebra loads as a quantized GGUF of architecture \"zebra\" (its layout kept)");
  cmd->add_option("in", a->in, "model directory, llama2.c .bin checkpoint or GGUF file")->required();
  cmd->add_option("out", a->out, "output .gguf file (written atomically)")->required();
  cmd->add_option("--type", a->type, "matrix type: q8_0, q4_0, q4_1 (also f16, bf16, f32)")->required();
  cmd->add_option("--embed-type", a->embed_type,
                  "type of the token embedding and an untied head (default: q8_0 for q4_*, else --type)");
  add_adjust_options(cmd, a->adjust, "write the model");
  cmd->callback([a] { run_quantize(*a); });
}

}  // namespace zebra
