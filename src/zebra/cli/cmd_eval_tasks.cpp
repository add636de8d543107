// zebra eval tasks MODEL --tasks FILE [--kinds K,...] [--extra-tokens N] [--json F] [--csv F] [--plot F.png]
// Long-context tasks (eval/long_tasks.hpp, written by zebra tasks): each prompt rendered with the model's chat
// template and its generation prompt, greedy decoding with the KV cache until the end-of-turn marker, scored
// by exact match (fact, which) or containment (next, chapter). Accuracy per kind x length and per depth.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "zebra/cli/cmd_eval_common.hpp"
#include "zebra/cli/weights_option.hpp"
#include "zebra/data/corpus.hpp"
#include "zebra/eval/greedy.hpp"
#include "zebra/eval/long_tasks.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/gnuplot.hpp"
#include "zebra/util/json_text.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

struct TasksEvalArgs {
  ModelArgs m;
  std::string tasks_path, kinds, chat_template, json_path, csv_path, plot_path;
  std::int64_t extra_tokens = 16, limit = 0;
  bool quiet = false;
};

std::vector<LongTask> read_tasks(const std::string& path) {
  std::vector<LongTask> tasks;
  for_each_line(path, [&](std::string_view line, std::int64_t line_no) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    check_json_depth(line, str_cat("tasks file '", path, "' line ", line_no));
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ZEBRA_CHECK(!j.is_discarded(), "tasks file '", path, "' line ", line_no, ": not JSON");
    try {
      tasks.push_back(LongTask::from_json(j));
    } catch (const Error& e) {
      fail("tasks file '", path, "' line ", line_no, ": ", e.what());
    }
  });
  ZEBRA_CHECK(!tasks.empty(), "tasks file '", path, "' holds no task");
  return tasks;
}

struct Cell {
  std::int64_t n = 0, correct = 0;
  double accuracy() const { return n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0.0; }
};

void plot_accuracy(const std::string& path, const std::vector<std::string>& kinds,
                   const std::vector<std::int64_t>& lengths,
                   const std::map<std::pair<std::string, std::int64_t>, Cell>& cells, const std::string& title) {
  std::ostringstream s;
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    s << "$k" << k << " << EOD\n";
    for (std::int64_t l : lengths) {
      auto it = cells.find({kinds[k], l});
      if (it != cells.end()) s << l << ' ' << it->second.accuracy() << '\n';
    }
    s << "EOD\n";
  }
  s << "set title " << gnuplot_quote(title) << "\nset xlabel 'prompt length (tokens)'\nset ylabel 'accuracy'\n"
    << "set logscale x 2\nset yrange [-0.05:1.05]\nset key outside right\nset grid\nplot ";
  for (std::size_t k = 0; k < kinds.size(); ++k) {
    s << (k > 0 ? ", " : "") << "$k" << k << " using 1:2 with linespoints lw 2 title " << gnuplot_quote(kinds[k]);
  }
  s << '\n';
  render_plot(s.str(), path, 900, 540);
}

