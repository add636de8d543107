// zebra chat MODEL [--template NAME] [--system TEXT] [-n N] [sampling] [--group-size L --window W]
// An interactive conversation on stdin/stdout. Each line typed is one user message; the reply streams to
// stdout. The KV cache is kept between turns and holds each reply as the model wrote it: a turn runs only
// the reply's end-of-turn marker and the new message (prompt reuse), so a long conversation costs per turn
// what the turn adds. A line ending in a backslash continues on the next line (the message keeps the line
// break), as in llama.cpp, so a long passage can be one message. "/reset" starts over, "/exit" (or end of
// input) quits.
//
// Templates (generate/chat_template.hpp): --template plain|llama2|chatml|llama3; by default the one the
// tokenizer's chat template names, else plain ("User: ...\nAssistant:", a reply ends at "\nUser:" or EOS).
// The turns are generate/conversation.hpp's: when a reply ends in a stop string, the tokens that produced it
// are taken back out of the cache (InferenceSession::mark/rewind), so the cache holds exactly the
// conversation as shown.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "zebra/cli/adjust_options.hpp"
#include "zebra/cli/commands.hpp"
#include "zebra/cli/sampling_options.hpp"
#include "zebra/cli/weights_option.hpp"
#include "zebra/data/tokenizer.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/generate/conversation.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

struct ChatArgs {
  std::string model, tokenizer, chat_template, system;
  std::int64_t n = 256, chunk = 512, max_context = 0;
  AdjustArgs adjust;
  SamplerOptions sampling;
  int threads = 0;
  bool stats = true;
  std::string kv_dtype;
};

SessionOptions session_options(const ChatArgs& a) {
  SessionOptions o;
  o.max_context = a.max_context;
  o.chunk_size = a.chunk;
  o.compute.threads = a.threads;
  o.kv_dtype = parse_kv_dtype(a.kv_dtype);
  return o;
}

// The conversation's model: an InferenceSession over the loaded weights.
class SessionChatModel : public ChatModel {
 public:
  SessionChatModel(const ModelWeights<float>& weights, SessionOptions options) : session_(weights, options) {}
  std::span<const float> prefill(std::span<const std::int32_t> tokens) override { return session_.prefill(tokens); }
  std::span<const float> decode(std::int32_t token) override { return session_.decode(token); }
  const std::vector<std::int32_t>& tokens() const override { return session_.tokens(); }
  void mark() override { mark_ = session_.mark(); }
  void rewind() override { session_.rewind(mark_); }
  void reset() override { session_.reset(); }
  std::int64_t room() const override {
    const std::int64_t limit = session_.options().max_context;
    return limit > 0 ? limit - session_.n_past() : std::numeric_limits<std::int32_t>::max();
  }
  const InferenceSession<float>& session() const { return session_; }

 private:
  InferenceSession<float> session_;
  InferenceSession<float>::Mark mark_;
};

class Chat {
 public:
  Chat(const ChatArgs& a, LoadedModel model)
      : a_(a), model_(std::move(model)), tok_(load_model_tokenizer(model_)),
        template_(choose_chat_template(a.chat_template, tok_->chat_template())),
        session_(model_.weights(), session_options(a)), sampler_(a.sampling),
        conversation_(template_, *tok_, session_, sampler_,
                      // llama2.c models mark a new story with BOS.
                      ConversationOptions{a.system, a.n, {tok_->bos_id()}}) {}

  void run() {
    const bool tty = ::isatty(STDIN_FILENO) != 0;
    std::fprintf(stderr, "chat with %s (%s, pattern %s, template %s). /reset starts over, /exit quits.\n",
                 model_.path.c_str(), to_string(model_.format), model_.config().pattern_string().c_str(),
                 template_.name.c_str());
    std::string line;
    while (true) {
      std::fprintf(stderr, "> ");
      std::fflush(stderr);
      if (!std::getline(std::cin, line)) break;
      std::string more;
      while (!line.empty() && line.back() == '\\' && std::getline(std::cin, more)) {
        line.back() = '\n';
        line += more;
      }
      if (!line.empty() && line.back() == '\\') line.pop_back();
      if (!tty) std::fprintf(stderr, "%s\n", line.c_str());  // echo piped input so a transcript reads well
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        conversation_.reset();
        std::fprintf(stderr, "(conversation reset)\n");
        continue;
      }
      if (line.empty()) continue;
      try {
        turn(line);
      } catch (const Error& e) {
        std::fprintf(stderr, "\nerror: %s\n(conversation reset)\n", e.what());
      }
    }
    std::fprintf(stderr, "\n");
  }

 private:
  void turn(const std::string& message) {
    const TurnResult t = conversation_.turn(message, [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    std::fputs("\n", stdout);
    std::fflush(stdout);
    const DecodeResult& r = t.reply;
    if (a_.stats) {
      const InferenceSession<float>& s = session_.session();
      std::fprintf(stderr,
                   "[turn: %zu prompt tokens at %.0f tok/s; %zu reply tokens at %.1f tok/s (%s); cache %lld "
                   "positions, %.1f KiB]\n",
                   t.n_prompt, static_cast<double>(t.n_prompt) / t.prefill_seconds, r.tokens.size(),
                   r.n_decoded > 0 ? static_cast<double>(r.n_decoded) / r.decode_seconds : 0.0,
                   to_string(r.stop_reason), static_cast<long long>(s.n_past()),
                   static_cast<double>(s.cache().bytes_used()) / 1024.0);
    }
  }

  const ChatArgs& a_;
  LoadedModel model_;
  std::unique_ptr<Tokenizer> tok_;
  const ChatTemplate& template_;
  SessionChatModel session_;
  Sampler sampler_;
  Conversation conversation_;
};

void run_chat(const ChatArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  LoadedModel m = load_model_for_inference(a.model, adjustment_of(a.adjust), a.tokenizer);
  Chat chat(a, std::move(m));
  chat.run();
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  a->sampling.seed = 1;
  CLI::App* cmd = app.add_subcommand("chat", "Interactive chat on stdin/stdout, keeping the KV cache between turns");
  cmd->add_option("model", a->model, "model directory or llama2.c .bin checkpoint")->required();
  std::vector<std::string> names;
  for (const ChatTemplate& t : known_chat_templates()) names.push_back(t.name);
  cmd->add_option("--template", a->chat_template,
                  "chat template: " + known_chat_template_names() + " (default: the tokenizer's, else plain)")
      ->check(CLI::IsMember(names));
  cmd->add_option("--system", a->system, "system prompt");
  cmd->add_option("-n,--n-tokens", a->n, "most tokens per reply")->check(CLI::PositiveNumber);
  add_sampling_options(cmd, a->sampling);
  cmd->add_option("--chunk", a->chunk, "prefill chunk size in tokens")->check(CLI::PositiveNumber);
  add_adjust_options(cmd, a->adjust, "run the model");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer file (default: the one in or beside the model)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-context", a->max_context, "most positions the KV cache may hold (0 = unlimited)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", a->threads, "OpenMP threads (default: all cores)")->check(CLI::PositiveNumber);
  add_kv_dtype_option(cmd, a->kv_dtype);
  cmd->add_flag("!--no-stats", a->stats, "do not print per-turn statistics");
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace zebra
