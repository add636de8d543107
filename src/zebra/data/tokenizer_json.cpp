#include "zebra/data/tokenizer_json.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "zebra/data/piece_text.hpp"
#include "zebra/data/spm_vocab_tokenizer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxFileBytes = std::size_t{1} << 28;  // 256 MiB: real files are below 20 MiB
constexpr std::size_t kMaxDepth = 16;                        // real files nest 6 deep
constexpr std::size_t kMaxTokens = std::size_t{1} << 24;
constexpr std::size_t kMaxMerges = std::size_t{1} << 25;
// HF ByteLevel's own regex (use_regex = true) is GPT-2's.
constexpr std::string_view kGpt2Pre = "gpt-2";

json parse_bounded(std::string_view text, const std::string& name) {
  ZEBRA_CHECK(text.size() <= kMaxFileBytes, "'", name, "': ", text.size(), " bytes (expected at most ", kMaxFileBytes,
              ")");
  check_json_depth(text, "'" + name + "'", kMaxDepth);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("'", name, "' is not valid JSON: ", bounded(e.what(), 200));
  }
}

// Field access with errors that name the file and the field path.
class Reader {
 public:
  explicit Reader(const std::string& name) : name_(name) {}
  [[noreturn]] void bad(const std::string& field, const json& value, const std::string& expected) const {
    fail("'", name_, "': field ", field, " is ", shown_json(value), " (expected ", expected, ")");
  }
  const json& object(const json& parent, const std::string& key, const std::string& field) const {
    auto it = parent.find(key);
    if (it == parent.end()) fail("'", name_, "': field ", field, " is missing");
    if (!it->is_object()) bad(field, *it, "an object");
    return *it;
  }
  const json& array(const json& parent, const std::string& key, const std::string& field) const {
    auto it = parent.find(key);
    if (it == parent.end()) fail("'", name_, "': field ", field, " is missing");
    if (!it->is_array()) bad(field, *it, "an array");
    return *it;
  }
  std::string string(const json& v, const std::string& field) const {
    if (!v.is_string()) bad(field, v, "a string");
    return v.get<std::string>();
  }
  // An optional string or null; "" when absent or null.
  std::string opt_string(const json& parent, const std::string& key, const std::string& field) const {
    auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return "";
    return string(*it, field);
  }
  std::optional<bool> opt_bool(const json& parent, const std::string& key, const std::string& field) const {
    auto it = parent.find(key);
    if (it == parent.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) bad(field, *it, "true or false");
    return it->get<bool>();
  }
  std::int64_t id(const json& v, const std::string& field) const {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
        v.get<std::int64_t>() >= static_cast<std::int64_t>(kMaxTokens)) {
      bad(field, v, str_cat("a token id in [0, ", kMaxTokens, ")"));
    }
    return v.get<std::int64_t>();
  }
  const std::string& name() const { return name_; }

 private:
  const std::string& name_;
};

std::string regex_quote(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}/-").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

struct PreTokenizerInfo {
  std::vector<std::string> regexes;
  bool byte_level = false;
  bool add_prefix_space = false;  // ByteLevel's
  std::optional<bool> metaspace_prefix;
};

