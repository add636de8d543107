// The flags that re-lay and re-position a loaded model (model/config.hpp ModelAdjustment), one group shared by
// train --init, eval, generate, chat, convert and info:
//   --group-size L, --window W, --global-index K (which layer of each group is global), --global-layers LIST,
//   --rope-theta B, --rope-scaling linear|ntk|dynamic|yarn|none, --rope-factor F, --rope-original-length L0,
//   --max-seq-len N.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "zebra/model/config.hpp"

namespace CLI {
class App;
}

namespace zebra {

struct AdjustArgs {
  std::int64_t group_size = 0, window = 0, global_index = 0;
  std::string global_layers;  // "0,4,8"
  double rope_theta = 0;
  std::string rope_scaling;  // "" = keep the model's
  double rope_factor = 1.0;
  std::int64_t rope_original_length = 0;
  std::int64_t max_seq_len = 0;
};

// `verb` completes the help texts ("evaluate the model", "run the model", "train the model").
void add_adjust_options(CLI::App* cmd, AdjustArgs& a, const std::string& verb);

// None when no flag of the group was given; throws naming the flag on a bad --global-layers item.
std::optional<ModelAdjustment> adjustment_of(const AdjustArgs& a);

}  // namespace zebra
