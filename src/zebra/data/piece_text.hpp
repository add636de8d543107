// The spelling of SentencePiece-family pieces, shared by every tokenizer that reads them: "▁" for a
// space and "<0xNN>" byte pieces.
#pragma once

#include <string>
#include <string_view>

namespace zebra {

inline constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

// "<0xNN>" (hex digits of either case) -> NN, else -1. Only the exact 6-character form counts.
int byte_piece_value(std::string_view piece);

// `s` with every occurrence of `from` (non-empty) replaced by `to`.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

}  // namespace zebra
