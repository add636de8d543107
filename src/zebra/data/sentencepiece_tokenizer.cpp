#include "zebra/data/sentencepiece_tokenizer.hpp"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <exception>
#include <unordered_map>

#include "zebra/data/corpus.hpp"
#include "zebra/data/piece_text.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {

namespace {

// Feeds SentencePiece the sampler's sentences in order.
class VectorSentenceIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentenceIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  std::size_t i_ = 0;
};

// Length of the longest prefix of s (at most `limit` bytes) that ends on a UTF-8 character
// boundary, preferring to end just after a space in the second half.
std::size_t chunk_length(std::string_view s, std::size_t limit) {
  if (s.size() <= limit) return s.size();
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  if (cut == 0) cut = limit;  // no boundary found (cannot happen for valid UTF-8)
  std::size_t space = s.rfind(' ', cut - 1);
  if (space != std::string_view::npos && space + 1 > limit / 2) cut = space + 1;
  return cut;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Tokenizer

SentencePieceTokenizer::SentencePieceTokenizer(std::string serialized, const std::string& name)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), serialized_(std::move(serialized)), name_(name) {
  sentencepiece::util::Status status;
  try {
    status = sp_->LoadFromSerializedProto(serialized_);
  } catch (const std::exception&) {
    // The library throws (rather than returning a status) when a model that parses cannot be indexed, e.g. a
    // zero-length piece (found by the sentencepiece fuzzer; tests/fuzz/regressions/sentencepiece/).
    fail("'", name, "': not a usable SentencePiece model (the library could not index its pieces: an empty or ",
         "invalid piece)");
  }
  if (!status.ok()) {
    // The library reports a failed internal check as "./src/file.cc(232) [expression]": a source line, not a
    // reason. A model that does not even parse is the common case (a wrong or corrupt file).
    const std::string message = status.error_message();
    if (message.find("ParseFromArray") != std::string::npos) {
      fail("'", name, "': not a SentencePiece model (", serialized_.size(),
           " bytes that do not parse as a serialized SentencePiece ModelProto)");
    }
    const bool internal_check = message.find(".cc(") != std::string::npos;
    fail("'", name, "': not a usable SentencePiece model (",
         internal_check ? std::string("the library refused its contents") : bounded(message, 200), ")");
  }
  const int n = sp_->GetPieceSize();
  ZEBRA_CHECK(n > 0, "SentencePiece model '", name, "' has no pieces");
  // Whether the normaliser adds a dummy "▁" (the ModelProto field is behind protobuf headers that
  // are not installed, so observe it instead).
  std::vector<std::string> pieces;
  ZEBRA_CHECK(sp_->Encode("a", &pieces).ok(), "SentencePiece model '", name, "': cannot encode");
  add_dummy_prefix_ = !pieces.empty() && std::string_view(pieces[0]).substr(0, kSpaceSymbol.size()) == kSpaceSymbol;
  stream_pieces_.resize(static_cast<std::size_t>(n));
  for (int id = 0; id < n; ++id) {
    std::string p;
    if (sp_->IsControl(id)) {
      p = "";
    } else if (sp_->IsUnknown(id)) {
      p = " \xE2\x81\x87 ";  // " ⁇ ", SentencePiece's surface for <unk>
    } else if (sp_->IsByte(id)) {
      int b = byte_piece_value(sp_->IdToPiece(id));
      ZEBRA_CHECK(b >= 0, "SentencePiece model '", name, "': byte piece ", id, " is '", sp_->IdToPiece(id),
                  "' (expected <0xNN>)");
      p = std::string(1, static_cast<char>(b));
    } else {
      p = replace_all(sp_->IdToPiece(id), kSpaceSymbol, " ");
    }
    stream_pieces_[static_cast<std::size_t>(id)] = std::move(p);
  }
  detect_newline_boundary();
  detect_space_boundary();
}

void SentencePieceTokenizer::detect_newline_boundary() {
  newline_is_boundary_ = false;
  const int nl = sp_->PieceToId("<0x0A>");
  if (nl < 0 || !sp_->IsByte(nl)) return;
  for (int id = 0; id < sp_->GetPieceSize(); ++id) {
    if (!sp_->IsByte(id) && sp_->IdToPiece(id).find('\n') != std::string::npos) return;
  }
  newline_id_ = nl;
  // Probes: whitespace around line breaks survives, '\n' becomes <0x0A>, and cutting at every
  // '\n' gives the same ids as encoding the whole text.
  for (std::string_view probe : {"a  \n  b  ", "\n\nx y\n", " \n z\n\n12\n"}) {
    std::vector<int> whole;
    if (!sp_->Encode(probe, &whole).ok()) return;
    std::string back;
    if (!sp_->Decode(whole, &back).ok() || back != probe) return;
    newline_is_boundary_ = true;  // provisionally, for segment()/encode_segment()
    std::vector<std::int32_t> parts;
    std::size_t at = 0;
    bool first = true;
    while (at < probe.size()) {
      std::size_t end = probe.find('\n', at + 1);
      if (end == std::string_view::npos) end = probe.size();
      auto ids = encode_segment(probe.substr(at, end - at), first);
      parts.insert(parts.end(), ids.begin(), ids.end());
      first = false;
      at = end;
    }
    newline_is_boundary_ = false;
    if (!std::equal(parts.begin(), parts.end(), whole.begin(), whole.end())) return;
  }
  newline_is_boundary_ = true;
}

