// Learning rate: linear warmup to max_lr, then cosine decay to min_lr at total_steps (GPT-3 / Llama
// practice); held at min_lr past total_steps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace zebra {

struct LrSchedule {
  double max_lr = 3e-4;
  double min_lr = 3e-5;
  std::int64_t warmup_steps = 100;
  std::int64_t total_steps = 1000;

  // `step` counts from 1.
  double at(std::int64_t step) const {
    if (warmup_steps > 0 && step <= warmup_steps) {
      return max_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
    }
    if (step >= total_steps || total_steps <= warmup_steps) return min_lr;
    const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
  }
};

}  // namespace zebra
