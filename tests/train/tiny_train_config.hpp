// The tiny Zebra model of the training-step tests: 2 layers (global, local), window 4, 16 positions.
#pragma once

#include <cstdint>

#include "zebra/model/config.hpp"

namespace zebra::test {

inline ModelConfig tiny_train_config(std::int64_t vocab_size = 32) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 8;
  c.ffn_dim = 32;
  c.max_seq_len = 16;
  c.window = 4;
  c.group_size = 2;
  c.resolve();
  return c;
}

}  // namespace zebra::test
