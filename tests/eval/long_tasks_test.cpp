#include "zebra/eval/long_tasks.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "zebra/data/chat_records.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

std::size_t count_of(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// A book of `chapters` chapters ("CHAPTER I" ...), each of 30 paragraphs of 4 sentences whose words name the
// book, chapter, paragraph and sentence, so every sentence is unique.
Book synthetic_book(const std::string& title, int chapters) {
  static const char* roman[] = {"I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"};
  Book b;
  b.title = title;
  for (int c = 0; c < chapters; ++c) {
    b.text += std::string("CHAPTER ") + roman[c] + ".\n\n";
    for (int p = 0; p < 30; ++p) {
      for (int s = 0; s < 4; ++s) {
        b.text += "The " + title + " walker met chapter" + std::to_string(c) + " friend number" + std::to_string(p) +
                  " at mark" + std::to_string(s) + (s == 3 ? ".\n" : ". ");
        if (s == 1) b.text += "\n";  // a line break inside the paragraph
      }
      b.text += "\n";
    }
  }
  return b;
}

// About four bytes per token, and a fixed cost for the template.
std::int64_t text_tokens(std::string_view s) { return static_cast<std::int64_t>(s.size() / 4 + 1); }
std::int64_t prompt_tokens(const std::string& s) { return static_cast<std::int64_t>(s.size() / 4 + 12); }

TEST(LongTasks, SentencesParagraphsAndHeadings) {
  const auto s = split_sentences("Mr. Holmes came in. \u201cWho is it?\u201d she said. J. R. Smith left! The end");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], "Mr. Holmes came in.");
  EXPECT_EQ(s[1], "\u201cWho is it?\u201d she said.");
  EXPECT_EQ(s[2], "J. R. Smith left!");
  EXPECT_EQ(s[3], "The end");
  const auto p = split_paragraphs("a b\nc\n\n\n  d  \n\ne\n");
  EXPECT_EQ(p, (std::vector<std::string>{"a b c", "d", "e"}));
  EXPECT_EQ(chapter_label("CHAPTER XII: THE END"), "CHAPTER XII");
  EXPECT_EQ(chapter_label("Chapter 1: \"Something\""), "Chapter 1");
  EXPECT_EQ(chapter_label("BOOK IV."), "BOOK IV");
  EXPECT_EQ(chapter_label("The chapter was long."), "");
  EXPECT_EQ(chapter_label("CHAPTER 2.I.--The Publication"), "CHAPTER 2.I");
  EXPECT_EQ(chapter_label("Chapter 3.x"), "Chapter 3");
  EXPECT_EQ(chapter_label("CHAPTER IVAN"), "");
  EXPECT_EQ(chapter_label("CHAPTERIV"), "");
  EXPECT_EQ(chapter_label("Part the First"), "");
  EXPECT_EQ(normalize_words("  Hello,  World!  It's 5. "), "hello world it s 5");
}

TEST(LongTasks, ScoringByKind) {
  LongTask t;
  t.kind = TaskKind::kFact;
  t.answer = "48213";
  EXPECT_TRUE(task_correct(t, "48213"));
  EXPECT_TRUE(task_correct(t, "The number is 48213."));
  EXPECT_FALSE(task_correct(t, "482130"));
  EXPECT_FALSE(task_correct(t, "12 48213"));
  t.kind = TaskKind::kWhich;
  t.answer = "C";
  EXPECT_TRUE(task_correct(t, "C"));
  EXPECT_TRUE(task_correct(t, "(C) The sentence"));
  EXPECT_FALSE(task_correct(t, "Clearly B"));
  EXPECT_FALSE(task_correct(t, "B"));
  t.kind = TaskKind::kChapter;
  t.answer = "CHAPTER XI";
  EXPECT_TRUE(task_correct(t, "Chapter XI."));
  EXPECT_FALSE(task_correct(t, "CHAPTER XII"));  // whole words only
  t.kind = TaskKind::kNext;
  t.answer = "He left, quietly.";
  EXPECT_TRUE(task_correct(t, "\"He left quietly.\""));
  EXPECT_FALSE(task_correct(t, "He left."));
}

