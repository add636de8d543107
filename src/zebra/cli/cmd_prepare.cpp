// `zebra prepare`: argument parsing only; the work is data/prepare.hpp.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "zebra/cli/commands.hpp"
#include "zebra/data/prepare.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/train/chat_dataset.hpp"
#include "zebra/train/trainer.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

void add_prepare_command(CLI::App& app) {
  auto opt = std::make_shared<PrepareOptions>();
  auto quiet = std::make_shared<bool>(false);
  struct ChatArgs {
    bool chat = false;
    std::string template_name, too_long = "truncate";
    std::int64_t seq_len = 0;
  };
  auto chat = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("prepare",
                                     "Tokenize text corpora (files, folders, JSONL with a \"text\" field, optionally "
                                     ".zst) into token datasets: "
                                     "writes DIR/train.bin, DIR/valid.bin, the tokenizer and DIR/prepare.json. With "
                                     "--chat: instruction data (JSONL of {\"messages\": [...]} or Alpaca records) "
                                     "rendered with the model's chat template, with a loss mask on the answers");
  cmd->add_option("inputs", opt->inputs, "Corpus files and folders")->required()->check(CLI::ExistingPath);
  cmd->add_option("-o,--out", opt->out_dir, "Output directory")->required();
  cmd->add_option("--vocab-size", opt->train.vocab_size, "Train a SentencePiece tokenizer with this vocabulary size")
      ->capture_default_str();
  cmd->add_option("--tokenizer", opt->tokenizer_path,
                  "Use this tokenizer instead of training one: a tokenizer file (tokenizer.model, llama2.c "
                  "tokenizer.bin, tokenizer.json) or a model's (a GGUF, a model directory)")
      ->check(CLI::ExistingPath);
  cmd->add_option("--model-type", opt->train.model_type, "SentencePiece model type to train")
      ->check(CLI::IsMember({"bpe", "unigram"}))
      ->capture_default_str();
  cmd->add_option("--character-coverage", opt->train.character_coverage,
                  "Share of characters the trained vocabulary covers (the rest use byte pieces)")
      ->capture_default_str();
  cmd->add_option("--tokenizer-sentences", opt->train.input_sentence_size,
                  "Lines sampled (deterministically) for tokenizer training; 0 = all")
      ->capture_default_str();
  cmd->add_option("--seed", opt->train.seed, "Seed for sampling the tokenizer training lines")->capture_default_str();
  cmd->add_option("--valid", opt->valid_inputs, "Validation corpus files/folders (written to DIR/valid.bin)")
      ->check(CLI::ExistingPath);
  cmd->add_option("--valid-docs", opt->valid_docs, "Hold out the last K documents of the inputs for validation");
  cmd->add_option("--valid-fraction", opt->valid_fraction,
                  "Hold out the last fraction F of the documents (a single document is split at a line break)");
  cmd->add_option("--max-docs", opt->max_docs, "Use only the first N documents of the inputs");
  cmd->add_flag("--strict-utf8", opt->strict_utf8, "Fail on invalid UTF-8 instead of replacing it with U+FFFD");
  cmd->add_flag("--chat", chat->chat,
                "Instruction data for zebra train --chat-data: needs --tokenizer (a model's); the loss mask scores "
                "only the assistant's tokens with their end-of-turn marker; bad records are counted, not fatal");
  cmd->add_option("--template", chat->template_name,
                  "With --chat: chat template " + known_chat_template_names() + " (default: the tokenizer's)");
  cmd->add_option("--seq-len,-T", chat->seq_len,
                  "With --chat: conversations longer than this many tokens are truncated or skipped (--too-long)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--too-long", chat->too_long,
                  "With --chat: truncate (drop the earliest context, never an answer; default) or skip")
      ->check(CLI::IsMember({"truncate", "skip"}));
  cmd->add_flag("-q,--quiet", *quiet, "No progress output");
  cmd->callback([opt, quiet, chat]() {
    opt->progress = !*quiet;
    if (chat->chat) {
      ZEBRA_CHECK(!opt->tokenizer_path.empty(),
                  "prepare --chat: give --tokenizer (the model's GGUF, directory or "
                  "tokenizer file): the chat template and its special tokens come from it");
      ZEBRA_CHECK(opt->valid_docs == 0 && opt->valid_fraction == 0 && opt->max_docs < 0,
                  "prepare --chat: held-out conversations come from --valid FILE (not --valid-docs, --valid-fraction "
                  "or --max-docs)");
      ChatPrepareOptions co;
      co.inputs = opt->inputs;
      co.valid_inputs = opt->valid_inputs;
      co.out_dir = opt->out_dir;
      co.tokenizer_path = opt->tokenizer_path;
      co.tokenizer = load_tokenizer_or_model(opt->tokenizer_path);
      co.template_name = chat->template_name;
      co.max_tokens = chat->seq_len;
      co.overflow = parse_chat_overflow(chat->too_long);
      co.progress = opt->progress;
      const ChatPrepareResult r = prepare_chat_dataset(co);
      auto line = [](const char* name, const ChatSplitStats& s) {
        std::printf("%s: %lld conversations of %lld records (%lld truncated), %lld tokens, %lld scored (%.1f%%)\n",
                    name, static_cast<long long>(s.conversations), static_cast<long long>(s.records),
                    static_cast<long long>(s.truncated), static_cast<long long>(s.tokens),
                    static_cast<long long>(s.scored_tokens),
                    s.tokens > 0 ? 100.0 * static_cast<double>(s.scored_tokens) / static_cast<double>(s.tokens) : 0.0);
        if (s.problems.bad() > 0) {
          std::printf("  skipped %lld bad records:", static_cast<long long>(s.problems.bad()));
          for (std::size_t k = 1; k < kChatRecordProblems; ++k) {
            if (s.problems.n[k] > 0) {
              std::printf(" %s %lld", to_string(static_cast<ChatRecordProblem>(k)),
                          static_cast<long long>(s.problems.n[k]));
            }
          }
          std::printf("\n");
        }
      };
      line("train", r.train);
      if (r.has_valid) line("valid", r.valid);
      std::printf("template %s; tokenizer %s; %.1f s\n", r.template_name.c_str(), r.tokenizer_file.c_str(), r.seconds);
      return;
    }
    if (!opt->tokenizer_path.empty()) opt->tokenizer = load_tokenizer_or_model(opt->tokenizer_path);
    // Ctrl-C ends prepare with an error and no temporaries (the trainer's handler and flag).
    install_stop_signal_handler();
    opt->stop_requested = [] { return training_stop_requested().load(); };
    PrepareResult r = prepare_dataset(*opt);
    auto line = [](const char* name, const PrepareSplitStats& s) {
      std::printf("%s: %lld documents, %lld characters, %lld tokens (%.3f chars/token)\n", name,
                  static_cast<long long>(s.documents), static_cast<long long>(s.characters),
                  static_cast<long long>(s.tokens), s.chars_per_token());
    };
    line("train", r.train);
    if (r.has_valid) line("valid", r.valid);
    std::printf("tokenizer: %s (vocab %lld%s); %lld invalid UTF-8 sequences replaced; %.1f s\n",
                r.tokenizer_file.c_str(), static_cast<long long>(r.vocab_size), r.tokenizer_trained ? ", trained" : "",
                static_cast<long long>(r.corpus.replaced_utf8 + r.valid_corpus.replaced_utf8), r.seconds_total);
  });
}

}  // namespace zebra
