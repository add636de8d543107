// Long-context tasks with exact answers, built from books (Gutenberg JSONL: "text", "title"), for long
// instruction tuning (LIT) and its evaluation. Each task is one conversation: the user message holds a passage
// of the book and a question about it, the assistant message the answer.
//
//   fact     a sentence "The secret number of <subject> is NNNNN." planted between paragraphs at the depth;
//            "What is the secret number of <subject>?" -> NNNNN (first integer of the reply must match).
//   next     a sentence of the passage at the depth is quoted; "which sentence comes right after it?" -> the
//            next sentence (the reply must contain it, compared word by word, case and punctuation aside).
//   which    four sentences, one from the passage at the depth and three from other books of the same set;
//            "which appears in the text?" -> its letter A-D (the reply's first letter).
//   chapter  the passage starts at a chapter heading; a sentence at the depth is quoted; "in which chapter?"
//            -> the heading's label, such as "CHAPTER XII" (the reply must contain it as whole words).
// Length: the rendered prompt (chat template, generation prompt) has at most `length` tokens and is the
// longest passage of whole paragraphs that fits. Depth in [0, 1] is the answer's relative position in the
// passage (the nearest usable sentence or paragraph boundary; the actual position is recorded).
// Quoted and distractor sentences occur exactly once / never in the passage. Tasks are drawn from the books
// they are given only; train and test sets come from disjoint books (cli/cmd_tasks.cpp refuses an overlap).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace zebra {

enum class TaskKind { kFact, kNext, kWhich, kChapter };
const char* to_string(TaskKind k);             // "fact", "next", "which", "chapter"
TaskKind parse_task_kind(std::string_view s);  // throws naming the kinds
std::vector<TaskKind> all_task_kinds();

struct Book {
  std::string title;
  std::string text;
};
// Books from JSONL(.zst) files: one object per line with a string "text" (and "title"; else "file:line").
std::vector<Book> read_books(const std::vector<std::string>& files);

struct LongTask {
  TaskKind kind = TaskKind::kFact;
  std::int64_t length = 0;  // requested prompt length (tokens)
  double depth = 0;         // requested depth
  double answer_depth = 0;  // actual relative character position of the answer in the passage
  std::string book;
  std::string prompt;  // the user message: instructions, passage, question
  std::string answer;  // the assistant message
  std::int64_t prompt_tokens = 0;

  // {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "task": {kind, length, depth, ...}}:
  // a record zebra prepare --chat reads as it is.
  nlohmann::json to_json() const;
  static LongTask from_json(const nlohmann::json& j);  // throws naming a missing field
};

struct TaskGenOptions {
  std::vector<std::int64_t> lengths = {1024, 4096};
  std::vector<double> depths = {0.25, 0.75};
  std::vector<TaskKind> kinds = all_task_kinds();
  std::int64_t per_cell = 2;  // tasks per kind x length x depth
  std::uint64_t seed = 1;
};

// Token count of the rendered prompt for a user message (template + generation prompt).
using PromptTokensFn = std::function<std::int64_t(const std::string& user_message)>;
// Token count of a piece of text (Tokenizer::encode().size()).
using TextTokensFn = std::function<std::int64_t(std::string_view text)>;

// Tasks in the order kind, length, depth, trial. Throws when a length is too short for the question, or the
// books cannot supply a task (too short, no chapter headings for chapter tasks).
std::vector<LongTask> generate_tasks(const std::vector<Book>& books, const TaskGenOptions& options,
                                     const PromptTokensFn& prompt_tokens, const TextTokensFn& text_tokens);

// Lower case, every run of characters other than ASCII letters and digits one space, trimmed.
std::string normalize_words(std::string_view s);
// Whether the model's reply answers the task (by kind, see above).
bool task_correct(const LongTask& task, std::string_view reply);

struct TaskOutcome {
  std::string reply;
  bool correct = false;
};
// Asks reply(task) for each task and scores it; progress(done, total) after each when given.
std::vector<TaskOutcome> evaluate_tasks(const std::vector<LongTask>& tasks,
                                        const std::function<std::string(const LongTask&)>& reply,
                                        const std::function<void(std::int64_t, std::int64_t)>& progress = {});

// Sentences of a paragraph: ends at . ! ? (with closing quotes) before a space and a capital or an opening
// quote; common abbreviations (Mr. Mrs. Dr. St. ...) and initials do not end a sentence.
std::vector<std::string_view> split_sentences(std::string_view paragraph);
// Paragraphs of a book: blank-line separated, each line break inside one a space, trimmed, none empty.
std::vector<std::string> split_paragraphs(std::string_view text);
// The label of a chapter heading paragraph ("CHAPTER XII: THE END" -> "CHAPTER XII"), "" when it is none.
std::string chapter_label(std::string_view paragraph);

}  // namespace zebra
