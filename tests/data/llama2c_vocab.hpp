// Small llama2.c vocabularies for tests: <unk>, BOS, EOS, the 256 byte pieces <0xNN> (ids 3 .. 258), then
// the given merges with scores 0, -1, -2, ... (earlier merges win).
#pragma once

#include <cstdio>
#include <initializer_list>
#include <string>
#include <vector>

namespace zebra::test {

struct Llama2cVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
};

inline Llama2cVocab llama2c_vocab(std::initializer_list<const char*> merges) {
  Llama2cVocab v;
  v.pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  v.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    v.pieces.emplace_back(name);
    v.scores.push_back(0);
  }
  float s = 0;
  for (const char* m : merges) {
    v.pieces.emplace_back(m);
    v.scores.push_back(s);
    s -= 1;
  }
  return v;
}

}  // namespace zebra::test
