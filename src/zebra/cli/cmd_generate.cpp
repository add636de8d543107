// zebra generate MODEL [--prompt TEXT | --file F | stdin] [-n N] [sampling] [--chunk N] [--stop STR]...
//   [--group-size L --window W] [--tokenizer F] [--max-context N]
// Streams the continuation of a prompt to stdout; prefill / decode speed and KV-cache memory go to stderr.
// For measurements without a trained model: --random-init CONFIG (a randomly initialised model, no
// tokenizer needed) with --random-prompt N (N random token ids).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/cli/sampling_options.hpp"
#include "zebra/cli/weights_option.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/generate/decode_loop.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/format.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

// Where a decode step's wall time went (--profile): the ops of the forward passes, then what the loop spent
// outside them (sampling, detokenising, the rest of the step).
void print_decode_profile(const StepTimes& t, const DecodeResult& r) {
  const double steps = static_cast<double>(r.n_decoded), per = 1e3 / steps;
  const double outside_model = r.seconds - r.decode_seconds, in_step_other = r.decode_seconds - t.total();
  std::fprintf(stderr, "decode step, mean of %lld (ms, share of the loop's %.3f ms/token):\n",
               static_cast<long long>(r.n_decoded), r.seconds * per);
  const std::pair<const char*, double> rows[] = {{"projections (q|k|v, o, gate|up, down)", t.projections},
                                                 {"lm head", t.lm_head},
                                                 {"attention (+ cache write)", t.attention},
                                                 {"norms", t.norms},
                                                 {"rope", t.rope},
                                                 {"swiglu + residuals", t.elementwise},
                                                 {"embedding", t.embedding},
                                                 {"rest of the step (session bookkeeping)", in_step_other},
                                                 {"sampling + detokenising", outside_model}};
  for (const auto& [name, sec] : rows) {
    std::fprintf(stderr, "  %-40s %8.3f  %5.1f%%\n", name, sec * per, 100.0 * sec / r.seconds);
  }
}

struct GenerateArgs {
  std::string model, prompt, prompt_file, tokenizer, random_init;
  bool prompt_given = false;
  std::int64_t n = 256, chunk = 512, max_context = 0, random_prompt = 0, fill_context = 0;
  AdjustArgs adjust;
  SamplerOptions sampling;
  std::vector<std::string> stops;
  bool no_bos = false, ignore_eos = false, quiet = false, no_echo = false;
  std::uint64_t init_seed = 1;
  int threads = 0;
  std::string weights_dtype;
  std::string kv_dtype;
  bool profile = false;
};

