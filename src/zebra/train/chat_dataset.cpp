#include "zebra/train/chat_dataset.hpp"

#include <algorithm>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>

#include "zebra/data/corpus.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/log.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace fs = std::filesystem;

ChatOverflow parse_chat_overflow(std::string_view s) {
  if (s == "truncate") return ChatOverflow::kTruncate;
  if (s == "skip") return ChatOverflow::kSkip;
  fail("unknown overflow policy '", s, "' (expected truncate or skip)");
}

const char* to_string(ChatOverflow p) { return p == ChatOverflow::kTruncate ? "truncate" : "skip"; }

ChatRecordProblem fit_chat(EncodedChat& chat, std::int64_t max_tokens, ChatOverflow policy, std::int32_t bos_id,
                           bool* truncated) {
  *truncated = false;
  const auto n = static_cast<std::int64_t>(chat.tokens.size());
  if (max_tokens <= 0 || n <= max_tokens) return ChatRecordProblem::kOk;
  if (policy == ChatOverflow::kSkip) return ChatRecordProblem::kTooLong;
  const bool keep_bos = chat.tokens[0] == bos_id && max_tokens >= 2;
  const std::int64_t cut = n - (keep_bos ? max_tokens - 1 : max_tokens);  // first kept token after the BOS
  const std::int64_t dropped_from = keep_bos ? 1 : 0;
  // Without a BOS in front, the first kept token is never a target: it must not be an answer token either.
  const std::int64_t check_to = keep_bos ? cut : cut + 1;
  for (std::int64_t i = dropped_from; i < check_to; ++i) {
    if (chat.assistant[static_cast<std::size_t>(i)] != 0) return ChatRecordProblem::kTooLong;
  }
  chat.tokens.erase(chat.tokens.begin() + dropped_from, chat.tokens.begin() + cut);
  chat.assistant.erase(chat.assistant.begin() + dropped_from, chat.assistant.begin() + cut);
  *truncated = true;
  return ChatRecordProblem::kOk;
}

namespace {

constexpr int kLoggedPerKind = 3;
constexpr std::size_t kChunkRecords = 256;

struct Line {
  std::string text;
  std::string where;  // file:line
};

struct Encoded {
  EncodedChat chat;
  ChatRecordProblem problem = ChatRecordProblem::kOk;
  std::string detail;
  bool truncated = false;
};

class ChatSplitWriter {
 public:
  ChatSplitWriter(const ChatPrepareOptions& o, const ChatTemplate& t, const std::string& path, ChatSplitStats* stats)
      : o_(o), t_(t), stats_(stats) {
    const Tokenizer& tok = *o.tokenizer;
    writer_.emplace(path, tok.vocab_size(), tok.bos_id(), tok.eos_id(), /*loss_mask=*/true);
  }

  void add(Line line) {
    if (line.text.find_first_not_of(" \t\r") == std::string::npos) return;  // blank line
    pending_.push_back(std::move(line));
    if (pending_.size() >= kChunkRecords) flush();
  }

