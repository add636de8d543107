// The sampling flags shared by `zebra generate` and `zebra chat`.
#pragma once

#include <CLI/CLI.hpp>

#include "zebra/generate/sampler.hpp"

namespace zebra {

inline void add_sampling_options(CLI::App* cmd, SamplerOptions& s) {
  cmd->add_option("--temperature,--temp", s.temperature, "sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", s.top_p, "nucleus sampling mass (1 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", s.min_p, "drop tokens below min-p times the top probability (0 = off)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", s.repetition_penalty, "repetition penalty (1 = off)")->check(CLI::PositiveNumber);
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "tokens of history the penalty looks at")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", s.seed, "sampling seed (default 1)");
}

}  // namespace zebra
