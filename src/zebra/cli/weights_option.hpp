// --weights-dtype: how the commands that load a model for inference (eval, generate, chat) hold its matrices.
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

}  // namespace zebra