TEST(LongTasks, GeneratedTasksAreAnswerableFromTheirPassage) {
  std::vector<Book> books;
  for (const char* name : {"alpha", "beta", "gamma"}) books.push_back(synthetic_book(name, 6));
  TaskGenOptions o;
  o.lengths = {600, 1500};
  o.depths = {0.2, 0.8};
  o.per_cell = 2;
  o.seed = 5;
  const std::vector<LongTask> tasks = generate_tasks(books, o, prompt_tokens, text_tokens);
  ASSERT_EQ(tasks.size(), 4u * 2 * 2 * 2);
  std::set<std::string> used_books;
  for (const LongTask& t : tasks) {
    SCOPED_TRACE(std::string(to_string(t.kind)) + " " + std::to_string(t.length) + " " + std::to_string(t.depth));
    used_books.insert(t.book);
    EXPECT_LE(t.prompt_tokens, t.length);
    EXPECT_GE(t.prompt_tokens, t.length / 2);
    EXPECT_EQ(t.prompt_tokens, prompt_tokens(t.prompt));
    EXPECT_NEAR(t.answer_depth, t.depth, 0.2);
    const std::size_t q = t.prompt.rfind("\n\nQuestion: ");
    ASSERT_NE(q, std::string::npos);
    const std::string passage = t.prompt.substr(0, q), question = t.prompt.substr(q);
    switch (t.kind) {
      case TaskKind::kFact: {
        EXPECT_EQ(count_of(passage, " is " + t.answer + "."), 1u);
        EXPECT_EQ(t.answer.size(), 5u);
        break;
      }
      case TaskKind::kNext: {
        const std::size_t open = question.find('"'), close = question.rfind('"');
        const std::string quote = question.substr(open + 1, close - open - 1);
        EXPECT_EQ(count_of(passage, quote), 1u);
        EXPECT_EQ(count_of(passage, quote + " " + t.answer), 1u) << quote << " / " << t.answer;
        break;
      }
      case TaskKind::kWhich: {
        int found = 0;
        char letter = 0;
        for (char c = 'A'; c <= 'D'; ++c) {
          const std::string tag = std::string("\n(") + c + ") ";
          const std::size_t at = question.find(tag);
          ASSERT_NE(at, std::string::npos);
          const std::size_t end = question.find('\n', at + tag.size());
          const std::string option = question.substr(at + tag.size(), end - at - tag.size());
          if (passage.find(option) != std::string::npos) {
            ++found;
            letter = c;
          }
        }
        EXPECT_EQ(found, 1);
        EXPECT_EQ(t.answer, std::string(1, letter));
        break;
      }
      case TaskKind::kChapter: {
        const std::size_t open = question.find('"'), close = question.find("\"?");
        const std::string quote = question.substr(open + 1, close - open - 1);
        const std::size_t at = passage.find(quote);
        ASSERT_NE(at, std::string::npos);
        const std::size_t heading = passage.rfind("CHAPTER ", at);
        ASSERT_NE(heading, std::string::npos);
        EXPECT_EQ(passage.substr(heading, passage.find('.', heading) - heading), t.answer);
        break;
      }
    }
    // The record reads back, and zebra prepare --chat takes it as a conversation.
    const LongTask back = LongTask::from_json(t.to_json());
    EXPECT_EQ(back.prompt, t.prompt);
    EXPECT_EQ(back.answer, t.answer);
    EXPECT_EQ(back.kind, t.kind);
    const ChatRecord r = parse_chat_record(t.to_json().dump());
    ASSERT_EQ(r.problem, ChatRecordProblem::kOk);
    EXPECT_EQ(r.messages[1].content, t.answer);
  }
  EXPECT_GE(used_books.size(), 2u);
  // Deterministic in the seed.
  const std::vector<LongTask> again = generate_tasks(books, o, prompt_tokens, text_tokens);
  for (std::size_t i = 0; i < tasks.size(); ++i) EXPECT_EQ(again[i].prompt, tasks[i].prompt);
}

TEST(LongTasks, ImpossibleRequestsAreRefusedClearly) {
  const std::vector<Book> books = {synthetic_book("alpha", 2)};
  TaskGenOptions o;
  o.lengths = {40};
  EXPECT_THROW(generate_tasks(books, o, prompt_tokens, text_tokens), Error);
  o.lengths = {600};
  o.depths = {1.5};
  EXPECT_THROW(generate_tasks(books, o, prompt_tokens, text_tokens), Error);
  Book flat = synthetic_book("beta", 1);
  flat.text = flat.text.substr(flat.text.find("\n\n") + 2);  // no heading left
  o.depths = {0.5};
  o.kinds = {TaskKind::kChapter};
  try {
    generate_tasks({flat}, o, prompt_tokens, text_tokens);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chapter"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_task_kind("riddle"), Error);
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LongTasks, BadTaskRecordsAndBookFilesAreRefusedClearly) {
  EXPECT_NE(error_of([] { LongTask::from_json(nlohmann::json::parse(R"({"messages": []})")); }).find("expected"),
            std::string::npos);
  const auto no_kind =
      nlohmann::json::parse(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],)"
                            R"( "task": {"length": 5, "depth": 0.5}})");
  EXPECT_NE(error_of([&] { LongTask::from_json(no_kind); }).find("kind"), std::string::npos);
  const std::string dir = ::testing::TempDir();
  write_file_atomic(dir + "/books_bad.jsonl", "{\"text\": \"a book\"}\n{\"title\": \"no text\"}\n");
  const std::string msg = error_of([&] { read_books({dir + "/books_bad.jsonl"}); });
  EXPECT_NE(msg.find("books_bad.jsonl:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("string \"text\""), std::string::npos) << msg;
}

}  // namespace
}  // namespace zebra
