#include "zebra/eval/long_tasks.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <optional>

#include "zebra/data/corpus.hpp"
#include "zebra/eval/passkey.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {

const char* to_string(TaskKind k) {
  switch (k) {
    case TaskKind::kFact: return "fact";
    case TaskKind::kNext: return "next";
    case TaskKind::kWhich: return "which";
    case TaskKind::kChapter: return "chapter";
  }
  return "?";
}

std::vector<TaskKind> all_task_kinds() {
  return {TaskKind::kFact, TaskKind::kNext, TaskKind::kWhich, TaskKind::kChapter};
}

TaskKind parse_task_kind(std::string_view s) {
  for (TaskKind k : all_task_kinds()) {
    if (s == to_string(k)) return k;
  }
  fail("unknown task kind '", s, "' (expected fact, next, which or chapter)");
}

std::vector<Book> read_books(const std::vector<std::string>& files) {
  std::vector<Book> books;
  for (const std::string& file : expand_corpus_inputs(files)) {
    for_each_line(file, [&](std::string_view line, std::int64_t line_no) {
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
      check_json_depth(line, str_cat("books: ", file, ":", line_no));
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      ZEBRA_CHECK(!j.is_discarded() && j.is_object() && j.contains("text") && j["text"].is_string(), "books: ", file,
                  ":", line_no, ": expected a JSON object with a string \"text\"");
      Book b;
      b.text = j["text"].get<std::string>();
      b.title =
          j.contains("title") && j["title"].is_string() ? j["title"].get<std::string>() : str_cat(file, ":", line_no);
      books.push_back(std::move(b));
    });
  }
  ZEBRA_CHECK(!books.empty(), "books: no book in the inputs");
  return books;
}

nlohmann::json LongTask::to_json() const {
  return {{"messages", {{{"role", "user"}, {"content", prompt}}, {{"role", "assistant"}, {"content", answer}}}},
          {"task",
           {{"kind", to_string(kind)},
            {"length", length},
            {"depth", depth},
            {"answer_depth", answer_depth},
            {"book", book},
            {"prompt_tokens", prompt_tokens}}}};
}

LongTask LongTask::from_json(const nlohmann::json& j) {
  ZEBRA_CHECK(j.is_object() && j.contains("task") && j["task"].is_object() && j.contains("messages") &&
                  j["messages"].is_array() && j["messages"].size() == 2,
              "task record: expected {\"messages\": [user, assistant], \"task\": {...}} (zebra tasks writes them)");
  const nlohmann::json& t = j["task"];
  LongTask r;
  try {
    r.kind = parse_task_kind(t.at("kind").get<std::string>());
    r.length = t.at("length").get<std::int64_t>();
    r.depth = t.at("depth").get<double>();
    r.answer_depth = t.value("answer_depth", r.depth);
    r.book = t.value("book", std::string());
    r.prompt_tokens = t.value("prompt_tokens", std::int64_t{0});
    r.prompt = j["messages"][0].at("content").get<std::string>();
    r.answer = j["messages"][1].at("content").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail("task record: ", e.what());
  }
  return r;
}

std::string normalize_words(std::string_view s) {
  std::string out;
  bool gap = false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 128 && std::isalnum(c)) {
      if (gap && !out.empty()) out += ' ';
      out += static_cast<char>(std::tolower(c));
      gap = false;
    } else {
      gap = true;
    }
  }
  return out;
}

bool task_correct(const LongTask& task, std::string_view reply) {
  switch (task.kind) {
    case TaskKind::kFact: return !task.answer.empty() && first_integer(reply) == task.answer;
    case TaskKind::kWhich: {
      std::size_t i = 0;
      while (i < reply.size() && (reply[i] == ' ' || reply[i] == '(' || reply[i] == '\n')) ++i;
      const bool letter_alone =
          i < reply.size() && (i + 1 == reply.size() || !std::isalpha(static_cast<unsigned char>(reply[i + 1])));
      return letter_alone && task.answer.size() == 1 && reply[i] == task.answer[0];
    }
    case TaskKind::kNext:
    case TaskKind::kChapter: {
      const std::string a = normalize_words(task.answer);
      return !a.empty() && (" " + normalize_words(reply) + " ").find(" " + a + " ") != std::string::npos;
    }
  }
  return false;
}

