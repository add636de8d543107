// UTF-8 boundaries for streamed text: what may be printed before the rest of a character arrives.
#pragma once

#include <cstddef>
#include <string_view>

namespace zebra {

// Bytes at the end of `text` that start a UTF-8 character not yet complete (0 .. 3). A lead byte is
// looked for in the last 3 bytes; bytes that cannot become valid (a stray continuation byte) count as
// complete, so that invalid input is not held back forever.
inline std::size_t incomplete_utf8_tail(std::string_view text) {
  const std::size_t n = text.size();
  for (std::size_t back = 1; back <= (n < 3 ? n : 3); ++back) {
    const auto b = static_cast<unsigned char>(text[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back
    std::size_t need = 1;
    if ((b & 0xE0) == 0xC0)
      need = 2;
    else if ((b & 0xF0) == 0xE0)
      need = 3;
    else if ((b & 0xF8) == 0xF0)
      need = 4;
    return need > back ? back : 0;
  }
  return 0;
}

}  // namespace zebra