void run_eval_tasks(const TasksEvalArgs& a) {
  const std::optional<DType> kv_dtype = parse_kv_dtype(a.m.kv_dtype);  // refused before any work
  std::vector<LongTask> tasks = read_tasks(a.tasks_path);
  if (!a.kinds.empty()) {
    std::set<std::string> keep;
    for (const std::string& k : parse_string_list("--kinds", a.kinds)) keep.insert(to_string(parse_task_kind(k)));
    std::erase_if(tasks, [&](const LongTask& t) { return !keep.count(to_string(t.kind)); });
    ZEBRA_CHECK(!tasks.empty(), "eval tasks: no task of the kinds ", a.kinds, " in '", a.tasks_path, "'");
  }
  if (a.limit > 0 && static_cast<std::int64_t>(tasks.size()) > a.limit) tasks.resize(static_cast<std::size_t>(a.limit));
  ZEBRA_CHECK(a.extra_tokens >= 0, "--extra-tokens must be >= 0");

  const LoadedModel model = load_for_eval(a.m);
  const ModelConfig& c = model.config();
  const std::unique_ptr<Tokenizer> tok = load_model_tokenizer(model);
  const ChatTemplate& t = choose_chat_template(a.chat_template, tok->chat_template());
  const std::vector<std::int32_t> stops = chat_stop_tokens(t, *tok);
  std::vector<std::vector<std::int32_t>> prompts;
  std::int64_t longest = 0, most_new = 0;
  std::vector<std::int64_t> new_tokens;
  for (const LongTask& task : tasks) {
    const ChatMessage msg[1] = {{"user", task.prompt}};
    prompts.push_back(encode_chat_text(t, *tok, render_chat(t, msg, true).text));
    new_tokens.push_back(static_cast<std::int64_t>(tok->encode(task.answer).size()) + a.extra_tokens);
    longest = std::max(longest, static_cast<std::int64_t>(prompts.back().size()));
    most_new = std::max(most_new, new_tokens.back());
  }
  std::fprintf(stderr, "model %s: %lld layers %s, window %lld; template %s; %zu tasks, longest prompt %lld tokens\n",
               model.path.c_str(), static_cast<long long>(c.n_layers), c.pattern_string().c_str(),
               static_cast<long long>(c.window), t.name.c_str(), tasks.size(), static_cast<long long>(longest));
  SessionOptions so;
  so.kv_dtype = kv_dtype;
  so.max_context = longest + most_new;
  so.chunk_size = longest;  // each prompt in one chunk: the tiled attention kernel (model/generator.cpp)
  InferenceSession<float> session(model.weights(), so);
  const bool tty = ::isatty(STDERR_FILENO) != 0 && !a.quiet;
  Timer timer;
  std::size_t index = 0;
  const std::vector<TaskOutcome> outcomes = evaluate_tasks(
      tasks,
      [&](const LongTask&) {
        const std::size_t i = index++;
        return tok->decode(greedy_continue(session, prompts[i], new_tokens[i], stops));
      },
      [&](std::int64_t done, std::int64_t total) {
        if (tty)
          std::fprintf(stderr, "\r  task %lld / %lld   ", static_cast<long long>(done), static_cast<long long>(total));
      });
  if (tty) std::fprintf(stderr, "\n");
  const double seconds = timer.seconds();

  std::vector<std::string> kinds;
  std::vector<std::int64_t> lengths;
  std::map<std::pair<std::string, std::int64_t>, Cell> by_kind_length;
  std::map<std::pair<std::string, double>, Cell> by_kind_depth;
  std::map<std::int64_t, Cell> by_length;
  Cell all;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const std::string k = to_string(tasks[i].kind);
    if (std::find(kinds.begin(), kinds.end(), k) == kinds.end()) kinds.push_back(k);
    if (std::find(lengths.begin(), lengths.end(), tasks[i].length) == lengths.end()) lengths.push_back(tasks[i].length);
    for (Cell* cell : {&by_kind_length[{k, tasks[i].length}], &by_kind_depth[{k, tasks[i].depth}],
                       &by_length[tasks[i].length], &all}) {
      ++cell->n;
      cell->correct += outcomes[i].correct ? 1 : 0;
    }
  }
  std::sort(lengths.begin(), lengths.end());

  std::printf(
      "long-context tasks: %s on %s\ngreedy decoding, template %s; accuracy (correct / tasks) by kind and "
      "prompt length\n",
      model.path.c_str(), a.tasks_path.c_str(), t.name.c_str());
  std::printf("%-10s", "kind");
  for (std::int64_t l : lengths) std::printf(" %10lld", static_cast<long long>(l));
  std::printf(" %10s\n", "all");
  auto frac = [](const Cell& cell) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld/%lld", static_cast<long long>(cell.correct), static_cast<long long>(cell.n));
    return std::string(buf);
  };
  for (const std::string& k : kinds) {
    std::printf("%-10s", k.c_str());
    Cell row;
    for (std::int64_t l : lengths) {
      const Cell& cell = by_kind_length[{k, l}];
      row.n += cell.n;
      row.correct += cell.correct;
      std::printf(" %10s", frac(cell).c_str());
    }
    std::printf(" %10s\n", frac(row).c_str());
  }
  std::printf("%-10s", "all");
  for (std::int64_t l : lengths) std::printf(" %10s", frac(by_length[l]).c_str());
  std::printf(" %10s\n", frac(all).c_str());
  std::map<double, Cell> by_depth;
  for (const auto& [key, cell] : by_kind_depth) {
    by_depth[key.second].n += cell.n;
    by_depth[key.second].correct += cell.correct;
  }
  std::printf("by depth:");
  for (const auto& [d, cell] : by_depth) std::printf("  %g %s", d, frac(cell).c_str());
  std::printf("\n");
  std::printf("accuracy: %lld / %lld = %.3f (%.1f s)\n", static_cast<long long>(all.correct),
              static_cast<long long>(all.n), all.accuracy(), seconds);
  std::fflush(stdout);

  if (!a.json_path.empty()) {
    nlohmann::json per_task = nlohmann::json::array(), cells = nlohmann::json::array();
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      per_task.push_back({{"kind", to_string(tasks[i].kind)},
                          {"length", tasks[i].length},
                          {"depth", tasks[i].depth},
                          {"answer_depth", tasks[i].answer_depth},
                          {"prompt_tokens", prompts[i].size()},
                          {"book", tasks[i].book},
                          {"answer", tasks[i].answer},
                          {"reply", outcomes[i].reply},
                          {"correct", outcomes[i].correct}});
    }
    for (const auto& [key, cell] : by_kind_length) {
      cells.push_back({{"kind", key.first},
                       {"length", key.second},
                       {"tasks", cell.n},
                       {"correct", cell.correct},
                       {"accuracy", cell.accuracy()}});
    }
    nlohmann::json by_len = nlohmann::json::object();
    for (const auto& [l, cell] : by_length) by_len[std::to_string(l)] = {{"tasks", cell.n}, {"correct", cell.correct}};
    const nlohmann::json j = {{"eval", "tasks"},
                              {"model", model.path},
                              {"tasks_file", a.tasks_path},
                              {"template", t.name},
                              {"pattern", c.pattern_string()},
                              {"window", c.window},
                              {"positions", positions_string(c)},
                              {"correct", all.correct},
                              {"total", all.n},
                              {"accuracy", all.accuracy()},
                              {"seconds", seconds},
                              {"by_length", by_len},
                              {"cells", cells},
                              {"outputs", per_task}};
    write_file_atomic(a.json_path, j.dump(2) + "\n");
  }
  if (!a.csv_path.empty()) {
    std::ostringstream csv;
    csv << "kind,length,tasks,correct,accuracy\n";
    for (const auto& [key, cell] : by_kind_length) {
      csv << key.first << ',' << key.second << ',' << cell.n << ',' << cell.correct << ',' << cell.accuracy() << '\n';
    }
    write_file_atomic(a.csv_path, csv.str());
    std::ostringstream dcsv;
    dcsv << "kind,depth,tasks,correct,accuracy\n";
    for (const auto& [key, cell] : by_kind_depth) {
      dcsv << key.first << ',' << key.second << ',' << cell.n << ',' << cell.correct << ',' << cell.accuracy() << '\n';
    }
    write_file_atomic(sibling_csv_path(a.csv_path, "depth"), dcsv.str());
  }
  if (!a.plot_path.empty()) {
    plot_accuracy(a.plot_path, kinds, lengths, by_kind_length,
                  "long-context tasks: " + std::filesystem::path(model.path).filename().string());
  }
}

}  // namespace

