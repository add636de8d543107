#include "zebra/cli/weights_option.hpp"

#include <CLI/CLI.hpp>

#include "zebra/util/error.hpp"

namespace zebra {

void add_weights_dtype_option(CLI::App* cmd, std::string& dtype) {
  cmd->add_option("--weights-dtype", dtype,
                  "hold the weight matrices as f32, bf16 or f16 (default: as stored; llama2.c files are f32)");
}

std::optional<DType> parse_weights_dtype(const std::string& s) {
  if (s.empty()) return std::nullopt;
  ZEBRA_CHECK(s == "f32" || s == "bf16" || s == "f16" || s == "F32" || s == "BF16" || s == "F16",
              "--weights-dtype must be f32, bf16 or f16, got '", s.substr(0, 64), "'");
  return parse_dtype(s);
}

void add_kv_dtype_option(CLI::App* cmd, std::string& dtype) {
  cmd->add_option("--kv-dtype", dtype,
                  "store the KV cache as f32, f16 or bf16 (16 bits: half the cache's bytes; default f32)");
}

std::optional<DType> parse_kv_dtype(const std::string& s) {
  if (s.empty() || s == "f32" || s == "F32") return std::nullopt;
  ZEBRA_CHECK(s == "bf16" || s == "f16" || s == "BF16" || s == "F16", "--kv-dtype must be f32, f16 or bf16, got '",
              s.substr(0, 64), "'");
  return parse_dtype(s);
}

}  // namespace zebra
