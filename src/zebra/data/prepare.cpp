#include "zebra/data/prepare.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>

#include "zebra/data/token_dataset.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/log.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace fs = std::filesystem;

namespace {

// Rate-limited progress on stderr: an updating line on a terminal, occasional lines otherwise.
class Progress {
 public:
  Progress(bool enabled, std::string stage, std::int64_t total_bytes)
      : enabled_(enabled), tty_(::isatty(2) != 0), stage_(std::move(stage)), total_(total_bytes) {}
  ~Progress() {
    if (enabled_ && tty_ && printed_) std::cerr << '\n';
  }
  void update(std::int64_t docs, std::int64_t bytes, std::int64_t tokens, bool force = false) {
    if (!enabled_) return;
    double now = timer_.seconds();
    if (!force && now - last_ < (tty_ ? 0.5 : 10.0)) return;
    last_ = now;
    printed_ = true;
    double mb = static_cast<double>(bytes) / 1e6;
    char line[256];
    int n = std::snprintf(line, sizeof(line), "[zebra prepare] %s: %lld docs, %.1f MB, %lld tokens, %.1f MB/s",
                          stage_.c_str(), static_cast<long long>(docs), mb, static_cast<long long>(tokens),
                          now > 0 ? mb / now : 0.0);
    std::string s(line, static_cast<std::size_t>(std::max(n, 0)));
    if (total_ > 0 && bytes > 0 && bytes < total_) {
      double eta = now * static_cast<double>(total_ - bytes) / static_cast<double>(bytes);
      s += str_cat(", ", static_cast<int>(100.0 * static_cast<double>(bytes) / static_cast<double>(total_)), "%, ETA ",
                   static_cast<std::int64_t>(eta), " s");
    }
    if (tty_) {
      std::cerr << "\r" << s << "\x1b[K" << std::flush;
    } else {
      std::cerr << s << '\n';
    }
  }

 private:
  bool enabled_, tty_;
  std::string stage_;
  std::int64_t total_;
  Timer timer_;
  double last_ = 0;  // the first line comes after one interval, or at the forced final update
  bool printed_ = false;
};

enum class Dest { kTrain, kValid };

// Decides which split each document of the training inputs goes to.
class Router {
 public:
  Router(const PrepareOptions& o, std::int64_t n_docs) : n_docs_(n_docs) {
    if (o.valid_docs > 0) {
      ZEBRA_CHECK(o.valid_docs < n_docs, "cannot hold out ", o.valid_docs, " validation documents: the inputs have ",
                  n_docs, " (at least one must remain for training)");
      n_valid_ = o.valid_docs;
    } else if (o.valid_fraction > 0) {
      if (n_docs == 1) {
        split_single_ = true;
        fraction_ = o.valid_fraction;
      } else {
        auto k = static_cast<std::int64_t>(std::llround(o.valid_fraction * static_cast<double>(n_docs)));
        n_valid_ = std::clamp<std::int64_t>(k, 1, n_docs - 1);
      }
    }
  }
  bool holds_out() const { return n_valid_ > 0 || split_single_; }
  std::int64_t n_valid_docs() const { return n_valid_; }

  // Calls emit(dest, text) for the document's part(s).
  template <typename F>
  void route(std::int64_t index, std::string_view doc, F&& emit) const {
    if (split_single_) {
      std::size_t cut = split_point(doc);
      emit(Dest::kTrain, doc.substr(0, cut));
      emit(Dest::kValid, doc.substr(cut));
      return;
    }
    emit(n_valid_ > 0 && index >= n_docs_ - n_valid_ ? Dest::kValid : Dest::kTrain, doc);
  }

 private:
  // Just after the line break nearest to (1 - F) of the bytes (searching forward first), else a
  // character boundary there.
  std::size_t split_point(std::string_view doc) const {
    auto target = static_cast<std::size_t>((1.0 - fraction_) * static_cast<double>(doc.size()));
    target = std::min(target, doc.size());
    std::size_t nl = doc.find('\n', target);
    if (nl == std::string_view::npos || nl + 1 >= doc.size()) nl = target > 0 ? doc.rfind('\n', target - 1) : nl;
    if (nl != std::string_view::npos && nl + 1 < doc.size()) return nl + 1;
    std::size_t cut = std::max<std::size_t>(target, 1);
    while (cut < doc.size() && (static_cast<unsigned char>(doc[cut]) & 0xC0) == 0x80) ++cut;
    return cut;
  }

  std::int64_t n_docs_;
  std::int64_t n_valid_ = 0;
  bool split_single_ = false;
  double fraction_ = 0;
};

// Tokenizes documents in parallel chunks and appends them, in input order, to the writers.
class ChunkedTokenizer {
 public:
  static constexpr std::size_t kSegmentBytes = 1024;