  void flush() {
    const auto n = static_cast<std::int64_t>(pending_.size());
    std::vector<Encoded> out(pending_.size());
    std::vector<std::exception_ptr> errors(pending_.size());
#pragma omp parallel for schedule(dynamic, 4)
    for (std::int64_t k = 0; k < n; ++k) {
      try {
        out[static_cast<std::size_t>(k)] = encode(pending_[static_cast<std::size_t>(k)].text);
      } catch (...) {
        errors[static_cast<std::size_t>(k)] = std::current_exception();
      }
    }
    for (auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    for (std::size_t k = 0; k < out.size(); ++k) {
      ++stats_->records;
      Encoded& e = out[k];
      ++stats_->problems[e.problem];
      if (e.problem != ChatRecordProblem::kOk) {
        if (o_.progress && stats_->problems[e.problem] <= kLoggedPerKind) {
          log_info("prepare --chat: ", pending_[k].where, ": skipped (", to_string(e.problem), "): ", e.detail);
        }
        continue;
      }
      writer_->add_masked_document(e.chat.tokens, e.chat.assistant);
      ++stats_->conversations;
      stats_->truncated += e.truncated ? 1 : 0;
      const auto len = static_cast<std::int64_t>(e.chat.tokens.size());
      stats_->tokens += len;
      stats_->max_conversation_tokens = std::max(stats_->max_conversation_tokens, len);
      for (std::uint8_t m : e.chat.assistant) stats_->scored_tokens += m;
    }
    pending_.clear();
  }

  void finish() {
    flush();
    writer_->finish();
  }

 private:
  Encoded encode(const std::string& text) const {
    Encoded e;
    ChatRecord r = parse_chat_record(text);
    if (r.problem != ChatRecordProblem::kOk) {
      e.problem = r.problem;
      e.detail = std::move(r.detail);
      return e;
    }
    RenderedChat rendered;
    try {
      rendered = render_chat(t_, r.messages, false);
    } catch (const Error& err) {
      e.problem = ChatRecordProblem::kBadOrder;
      e.detail = err.what();
      return e;
    }
    e.chat = encode_chat(t_, *o_.tokenizer, rendered);
    e.problem = fit_chat(e.chat, o_.max_tokens, o_.overflow, o_.tokenizer->bos_id(), &e.truncated);
    if (e.problem == ChatRecordProblem::kTooLong) {
      e.detail = str_cat(e.chat.tokens.size(), " tokens, more than ", o_.max_tokens,
                         o_.overflow == ChatOverflow::kSkip ? "" : ", and truncating would cut an answer");
    }
    return e;
  }

  const ChatPrepareOptions& o_;
  const ChatTemplate& t_;
  ChatSplitStats* stats_;
  std::optional<TokenDatasetWriter> writer_;
  std::vector<Line> pending_;
};

void read_lines(const std::vector<std::string>& inputs, ChatSplitWriter& w) {
  for (const std::string& file : expand_corpus_inputs(inputs)) {
    for_each_line(file, [&](std::string_view line, std::int64_t line_no) {
      w.add({std::string(line), str_cat(file, ":", line_no)});
    });
  }
  w.flush();
}

nlohmann::json split_json(const ChatSplitStats& s, const char* file) {
  nlohmann::json bad = nlohmann::json::object();
  for (std::size_t k = 1; k < kChatRecordProblems; ++k) {
    bad[to_string(static_cast<ChatRecordProblem>(k))] = s.problems.n[k];
  }
  return {{"file", file},
          {"records", s.records},
          {"conversations", s.conversations},
          {"truncated", s.truncated},
          {"tokens", s.tokens},
          {"scored_tokens", s.scored_tokens},
          {"max_conversation_tokens", s.max_conversation_tokens},
          {"bad_records", bad}};
}

}  // namespace

nlohmann::json ChatPrepareResult::to_json() const {
  nlohmann::json j = {
      {"kind", "chat"},
      {"template", template_name},
      {"tokenizer", {{"file", fs::path(tokenizer_file).filename().string()}, {"vocab_size", vocab_size}}},
      {"train", split_json(train, "train.bin")},
      {"seconds", seconds}};
  if (has_valid) j["valid"] = split_json(valid, "valid.bin");
  return j;
}

ChatPrepareResult prepare_chat_dataset(const ChatPrepareOptions& o) {
  Timer timer;
  ZEBRA_CHECK(!o.inputs.empty(), "prepare --chat: no inputs");
  ZEBRA_CHECK(!o.out_dir.empty(), "prepare --chat: no output directory");
  ZEBRA_CHECK(o.tokenizer != nullptr,
              "prepare --chat: needs a tokenizer (--tokenizer FILE or MODEL): the chat "
              "template and its special tokens belong to a model's vocabulary");
  expand_corpus_inputs(o.inputs);
  if (!o.valid_inputs.empty()) expand_corpus_inputs(o.valid_inputs);
  const Tokenizer& tok = *o.tokenizer;
  ZEBRA_CHECK(tok.bos_id() >= 0 && tok.eos_id() >= 0, "prepare --chat: the tokenizer has no BOS or EOS token");
  const ChatTemplate& t = choose_chat_template(o.template_name, tok.chat_template());

  const fs::path out(o.out_dir);
  fs::create_directories(out);
  ChatPrepareResult r;
  r.template_name = t.name;
  r.vocab_size = tok.vocab_size();
  r.tokenizer_file = (out / tok.file_name()).string();
  std::error_code ec;
  if (!fs::equivalent(o.tokenizer_path, r.tokenizer_file, ec)) tok.save(r.tokenizer_file);
  if (o.progress)
    log_info("prepare --chat: template ", t.name, ", sequence limit ", o.max_tokens, " (", to_string(o.overflow), ")");

  // Both splits are read and checked before either file is renamed into place, so a failed run leaves the files
  // of an earlier one as they were.
  auto read_split = [&](const std::vector<std::string>& inputs, const char* name, ChatSplitStats* stats) {
    auto w = std::make_unique<ChatSplitWriter>(o, t, (out / name).string(), stats);
    read_lines(inputs, *w);
    ZEBRA_CHECK(stats->conversations > 0, "prepare --chat: no usable conversation in the ",
                name == std::string("train.bin") ? "inputs" : "--valid inputs", " (", stats->records, " records, ",
                stats->problems.bad(), " bad; see the lines above)");
    return w;
  };
  std::unique_ptr<ChatSplitWriter> train = read_split(o.inputs, "train.bin", &r.train), valid;
  r.has_valid = !o.valid_inputs.empty();
  if (r.has_valid) valid = read_split(o.valid_inputs, "valid.bin", &r.valid);
  train->finish();
  if (valid) {
    valid->finish();
  } else if (fs::exists(out / "valid.bin", ec)) {
    fs::remove(out / "valid.bin", ec);
  }
  r.seconds = timer.seconds();
  nlohmann::json j = r.to_json();
  j["options"] = {{"inputs", o.inputs},
                  {"valid_inputs", o.valid_inputs},
                  {"max_tokens", o.max_tokens},
                  {"overflow", to_string(o.overflow)},
                  {"tokenizer", o.tokenizer_path}};
  write_file_atomic((out / "prepare.json").string(), j.dump(2) + "\n");
  return r;
}

}  // namespace zebra