namespace {

bool starts_with_any(std::string_view s, std::size_t i, std::initializer_list<std::string_view> prefixes,
                     std::size_t* len) {
  for (std::string_view p : prefixes) {
    if (s.substr(i, p.size()) == p) {
      *len = p.size();
      return true;
    }
  }
  return false;
}

std::string_view trim(std::string_view s) {
  const std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::int64_t word_count(std::string_view s) {
  std::int64_t n = 0;
  bool in = false;
  for (char c : s) {
    const bool space = c == ' ';
    if (!space && !in) ++n;
    in = !space;
  }
  return n;
}

}  // namespace

std::vector<std::string_view> split_sentences(std::string_view p) {
  static const std::array<std::string_view, 22> kAbbrev = {"Mr",   "Mrs", "Dr",  "St",  "Mme",  "Mlle", "Messrs", "Esq",
                                                           "Capt", "Col", "Gen", "Rev", "Prof", "No",   "Sr",     "Jr",
                                                           "Lt",   "Sgt", "Hon", "vs",  "Mt",   "Co"};
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '.' && p[i] != '!' && p[i] != '?') continue;
    std::size_t j = i + 1, len = 0;
    while (j < p.size()) {
      if (p[j] == '"' || p[j] == '\'' || p[j] == ')' || p[j] == ']') {
        ++j;
      } else if (starts_with_any(p, j, {"\u201d", "\u2019"}, &len)) {
        j += len;
      } else {
        break;
      }
    }
    bool boundary = j == p.size();
    if (!boundary && p[j] == ' ' && j + 1 < p.size()) {
      const auto next = static_cast<unsigned char>(p[j + 1]);
      boundary = std::isupper(next) || p[j + 1] == '"' || p[j + 1] == '(' ||
                 starts_with_any(p, j + 1, {"\u201c", "\u2018"}, &len);
    }
    if (!boundary) continue;
    if (p[i] == '.') {
      std::size_t ws = p.rfind(' ', i);
      ws = ws == std::string_view::npos ? start : std::max(ws + 1, start);
      const std::string_view word = p.substr(ws, i - ws);
      const bool initial = word.size() == 1 && std::isupper(static_cast<unsigned char>(word[0]));
      if (initial || std::find(kAbbrev.begin(), kAbbrev.end(), word) != kAbbrev.end()) continue;
    }
    const std::string_view s = trim(p.substr(start, j - start));
    if (!s.empty()) out.push_back(s);
    start = j;
    i = j - 1;
  }
  const std::string_view rest = trim(p.substr(std::min(start, p.size())));
  if (!rest.empty()) out.push_back(rest);
  return out;
}

std::vector<std::string> split_paragraphs(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  std::size_t pos = 0;
  auto finish = [&] {
    const std::string_view t = trim(cur);
    if (!t.empty()) out.emplace_back(t);
    cur.clear();
  };
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = trim(text.substr(pos, end - pos));
    if (line.empty()) {
      finish();
    } else {
      if (!cur.empty()) cur += ' ';
      cur += line;
    }
    pos = end + 1;
  }
  finish();
  return out;
}

std::string chapter_label(std::string_view paragraph) {
  if (paragraph.size() > 100) return {};
  // WORD whitespace NUMBER, NUMBER one of  digits "." roman | roman | digits,  then not a letter or digit.
  static constexpr std::array<std::string_view, 8> kWords = {"CHAPTER", "Chapter", "BOOK",  "Book",
                                                             "PART",    "Part",    "STAVE", "Stave"};
  auto is_roman = [](char c) { return std::string_view("IVXLCDM").find(c) != std::string_view::npos; };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  auto boundary = [&](std::size_t i) {
    return i >= paragraph.size() || std::isalnum(static_cast<unsigned char>(paragraph[i])) == 0;
  };
  for (std::string_view w : kWords) {
    if (paragraph.substr(0, w.size()) != w) continue;
    std::size_t i = w.size();
    const std::size_t space = i;
    while (i < paragraph.size() && std::isspace(static_cast<unsigned char>(paragraph[i]))) ++i;
    if (i == space) return {};
    const std::size_t num = i;
    std::size_t end = i;
    while (end < paragraph.size() && is_digit(paragraph[end])) ++end;
    if (end > num) {
      std::size_t r = end + 1;
      if (end < paragraph.size() && paragraph[end] == '.') {
        while (r < paragraph.size() && is_roman(paragraph[r])) ++r;
        if (r > end + 1 && boundary(r)) end = r;
      }
      if (!boundary(end)) return {};
    } else {
      while (end < paragraph.size() && is_roman(paragraph[end])) ++end;
      if (end == num || !boundary(end)) return {};
    }
    return std::string(w) + " " + std::string(paragraph.substr(num, end - num));
  }
  return {};
}

