// --weights-dtype: how the commands that load a model for inference (eval, generate, chat) hold its matrices;
// --kv-dtype: how the commands that decode with a KV cache (generate, chat, eval passkey / tasks) store it.
#pragma once

#include <optional>
#include <string>

#include "zebra/util/dtype.hpp"

namespace CLI {
class App;
}

namespace zebra {

void add_weights_dtype_option(CLI::App* cmd, std::string& dtype);
// "" -> unset (as stored); f32, bf16, f16 -> that dtype; anything else is refused naming the flag.
std::optional<DType> parse_weights_dtype(const std::string& s);

void add_kv_dtype_option(CLI::App* cmd, std::string& dtype);
// "" or f32 -> unset (fp32 cache); f16, bf16 -> that dtype; anything else is refused naming the flag.
std::optional<DType> parse_kv_dtype(const std::string& s);

}  // namespace zebra
