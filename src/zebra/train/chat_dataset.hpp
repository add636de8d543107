// `zebra prepare --chat`: instruction data (data/chat_records.hpp) -> masked token datasets for LIT.
//
// Each usable conversation is rendered with a chat template (generate/chat_template.hpp: the tokenizer's own,
// or --template) and encoded with its assistant mask (encode_chat): a token is scored when it lies in an
// assistant span, which holds the answer and its end-of-turn marker. The document is stored exactly as the
// template renders it (version 2 token dataset, data/token_dataset.hpp).
//
// Conversations longer than max_tokens (the training sequence length T, when given):
//   truncate  drop the earliest tokens (after a leading BOS, which is kept) so that max_tokens remain, when no
//             answer token is among the dropped ones or becomes the first token (which is never a target);
//             otherwise the record is skipped as too_long. An answer is never cut.
//   skip      skipped as too_long.
// Every unusable record is counted by kind (ChatRecordProblem) and the first few are logged with their line;
// none stops the run. The output directory holds train.bin, valid.bin (with --valid), the tokenizer and
// prepare.json (counts, template, policy).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zebra/data/chat_records.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/generate/chat_template.hpp"

namespace zebra {

enum class ChatOverflow { kTruncate, kSkip };
ChatOverflow parse_chat_overflow(std::string_view s);  // "truncate" | "skip"; throws naming both
const char* to_string(ChatOverflow p);

// Fits an encoded conversation into max_tokens (<= 0: no limit) by `policy`, in place. Returns kOk (and sets
// *truncated when tokens were dropped) or kTooLong.
ChatRecordProblem fit_chat(EncodedChat& chat, std::int64_t max_tokens, ChatOverflow policy, std::int32_t bos_id,
                           bool* truncated);

struct ChatPrepareOptions {
  std::vector<std::string> inputs;        // JSONL files, optionally .zst
  std::vector<std::string> valid_inputs;  // held-out conversations (valid.bin)
  std::string out_dir;
  std::shared_ptr<const Tokenizer> tokenizer;  // required
  std::string tokenizer_path;                  // where it came from (for prepare.json)
  std::string template_name;                   // "" = the tokenizer's chat template, else plain
  std::int64_t max_tokens = 0;                 // T; <= 0: no limit
  ChatOverflow overflow = ChatOverflow::kTruncate;
  bool progress = true;
};

struct ChatSplitStats {
  std::int64_t records = 0;        // non-blank lines read
  std::int64_t conversations = 0;  // written
  std::int64_t truncated = 0;      // written after dropping their earliest tokens
  std::int64_t tokens = 0, scored_tokens = 0, max_conversation_tokens = 0;
  ChatRecordCounts problems;  // [kOk] = conversations written
};

struct ChatPrepareResult {
  ChatSplitStats train, valid;
  bool has_valid = false;
  std::string template_name, tokenizer_file;
  std::int64_t vocab_size = 0;
  double seconds = 0;
  nlohmann::json to_json() const;
};

// Throws zebra::Error on bad options, unreadable inputs or a split with no usable conversation; bad records are
// counted instead.
ChatPrepareResult prepare_chat_dataset(const ChatPrepareOptions& options);

}  // namespace zebra