bool SentencePieceTokenizer::can_cut_at(std::string_view text, std::size_t i) const {
  if (i == 0 || i >= text.size()) return false;
  if (text[i] == '\n') return newline_is_boundary_;
  auto printable = [](char c) { return c > ' ' && c < 0x7F; };
  return text[i] == ' ' && space_is_boundary_ && printable(text[i - 1]) && i + 1 < text.size() &&
         printable(text[i + 1]);
}

void SentencePieceTokenizer::detect_space_boundary() {
  space_is_boundary_ = false;
  space_id_ = sp_->PieceToId(std::string(kSpaceSymbol));
  if (add_dummy_prefix_ && (space_id_ < 0 || space_id_ == sp_->unk_id())) return;
  // Probes: words of several lengths, runs of spaces and a tab (never cut there), digits and punctuation.
  for (std::string_view probe : {"ab cd ef gh", "one  two three   four", "x y\tz w.", "a,b c;d 12 345 zebra'S x"}) {
    std::vector<int> whole;
    if (!sp_->Encode(probe, &whole).ok()) return;
    space_is_boundary_ = true;  // provisionally, for can_cut_at()/encode_segment()
    std::vector<std::int32_t> parts;
    std::size_t at = 0;
    bool ok = true;
    while (at < probe.size() && ok) {
      std::size_t end = at + 1;
      while (end < probe.size() && !can_cut_at(probe, end)) ++end;
      try {
        auto ids = encode_segment(probe.substr(at, end - at), at == 0);
        parts.insert(parts.end(), ids.begin(), ids.end());
      } catch (const Error&) {
        ok = false;
      }
      at = end;
    }
    space_is_boundary_ = false;
    if (!ok || !std::equal(parts.begin(), parts.end(), whole.begin(), whole.end())) return;
  }
  space_is_boundary_ = true;
}

std::vector<std::string_view> SentencePieceTokenizer::segment(std::string_view text, std::size_t target_bytes) const {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = std::min(text.size(), at + std::max<std::size_t>(target_bytes, 1));
    while (end < text.size() && !can_cut_at(text, end)) ++end;
    out.push_back(text.substr(at, end - at));
    at = end;
  }
  if (out.empty()) out.push_back(text);
  return out;
}

std::vector<std::int32_t> SentencePieceTokenizer::encode_segment(std::string_view seg, bool first) const {
  std::vector<int> ids;
  auto status = sp_->Encode(seg, &ids);
  ZEBRA_CHECK(status.ok(), "SentencePiece tokenizer '", name_, "': encoding failed: ", status.ToString());
  std::size_t skip = 0;
  if (!first && add_dummy_prefix_) {
    const bool after_newline = newline_is_boundary_ && !seg.empty() && seg[0] == '\n';
    const bool after_space = space_is_boundary_ && !seg.empty() && seg[0] == ' ';
    ZEBRA_CHECK(after_newline || after_space, "SentencePiece tokenizer '", name_,
                "': a segment after the first must start with a line break or a space");
    if (after_newline) {
      while (skip < ids.size() && ids[skip] != newline_id_) ++skip;
    } else {
      ZEBRA_CHECK(!ids.empty() && ids[0] == space_id_, "SentencePiece tokenizer '", name_,
                  "': a segment starting with a space does not encode to the dummy prefix first");
      skip = 1;
    }
  }
  return std::vector<std::int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(skip), ids.end());
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::string& path) {
  return from_serialized(read_file(path), path);
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_serialized(std::string serialized,
                                                                                const std::string& name) {
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(serialized), name));
}

void SentencePieceTokenizer::check_id(std::int32_t id) const {
  ZEBRA_CHECK(id >= 0 && static_cast<std::size_t>(id) < stream_pieces_.size(), "SentencePiece tokenizer '", name_,
              "': token id ", id, " out of range [0, ", stream_pieces_.size(), ")");
}

std::vector<std::int32_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::string clean;
  text = as_valid_utf8(text, clean);
  std::vector<std::int32_t> out;
  bool first = true;
  for (std::string_view seg : segment(text)) {
    auto ids = encode_segment(seg, first);
    first = false;
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::vector<int> v(ids.begin(), ids.end());
  for (int id : v) check_id(id);
  std::string out;
  auto status = sp_->Decode(v, &out);
  ZEBRA_CHECK(status.ok(), "SentencePiece tokenizer '", name_, "': decoding failed: ", status.ToString());
  return out;
}

std::string SentencePieceTokenizer::piece(std::int32_t id) const {
  check_id(id);
  return stream_pieces_[static_cast<std::size_t>(id)];
}

std::string SentencePieceTokenizer::raw_piece(std::int32_t id) const {
  check_id(id);
  return sp_->IdToPiece(id);
}

