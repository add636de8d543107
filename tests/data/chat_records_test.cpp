#include "zebra/data/chat_records.hpp"

#include <gtest/gtest.h>

namespace zebra {
namespace {

TEST(ChatRecords, MessagesAndAlpacaRecords) {
  const ChatRecord m = parse_chat_record(
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},)"
      R"( {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},)"
      R"( {"role": "assistant", "content": "Bye!"}], "task": {"kind": "fact"}})");
  ASSERT_EQ(m.problem, ChatRecordProblem::kOk) << m.detail;
  ASSERT_EQ(m.messages.size(), 5u);
  EXPECT_EQ(m.messages[0].role, "system");
  EXPECT_EQ(m.messages[4].content, "Bye!");

  const ChatRecord a = parse_chat_record(R"({"instruction": "Translate", "input": "chat", "output": "cat"})");
  ASSERT_EQ(a.problem, ChatRecordProblem::kOk);
  ASSERT_EQ(a.messages.size(), 2u);
  EXPECT_EQ(a.messages[0].role, "user");
  EXPECT_EQ(a.messages[0].content, "Translate\n\nchat");
  EXPECT_EQ(a.messages[1].role, "assistant");
  EXPECT_EQ(a.messages[1].content, "cat");
  const ChatRecord b = parse_chat_record(R"({"instruction": "Say hi", "output": "hi", "system": "S"})");
  ASSERT_EQ(b.problem, ChatRecordProblem::kOk);
  ASSERT_EQ(b.messages.size(), 3u);
  EXPECT_EQ(b.messages[0].content, "S");
  EXPECT_EQ(b.messages[1].content, "Say hi");
}

TEST(ChatRecords, EachBadKindIsClassified) {
  struct Case {
    std::string line;
    ChatRecordProblem want;
  };
  const std::vector<Case> cases = {
      {"not json", ChatRecordProblem::kNotJson},
      {"[1, 2]", ChatRecordProblem::kNotJson},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"\xC3\x28\"}]}", ChatRecordProblem::kInvalidUtf8},
      {R"({"text": "a corpus line"})", ChatRecordProblem::kUnknownFormat},
      {R"({"messages": "hi"})", ChatRecordProblem::kUnknownFormat},
      {R"({"messages": [{"role": "user"}]})", ChatRecordProblem::kUnknownFormat},
      {R"({"messages": [{"role": "user", "content": 5}]})", ChatRecordProblem::kUnknownFormat},
      {R"({"instruction": 1, "output": "x"})", ChatRecordProblem::kUnknownFormat},
      {R"({"messages": [{"role": "robot", "content": "x"}]})", ChatRecordProblem::kUnknownRole},
      {R"({"messages": []})", ChatRecordProblem::kEmpty},
      {R"({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]})",
       ChatRecordProblem::kEmpty},
      {R"({"messages": [{"role": "user", "content": "hi"}]})", ChatRecordProblem::kNoAssistant},
      {R"({"instruction": "hi", "output": ""})", ChatRecordProblem::kNoAssistant},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},)"
       R"( {"role": "assistant", "content": "c"}]})",
       ChatRecordProblem::kBadOrder},
  };
  for (const Case& c : cases) {
    const ChatRecord r = parse_chat_record(c.line);
    EXPECT_EQ(r.problem, c.want) << c.line << " -> " << to_string(r.problem) << ": " << r.detail;
    EXPECT_FALSE(r.detail.empty()) << c.line;
  }
  ChatRecordCounts counts;
  for (const Case& c : cases) ++counts[parse_chat_record(c.line).problem];
  EXPECT_EQ(counts.bad(), static_cast<std::int64_t>(cases.size()));
  EXPECT_EQ(counts[ChatRecordProblem::kUnknownFormat], 5);
}

}  // namespace
}  // namespace zebra
