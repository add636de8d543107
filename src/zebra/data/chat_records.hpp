// Instruction data in: one conversation per JSONL line (DESIGN.md §3), as
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}    (multi-turn)
//   {"instruction": "...", "input": "...", "output": "..."}                           (Alpaca; input optional,
//                                                                                     an optional "system")
// An Alpaca record is the conversation [system], user = instruction (+ "\n\n" + input when not empty),
// assistant = output. Other fields of a record are ignored (a task's metadata rides along, eval/long_tasks.hpp).
// A record that cannot be used is classified, never thrown: the caller counts each kind and goes on.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zebra {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Why a record is not used (kOk: it is). kTooLong is decided later, against the sequence length.
enum class ChatRecordProblem {
  kOk,
  kNotJson,        // not a JSON object
  kInvalidUtf8,    // the line's bytes are not valid UTF-8
  kUnknownFormat,  // neither "messages" nor "instruction"/"output", or a field of the wrong type
  kUnknownRole,    // a role other than system, user, assistant
  kEmpty,          // no messages, or only empty contents
  kNoAssistant,    // nothing to score
  kBadOrder,       // a system message after the first, or the template refuses the order
  kTooLong,        // longer than the sequence length and not truncatable
};
inline constexpr std::size_t kChatRecordProblems = 9;
// "ok", "not_json", "invalid_utf8", "unknown_format", "unknown_role", "empty", "no_assistant", "bad_order",
// "too_long": the keys of prepare.json's "bad_records".
const char* to_string(ChatRecordProblem p);

struct ChatRecord {
  std::vector<ChatMessage> messages;
  ChatRecordProblem problem = ChatRecordProblem::kOk;
  std::string detail;  // what was wrong, for the first few messages of each kind
};

// Parses one line (without its newline).
ChatRecord parse_chat_record(std::string_view line);

// Counts of records by problem.
struct ChatRecordCounts {
  std::array<std::int64_t, kChatRecordProblems> n{};
  std::int64_t& operator[](ChatRecordProblem p) { return n[static_cast<std::size_t>(p)]; }
  std::int64_t operator[](ChatRecordProblem p) const { return n[static_cast<std::size_t>(p)]; }
  std::int64_t bad() const;  // all but kOk
};

}  // namespace zebra