std::int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }
std::int32_t SentencePieceTokenizer::bos_id() const { return sp_->bos_id(); }
std::int32_t SentencePieceTokenizer::eos_id() const { return sp_->eos_id(); }
std::int32_t SentencePieceTokenizer::unk_id() const { return sp_->unk_id(); }

void SentencePieceTokenizer::save(const std::string& path) const { write_file_atomic(path, serialized_); }

// ---------------------------------------------------------------------------------------------
// Training

SentencePieceSentenceSampler::SentencePieceSentenceSampler(const SentencePieceTrainOptions& options)
    : options_(options), rng_state_(Rng(options.seed).state()) {
  ZEBRA_CHECK(options.max_sentence_length >= 16, "SentencePiece training: max_sentence_length ",
              options.max_sentence_length, " is too small (>= 16)");
  ZEBRA_CHECK(options.input_sentence_size >= 0, "SentencePiece training: input_sentence_size must be >= 0");
}

void SentencePieceSentenceSampler::add_sentence(std::string_view s) {
  ++stats_.sentences_seen;
  const auto cap = static_cast<std::uint64_t>(options_.input_sentence_size);
  if (cap == 0 || sentences_.size() < cap) {
    sentences_.emplace_back(s);
    return;
  }
  // Reservoir sampling (Algorithm R): every sentence seen so far is kept with probability cap/seen.
  Rng rng(rng_state_);
  std::uint64_t j = rng.below(static_cast<std::uint64_t>(stats_.sentences_seen));
  rng_state_ = rng.state();
  if (j < cap) sentences_[j].assign(s);
}

void SentencePieceSentenceSampler::add_document(std::string_view doc) {
  ++stats_.documents;
  std::string clean;
  if (find_invalid_utf8(doc)) {
    clean = sanitize_utf8(doc);
    doc = clean;
  }
  const auto limit = static_cast<std::size_t>(options_.max_sentence_length);
  std::size_t at = 0;
  while (at <= doc.size()) {
    std::size_t nl = doc.find('\n', at);
    std::size_t end = nl == std::string_view::npos ? doc.size() : nl;
    std::string_view line = doc.substr(at, end - at);
    if (line.size() > limit) ++stats_.long_lines_split;
    while (!line.empty()) {
      std::size_t k = chunk_length(line, limit);
      add_sentence(line.substr(0, k));
      line.remove_prefix(k);
    }
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
}

SentencePieceTrainStats train_sentencepiece(const SentencePieceSentenceSampler& sampler,
                                            const SentencePieceTrainOptions& options, const std::string& output_path) {
  Timer timer;
  ZEBRA_CHECK(options.model_type == "bpe" || options.model_type == "unigram", "SentencePiece training: model type '",
              options.model_type, "' (expected bpe or unigram)");
  ZEBRA_CHECK(options.vocab_size >= 260 && options.vocab_size <= (1 << 30), "SentencePiece training: vocab size ",
              options.vocab_size, " (expected >= 260: 3 special tokens, 256 byte pieces and at least one more)");
  ZEBRA_CHECK(options.character_coverage > 0 && options.character_coverage <= 1,
              "SentencePiece training: character_coverage ", options.character_coverage, " (expected (0, 1])");
  ZEBRA_CHECK(!sampler.sentences().empty(), "SentencePiece training: the corpus has no non-empty lines to train on");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", str_cat(options.character_coverage)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"remove_extra_whitespaces", "false"},
      // Documents are encoded whole, so only their first line would get a dummy "▁" while every
      // training line would: without it, training and encoding see line starts the same way, and
      // decode(encode(s)) == s needs no leading-space rule.
      {"add_dummy_prefix", "false"},
      {"max_sentence_length", std::to_string(options.max_sentence_length)},
      // Subsampling was done deterministically by the sampler; SentencePiece's own shuffling uses a
      // thread-local generator whose state carries over between calls.
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"num_threads", "1"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"hard_vocab_limit", "false"},
      {"minloglevel", options.verbose ? "0" : "1"},
  };
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(options.seed & 0x7FFFFFFF));
  VectorSentenceIterator it(sampler.sentences());
  std::string model;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  ZEBRA_CHECK(status.ok(), "SentencePiece training failed: ", status.ToString());
  ZEBRA_CHECK(!model.empty(), "SentencePiece training produced no model");
  // Load it once before writing, so a model that cannot be used is never saved.
  SentencePieceTokenizer::from_serialized(model, output_path);
  write_file_atomic(output_path, model);
  SentencePieceTrainStats stats = sampler.stats();
  stats.sentences_used = static_cast<std::int64_t>(sampler.sentences().size());
  stats.seconds = timer.seconds();
  return stats;
}

SentencePieceTrainStats train_sentencepiece(const std::vector<std::string>& documents,
                                            const SentencePieceTrainOptions& options, const std::string& output_path) {
  SentencePieceSentenceSampler sampler(options);
  for (const auto& d : documents) sampler.add_document(d);
  return train_sentencepiece(sampler, options, output_path);
}

}  // namespace zebra
