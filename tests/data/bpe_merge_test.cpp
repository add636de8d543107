#include "zebra/data/bpe_merge.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

// Reference: rescan every adjacent pair after each merge, merge the lowest key (leftmost on ties).
std::vector<std::string> rescan_merge(const std::vector<std::string>& start,
                                      const std::map<std::pair<std::string, std::string>, double>& keys) {
  std::vector<std::string> s = start;
  for (;;) {
    std::optional<std::size_t> best;
    double best_key = 0;
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      auto it = keys.find({s[i], s[i + 1]});
      if (it != keys.end() && (!best || it->second < best_key)) {
        best = i;
        best_key = it->second;
      }
    }
    if (!best) return s;
    s[*best] += s[*best + 1];
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(*best) + 1);
  }
}

TEST(BpeMerge, EqualsRescanningOnRandomWordsAndMerges) {
  Rng rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    // Words over a 3-letter alphabet, so that pairs repeat and overlap; keys with ties.
    std::map<std::pair<std::string, std::string>, double> keys;
    std::vector<std::string> known = {"a", "b", "c"};
    const int n_merges = 1 + static_cast<int>(rng.below(12));
    for (int m = 0; m < n_merges; ++m) {
      const std::string l = known[rng.below(known.size())], r = known[rng.below(known.size())];
      keys.emplace(std::make_pair(l, r), static_cast<double>(rng.below(6)));
      known.push_back(l + r);
    }
    std::string word;
    const std::size_t len = 1 + rng.below(40);
    for (std::size_t i = 0; i < len; ++i) word += static_cast<char>('a' + rng.below(3));
    std::vector<std::string> chars;
    for (char c : word) chars.emplace_back(1, c);
    std::vector<MergeSymbol> symbols = utf8_symbols(word, [](std::string_view) { return 0; });
    merge_symbols(
        word, symbols,
        [&](std::string_view l, std::int32_t, std::string_view r, std::int32_t, double* key, std::int32_t* id) {
          auto it = keys.find({std::string(l), std::string(r)});
          if (it == keys.end()) return false;
          *key = it->second;
          *id = 0;
          return true;
        });
    std::vector<std::string> got;
    for (const auto& s : symbols) got.push_back(word.substr(s.begin, s.end - s.begin));
    ASSERT_EQ(got, rescan_merge(chars, keys)) << "word " << word << " trial " << trial;
  }
}

TEST(BpeMerge, SymbolsAreUtf8Characters) {
  const std::string word = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  auto s = utf8_symbols(word, [](std::string_view t) { return static_cast<std::int32_t>(t.size()); });
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[1].begin, 1u);
  EXPECT_EQ(s[1].id, 2);
  EXPECT_EQ(s[3].end, word.size());
  EXPECT_EQ(s[3].id, 4);
}

}  // namespace
}  // namespace zebra