namespace {

constexpr const char* kInstruction = "Read the text below and answer the question after it.\n\n";
constexpr std::array<const char*, 16> kSubjects = {
    "the old lighthouse", "the blue chest",     "Captain Orrin",    "the northern gate",
    "the silver key",     "the harbour master", "the red notebook", "the mill on the hill",
    "the second bridge",  "Aunt Matilda",       "the iron safe",    "the widow's cottage",
    "the village clock",  "the lost regiment",  "the glass house",  "the last carriage"};

struct Candidate {
  std::size_t para;    // index into the passage's paragraphs
  std::string text;    // the sentence
  std::string next;    // the following sentence in its paragraph ("" = none)
  std::size_t offset;  // characters before it in the passage
};

class BookCursor {
 public:
  explicit BookCursor(const Book& b) : book_(&b), paragraphs_(split_paragraphs(b.text)) {
    tokens_.assign(paragraphs_.size(), -1);
    for (std::size_t i = 0; i < paragraphs_.size(); ++i) {
      if (!chapter_label(paragraphs_[i]).empty()) headings_.push_back(i);
    }
  }
  const Book& book() const { return *book_; }
  const std::vector<std::string>& paragraphs() const { return paragraphs_; }
  const std::vector<std::size_t>& headings() const { return headings_; }
  std::int64_t tokens(std::size_t i, const TextTokensFn& count) {
    if (tokens_[i] < 0) tokens_[i] = count(paragraphs_[i]) + 1;  // + the blank line between paragraphs
    return tokens_[i];
  }