std::string read_all(std::istream& in) {
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void run_generate(const GenerateArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  // The model: loaded, or randomly initialised from a config.
  const std::optional<DType> weights_dtype = parse_weights_dtype(a.weights_dtype);  // refused before any work
  const std::optional<DType> kv_dtype = parse_kv_dtype(a.kv_dtype);
  LoadedModel m;
  if (!a.random_init.empty()) {
    ZEBRA_CHECK(a.model.empty(), "generate: give either MODEL or --random-init CONFIG, not both");
    ModelConfig c = load_config(a.random_init);
    c.resolve();
    c = apply_adjustment(c, adjustment_of(a.adjust));
    c.resolve();
    m.params = ParameterSet<float>(c);
    init_parameters(m.params, a.init_seed);
    if (weights_dtype && *weights_dtype != DType::kF32) {
      m.store = store_from_params(m.params, *weights_dtype);
      m.params = ParameterSet<float>();
    }
    m.path = a.random_init + " (random init, seed " + std::to_string(a.init_seed) + ")";
    m.tokenizer_path = a.tokenizer;
  } else {
    ZEBRA_CHECK(!a.model.empty(), "generate: give a MODEL (model directory or llama2.c .bin) or --random-init CONFIG");
    m = load_model_for_inference(a.model, adjustment_of(a.adjust), a.tokenizer, weights_dtype);
  }
  const ModelConfig& c = m.config();
  std::unique_ptr<Tokenizer> tok;
  if (!m.tokenizer_path.empty() || a.random_init.empty()) tok = load_model_tokenizer(m);
  const std::int32_t bos = tok ? tok->bos_id() : c.bos_token_id;
  const std::int32_t eos = tok ? tok->eos_id() : c.eos_token_id;

  // The prompt.
  std::vector<std::int32_t> ids;
  // BOS unless the tokenizer says its model takes none (byte-level BPE models such as SmolLM2).
  if (!a.no_bos && (tok == nullptr || tok->add_bos())) ids.push_back(bos);
  std::string prompt_text;
  if (a.random_prompt > 0) {
    ZEBRA_CHECK(!a.prompt_given && a.prompt_file.empty(), "generate: --random-prompt excludes --prompt and --file");
    Rng rng(a.sampling.seed + 12345);
    // Ids from 3 up: 0..2 are <unk>, BOS, EOS in both tokenizer families.
    const std::uint64_t lo = c.vocab_size > 3 ? 3 : 0;
    for (std::int64_t i = 0; i < a.random_prompt; ++i)
      ids.push_back(static_cast<std::int32_t>(lo + rng.below(static_cast<std::uint64_t>(c.vocab_size) - lo)));
  } else {
    ZEBRA_CHECK(!(a.prompt_given && !a.prompt_file.empty()), "generate: --prompt and --file exclude each other");
    if (a.prompt_given) {
      prompt_text = a.prompt;
    } else if (!a.prompt_file.empty()) {
      std::ifstream in(a.prompt_file, std::ios::binary);
      ZEBRA_CHECK(in.good(), "generate: cannot read prompt file '", a.prompt_file, "'");
      prompt_text = read_all(in);
    } else if (!::isatty(STDIN_FILENO)) {
      prompt_text = read_all(std::cin);
    }
    if (!prompt_text.empty()) {
      ZEBRA_CHECK(tok != nullptr,
                  "generate: a text prompt needs a tokenizer (--tokenizer FILE), or use --random-prompt N");
      const std::vector<std::int32_t> p = tok->encode(prompt_text);
      ids.insert(ids.end(), p.begin(), p.end());
    }
  }
  ZEBRA_CHECK(!ids.empty(), "generate: the prompt is empty and --no-bos leaves no token to start from");

  SessionOptions so;
  so.chunk_size = a.chunk;
  so.max_context = a.max_context;
  so.compute.threads = a.threads;
  so.kv_dtype = kv_dtype;
  StepTimes times;
  if (a.profile) so.times = &times;
  InferenceSession<float> session(m.weights(), so);
  const std::int64_t limit = session.options().max_context;
  const std::int64_t n_prompt = static_cast<std::int64_t>(ids.size());
  ZEBRA_CHECK(limit == 0 || n_prompt <= limit, "generate: the prompt has ", n_prompt,
              " tokens, more than the maximum context of ", limit);
  std::int64_t n_new = a.n;
  if (limit > 0 && a.fill_context + n_prompt + n_new - 1 > limit) {
    n_new = std::max<std::int64_t>(
        1, limit - a.fill_context - n_prompt + 1);  // the last sampled token is not run through the model
    std::fprintf(stderr, "note: generating at most %lld tokens: the context holds %lld positions\n",
                 static_cast<long long>(n_new), static_cast<long long>(limit));
  }

  std::fprintf(stderr, "model: %s (%s), %lld layers %s, window %lld, %s positions\n", m.path.c_str(),
               a.random_init.empty() ? to_string(m.format) : "config", static_cast<long long>(c.n_layers),
               c.pattern_string().c_str(), static_cast<long long>(c.window), to_string(c.pos_embedding));
  if (!a.quiet && !a.no_echo) {
    std::fputs(prompt_text.c_str(), stdout);
    std::fflush(stdout);
  }

  if (a.fill_context > 0) {
    ZEBRA_CHECK(limit == 0 || a.fill_context + n_prompt <= limit, "generate: --fill-context ", a.fill_context, " + ",
                n_prompt, " prompt tokens exceed the maximum context of ", limit);
    Timer fill_timer;
    session.fill_synthetic(a.fill_context, c.vocab_size > 3 ? 3 : 0, a.sampling.seed);
    std::fprintf(stderr,
                 "filled the KV cache with %lld synthetic positions (random keys/values, %.2f s): speed "
                 "figures below are at that context; the text is meaningless\n",
                 static_cast<long long>(a.fill_context), fill_timer.seconds());
  }
  Timer prefill_timer;
  const std::span<const float> logits = session.prefill(ids, a.chunk);
  const double prefill_s = prefill_timer.seconds();

  Sampler sampler(a.sampling);
  DecodeOptions go;
  go.max_new_tokens = n_new;
  if (!a.ignore_eos) go.stop_tokens = {eos, bos};  // llama2.c models mark a new story with BOS
  go.stop_strings = a.stops;
  ZEBRA_CHECK(tok != nullptr || go.stop_strings.empty(), "generate: --stop needs a tokenizer (--tokenizer FILE)");
  // The continuation is spaced as it follows the prompt (the BOS alone when there is no prompt text).
  std::optional<StreamingDetokenizer> detok;
  if (tok) detok.emplace(*tok, ids);
  go.detokenizer = detok ? &*detok : nullptr;
  auto print = [&](const std::string& piece) {
    if (a.quiet) return;
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  go.on_text = print;
  if (!tok) go.on_token = [&](std::int32_t t) { print(" " + std::to_string(t)); };  // no tokenizer: the ids
  times = StepTimes{};  // from here on: the decode steps alone
  const DecodeResult r = decode_loop(
      logits, sampler, [&](std::int32_t t) { return session.decode(t); }, go, session.tokens());
  if (!a.quiet) std::fputs("\n", stdout);
  std::fflush(stdout);

  const SequenceCache<float>& cache = session.cache();
  std::fprintf(stderr, "\nprefill: %lld tokens in %.3f s = %.1f tok/s (chunk %lld, after %lld cached positions)\n",
               static_cast<long long>(n_prompt), prefill_s, static_cast<double>(n_prompt) / prefill_s,
               static_cast<long long>(a.chunk), static_cast<long long>(a.fill_context));
  std::fprintf(stderr, "decode:  %lld tokens in %.3f s = %.1f tok/s (%lld sampled, stop: %s)\n",
               static_cast<long long>(r.n_decoded), r.decode_seconds,
               r.n_decoded > 0 ? static_cast<double>(r.n_decoded) / r.decode_seconds : 0.0,
               static_cast<long long>(r.tokens.size()), to_string(r.stop_reason));
  const double full = static_cast<double>(cache.full_attention_bytes(session.n_past()));
  std::fprintf(stderr,
               "kv cache: %s used, %s allocated at %lld positions (%lld bytes used); a full-attention cache: %s "
               "(%.0f bytes), ratio %.4f\n",
               human_bytes(static_cast<double>(cache.bytes_used())).c_str(),
               human_bytes(static_cast<double>(cache.bytes_allocated())).c_str(),
               static_cast<long long>(session.n_past()), static_cast<long long>(cache.bytes_used()),
               human_bytes(full).c_str(), full, full > 0 ? static_cast<double>(cache.bytes_used()) / full : 0.0);
  if (a.profile && r.n_decoded > 0) print_decode_profile(times, r);
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  a->sampling.seed = 1;
  CLI::App* cmd =
      app.add_subcommand("generate", "Generate text with the KV cache (prints prefill/decode speed and cache memory)");
  cmd->add_option("model", a->model, "model directory (config.json + safetensors) or llama2.c .bin checkpoint");
  auto* prompt =
      cmd->add_option("-p,--prompt", a->prompt, "prompt text (default: --file, else stdin when it is not a terminal)");
  cmd->add_option("-f,--file", a->prompt_file, "read the prompt from a file")->check(CLI::ExistingFile);
  cmd->add_option("-n,--n-tokens", a->n, "tokens to generate")->check(CLI::PositiveNumber);
  add_sampling_options(cmd, a->sampling);
  cmd->add_option("--chunk", a->chunk, "prefill chunk size in tokens")->check(CLI::PositiveNumber);
  cmd->add_flag("--profile", a->profile, "print where a decode step's time goes (products, attention, sampling, ...)");
  cmd->add_option("--stop", a->stops, "stop when the output contains this string (repeatable)");
  add_adjust_options(cmd, a->adjust, "run the model");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer file (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-context", a->max_context, "most positions the KV cache may hold (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-bos", a->no_bos, "do not start the prompt with BOS");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-sequence (for measurements)");
  cmd->add_flag("--no-echo", a->no_echo, "do not print the prompt before the continuation");
  cmd->add_flag("-q,--quiet", a->quiet, "print only the statistics (stderr)");
  cmd->add_option("--random-init", a->random_init, "instead of MODEL: a randomly initialised model of this config.json")
      ->check(CLI::ExistingFile);
  cmd->add_option("--init-seed", a->init_seed, "seed of --random-init");
  cmd->add_option("--random-prompt", a->random_prompt, "instead of a text prompt: this many random token ids")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--fill-context", a->fill_context,
                  "for speed measurements: put this many synthetic positions (random keys/values) in the KV cache "
                  "before the prompt")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", a->threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  add_weights_dtype_option(cmd, a->weights_dtype);
  add_kv_dtype_option(cmd, a->kv_dtype);
  cmd->callback([a, prompt] {
    a->prompt_given = prompt->count() > 0;
    run_generate(*a);
  });
}

}  // namespace zebra