  ChunkedTokenizer(const Tokenizer& tok, std::int64_t chunk_bytes, TokenDatasetWriter* train, TokenDatasetWriter* valid,
                   PrepareSplitStats* train_stats, PrepareSplitStats* valid_stats)
      : tok_(tok), chunk_bytes_(chunk_bytes), writers_{train, valid}, stats_{train_stats, valid_stats} {}

  void add(Dest dest, std::string_view text) {
    pending_.push_back({dest, std::string(text)});
    pending_bytes_ += static_cast<std::int64_t>(text.size());
    if (pending_bytes_ >= chunk_bytes_ || pending_.size() >= 4096) flush();
  }

  void flush() {
    if (pending_.empty()) return;
    // Work items: whole documents, or their segments when the tokenizer can encode long texts in
    // pieces (SentencePiece, see SentencePieceTokenizer::segment) -- which also lets one long
    // document use every thread.
    struct Item {
      std::size_t doc;
      std::string_view text;
      bool first;
    };
    std::vector<Item> items;
    const auto* sp = dynamic_cast<const SentencePieceTokenizer*>(&tok_);
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (sp != nullptr) {
        bool first = true;
        for (std::string_view seg : sp->segment(pending_[i].text, kSegmentBytes)) {
          items.push_back({i, seg, first});
          first = false;
        }
      } else {
        items.push_back({i, pending_[i].text, true});
      }
    }
    const auto n = static_cast<std::int64_t>(items.size());
    std::vector<std::vector<std::int32_t>> item_ids(items.size());
    std::vector<std::exception_ptr> errors(items.size());
#pragma omp parallel for schedule(dynamic, 16)
    for (std::int64_t k = 0; k < n; ++k) {
      const Item& it = items[static_cast<std::size_t>(k)];
      try {
        item_ids[static_cast<std::size_t>(k)] =
            sp != nullptr ? sp->encode_segment(it.text, it.first) : tok_.encode(it.text);
      } catch (...) {
        errors[static_cast<std::size_t>(k)] = std::current_exception();
      }
    }
    for (auto& e : errors) {
      if (e) std::rethrow_exception(e);
    }
    std::vector<std::vector<std::int32_t>> ids(pending_.size());
    for (std::size_t k = 0; k < items.size(); ++k) {
      auto& dst = ids[items[k].doc];
      dst.insert(dst.end(), item_ids[k].begin(), item_ids[k].end());
      std::vector<std::int32_t>().swap(item_ids[k]);
    }
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      int d = pending_[i].dest == Dest::kTrain ? 0 : 1;
      writers_[d]->add_document(ids[i]);
      PrepareSplitStats& st = *stats_[d];
      ++st.documents;
      st.bytes += static_cast<std::int64_t>(pending_[i].text.size());
      st.characters += count_utf8_chars(pending_[i].text);
      st.text_tokens += static_cast<std::int64_t>(ids[i].size());
      st.tokens += static_cast<std::int64_t>(ids[i].size()) + 2;
      bytes_done_ += static_cast<std::int64_t>(pending_[i].text.size());
      tokens_done_ += static_cast<std::int64_t>(ids[i].size());
    }
    pending_.clear();
    pending_bytes_ = 0;
  }

  std::int64_t bytes_done() const { return bytes_done_; }
  std::int64_t tokens_done() const { return tokens_done_; }

 private:
  struct Pending {
    Dest dest;
    std::string text;
  };
  const Tokenizer& tok_;
  std::int64_t chunk_bytes_;
  TokenDatasetWriter* writers_[2];
  PrepareSplitStats* stats_[2];
  std::vector<Pending> pending_;
  std::int64_t pending_bytes_ = 0, bytes_done_ = 0, tokens_done_ = 0;
};

nlohmann::json split_json(const PrepareSplitStats& s, const std::string& file) {
  return {{"file", file},
          {"documents", s.documents},
          {"characters", s.characters},
          {"bytes", s.bytes},
          {"text_tokens", s.text_tokens},
          {"tokens", s.tokens},
          {"chars_per_token", s.chars_per_token()}};
}

nlohmann::json corpus_json(const CorpusStats& c) {
  return {{"files", c.files},           {"documents", c.documents}, {"empty_documents", c.empty_documents},
          {"characters", c.characters}, {"bytes", c.bytes},         {"replaced_invalid_utf8", c.replaced_utf8}};
}

void check_not_stopped(const PrepareOptions& o) {
  if (o.stop_requested && o.stop_requested()) {
    fail("prepare: interrupted; nothing was written under the dataset's names in '", o.out_dir, "'");
  }
}