void read_pre_tokenizer(const Reader& r, const json& p, const std::string& field, PreTokenizerInfo& info) {
  if (p.is_null()) return;
  if (!p.is_object()) r.bad(field, p, "an object or null");
  const std::string type = r.opt_string(p, "type", field + ".type");
  if (type == "Sequence") {
    const json& list = r.array(p, "pretokenizers", field + ".pretokenizers");
    for (std::size_t i = 0; i < list.size(); ++i)
      read_pre_tokenizer(r, list[i], str_cat(field, ".pretokenizers[", i, "]"), info);
  } else if (type == "ByteLevel") {
    info.byte_level = true;
    info.add_prefix_space = r.opt_bool(p, "add_prefix_space", field + ".add_prefix_space").value_or(true);
    if (r.opt_bool(p, "use_regex", field + ".use_regex").value_or(true)) {
      for (const std::string& re : pre_tokenizer_regexes(kGpt2Pre)) info.regexes.push_back(re);
    }
  } else if (type == "Split") {
    const json& pattern = r.object(p, "pattern", field + ".pattern");
    if (pattern.contains("Regex")) {
      info.regexes.push_back(r.string(pattern["Regex"], field + ".pattern.Regex"));
    } else if (pattern.contains("String")) {
      info.regexes.push_back(regex_quote(r.string(pattern["String"], field + ".pattern.String")));
    } else {
      r.bad(field + ".pattern", pattern, "{\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string behavior = r.opt_string(p, "behavior", field + ".behavior");
    if (behavior != "Isolated")
      r.bad(field + ".behavior", p.value("behavior", json()), "\"Isolated\" (others are not supported)");
    if (r.opt_bool(p, "invert", field + ".invert").value_or(false)) r.bad(field + ".invert", true, "false");
  } else if (type == "Digits") {
    info.regexes.push_back(
        r.opt_bool(p, "individual_digits", field + ".individual_digits").value_or(false) ? R"(\p{N})" : R"(\p{N}+)");
  } else if (type == "Metaspace") {
    const std::string scheme = r.opt_string(p, "prepend_scheme", field + ".prepend_scheme");
    const auto add = r.opt_bool(p, "add_prefix_space", field + ".add_prefix_space");
    info.metaspace_prefix = scheme.empty() ? add.value_or(true) : scheme != "never";
  } else {
    r.bad(field + ".type", p.value("type", json()), "Sequence, ByteLevel, Split, Digits or Metaspace");
  }
}

// Llama 2's normalizer: Prepend("▁") then Replace(" ", "▁"); NFC is accepted (see the header).
void read_normalizer(const Reader& r, const json& n, const std::string& field, bool& prepend, bool& replace) {
  if (n.is_null()) return;
  if (!n.is_object()) r.bad(field, n, "an object or null");
  const std::string type = r.opt_string(n, "type", field + ".type");
  if (type == "Sequence") {
    const json& list = r.array(n, "normalizers", field + ".normalizers");
    for (std::size_t i = 0; i < list.size(); ++i)
      read_normalizer(r, list[i], str_cat(field, ".normalizers[", i, "]"), prepend, replace);
  } else if (type == "Prepend") {
    if (r.opt_string(n, "prepend", field + ".prepend") != kSpaceSymbol)
      r.bad(field + ".prepend", n.value("prepend", json()), "\"▁\"");
    prepend = true;
  } else if (type == "Replace") {
    const json& pattern = r.object(n, "pattern", field + ".pattern");
    const std::string from = pattern.contains("String") ? r.string(pattern["String"], field + ".pattern.String") : "";
    if (from != " " || r.opt_string(n, "content", field + ".content") != kSpaceSymbol)
      r.bad(field, n, "Replace(\" \", \"▁\")");
    replace = true;
  } else if (type != "NFC") {
    r.bad(field + ".type", n.value("type", json()), "Sequence, Prepend, Replace or NFC");
  }
}

// The token named by a tokenizer_config.json field: a string or {"content": ...}.
std::string config_token(const Reader& r, const json& config, const std::string& key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_object()) return r.opt_string(*it, "content", "tokenizer_config." + key + ".content");
  return r.string(*it, "tokenizer_config." + key);
}

}  // namespace

namespace {

TokenizerJson parse_checked(std::string_view text, const std::string& name, std::string_view config_text) {
  const Reader r(name);
  const json root = parse_bounded(text, name);
  if (!root.is_object()) r.bad("(top level)", root, "an object");
  const json& model = r.object(root, "model", "model");
  const std::string type = r.opt_string(model, "type", "model.type");
  if (type != "BPE")
    r.bad("model.type", model.value("type", json()), "\"BPE\" (WordPiece, Unigram, WordLevel are not supported)");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    r.bad("model.dropout", model["dropout"], "null (BPE dropout is not supported)");
  }
  if (!r.opt_string(model, "continuing_subword_prefix", "model.continuing_subword_prefix").empty()) {
    r.bad("model.continuing_subword_prefix", model["continuing_subword_prefix"], "null");
  }
  if (!r.opt_string(model, "end_of_word_suffix", "model.end_of_word_suffix").empty()) {
    r.bad("model.end_of_word_suffix", model["end_of_word_suffix"], "null");
  }

