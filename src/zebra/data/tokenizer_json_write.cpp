// Writing tokenizer.json / tokenizer_config.json (declared in data/tokenizer_json.hpp).
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "zebra/data/piece_text.hpp"
#include "zebra/data/tokenizer_json.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

using nlohmann::json;

namespace {

json added_tokens_json(const VocabData& v) {
  json added = json::array();
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    const auto t = v.token_types.empty() ? TokenType::kNormal : static_cast<TokenType>(v.token_types[id]);
    if (t != TokenType::kControl && t != TokenType::kUserDefined && t != TokenType::kUnknown) continue;
    added.push_back({{"id", id},
                     {"content", v.tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", t != TokenType::kUserDefined}});
  }
  return added;
}

json vocab_json(const VocabData& v) {
  json vocab = json::object();
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    ZEBRA_CHECK(!vocab.contains(v.tokens[id]), "tokenizer.json: token ", id, " '", bounded(v.tokens[id], 40),
                "' repeats an earlier token's text (a tokenizer.json vocabulary maps each text to one id)");
    vocab[v.tokens[id]] = id;
  }
  return vocab;
}

// BOS/EOS around a single sequence (and around each of a pair), as HF's TemplateProcessing states it.
json post_processor_json(const VocabData& v, bool add_bos, bool add_eos, json otherwise) {
  if (!add_bos && !add_eos) return otherwise;
  json single = json::array(), pair = json::array(), specials = json::object();
  auto special = [&](std::int32_t id) {
    const std::string& t = v.tokens[static_cast<std::size_t>(id)];
    specials[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
    return json{{"SpecialToken", {{"id", t}, {"type_id", 0}}}};
  };
  auto seq = [](const char* s) { return json{{"Sequence", {{"id", s}, {"type_id", 0}}}}; };
  if (add_bos) single.push_back(special(v.bos_id));
  single.push_back(seq("A"));
  if (add_eos) single.push_back(special(v.eos_id));
  pair = single;
  if (add_bos) pair.push_back(special(v.bos_id));
  pair.push_back(seq("B"));
  if (add_eos) pair.push_back(special(v.eos_id));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

// What the two kinds of file differ in.
struct HfParts {
  json normalizer, pre_tokenizer, post_processor, decoder;
  bool default_add_bos = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

std::string hf_tokenizer_json(const VocabData& v, const HfParts& p, const std::vector<std::string>& merges) {
  const bool add_bos = v.add_bos.value_or(p.default_add_bos) && v.bos_id >= 0;
  const bool add_eos = v.add_eos.value_or(false) && v.eos_id >= 0;
  json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_tokens_json(v)},
      {"normalizer", p.normalizer},
      {"pre_tokenizer", p.pre_tokenizer},
      {"post_processor", post_processor_json(v, add_bos, add_eos, p.post_processor)},
      {"decoder", p.decoder},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", v.unk_id >= 0 ? json(v.tokens[static_cast<std::size_t>(v.unk_id)]) : json(nullptr)},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", p.byte_fallback},
        {"byte_fallback", p.byte_fallback},
        {"ignore_merges", p.ignore_merges},
        {"vocab", vocab_json(v)},
        {"merges", merges}}},
  };
  return root.dump(1) + "\n";
}

}  // namespace

