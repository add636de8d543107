// `zebra prepare`: corpus -> tokenizer -> token datasets.
//
// Output directory:
//   train.bin                 token dataset of the training documents (token_dataset.hpp)
//   valid.bin                 held-out documents, when a validation source was chosen
//   tokenizer.model|.bin      the tokenizer used (trained here or copied)
//   prepare.json              statistics (see PrepareResult::to_json)
// The data files are byte-identical between runs on the same inputs and options (the thread count
// does not matter); prepare.json differs only in its timing fields.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zebra/data/corpus.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"

namespace zebra {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files and folders (corpus.hpp)
  std::string out_dir;
  // An existing tokenizer (tokenizer.model, tokenizer.bin or tokenizer.json), or an already loaded one (a
  // model's: `tokenizer`, described by tokenizer_path); neither = train a SentencePiece model with `train` on
  // the training documents (never on held-out ones).
  std::string tokenizer_path;
  std::shared_ptr<const Tokenizer> tokenizer;
  SentencePieceTrainOptions train;
  // Validation source, at most one of:
  std::vector<std::string> valid_inputs;  // separate corpus files
  std::int64_t valid_docs = 0;            // hold out the last K documents of the inputs
  // Hold out the last round(F * n_docs) documents (at least 1, leaving at least 1 for training). A
  // corpus of a single document is instead split at the line break nearest to (1 - F) of its bytes.
  double valid_fraction = 0;
  std::int64_t max_docs = -1;  // use only the first N (non-empty) documents of the inputs
  bool strict_utf8 = false;
  bool progress = true;  // progress lines on stderr
  // Documents are tokenized in parallel in chunks of about this many bytes; the output order is
  // the input order whatever the thread count.
  std::int64_t chunk_bytes = 16 << 20;
  // Polled between documents (the CLI: SIGINT or SIGTERM was received): true ends prepare with an error before
  // anything is written under the dataset's names, removing the temporaries.
  std::function<bool()> stop_requested;
};

struct PrepareSplitStats {
  std::int64_t documents = 0;
  std::int64_t characters = 0;   // Unicode code points
  std::int64_t bytes = 0;        // UTF-8 bytes
  std::int64_t text_tokens = 0;  // tokens of the documents' text
  std::int64_t tokens = 0;       // tokens in the file: text_tokens + 2 per document (BOS, EOS)
  double chars_per_token() const {
    return text_tokens > 0 ? static_cast<double>(characters) / static_cast<double>(text_tokens) : 0.0;
  }
};

struct PrepareResult {
  PrepareSplitStats train, valid;
  bool has_valid = false;
  CorpusStats corpus;          // the training inputs (including held-out documents)
  CorpusStats valid_corpus;    // separate validation inputs
  std::string tokenizer_file;  // path inside out_dir
  std::int64_t vocab_size = 0;
  bool tokenizer_trained = false;
  SentencePieceTrainStats tokenizer_training;
  double seconds_total = 0, seconds_tokenizer = 0, seconds_tokenize = 0;

  nlohmann::json to_json() const;
};

// Runs the whole pipeline and writes prepare.json. Throws zebra::Error on bad options or input.
PrepareResult prepare_dataset(const PrepareOptions& options);

}  // namespace zebra