 private:
  const Book* book_;
  std::vector<std::string> paragraphs_;
  std::vector<std::int64_t> tokens_;
  std::vector<std::size_t> headings_;
};

bool usable_sentence(std::string_view s) {
  const std::int64_t w = word_count(s);
  return w >= 5 && w <= 30 && chapter_label(s).empty() && s.find('"') == std::string_view::npos;
}

std::size_t count_occurrences(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

std::string join_passage(const std::vector<std::string>& paras) {
  std::string s;
  for (std::size_t i = 0; i < paras.size(); ++i) {
    if (i > 0) s += "\n\n";
    s += paras[i];
  }
  return s;
}

class Generator {
 public:
  Generator(const std::vector<Book>& books, const TaskGenOptions& o, const PromptTokensFn& prompt_tokens,
            const TextTokensFn& text_tokens)
      : o_(o), prompt_tokens_(prompt_tokens), text_tokens_(text_tokens), rng_(o.seed) {
    for (const Book& b : books) cursors_.emplace_back(b);
  }

  LongTask make(TaskKind kind, std::int64_t length, double depth) {
    for (int attempt = 0; attempt < 64; ++attempt) {
      if (std::optional<LongTask> t = try_make(kind, length, depth)) return *t;
    }
    fail("tasks: could not build a ", to_string(kind), " task of ", length, " tokens at depth ", depth,
         " from these books (too short, or no chapter headings)");
  }

 private:
  std::string question(TaskKind kind, const std::string& quote, const std::string& subject,
                       const std::vector<std::string>& options, const std::string& heading_word) const {
    switch (kind) {
      case TaskKind::kFact:
        return "Question: What is the secret number of " + subject + "? Answer with the number only.";
      case TaskKind::kNext:
        return "Question: Which sentence comes right after this one in the text: \"" + quote +
               "\"? Answer with that sentence only.";
      case TaskKind::kWhich: {
        std::string q = "Question: Which of these sentences appears in the text?";
        for (std::size_t i = 0; i < options.size(); ++i)
          q += str_cat("\n(", static_cast<char>('A' + i), ") ", options[i]);
        return q + "\nAnswer with the letter only.";
      }
      case TaskKind::kChapter:
        return "Question: In which chapter of the text does this sentence appear: \"" + quote +
               "\"? Answer with the chapter heading only, such as \"" + heading_word + " I\".";
    }
    return {};
  }

  static std::string prompt_of(const std::string& passage, const std::string& q) {
    return std::string(kInstruction) + passage + "\n\n" + q;
  }

  std::optional<LongTask> try_make(TaskKind kind, std::int64_t length, double depth) {
    BookCursor& bc = cursors_[rng_.below(cursors_.size())];
    const auto& paras = bc.paragraphs();
    if (paras.size() < 8) return std::nullopt;
    std::size_t start;
    if (kind == TaskKind::kChapter) {
      if (bc.headings().empty()) return std::nullopt;
      start = bc.headings()[rng_.below(bc.headings().size())];
    } else {
      start = rng_.below(paras.size());
    }
    const std::int64_t allowance = kind == TaskKind::kWhich ? 220 : 80;
    const std::int64_t overhead = prompt_tokens_(prompt_of("", "")) + allowance;
    const std::int64_t budget = length - overhead;
    ZEBRA_CHECK(budget >= 64, "tasks: length ", length, " is too short for a ", to_string(kind), " task (", overhead,
                " tokens of instructions and question)");
    std::vector<std::string> chosen;
    std::int64_t used = 0;
    for (std::size_t i = start; i < paras.size(); ++i) {
      const std::int64_t t = bc.tokens(i, text_tokens_);
      if (used + t > budget) break;
      chosen.push_back(paras[i]);
      used += t;
    }
    if (used < budget / 2 || chosen.size() < 3) return std::nullopt;  // the book ended: try another start

    LongTask task;
    task.kind = kind;
    task.length = length;
    task.depth = depth;
    task.book = bc.book().title;
    std::string subject, quote;
    std::vector<std::string> options;
    std::size_t answer_para = 0;
    if (kind == TaskKind::kFact) {
      subject = kSubjects[rng_.below(kSubjects.size())];
      const auto number = 10000 + static_cast<std::int64_t>(rng_.below(90000));
      task.answer = std::to_string(number);
      // Boundary k of chosen.size() + 1: the fact paragraph goes before chosen[k].
      std::int64_t acc = 0, target = static_cast<std::int64_t>(depth * static_cast<double>(used));
      std::size_t k = 0;
      while (k < chosen.size() && acc + bc.tokens(start + k, text_tokens_) / 2 <= target)
        acc += bc.tokens(start + k++, text_tokens_);
      chosen.insert(chosen.begin() + static_cast<std::ptrdiff_t>(k),
                    "The secret number of " + subject + " is " + task.answer + ".");
      answer_para = k;
    } else {
      const std::string passage = join_passage(chosen);
      std::vector<Candidate> cands;
      std::size_t offset = 0;
      for (std::size_t pi = 0; pi < chosen.size(); ++pi) {
        const std::vector<std::string_view> ss = split_sentences(chosen[pi]);
        for (std::size_t si = 0; si < ss.size(); ++si) {
          if (!usable_sentence(ss[si]) || count_occurrences(passage, ss[si]) != 1) continue;
          Candidate c{pi, std::string(ss[si]), si + 1 < ss.size() ? std::string(ss[si + 1]) : std::string(),
                      offset + static_cast<std::size_t>(ss[si].data() - chosen[pi].data())};
          if (kind == TaskKind::kNext && (c.next.empty() || !usable_sentence(c.next))) continue;
          if (kind == TaskKind::kChapter && pi == 0) continue;  // the heading paragraph itself
          cands.push_back(std::move(c));
        }
        offset += chosen[pi].size() + 2;
      }
      if (cands.empty()) return std::nullopt;
      const double target = depth * static_cast<double>(passage.size());
      const Candidate* best = &cands[0];
      for (const Candidate& c : cands) {
        if (std::abs(static_cast<double>(c.offset) - target) < std::abs(static_cast<double>(best->offset) - target))
          best = &c;
      }
      quote = best->text;
      answer_para = best->para;
      if (kind == TaskKind::kNext) task.answer = best->next;
      if (kind == TaskKind::kChapter) {
        std::string label;
        for (std::size_t pi = 0; pi <= best->para; ++pi) {
          const std::string l = chapter_label(chosen[pi]);
          if (!l.empty()) label = l;
        }
        if (label.empty()) return std::nullopt;
        task.answer = label;
      }
      if (kind == TaskKind::kWhich) {
        const auto right = rng_.below(4);
        for (std::uint64_t i = 0; i < 4; ++i) {
          if (i == right) {
            options.push_back(quote);
            continue;
          }
          std::optional<std::string> d = distractor(bc, passage);
          if (!d) return std::nullopt;
          options.push_back(*d);
        }
        task.answer = std::string(1, static_cast<char>('A' + right));
      }
    }
    const std::string heading_word =
        kind == TaskKind::kChapter ? task.answer.substr(0, task.answer.find(' ')) : std::string();
    const std::string q = question(kind, quote, subject, options, heading_word);
    // Trim trailing paragraphs (never the answer's) until the exact prompt fits.
    while (true) {
      task.prompt = prompt_of(join_passage(chosen), q);
      task.prompt_tokens = prompt_tokens_(task.prompt);
      if (task.prompt_tokens <= length) break;
      if (chosen.size() <= answer_para + 1) return std::nullopt;
      chosen.pop_back();
    }
    const std::string passage = join_passage(chosen);
    const std::string needle = kind == TaskKind::kFact ? chosen[answer_para] : quote;
    const std::size_t at = passage.find(needle);
    task.answer_depth = at == std::string::npos
                            ? depth
                            : static_cast<double>(at) / static_cast<double>(std::max<std::size_t>(passage.size(), 1));
    return task;
  }

  std::optional<std::string> distractor(const BookCursor& self, const std::string& passage) {
    for (int attempt = 0; attempt < 32; ++attempt) {
      const BookCursor& other = cursors_[rng_.below(cursors_.size())];
      if (&other == &self && cursors_.size() > 1) continue;
      const std::string& para = other.paragraphs()[rng_.below(other.paragraphs().size())];
      for (std::string_view s : split_sentences(para)) {
        if (usable_sentence(s) && passage.find(s) == std::string::npos) return std::string(s);
      }
    }
    return std::nullopt;
  }

  const TaskGenOptions& o_;
  const PromptTokensFn& prompt_tokens_;
  const TextTokensFn& text_tokens_;
  Rng rng_;
  std::vector<BookCursor> cursors_;
};

}  // namespace

std::vector<LongTask> generate_tasks(const std::vector<Book>& books, const TaskGenOptions& o,
                                     const PromptTokensFn& prompt_tokens, const TextTokensFn& text_tokens) {
  ZEBRA_CHECK(!books.empty(), "tasks: no books");
  ZEBRA_CHECK(!o.lengths.empty() && !o.depths.empty() && !o.kinds.empty() && o.per_cell >= 1,
              "tasks: need lengths, depths, kinds and per_cell >= 1");
  for (double d : o.depths) ZEBRA_CHECK(d >= 0 && d <= 1, "tasks: depth ", d, " is outside [0, 1]");
  Generator g(books, o, prompt_tokens, text_tokens);
  std::vector<LongTask> out;
  for (TaskKind k : o.kinds) {
    for (std::int64_t len : o.lengths) {
      for (double d : o.depths) {
        for (std::int64_t t = 0; t < o.per_cell; ++t) out.push_back(g.make(k, len, d));
      }
    }
  }
  return out;
}

std::vector<TaskOutcome> evaluate_tasks(const std::vector<LongTask>& tasks,
                                        const std::function<std::string(const LongTask&)>& reply,
                                        const std::function<void(std::int64_t, std::int64_t)>& progress) {
  std::vector<TaskOutcome> out;
  out.reserve(tasks.size());
  for (const LongTask& t : tasks) {
    TaskOutcome o;
    o.reply = reply(t);
    o.correct = task_correct(t, o.reply);
    out.push_back(std::move(o));
    if (progress) progress(static_cast<std::int64_t>(out.size()), static_cast<std::int64_t>(tasks.size()));
  }
  return out;
}

}  // namespace zebra
