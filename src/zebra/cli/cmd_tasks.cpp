// zebra tasks --tokenizer MODEL --train-books FILES --test-books FILES -o DIR [--train-lengths ...] ...
// Long-context tasks with exact answers (eval/long_tasks.hpp) as chat JSONL: DIR/train.jsonl for
// zebra prepare --chat (LIT) and DIR/test.jsonl for zebra eval tasks. The two sets come from disjoint books: a
// book (by title or by text) in both is refused.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "zebra/cli/commands.hpp"
#include "zebra/cli/list_options.hpp"
#include "zebra/eval/long_tasks.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

struct TasksArgs {
  std::string tokenizer, chat_template, out_dir, kinds = "fact,next,which,chapter";
  std::vector<std::string> train_books, test_books;
  std::string train_lengths = "1024,2048,4096", test_lengths = "1024,4096,16384";
  std::string train_depths = "0.1,0.3,0.5,0.7,0.9", test_depths = "0.25,0.75";
  std::int64_t train_per_cell = 4, test_per_cell = 2;
  std::uint64_t seed = 1;
};

void write_tasks(const std::string& path, const std::vector<LongTask>& tasks) {
  std::string s;
  for (const LongTask& t : tasks) s += t.to_json().dump() + "\n";
  write_file_atomic(path, s);
}

void run_tasks(const TasksArgs& a) {
  ZEBRA_CHECK(!a.train_books.empty() || !a.test_books.empty(), "tasks: give --train-books and/or --test-books");
  const std::shared_ptr<const Tokenizer> tok = load_tokenizer_or_model(a.tokenizer);
  const ChatTemplate& t = choose_chat_template(a.chat_template, tok->chat_template());
  const PromptTokensFn prompt_tokens = [&](const std::string& user) {
    const ChatMessage m[1] = {{"user", user}};
    return static_cast<std::int64_t>(encode_chat_text(t, *tok, render_chat(t, m, true).text).size());
  };
  const TextTokensFn text_tokens = [&](std::string_view s) { return static_cast<std::int64_t>(tok->encode(s).size()); };
  std::vector<TaskKind> kinds;
  for (const std::string& k : parse_string_list("--kinds", a.kinds)) kinds.push_back(parse_task_kind(k));

  std::vector<Book> train, test;
  if (!a.train_books.empty()) train = read_books(a.train_books);
  if (!a.test_books.empty()) test = read_books(a.test_books);
  std::set<std::string> train_titles;
  std::set<std::size_t> train_hashes;
  for (const Book& b : train) {
    train_titles.insert(b.title);
    train_hashes.insert(std::hash<std::string>{}(b.text));
  }
  for (const Book& b : test) {
    ZEBRA_CHECK(!train_titles.count(b.title) && !train_hashes.count(std::hash<std::string>{}(b.text)),
                "tasks: the book '", b.title, "' is in both the training and the test books; the sets must not mix");
  }
  std::filesystem::create_directories(a.out_dir);
  nlohmann::json summary = {{"template", t.name}, {"tokenizer", a.tokenizer}, {"seed", a.seed}};
  // Both sets are generated before anything is written, so a refused request leaves an earlier run's files.
  std::vector<std::pair<std::string, std::vector<LongTask>>> outputs;
  auto make = [&](const std::vector<Book>& books, const char* name, const std::string& lengths,
                  const std::string& depths, std::int64_t per_cell, std::uint64_t seed) {
    TaskGenOptions o;
    o.lengths = parse_int_list("--" + std::string(name) + "-lengths", lengths);
    o.depths = parse_double_list("--" + std::string(name) + "-depths", depths);
    o.kinds = kinds;
    o.per_cell = per_cell;
    o.seed = seed;
    const std::vector<LongTask> tasks = generate_tasks(books, o, prompt_tokens, text_tokens);
    const std::string path = (std::filesystem::path(a.out_dir) / (std::string(name) + ".jsonl")).string();
    std::set<std::string> used;
    std::int64_t tokens = 0;
    for (const LongTask& task : tasks) {
      used.insert(task.book);
      tokens += task.prompt_tokens;
    }
    std::printf("%s: %zu tasks from %zu of %zu books, %lld prompt tokens -> %s\n", name, tasks.size(), used.size(),
                books.size(), static_cast<long long>(tokens), path.c_str());
    summary[name] = {{"tasks", tasks.size()}, {"books", used},        {"lengths", o.lengths},
                     {"depths", o.depths},    {"per_cell", per_cell}, {"prompt_tokens", tokens}};
    outputs.emplace_back(path, tasks);
  };
  if (!train.empty()) make(train, "train", a.train_lengths, a.train_depths, a.train_per_cell, a.seed);
  if (!test.empty()) make(test, "test", a.test_lengths, a.test_depths, a.test_per_cell, a.seed + 1);
  for (const auto& [path, tasks] : outputs) write_tasks(path, tasks);
  write_file_atomic((std::filesystem::path(a.out_dir) / "tasks.json").string(), summary.dump(2) + "\n");
}

}  // namespace

void add_tasks_command(CLI::App& app) {
  auto a = std::make_shared<TasksArgs>();
  CLI::App* cmd = app.add_subcommand(
      "tasks",
      "Build long-context tasks with exact answers from books (JSONL with \"text\" and \"title\", such as\n"
      "Gutenberg): a planted fact (fact), the sentence after a quoted one (next), which of four sentences occurs\n"
      "(which), the chapter of a quoted sentence (chapter). Writes DIR/train.jsonl (for zebra prepare --chat)\n"
      "and DIR/test.jsonl (for zebra eval tasks) from disjoint books, and DIR/tasks.json.");
  cmd->add_option("--tokenizer", a->tokenizer,
                  "the model (GGUF, directory) or tokenizer file whose chat template and tokens size the prompts")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--template", a->chat_template,
                  "chat template " + known_chat_template_names() + " (default: the tokenizer's)");
  cmd->add_option("--train-books", a->train_books, "books for the training tasks")->check(CLI::ExistingPath);
  cmd->add_option("--test-books", a->test_books, "held-out books for the test tasks")->check(CLI::ExistingPath);
  cmd->add_option("-o,--out", a->out_dir, "output directory")->required();
  cmd->add_option("--kinds", a->kinds, "task kinds, comma-separated (default fact,next,which,chapter)");
  cmd->add_option("--train-lengths", a->train_lengths, "prompt lengths of the training tasks (default 1024,2048,4096)");
  cmd->add_option("--test-lengths", a->test_lengths, "prompt lengths of the test tasks (default 1024,4096,16384)");
  cmd->add_option("--train-depths", a->train_depths, "answer depths of the training tasks (default 0.1,...,0.9)");
  cmd->add_option("--test-depths", a->test_depths, "answer depths of the test tasks (default 0.25,0.75)");
  cmd->add_option("--train-per-cell", a->train_per_cell, "training tasks per kind x length x depth (default 4)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--test-per-cell", a->test_per_cell, "test tasks per kind x length x depth (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a->seed, "seed (the test set uses seed + 1)");
  cmd->callback([a] { run_tasks(*a); });
}

}  // namespace zebra
