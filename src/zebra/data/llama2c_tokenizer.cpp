#include "zebra/data/llama2c_tokenizer.hpp"

#include <cmath>
#include <cstring>
#include <queue>

#include "zebra/data/piece_text.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

constexpr std::int32_t kMaxTokenLengthLimit = 1 << 20;  // sanity bound for hostile headers
constexpr float kMergeFloor = -1e10f;                   // llama2.c's initial best_score

}  // namespace

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::load(const std::string& path) {
  std::string bytes = read_file(path);
  return from_bytes(bytes, path);
}

std::unique_ptr<Llama2cTokenizer> Llama2cTokenizer::from_bytes(std::string_view bytes, const std::string& name) {
  const std::size_t n = bytes.size();
  auto read_i32 = [&](std::size_t at) {
    std::int32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  };
  ZEBRA_CHECK(n >= 4, "llama2.c tokenizer '", name, "': file is ", n,
              " bytes, too short for the int32 max_token_length header");
  std::int32_t max_len = read_i32(0);
  ZEBRA_CHECK(max_len >= 1 && max_len <= kMaxTokenLengthLimit, "llama2.c tokenizer '", name, "': max_token_length is ",
              max_len, " (expected 1..", kMaxTokenLengthLimit, ")");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::size_t at = 4;
  while (at < n) {
    const std::size_t index = pieces.size();
    ZEBRA_CHECK(n - at >= 8, "llama2.c tokenizer '", name, "': token ", index, " at byte ", at,
                " is truncated: expected an 8-byte (float32 score, int32 length) record header, found ", n - at,
                " bytes");
    float score;
    std::memcpy(&score, bytes.data() + at, 4);
    std::int32_t len = read_i32(at + 4);
    ZEBRA_CHECK(!std::isnan(score), "llama2.c tokenizer '", name, "': token ", index, " has a NaN score");
    ZEBRA_CHECK(len >= 0 && len <= max_len, "llama2.c tokenizer '", name, "': token ", index, " at byte ", at,
                " has length ", len, " (expected 0..max_token_length = ", max_len, ")");
    at += 8;
    ZEBRA_CHECK(n - at >= static_cast<std::size_t>(len), "llama2.c tokenizer '", name, "': token ", index,
                " is truncated: expected ", len, " bytes of text, found ", n - at);
    pieces.emplace_back(bytes.substr(at, static_cast<std::size_t>(len)));
    scores.push_back(score);
    at += static_cast<std::size_t>(len);
  }
  ZEBRA_CHECK(pieces.size() >= 3, "llama2.c tokenizer '", name, "': has ", pieces.size(),
              " tokens (expected at least <unk>, BOS and EOS)");
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores), max_len);
}

Llama2cTokenizer::Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                                   std::int32_t max_token_length)
    : pieces_(std::move(pieces)), scores_(std::move(scores)), max_token_length_(max_token_length) {
  ZEBRA_CHECK(pieces_.size() == scores_.size(), "llama2.c tokenizer: ", pieces_.size(), " pieces but ", scores_.size(),
              " scores");
  ZEBRA_CHECK(pieces_.size() >= 3 && pieces_.size() <= static_cast<std::size_t>(INT32_MAX),
              "llama2.c tokenizer: vocabulary of ", pieces_.size(), " tokens (expected 3..2^31-1)");
  ZEBRA_CHECK(max_token_length >= 1 && max_token_length <= kMaxTokenLengthLimit,
              "llama2.c tokenizer: max_token_length ", max_token_length, " out of range");
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    ZEBRA_CHECK(pieces_[i].size() <= static_cast<std::size_t>(max_token_length), "llama2.c tokenizer: token ", i,
                " is ", pieces_[i].size(), " bytes, longer than max_token_length ", max_token_length);
    ZEBRA_CHECK(!std::isnan(scores_[i]), "llama2.c tokenizer: token ", i, " has a NaN score");
  }
  build_index();
}

void Llama2cTokenizer::build_index() {
  index_.reserve(pieces_.size());
  byte_value_.assign(pieces_.size(), -1);
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    index_.emplace(std::string_view(pieces_[i]), static_cast<std::int32_t>(i));  // keeps the lowest id
    byte_value_[i] = static_cast<std::int16_t>(byte_piece_value(pieces_[i]));
  }
}