void add_eval_tasks_command(CLI::App* eval) {
  auto a = std::make_shared<TasksEvalArgs>();
  CLI::App* cmd = eval->add_subcommand(
      "tasks",
      "Long-context tasks with exact answers (zebra tasks writes them): greedy replies with the model's chat\n"
      "template, scored by exact match (fact, which) or containment (next, chapter); accuracy by kind x length.");
  add_model_options(cmd, a->m);
  add_cache_options(cmd, a->m);
  cmd->add_option("--tasks", a->tasks_path, "tasks JSONL (zebra tasks: DIR/test.jsonl)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--kinds", a->kinds, "only these kinds, comma-separated");
  cmd->add_option("--limit", a->limit, "only the first N tasks")->check(CLI::NonNegativeNumber);
  cmd->add_option("--template", a->chat_template,
                  "chat template " + known_chat_template_names() + " (default: the tokenizer's)");
  cmd->add_option("--extra-tokens", a->extra_tokens, "tokens decoded beyond the answer's length (default 16)");
  cmd->add_option("--json", a->json_path, "also write everything (per task, with the replies) as JSON");
  cmd->add_option("--csv", a->csv_path, "also write accuracy per kind x length as CSV (and per depth beside it)");
  cmd->add_option("--plot", a->plot_path, "also plot accuracy against length per kind (gnuplot; .png or .svg)");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress line");
  cmd->callback([a] { run_eval_tasks(*a); });
}

}  // namespace zebra