void remove_stale(const fs::path& p, const char* why) {
  std::error_code ec;
  if (fs::exists(p, ec)) {
    log_info("prepare: removing stale '", p.string(), "' (", why, ")");
    fs::remove(p, ec);
  }
}

}  // namespace

nlohmann::json PrepareResult::to_json() const {
  nlohmann::json j;
  j["tokenizer"] = {{"file", fs::path(tokenizer_file).filename().string()},
                    {"vocab_size", vocab_size},
                    {"trained", tokenizer_trained}};
  if (tokenizer_trained) {
    j["tokenizer"]["training"] = {{"documents", tokenizer_training.documents},
                                  {"sentences_seen", tokenizer_training.sentences_seen},
                                  {"sentences_used", tokenizer_training.sentences_used},
                                  {"long_lines_split", tokenizer_training.long_lines_split}};
  }
  j["corpus"] = corpus_json(corpus);
  j["train"] = split_json(train, "train.bin");
  if (has_valid) {
    j["valid"] = split_json(valid, "valid.bin");
    if (valid_corpus.files > 0) j["valid_corpus"] = corpus_json(valid_corpus);
  }
  j["seconds"] = {{"tokenizer", seconds_tokenizer}, {"tokenize", seconds_tokenize}, {"total", seconds_total}};
  return j;
}