  // id -> (text, type); ids must come out dense 0..n-1.
  std::map<std::int64_t, std::pair<std::string, TokenType>> by_id;
  const json& vocab = r.object(model, "vocab", "model.vocab");
  ZEBRA_CHECK(vocab.size() <= kMaxTokens, "'", name, "': model.vocab has ", vocab.size(), " tokens (expected at most ",
              kMaxTokens, ")");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::int64_t id = r.id(it.value(), "model.vocab[\"" + bounded(it.key(), 40) + "\"]");
    if (!by_id.emplace(id, std::make_pair(it.key(), TokenType::kNormal)).second) {
      fail("'", name, "': model.vocab gives id ", id, " to both '", bounded(by_id[id].first, 40), "' and '",
           bounded(it.key(), 40), "' (expected one token per id)");
    }
  }
  if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
    if (!it->is_array()) r.bad("added_tokens", *it, "an array");
    ZEBRA_CHECK(it->size() <= kMaxTokens, "'", name, "': ", it->size(), " added_tokens (expected at most ", kMaxTokens,
                ")");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& a = (*it)[i];
      const std::string field = str_cat("added_tokens[", i, "]");
      if (!a.is_object()) r.bad(field, a, "an object");
      if (!a.contains("id")) fail("'", name, "': field ", field, ".id is missing");
      const std::int64_t id = r.id(a["id"], field + ".id");
      const std::string content = r.string(a.value("content", json()), field + ".content");
      const TokenType t =
          r.opt_bool(a, "special", field + ".special").value_or(false) ? TokenType::kControl : TokenType::kUserDefined;
      auto [slot, fresh] = by_id.emplace(id, std::make_pair(content, t));
      if (!fresh) {
        ZEBRA_CHECK(slot->second.first == content, "'", name, "': ", field, " gives id ", id, " to '",
                    bounded(content, 40), "' but model.vocab has '", bounded(slot->second.first, 40), "' there");
        slot->second.second = t;
      }
    }
  }
  ZEBRA_CHECK(!by_id.empty(), "'", name, "': model.vocab is empty");
  const std::int64_t n = by_id.rbegin()->first + 1;
  ZEBRA_CHECK(static_cast<std::size_t>(n) == by_id.size(), "'", name, "': token ids run to ", n - 1, " but only ",
              by_id.size(), " are given (expected every id from 0 to the largest)");

  TokenizerJson out;
  VocabData& v = out.vocab;
  v.tokens.reserve(by_id.size());
  v.token_types.reserve(by_id.size());
  for (auto& [id, tt] : by_id) {
    v.tokens.push_back(std::move(tt.first));
    v.token_types.push_back(static_cast<std::int32_t>(tt.second));
  }
  auto id_of = [&](const std::string& t) -> std::int32_t {
    if (t.empty()) return -1;
    auto it = std::find(v.tokens.begin(), v.tokens.end(), t);
    return it == v.tokens.end() ? -1 : static_cast<std::int32_t>(it - v.tokens.begin());
  };

  // Merges: "left right" strings (older files) or [left, right] pairs (tokenizers >= 0.20).
  if (auto it = model.find("merges"); it != model.end() && !it->is_null()) {
    if (!it->is_array()) r.bad("model.merges", *it, "an array");
    ZEBRA_CHECK(it->size() <= kMaxMerges, "'", name, "': ", it->size(), " merges (expected at most ", kMaxMerges, ")");
    v.merges.reserve(it->size());
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& m = (*it)[i];
      const std::string field = str_cat("model.merges[", i, "]");
      if (m.is_string()) {
        v.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2) {
        const std::string a = r.string(m[0], field + "[0]"), b = r.string(m[1], field + "[1]");
        if (a.empty() || b.find(' ') != std::string::npos || a.find(' ', 1) != std::string::npos) {
          r.bad(field, m, "two non-empty tokens without inner spaces");
        }
        v.merges.push_back(a + " " + b);
      } else {
        r.bad(field, m, "\"left right\" or [\"left\", \"right\"]");
      }
    }
  }

  const std::string unk = r.opt_string(model, "unk_token", "model.unk_token");
  v.unk_id = id_of(unk);
  if (!unk.empty()) {
    ZEBRA_CHECK(v.unk_id >= 0, "'", name, "': model.unk_token '", bounded(unk, 40), "' is not a token");
    v.token_types[static_cast<std::size_t>(v.unk_id)] = static_cast<std::int32_t>(TokenType::kUnknown);
  }

  PreTokenizerInfo pre;
  read_pre_tokenizer(r, root.value("pre_tokenizer", json()), "pre_tokenizer", pre);
  bool prepend = false, replace = false;
  read_normalizer(r, root.value("normalizer", json()), "normalizer", prepend, replace);
  const bool byte_fallback = r.opt_bool(model, "byte_fallback", "model.byte_fallback").value_or(false);
  if (pre.byte_level) {
    v.model = "gpt2";
    out.byte_level.regexes = pre.regexes;
    out.byte_level.add_prefix_space = pre.add_prefix_space;
    out.byte_level.ignore_merges = r.opt_bool(model, "ignore_merges", "model.ignore_merges").value_or(false);
  } else if (byte_fallback || replace || pre.metaspace_prefix) {
    v.model = "llama";
    v.add_space_prefix = prepend || pre.metaspace_prefix.value_or(false);
    for (std::size_t id = 0; id < v.tokens.size(); ++id) {
      if (v.token_types[id] == static_cast<std::int32_t>(TokenType::kNormal) && byte_piece_value(v.tokens[id]) >= 0) {
        v.token_types[id] = static_cast<std::int32_t>(TokenType::kByte);
      }
    }
  } else {
    fail("'", name, "': neither a ByteLevel pre-tokenizer nor a byte_fallback / \"▁\" BPE (expected one of them)");
  }
  ZEBRA_CHECK(!v.merges.empty(), "'", name, "': model.merges is empty (expected the BPE merges)");

  // BOS/EOS added by the post-processor's single-sequence template.
  if (auto it = root.find("post_processor");
      it != root.end() && it->is_object() && it->value("type", "") == "TemplateProcessing") {
    auto single = it->find("single");
    if (single != it->end() && single->is_array() && !single->empty()) {
      auto special_id = [&](const json& item) -> std::int32_t {
        if (!item.is_object() || !item.contains("SpecialToken") || !item["SpecialToken"].is_object()) return -1;
        return id_of(r.opt_string(item["SpecialToken"], "id", "post_processor.single[].SpecialToken.id"));
      };
      const std::int32_t first = special_id(single->front()), last = special_id(single->back());
      v.add_bos = first >= 0;
      v.add_eos = last >= 0 && single->size() > 1;
      if (first >= 0) v.bos_id = first;
      if (last >= 0 && single->size() > 1) v.eos_id = last;
    }
  }
  if (!config_text.empty()) {
    const std::string cname = name + " (tokenizer_config.json)";
    const Reader rc(cname);
    const json config = parse_bounded(config_text, cname);
    if (!config.is_object()) rc.bad("(top level)", config, "an object");
    const std::pair<const char*, std::int32_t*> specials[] = {
        {"bos_token", &v.bos_id}, {"eos_token", &v.eos_id}, {"unk_token", &v.unk_id}, {"pad_token", &v.pad_id}};
    for (const auto& [key, slot] : specials) {
      const std::string t = config_token(rc, config, key);
      if (t.empty()) continue;
      *slot = id_of(t);
      ZEBRA_CHECK(*slot >= 0, "'", cname, "': ", key, " '", bounded(t, 40), "' is not a token");
    }
    if (auto b = rc.opt_bool(config, "add_bos_token", "add_bos_token")) v.add_bos = b;
    if (auto e = rc.opt_bool(config, "add_eos_token", "add_eos_token")) v.add_eos = e;
    if (auto it = config.find("chat_template"); it != config.end() && it->is_string())
      v.chat_template = it->get<std::string>();
  }
  return out;
}

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& name, std::string_view config_text) {
  try {
    return parse_checked(text, name, config_text);
  } catch (const json::exception& e) {
    // A value of an unexpected type somewhere the checks above did not look.
    fail("'", name, "': unexpected JSON content: ", bounded(e.what(), 200));
  }
}