std::int32_t Llama2cTokenizer::lookup(std::string_view piece) const {
  auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

const std::string& Llama2cTokenizer::raw_piece(std::int32_t id) const {
  ZEBRA_CHECK(id >= 0 && static_cast<std::size_t>(id) < pieces_.size(), "llama2.c tokenizer: token id ", id,
              " out of range [0, ", pieces_.size(), ")");
  return pieces_[static_cast<std::size_t>(id)];
}

float Llama2cTokenizer::score(std::int32_t id) const {
  raw_piece(id);  // range check
  return scores_[static_cast<std::size_t>(id)];
}

std::vector<std::int32_t> Llama2cTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  if (text.empty()) return ids;
  const auto vocab = static_cast<std::int64_t>(pieces_.size());
  auto push_byte = [&](unsigned char b) {
    std::int32_t id = static_cast<std::int32_t>(b) + 3;
    ZEBRA_CHECK(id < vocab, "llama2.c tokenizer: byte fallback id ", id, " for byte ", static_cast<int>(b),
                " is outside the vocabulary of ", vocab);
    ids.push_back(id);
  };
  // add_dummy_prefix: the " " token (the byte token for ' ' if the vocabulary lacks one).
  std::int32_t space = lookup(" ");
  if (space >= 0) {
    ids.push_back(space);
  } else {
    push_byte(' ');
  }
  // Characters: a lead byte plus up to three following continuation bytes, exactly as llama2.c
  // groups them (so malformed input is grouped the same way too).
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t begin = 0, len = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if ((p[k] & 0xC0) != 0x80) len = 0;
    if (len == 0) begin = k;
    ++len;
    const unsigned char next = k + 1 < n ? p[k + 1] : 0;
    if ((next & 0xC0) == 0x80 && len < 4) continue;
    std::int32_t id = lookup(text.substr(begin, len));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (std::size_t j = 0; j < len; ++j) push_byte(p[begin + j]);
    }
    len = 0;
  }

  // Greedy merging. Nodes form a linked list in text order; a node's index is its original position,
  // so "leftmost pair" is "smallest left index" at every step.
  const std::size_t m = ids.size();
  std::vector<std::int64_t> next_node(m), prev_node(m);
  for (std::size_t i = 0; i < m; ++i) {
    next_node[i] = static_cast<std::int64_t>(i) + 1;
    prev_node[i] = static_cast<std::int64_t>(i) - 1;
  }
  next_node[m - 1] = -1;
  struct Candidate {
    float score;
    std::int64_t left, right;
    std::int32_t left_id, right_id, merged;
    bool operator<(const Candidate& o) const {  // priority_queue top = highest score, then leftmost
      if (score != o.score) return score < o.score;
      return left > o.left;
    }
  };
  std::priority_queue<Candidate> heap;
  std::string buf;
  auto consider = [&](std::int64_t left, std::int64_t right) {
    if (left < 0 || right < 0) return;
    const std::string& a = pieces_[static_cast<std::size_t>(ids[static_cast<std::size_t>(left)])];
    const std::string& b = pieces_[static_cast<std::size_t>(ids[static_cast<std::size_t>(right)])];
    if (a.size() + b.size() > static_cast<std::size_t>(max_token_length_)) return;  // cannot be a piece
    buf.assign(a);
    buf.append(b);
    std::int32_t merged = lookup(buf);
    if (merged < 0) return;
    float s = scores_[static_cast<std::size_t>(merged)];
    if (!(s > kMergeFloor)) return;
    heap.push({s, left, right, ids[static_cast<std::size_t>(left)], ids[static_cast<std::size_t>(right)], merged});
  };
  for (std::size_t i = 0; i + 1 < m; ++i) consider(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1);
  std::vector<char> alive(m, 1);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    const auto l = static_cast<std::size_t>(c.left), r = static_cast<std::size_t>(c.right);
    // Stale when either side was merged away or changed since the candidate was pushed.
    if (!alive[l] || !alive[r] || next_node[l] != c.right || ids[l] != c.left_id || ids[r] != c.right_id) continue;
    ids[l] = c.merged;
    alive[r] = 0;
    next_node[l] = next_node[r];
    if (next_node[r] >= 0) prev_node[static_cast<std::size_t>(next_node[r])] = c.left;
    consider(prev_node[l], c.left);
    consider(c.left, next_node[l]);
  }
  std::vector<std::int32_t> out;
  out.reserve(m);
  for (std::int64_t i = 0; i >= 0; i = next_node[static_cast<std::size_t>(i)])
    out.push_back(ids[static_cast<std::size_t>(i)]);
  return out;
}

std::string Llama2cTokenizer::piece(std::int32_t id) const {
  const std::string& p = raw_piece(id);
  if (id == bos_id() || id == eos_id()) return "";
  int b = byte_value_[static_cast<std::size_t>(id)];
  if (b >= 0) return std::string(1, static_cast<char>(b));
  return p;
}

std::string Llama2cTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  std::int32_t prev = bos_id();  // the sequence is taken to follow a BOS
  for (std::int32_t id : ids) {
    const std::string& raw = raw_piece(id);
    if (id == bos_id() || id == eos_id()) {
      prev = id;
      continue;
    }
    int b = byte_value_[static_cast<std::size_t>(id)];
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else if (prev == bos_id() && !raw.empty() && raw[0] == ' ') {
      out.append(raw, 1);
    } else {
      out.append(raw);
    }
    prev = id;
  }
  return out;
}

void Llama2cTokenizer::save(const std::string& path) const {
  std::string bytes;
  auto put = [&](const void* p, std::size_t k) { bytes.append(static_cast<const char*>(p), k); };
  put(&max_token_length_, 4);
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    auto len = static_cast<std::int32_t>(pieces_[i].size());
    put(&scores_[i], 4);
    put(&len, 4);
    bytes += pieces_[i];
  }
  write_file_atomic(path, bytes);
}

}  // namespace zebra