PrepareResult prepare_dataset(const PrepareOptions& o) {
  Timer total;
  ZEBRA_CHECK(!o.inputs.empty(), "prepare: no inputs");
  ZEBRA_CHECK(!o.out_dir.empty(), "prepare: no output directory");
  ZEBRA_CHECK(o.valid_fraction >= 0 && o.valid_fraction < 1, "prepare: --valid-fraction must be in [0, 1), got ",
              o.valid_fraction);
  ZEBRA_CHECK(o.valid_docs >= 0, "prepare: --valid-docs must be >= 0");
  ZEBRA_CHECK(o.chunk_bytes > 0, "prepare: chunk_bytes must be > 0");
  const int n_sources = (o.valid_inputs.empty() ? 0 : 1) + (o.valid_docs > 0 ? 1 : 0) + (o.valid_fraction > 0 ? 1 : 0);
  ZEBRA_CHECK(n_sources <= 1, "prepare: choose one validation source (--valid, --valid-docs or --valid-fraction)");
  // Fail on missing inputs before any long work.
  expand_corpus_inputs(o.inputs);
  if (!o.valid_inputs.empty()) expand_corpus_inputs(o.valid_inputs);

  const fs::path out(o.out_dir);
  fs::create_directories(out);
  PrepareResult r;
  CorpusOptions copt;
  copt.strict_utf8 = o.strict_utf8;
  copt.max_docs = o.max_docs;

  // Pass 1 (only when holding out documents): count them, so the last ones can be routed.
  std::int64_t n_docs = -1;
  std::int64_t total_bytes = 0;
  if (o.valid_docs > 0 || o.valid_fraction > 0) {
    Progress progress(o.progress, "counting documents", 0);
    CorpusStats st;
    for_each_document(
        o.inputs, copt, [&](std::string_view) { progress.update(st.documents, st.bytes, 0); }, &st);
    progress.update(st.documents, st.bytes, 0, true);
    n_docs = st.documents;
    total_bytes = st.bytes;
    ZEBRA_CHECK(n_docs > 0, "prepare: the inputs contain no non-empty documents");
  }
  const Router router(o, n_docs);

  // Tokenizer: load and copy, or train on the training documents only.
  Timer tok_timer;
  std::shared_ptr<const Tokenizer> tok = o.tokenizer;
  if (!tok && !o.tokenizer_path.empty()) tok = load_tokenizer(o.tokenizer_path);
  if (tok) {
    r.tokenizer_file = (out / tok->file_name()).string();
    std::error_code ec;
    if (!fs::equivalent(o.tokenizer_path, r.tokenizer_file, ec)) tok->save(r.tokenizer_file);
  } else {
    r.tokenizer_file = (out / "tokenizer.model").string();
    SentencePieceSentenceSampler sampler(o.train);
    {
      Progress progress(o.progress, "sampling tokenizer training text", total_bytes);
      CorpusStats st;
      std::int64_t index = 0;
      for_each_document(
          o.inputs, copt,
          [&](std::string_view doc) {
            check_not_stopped(o);
            router.route(index++, doc, [&](Dest d, std::string_view text) {
              if (d == Dest::kTrain) sampler.add_document(text);
            });
            progress.update(st.documents, st.bytes, 0);
          },
          &st);
      progress.update(st.documents, st.bytes, 0, true);
      total_bytes = st.bytes;
    }
    if (o.progress) {
      log_info("prepare: training a ", o.train.model_type, " SentencePiece tokenizer, vocab ", o.train.vocab_size,
               ", on ", sampler.sentences().size(), " lines (of ", sampler.stats().sentences_seen, ")");
    }
    r.tokenizer_training = train_sentencepiece(sampler, o.train, r.tokenizer_file);
    r.tokenizer_trained = true;
    tok = load_tokenizer(r.tokenizer_file);
  }
  check_not_stopped(o);  // after training a tokenizer, which cannot be interrupted
  r.seconds_tokenizer = tok_timer.seconds();
  remove_stale(out / (tok->file_name() == "tokenizer.model" ? "tokenizer.bin" : "tokenizer.model"),
               "another tokenizer is used now");
  r.vocab_size = tok->vocab_size();
  ZEBRA_CHECK(tok->bos_id() >= 0 && tok->eos_id() >= 0, "prepare: tokenizer '", r.tokenizer_file,
              "' has no BOS or EOS token (ids ", tok->bos_id(), ", ", tok->eos_id(), ")");

  // Pass 2: tokenize.
  Timer tokenize_timer;
  r.has_valid = !o.valid_inputs.empty() || router.holds_out();
  const std::string train_path = (out / "train.bin").string(), valid_path = (out / "valid.bin").string();
  TokenDatasetWriter train_writer(train_path, r.vocab_size, tok->bos_id(), tok->eos_id());
  std::unique_ptr<TokenDatasetWriter> valid_writer;
  if (r.has_valid) {
    valid_writer = std::make_unique<TokenDatasetWriter>(valid_path, r.vocab_size, tok->bos_id(), tok->eos_id());
  }
  ChunkedTokenizer chunks(*tok, o.chunk_bytes, &train_writer, valid_writer.get(), &r.train, &r.valid);
  {
    Progress progress(o.progress, "tokenizing", total_bytes);
    std::int64_t index = 0;
    for_each_document(
        o.inputs, copt,
        [&](std::string_view doc) {
          check_not_stopped(o);
          router.route(index++, doc, [&](Dest d, std::string_view text) { chunks.add(d, text); });
          progress.update(r.corpus.documents, chunks.bytes_done(), chunks.tokens_done());
        },
        &r.corpus);
    chunks.flush();
    progress.update(r.corpus.documents, chunks.bytes_done(), chunks.tokens_done(), true);
  }
  ZEBRA_CHECK(r.corpus.documents > 0, "prepare: the inputs contain no non-empty documents");
  if (!o.valid_inputs.empty()) {
    Progress progress(o.progress, "tokenizing validation inputs", 0);
    const std::int64_t bytes0 = chunks.bytes_done(), tokens0 = chunks.tokens_done();
    CorpusOptions vopt;
    vopt.strict_utf8 = o.strict_utf8;
    for_each_document(
        o.valid_inputs, vopt,
        [&](std::string_view doc) {
          check_not_stopped(o);
          chunks.add(Dest::kValid, doc);
          progress.update(r.valid_corpus.documents, chunks.bytes_done() - bytes0, chunks.tokens_done() - tokens0);
        },
        &r.valid_corpus);
    chunks.flush();
    progress.update(r.valid_corpus.documents, chunks.bytes_done() - bytes0, chunks.tokens_done() - tokens0, true);
    ZEBRA_CHECK(r.valid_corpus.documents > 0, "prepare: the --valid inputs contain no non-empty documents");
  }
  check_not_stopped(o);
  train_writer.finish();
  if (valid_writer) {
    valid_writer->finish();
  } else {
    remove_stale(valid_path, "no validation split was requested");
  }
  r.seconds_tokenize = tokenize_timer.seconds();
  r.seconds_total = total.seconds();

  nlohmann::json j = r.to_json();
  j["options"] = {{"inputs", o.inputs},
                  {"valid_inputs", o.valid_inputs},
                  {"valid_docs", o.valid_docs},
                  {"valid_fraction", o.valid_fraction},
                  {"max_docs", o.max_docs},
                  {"strict_utf8", o.strict_utf8},
                  {"tokenizer", o.tokenizer_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.tokenizer_path)}};
  if (r.tokenizer_trained) {
    j["options"]["train_tokenizer"] = {{"vocab_size", o.train.vocab_size},
                                       {"model_type", o.train.model_type},
                                       {"character_coverage", o.train.character_coverage},
                                       {"input_sentence_size", o.train.input_sentence_size},
                                       {"max_sentence_length", o.train.max_sentence_length},
                                       {"seed", o.train.seed}};
  }
  write_file_atomic((out / "prepare.json").string(), j.dump(2) + "\n");
  return r;
}

}  // namespace zebra
