// llama2.c checkpoints (karpathy/llama2.c), imported into zebra's parameter layout.
//
// Version 0 (legacy, run.c): seven int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len} (vocab_size < 0 means the classifier is not shared with the embedding), then float32:
//   token_embedding [V, D], rms_att [L, D], wq [L, H*hs, D], wk [L, Hkv*hs, D], wv [L, Hkv*hs, D],
//   wo [L, D, H*hs], rms_ffn [L, D], w1 [L, F, D], w2 [L, D, F], w3 [L, F, D], rms_final [D],
//   freq_cis_real [seq_len, hs/2], freq_cis_imag [seq_len, hs/2] (skipped), wcls [V, D] (unshared only)
// with hs = D / H; every matrix is [out, in] row-major, as zebra stores Linear weights.
// Version 1 (export.py version1_export): a 256-byte header {uint32 magic 0x616b3432 "ak42", int32
// version 1, the seven int32 above (vocab_size positive), uint8 shared_classifier, zero padding}, then
// float32: rms_att [L, D], rms_ffn [L, D], rms_final [D], token_embedding [V, D], wq, wk, wv, wo (all
// layers each), w1, w2, w3 (all layers each), wcls [V, D] (unshared only).
// Version 2 (version2_export, read by runq.c): the version-1 header plus int32 group_size at byte 37;
// the norms in float32 as in version 1, then each matrix (token_embedding, wq.., wk.., wv.., wo.., w1..,
// w2.., w3.., wcls if unshared; one per layer) as int8 values [numel] followed by float32 scales
// [numel / group_size]; imported dequantized (value = q * scale of its group).
//
// Mapping: w1 -> gate_proj, w3 -> up_proj, w2 -> down_proj; rms_norm_eps 1e-5, rope_theta 10000,
// max_position_embeddings = seq_len, RoPE, all layers global unless a pattern override is given; BOS 1,
// EOS 2 (llama2.c's tokenizer).
//
// RoPE layout: llama2.c rotates interleaved pairs (2k, 2k+1) of each head; zebra rotates the pairs
// (k, k + hs/2) ("rotate half"), both with frequency theta^(-2k/hs). Permuting the output rows of Wq
// and Wk within each head, new[k] = old[2k], new[k + hs/2] = old[2k + 1], maps one onto the other, so
// q·k after RoPE (and so the whole model) is unchanged. Wv, Wo and everything else are untouched.
//
// The file is untrusted: dimensions must be positive, bounded, and consistent (n_heads divides dim,
// n_kv_heads divides n_heads, even head size), and the file size must equal the header plus the exact
// weight bytes; errors say what was expected and what was found.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/model/params.hpp"

namespace zebra {

struct Llama2cHeader {
  std::int32_t version = 0;  // 0, 1 or 2
  std::int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  std::int64_t group_size = 0;           // version 2 only
  std::uint64_t expected_file_size = 0;  // header + weights, bytes
};

// Reads and validates the header (and checks the file size against it).
Llama2cHeader read_llama2c_header(const std::string& path);

// The model config a llama2.c header maps to (see the mapping above).
ModelConfig llama2c_config(const Llama2cHeader& header, const std::optional<ModelAdjustment>& pattern = std::nullopt);

// Imports a llama2.c checkpoint (version 0, 1 or 2), permuting Wq/Wk to the rotate-half layout.
ParameterSet<float> load_llama2c(const std::string& path, const std::optional<ModelAdjustment>& pattern = std::nullopt);

// Row permutations between the two RoPE layouts for a float matrix [n_heads * head_dim, cols], in place
// (io/rope_layout.hpp does it for rows of any bytes).
// interleaved -> rotate-half: new[h*hd + k] = old[h*hd + 2k], new[h*hd + hd/2 + k] = old[h*hd + 2k + 1].
void permute_interleaved_to_half(float* w, std::int64_t n_heads, std::int64_t head_dim, std::int64_t cols);
void permute_half_to_interleaved(float* w, std::int64_t n_heads, std::int64_t head_dim, std::int64_t cols);

// Writes a version-0 llama2.c file (the inverse of load_llama2c; RoPE rows permuted back, freq_cis
// tables filled as llama2.c's model.py computes them). The model must be expressible in the format:
// pos_embedding rope, head_dim * n_heads == d_model. The layer pattern is not stored.
void export_llama2c_v0(const std::string& path, const ParameterSet<float>& params);

}  // namespace zebra
