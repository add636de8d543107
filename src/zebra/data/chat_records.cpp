#include "zebra/data/chat_records.hpp"

#include <nlohmann/json.hpp>

#include "zebra/data/corpus.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

const char* to_string(ChatRecordProblem p) {
  switch (p) {
    case ChatRecordProblem::kOk: return "ok";
    case ChatRecordProblem::kNotJson: return "not_json";
    case ChatRecordProblem::kInvalidUtf8: return "invalid_utf8";
    case ChatRecordProblem::kUnknownFormat: return "unknown_format";
    case ChatRecordProblem::kUnknownRole: return "unknown_role";
    case ChatRecordProblem::kEmpty: return "empty";
    case ChatRecordProblem::kNoAssistant: return "no_assistant";
    case ChatRecordProblem::kBadOrder: return "bad_order";
    case ChatRecordProblem::kTooLong: return "too_long";
  }
  return "?";
}

std::int64_t ChatRecordCounts::bad() const {
  std::int64_t s = 0;
  for (std::size_t k = 1; k < n.size(); ++k) s += n[k];
  return s;
}

namespace {

ChatRecord problem(ChatRecordProblem p, std::string detail) {
  ChatRecord r;
  r.problem = p;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

ChatRecord parse_chat_record(std::string_view line) {
  if (auto bad = find_invalid_utf8(line)) {
    return problem(ChatRecordProblem::kInvalidUtf8, "invalid UTF-8 at byte " + std::to_string(*bad));
  }
  if (json_depth(line).depth > kMaxJsonDepth) {
    return problem(ChatRecordProblem::kNotJson, str_cat("JSON nested more than ", kMaxJsonDepth, " levels deep"));
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return problem(ChatRecordProblem::kNotJson, "not a JSON object");
  ChatRecord r;
  if (auto it = j.find("messages"); it != j.end()) {
    if (!it->is_array()) return problem(ChatRecordProblem::kUnknownFormat, "\"messages\" is not an array");
    for (std::size_t k = 0; k < it->size(); ++k) {
      const nlohmann::json& m = (*it)[k];
      const std::string where = "message " + std::to_string(k);
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string()) {
        return problem(ChatRecordProblem::kUnknownFormat, where + " needs string \"role\" and \"content\"");
      }
      ChatMessage msg{m["role"].get<std::string>(), m["content"].get<std::string>()};
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
        return problem(ChatRecordProblem::kUnknownRole,
                       where + " has role \"" + msg.role + "\" (expected system, user or assistant)");
      }
      if (msg.role == "system" && k > 0) {
        return problem(ChatRecordProblem::kBadOrder, where + " is a system message after the first");
      }
      r.messages.push_back(std::move(msg));
    }
  } else if (j.contains("instruction") && j.contains("output")) {
    auto text = [&](const char* key, std::string* out) {
      auto f = j.find(key);
      if (f == j.end()) return true;
      if (!f->is_string()) return false;
      *out = f->get<std::string>();
      return true;
    };
    std::string system, instruction, input, output;
    if (!text("system", &system) || !text("instruction", &instruction) || !text("input", &input) ||
        !text("output", &output)) {
      return problem(ChatRecordProblem::kUnknownFormat, "Alpaca fields must be strings");
    }
    if (!system.empty()) r.messages.push_back({"system", system});
    r.messages.push_back({"user", input.empty() ? instruction : instruction + "\n\n" + input});
    r.messages.push_back({"assistant", output});
  } else {
    return problem(ChatRecordProblem::kUnknownFormat,
                   "expected {\"messages\": [...]} or {\"instruction\", \"input\", \"output\"}");
  }
  bool any_content = false, any_answer = false;
  for (const ChatMessage& m : r.messages) {
    any_content |= !m.content.empty();
    any_answer |= m.role == "assistant" && !m.content.empty();
  }
  if (!any_content) return problem(ChatRecordProblem::kEmpty, "no message with content");
  if (!any_answer) return problem(ChatRecordProblem::kNoAssistant, "no assistant message with content");
  return r;
}

}  // namespace zebra