std::string bpe_tokenizer_json(const VocabData& v, const ByteLevelOptions& options) {
  json pretok = json::array();
  const std::vector<std::string> regexes = options.regexes ? *options.regexes : pre_tokenizer_regexes(v.pre);
  for (const std::string& re : regexes) {
    pretok.push_back({{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}});
  }
  pretok.push_back({{"type", "ByteLevel"},
                    {"add_prefix_space", options.add_prefix_space},
                    {"trim_offsets", true},
                    {"use_regex", false}});
  HfParts parts;
  parts.pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", pretok}};
  parts.post_processor = {
      {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  parts.decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  parts.ignore_merges = options.ignore_merges.value_or(pre_tokenizer_ignores_merges(v.pre));
  return hf_tokenizer_json(v, parts, v.merges);
}

namespace {

// SentencePiece's merge order as BPE merges: each split of a normal token into two normal tokens,
// by the merged token's score (highest first), then its id, then the split position.
std::vector<std::string> merges_from_scores(const VocabData& v) {
  std::unordered_map<std::string_view, std::int32_t> index;
  auto normal = [&](std::size_t id) {
    const auto t = v.token_types.empty() ? TokenType::kNormal : static_cast<TokenType>(v.token_types[id]);
    return t == TokenType::kNormal || t == TokenType::kUndefined;
  };
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    if (normal(id)) index.emplace(v.tokens[id], static_cast<std::int32_t>(id));
  }
  struct Candidate {
    float score;
    std::int32_t id;
    std::size_t split;
  };
  std::vector<Candidate> candidates;
  for (std::size_t id = 0; id < v.tokens.size(); ++id) {
    if (!normal(id) || index.at(v.tokens[id]) != static_cast<std::int32_t>(id)) continue;
    const std::string_view t = v.tokens[id];
    for (std::size_t k = 1; k < t.size(); ++k) {
      if ((static_cast<unsigned char>(t[k]) & 0xC0) == 0x80) continue;  // inside a character
      if (index.count(t.substr(0, k)) && index.count(t.substr(k))) {
        candidates.push_back(Candidate{v.scores[id], static_cast<std::int32_t>(id), k});
      }
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.id < b.id;
  });
  std::vector<std::string> merges;
  merges.reserve(candidates.size());
  for (const Candidate& c : candidates) {
    const std::string& t = v.tokens[static_cast<std::size_t>(c.id)];
    merges.push_back(t.substr(0, c.split) + " " + t.substr(c.split));
  }
  return merges;
}

}  // namespace

std::string spm_tokenizer_json(const VocabData& v, bool add_space_prefix) {
  ZEBRA_CHECK(!v.merges.empty() || v.scores.size() == v.tokens.size(),
              "tokenizer.json: a SentencePiece-style vocabulary needs merges or scores");
  json normalizers = json::array();
  if (add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", kSpaceSymbol}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpaceSymbol}});
  json decoders = json::array({
      {{"type", "Replace"}, {"pattern", {{"String", kSpaceSymbol}}}, {"content", " "}},
      {{"type", "ByteFallback"}},
      {{"type", "Fuse"}},
  });
  if (add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  HfParts parts;
  parts.normalizer = {{"type", "Sequence"}, {"normalizers", normalizers}};
  parts.decoder = {{"type", "Sequence"}, {"decoders", decoders}};
  parts.default_add_bos = true;
  parts.byte_fallback = true;
  return hf_tokenizer_json(v, parts, v.merges.empty() ? merges_from_scores(v) : v.merges);
}

std::string tokenizer_config_json(const VocabData& v) {
  auto token = [&](std::int32_t id) { return id >= 0 ? json(v.tokens[static_cast<std::size_t>(id)]) : json(nullptr); };
  json c = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"bos_token", token(v.bos_id)},
      {"eos_token", token(v.eos_id)},
      {"unk_token", token(v.unk_id)},
      {"pad_token", token(v.pad_id)},
      {"add_bos_token", v.add_bos.value_or(v.model == "llama")},
      {"add_eos_token", v.add_eos.value_or(false)},
      {"clean_up_tokenization_spaces", false},
  };
  if (!v.chat_template.empty()) c["chat_template"] = v.chat_template;
  return c.dump(1) + "\n";
}

void save_tokenizer_json(const std::string& path, const std::string& json_text, const VocabData& vocab) {
  write_file_atomic(path, json_text);
  write_file_atomic((std::filesystem::path(path).parent_path() / "tokenizer_config.json").string(),
                    tokenizer_config_json(vocab));
}

}  // namespace zebra
