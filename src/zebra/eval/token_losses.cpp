#include "zebra/eval/token_losses.hpp"

#include <nlohmann/json.hpp>

#include "zebra/eval/perplexity.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

namespace {

std::vector<std::int32_t> read_sequence(const std::string& path, const nlohmann::json& seq, std::size_t s,
                                        std::int64_t vocab_size, std::int64_t max_len) {
  if (!seq.is_array()) fail("'", path, "': sequence ", s, ": expected an array of token ids, found ", shown_json(seq));
  const std::int64_t n = static_cast<std::int64_t>(seq.size());
  if (n < 2 || n > max_len) {
    fail("'", path, "': sequence ", s, " has ", n, " tokens, expected 2 .. ", max_len);
  }
  std::vector<std::int32_t> ids;
  ids.reserve(seq.size());
  for (std::size_t i = 0; i < seq.size(); ++i) {
    const nlohmann::json& v = seq[i];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() >= vocab_size) {
      fail("'", path, "': sequence ", s, ", index ", i, ": got ", shown_json(v), ", expected a token id in [0, ",
           vocab_size, ")");
    }
    ids.push_back(static_cast<std::int32_t>(v.get<std::int64_t>()));
  }
  return ids;
}

}  // namespace

std::vector<std::vector<std::int32_t>> read_token_sequences(const std::string& path, std::int64_t vocab_size,
                                                            std::int64_t max_len) {
  const std::string text = read_file(path);
  check_json_depth(text, "'" + path + "'");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("'", path, "': not valid JSON (expected token ids: [1, 5, 9] or [[...], ...])");
  if (j.is_object()) {
    if (!j.contains("tokens")) fail("'", path, "': an object needs a 'tokens' field (a list of token ids or of lists)");
    j = nlohmann::json(j.at("tokens"));
  }
  if (!j.is_array() || j.empty())
    fail("'", path, "': expected a non-empty list of token ids or of lists, found ", shown_json(j));
  std::vector<std::vector<std::int32_t>> out;
  if (!j.front().is_array()) {
    out.push_back(read_sequence(path, j, 0, vocab_size, max_len));
    return out;
  }
  if (j.size() > kMaxTokenSequences)
    fail("'", path, "': ", j.size(), " sequences, expected at most ", kMaxTokenSequences);
  for (std::size_t s = 0; s < j.size(); ++s) out.push_back(read_sequence(path, j[s], s, vocab_size, max_len));
  return out;
}

nlohmann::json token_losses_json(Transformer<float>& model, const std::vector<std::vector<std::int32_t>>& sequences) {
  nlohmann::json losses = nlohmann::json::array(), means = nlohmann::json::array();
  for (const std::vector<std::int32_t>& seq : sequences) {
    const std::vector<double> l = evaluate_token_losses(model, seq);
    double sum = 0.0;
    for (double x : l) sum += x;
    losses.push_back(l);
    means.push_back(sum / static_cast<double>(l.size()));
  }
  return {{"losses", losses}, {"mean_loss", means}};
}

}  // namespace zebra
