#include "zebra/cli/adjust_options.hpp"

#include <CLI/CLI.hpp>

#include "zebra/cli/list_options.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

void add_adjust_options(CLI::App* cmd, AdjustArgs& a, const std::string& verb) {
  cmd->add_option("--group-size", a.group_size, verb + " re-laid as Zebra with this group size L (1 = all global)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--window", a.window, "local-attention window of the re-laid model (keys i-window < j <= i)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--global-index", a.global_index,
                  "which layer of each group is global: layer l is global when l % L == K (default 0, the first)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--global-layers", a.global_layers,
                  "exactly these layers global, comma-separated indices (the rest local; instead of --group-size)");
  cmd->add_option("--rope-theta", a.rope_theta, "a new RoPE base (rope_theta)")->check(CLI::PositiveNumber);
  cmd->add_option("--rope-scaling", a.rope_scaling,
                  "RoPE scaling for longer contexts (transformers' rope_type formulas): linear, dynamic (NTK), yarn "
                  "(original length: --rope-original-length, else the model's max_seq_len before --max-seq-len), "
                  "ntk (static NTK-aware) or none")
      ->check(CLI::IsMember({"linear", "ntk", "dynamic", "yarn", "none"}));
  cmd->add_option("--rope-factor", a.rope_factor, "RoPE scaling factor")->check(CLI::Range(1.0, 1e6));
  cmd->add_option("--rope-original-length", a.rope_original_length, "YaRN's pretraining length")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-seq-len", a.max_seq_len, "max_position_embeddings of the model")->check(CLI::PositiveNumber);
}

std::optional<ModelAdjustment> adjustment_of(const AdjustArgs& a) {
  ModelAdjustment m;
  m.group_size = a.group_size;
  m.window = a.window;
  m.global_index = a.global_index;
  if (!a.global_layers.empty()) {
    m.global_layers = parse_int_list("--global-layers", a.global_layers);
    for (std::int64_t l : m.global_layers) ZEBRA_CHECK(l >= 0, "--global-layers: layer ", l, " is negative");
  }
  m.rope_theta = a.rope_theta;
  if (!a.rope_scaling.empty()) {
    m.set_rope_scaling = true;
    m.rope_scaling = parse_rope_scaling(a.rope_scaling);
    m.rope_factor = a.rope_factor;
    m.rope_original_length = a.rope_original_length;
  } else {
    ZEBRA_CHECK(a.rope_factor == 1.0 && a.rope_original_length == 0,
                "--rope-factor and --rope-original-length need --rope-scaling");
  }
  m.max_seq_len = a.max_seq_len;
  if (m.empty()) return std::nullopt;
  return m;
}

}  // namespace zebra
