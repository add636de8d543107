// zebra chat MODEL [--template plain|llama2] [--system TEXT] [-n N] [sampling] [--group-size L --window W]
// An interactive conversation on stdin/stdout. Each line typed is one user message; the reply streams to
// stdout. The KV cache is kept between turns: a turn runs only its own new tokens (prompt reuse), so a long
// conversation costs per turn what the turn adds. "/reset" starts over, "/exit" (or end of input) quits.
//
// Templates:
//   plain   [BOS] {system}\n\nUser: {message}\nAssistant:{reply}\nUser: {message}\nAssistant:...
//           a reply ends at "\nUser:" (cut before it) or at EOS.
//   llama2  [BOS][INST] <<SYS>>\n{system}\n<</SYS>>\n\n{message} [/INST]{reply}[EOS][BOS][INST] {message} [/INST]...
//           a reply ends at EOS (Llama-2 chat format; [BOS]/[EOS] are the tokens, not text).
// When a reply ends in a stop string, the tokens that produced it are taken back out of the cache
// (InferenceSession::mark/rewind), so the cache holds exactly the conversation as shown.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "zebra/cli/commands.hpp"
#include "zebra/cli/sampling_options.hpp"
#include "zebra/data/sentencepiece_tokenizer.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/threads.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

struct ChatArgs {
  std::string model, tokenizer, chat_template = "plain", system;
  std::int64_t n = 256, chunk = 512, max_context = 0, group_size = 0, window = 0;
  SamplerOptions sampling;
  int threads = 0;
  bool stats = true;
};

// Prefix-stable text of generated ids (see cmd_generate.cpp): concatenated pieces.
std::string pieces_text(const Tokenizer& tok, const std::vector<std::int32_t>& ids, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n && i < ids.size(); ++i) s += tok.piece(ids[i]);
  return s;
}

class Chat {
 public:
  Chat(const ChatArgs& a, LoadedModel model)
      : a_(a), model_(std::move(model)), tok_(load_model_tokenizer(model_)),
        session_(model_.weights(), SessionOptions{a.max_context, a.chunk, a.threads}), sampler_(a.sampling) {
    ZEBRA_CHECK(a.chat_template == "plain" || a.chat_template == "llama2", "chat: --template must be plain or llama2, got '",
                a.chat_template, "'");
  }

