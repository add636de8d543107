#include "zebra/data/bpe_merge.hpp"

#include <queue>

#include "zebra/util/error.hpp"

namespace zebra {

namespace {

struct Node {
  std::uint32_t begin, end;
  std::int32_t id;
  std::int32_t prev, next;  // -1: none
  bool alive;
};

struct Candidate {
  double key;
  std::int32_t left, right;
  std::uint32_t left_end, right_end;  // the pair's extent when pushed: stale once either side changed
  std::int32_t merged_id;
};

// std::priority_queue keeps the greatest on top: "greater" is the lower key, then the leftmost pair.
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.key != b.key) return a.key > b.key;
    return a.left > b.left;
  }
};

}  // namespace

void merge_symbols(std::string_view word, std::vector<MergeSymbol>& symbols, const MergeKeyFn& key) {
  if (symbols.size() < 2) return;
  std::vector<Node> nodes(symbols.size());
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    nodes[i] = Node{symbols[i].begin,
                    symbols[i].end,
                    symbols[i].id,
                    static_cast<std::int32_t>(i) - 1,
                    i + 1 < symbols.size() ? static_cast<std::int32_t>(i + 1) : -1,
                    true};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateAfter> heap;
  auto text = [&](const Node& n) { return word.substr(n.begin, n.end - n.begin); };
  auto offer = [&](std::int32_t l, std::int32_t r) {
    if (l < 0 || r < 0) return;
    const Node& a = nodes[static_cast<std::size_t>(l)];
    const Node& b = nodes[static_cast<std::size_t>(r)];
    double k = 0;
    std::int32_t merged = -1;
    if (key(text(a), a.id, text(b), b.id, &k, &merged)) heap.push(Candidate{k, l, r, a.end, b.end, merged});
  };
  for (std::size_t i = 0; i + 1 < nodes.size(); ++i)
    offer(static_cast<std::int32_t>(i), static_cast<std::int32_t>(i + 1));
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Node& a = nodes[static_cast<std::size_t>(c.left)];
    Node& b = nodes[static_cast<std::size_t>(c.right)];
    // A node only grows to the right (merging its right neighbour in), so an unchanged end on both
    // sides with the link intact means the pair is exactly the one that was offered.
    if (!a.alive || !b.alive || a.next != c.right || a.end != c.left_end || b.end != c.right_end) continue;
    a.end = b.end;
    a.id = c.merged_id;
    a.next = b.next;
    b.alive = false;
    if (b.next >= 0) nodes[static_cast<std::size_t>(b.next)].prev = c.left;
    offer(a.prev, c.left);
    offer(c.left, a.next);
  }
  symbols.clear();
  for (std::int32_t i = 0; i >= 0; i = nodes[static_cast<std::size_t>(i)].next) {
    const Node& n = nodes[static_cast<std::size_t>(i)];
    symbols.push_back(MergeSymbol{n.begin, n.end, n.id});
  }
}

std::vector<MergeSymbol> utf8_symbols(std::string_view word,
                                      const std::function<std::int32_t(std::string_view)>& lookup) {
  ZEBRA_CHECK(word.size() < (std::size_t{1} << 32), "BPE: a pre-tokenized word of ", word.size(),
              " bytes (expected < 4 GiB)");
  std::vector<MergeSymbol> out;
  std::size_t at = 0;
  while (at < word.size()) {
    const auto lead = static_cast<unsigned char>(word[at]);
    std::size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    if (at + len > word.size()) len = word.size() - at;
    out.push_back(MergeSymbol{static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(at + len),
                              lookup(word.substr(at, len))});
    at += len;
  }
  return out;
}

namespace {

std::uint64_t pair_key(std::int32_t l, std::int32_t r) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(l)) << 32) | static_cast<std::uint32_t>(r);
}

}  // namespace

MergeTable::MergeTable(const std::vector<std::string>& merges,
                       const std::function<std::int32_t(std::string_view)>& token_id, const std::string& name) {
  table_.reserve(merges.size());
  ZEBRA_CHECK(merges.size() < (std::size_t{1} << 31), "vocabulary '", name, "': ", merges.size(),
              " merges (expected < 2^31)");
  std::string joined;
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    const std::size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    ZEBRA_CHECK(sp != std::string::npos && sp + 1 < m.size(), "vocabulary '", name, "': merge ", rank, " '", bounded(m),
                "' (expected two tokens separated by a space)");
    const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
    joined.assign(left);
    joined.append(right);
    const std::int32_t l = token_id(left), r = token_id(right), merged = token_id(joined);
    ZEBRA_CHECK(l >= 0 && r >= 0 && merged >= 0, "vocabulary '", name, "': merge ", rank, " '", bounded(m),
                "' (expected both sides and their concatenation to be tokens)");
    table_.emplace(pair_key(l, r), std::make_pair(static_cast<std::int32_t>(rank), merged));  // first rank wins
  }
}

bool MergeTable::find(std::int32_t l, std::int32_t r, double* rank, std::int32_t* merged) const {
  if (l < 0 || r < 0) return false;
  auto it = table_.find(pair_key(l, r));
  if (it == table_.end()) return false;
  *rank = it->second.first;
  *merged = it->second.second;
  return true;
}

}  // namespace zebra
