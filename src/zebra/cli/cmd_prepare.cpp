// `zebra prepare`: argument parsing only; the work is data/prepare.hpp.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "zebra/cli/commands.hpp"
#include "zebra/data/prepare.hpp"
#include "zebra/io/model_loader.hpp"

namespace zebra {

void add_prepare_command(CLI::App& app) {
  auto opt = std::make_shared<PrepareOptions>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("prepare",
                                     "Tokenize text corpora (files, folders, JSONL with a \"text\" field, optionally "
                                     ".zst) into token datasets: "
                                     "writes DIR/train.bin, DIR/valid.bin, the tokenizer and DIR/prepare.json");
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
  cmd->add_flag("-q,--quiet", *quiet, "No progress output");
  cmd->callback([opt, quiet]() {
    opt->progress = !*quiet;
    if (!opt->tokenizer_path.empty()) opt->tokenizer = load_tokenizer_or_model(opt->tokenizer_path);
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