  void run() {
    const bool tty = ::isatty(STDIN_FILENO) != 0;
    std::fprintf(stderr, "chat with %s (%s, pattern %s, template %s). /reset starts over, /exit quits.\n",
                 model_.path.c_str(), to_string(model_.format), model_.config().pattern_string().c_str(),
                 a_.chat_template.c_str());
    std::string line;
    while (true) {
      std::fprintf(stderr, "> ");
      std::fflush(stderr);
      if (!std::getline(std::cin, line)) break;
      if (!tty) std::fprintf(stderr, "%s\n", line.c_str());  // echo piped input so a transcript reads well
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        reset();
        std::fprintf(stderr, "(conversation reset)\n");
        continue;
      }
      if (line.empty()) continue;
      try {
        turn(line);
      } catch (const Error& e) {
        std::fprintf(stderr, "\nerror: %s\n(conversation reset)\n", e.what());
        reset();
      }
    }
    std::fprintf(stderr, "\n");
  }

 private:
  bool llama2() const { return a_.chat_template == "llama2"; }

  void reset() {
    session_.reset();
    first_turn_ = true;
  }

  std::vector<std::int32_t> turn_tokens(const std::string& message) const {
    std::vector<std::int32_t> ids;
    std::string text;
    if (llama2()) {
      ids.push_back(tok_->bos_id());
      text = "[INST] ";
      if (first_turn_ && !a_.system.empty()) text += "<<SYS>>\n" + a_.system + "\n<</SYS>>\n\n";
      text += message + " [/INST]";
    } else {
      if (first_turn_) {
        ids.push_back(tok_->bos_id());
        if (!a_.system.empty()) text = a_.system + "\n\n";
        text += "User: " + message + "\nAssistant:";
      } else {
        text = "\nUser: " + message + "\nAssistant:";
      }
    }
    const std::vector<std::int32_t> body = tok_->encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }

  void turn(const std::string& message) {
    const std::vector<std::int32_t> ids = turn_tokens(message);
    Timer prefill_timer;
    const std::span<const float> logits = session_.prefill(ids);
    const double prefill_s = prefill_timer.seconds();
    first_turn_ = false;
    const auto mark = session_.mark();

    GenerateOptions go;
    go.max_new_tokens = a_.n;
    if (session_.options().max_context > 0) {
      go.max_new_tokens = std::min(go.max_new_tokens, session_.options().max_context - session_.n_past());
      ZEBRA_CHECK(go.max_new_tokens >= 1, "the context is full (", session_.n_past(), " positions)");
    }
    go.stop_tokens = {tok_->eos_id(), tok_->bos_id()};
    go.stop_strings = llama2() ? std::vector<std::string>{"[INST]"} : std::vector<std::string>{"\nUser:"};
    const GenerateResult r = generate_text(
        session_, sampler_, logits, go,
        [&](const std::vector<std::int32_t>& g) { return pieces_text(*tok_, g, g.size()); },
        [](const std::string& piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        });
    std::fputs("\n", stdout);
    std::fflush(stdout);

    // Bring the cache to exactly "prompt + reply as shown (+ EOS for llama2)".
    if (r.stop_reason == "stop string") {
      // Keep the longest run of generated tokens whose text lies before the cut.
      std::size_t keep = 0;
      while (keep < r.tokens.size() && pieces_text(*tok_, r.tokens, keep + 1).size() <= r.text.size()) ++keep;
      session_.rewind(mark);
      if (keep > 0) session_.prefill(std::span<const std::int32_t>(r.tokens.data(), keep));
    } else if (r.stop_reason == "length" && !r.tokens.empty()) {
      session_.decode(r.tokens.back());  // generate_text leaves the last sampled token to the caller
    }
    if (llama2()) session_.decode(tok_->eos_id());
    if (a_.stats) {
      std::fprintf(stderr, "[turn: %zu prompt tokens at %.0f tok/s; %zu reply tokens at %.1f tok/s (%s); cache %lld "
                           "positions, %.1f KiB]\n",
                   ids.size(), static_cast<double>(ids.size()) / prefill_s, r.tokens.size(),
                   r.n_decoded > 0 ? static_cast<double>(r.n_decoded) / r.decode_seconds : 0.0, r.stop_reason.c_str(),
                   static_cast<long long>(session_.n_past()),
                   static_cast<double>(session_.cache().bytes_used()) / 1024.0);
    }
  }

  const ChatArgs& a_;
  LoadedModel model_;
  std::unique_ptr<Tokenizer> tok_;
  InferenceSession<float> session_;
  Sampler sampler_;
  bool first_turn_ = true;
};

void run_chat(const ChatArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  LoadedModel m = load_model_for_inference(a.model, pattern_from_flags(peek_model_config(a.model), a.group_size, a.window),
                                           a.tokenizer);
  Chat chat(a, std::move(m));
  chat.run();
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  a->sampling.seed = 1;
  CLI::App* cmd = app.add_subcommand("chat", "Interactive chat on stdin/stdout, keeping the KV cache between turns");
  cmd->add_option("model", a->model, "model directory or llama2.c .bin checkpoint")->required();
  cmd->add_option("--template", a->chat_template, "chat template: plain (User:/Assistant:) or llama2 ([INST] ... [/INST])")
      ->check(CLI::IsMember({"plain", "llama2"}));
  cmd->add_option("--system", a->system, "system prompt");
  cmd->add_option("-n,--n-tokens", a->n, "most tokens per reply")->check(CLI::PositiveNumber);
  add_sampling_options(cmd, a->sampling);
  cmd->add_option("--chunk", a->chunk, "prefill chunk size in tokens")->check(CLI::PositiveNumber);
  cmd->add_option("--group-size", a->group_size, "run the model re-laid as Zebra with this group size L")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--window", a->window, "local-attention window for --group-size")->check(CLI::PositiveNumber);
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer file (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-context", a->max_context, "most positions the KV cache may hold (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", a->threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  cmd->add_flag("!--no-stats", a->stats, "do not print per-turn statistics");
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace zebra