TokenizerJson read_tokenizer_json(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  ZEBRA_CHECK(!ec, "tokenizer '", path, "' cannot be read: ", ec.message());
  ZEBRA_CHECK(size <= kMaxFileBytes, "tokenizer '", path, "': ", size, " bytes (expected at most ", kMaxFileBytes, ")");
  const std::string text = read_file(path);
  const auto config_path = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  std::string config;
  if (std::filesystem::is_regular_file(config_path, ec)) {
    ZEBRA_CHECK(std::filesystem::file_size(config_path, ec) <= kMaxFileBytes, "'", config_path.string(),
                "' is too large");
    config = read_file(config_path.string());
  }
  return parse_tokenizer_json(text, path, config);
}

std::unique_ptr<VocabTokenizer> load_tokenizer_json(const std::string& path) {
  TokenizerJson t = read_tokenizer_json(path);
  if (t.vocab.model == "gpt2") return std::make_unique<BpeTokenizer>(std::move(t.vocab), path, std::move(t.byte_level));
  return std::make_unique<SpmVocabTokenizer>(std::move(t.vocab), path);
}

bool looks_like_tokenizer_json(std::string_view bytes) {
  const std::size_t first = bytes.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || bytes[first] != '{') return false;
  return bytes.find("\"model\"") != std::string_view::npos;
}

}  // namespace zebra
