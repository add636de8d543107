// Training checkpoints (DESIGN.md §3): a Hugging Face model directory plus the trainer state,
//   config.json, model.safetensors, tokenizer file,
//   trainer_state.safetensors   AdamW moments: "m.<tensor name>", "v.<tensor name>" (F32)
//   trainer_state.json          step, tokens seen, data position (batcher state), the run's options
// written as one atomic directory write. Loading validates everything and refuses a partial or
// corrupted checkpoint with an error naming the file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "zebra/data/mixture_batcher.hpp"
#include "zebra/model/params.hpp"
#include "zebra/util/aligned_buffer.hpp"

namespace zebra {

struct TrainerState {
  std::int64_t step = 0;         // optimizer steps taken
  std::int64_t tokens_seen = 0;  // training tokens consumed
  MixtureState batcher;          // JSON: "batcher" (the long sequences), "short_batcher" and "kind_rng_state" if mixed
  nlohmann::json run;            // the options the run was started with (informative, and checked on resume)
};

struct Checkpoint {
  ParameterSet<float> params;
  AlignedBuffer<float> m, v;
  TrainerState state;
};

void save_checkpoint(const std::string& dir, const ParameterSet<float>& params, const AlignedBuffer<float>& m,
                     const AlignedBuffer<float>& v, const TrainerState& state, const std::string& tokenizer_file);

Checkpoint load_checkpoint(const std::string& dir);
// The trainer_state.json part of a checkpoint: `text` as read from `json_path` (which errors name).
TrainerState parse_trainer_state(std::string_view text, const std::string& json_path);

// "checkpoint-00000100" for step 100.
std::string checkpoint_name(std::int64_t step);
// Checkpoint directories inside a run directory, sorted by step (oldest first).
std::vector<std::string> list_checkpoints(const std::string& run_dir);
// A checkpoint directory itself, or the newest checkpoint of a run directory; throws when none.
std::string resolve_checkpoint(const std::string& path);
// Removes all but the newest `keep` checkpoints of a run directory (keep <= 0 keeps all).
void prune_checkpoints(const std::string& run_dir, std::int64_t keep);

}  // namespace zebra
