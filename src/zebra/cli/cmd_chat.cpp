// zebra chat MODEL [--template NAME] [--system TEXT] [-n N] [sampling] [--group-size L --window W]
// An interactive conversation on stdin/stdout. Each line typed is one user message; the reply streams to
// stdout. The KV cache is kept between turns and holds each reply as the model wrote it: a turn runs only
// the reply's end-of-turn marker and the new message (prompt reuse), so a long conversation costs per turn
// what the turn adds. "/reset" starts over, "/exit" (or end of input) quits.
//
// Templates (generate/chat_template.hpp): --template plain|llama2|chatml|llama3; by default the one the
// tokenizer's chat template names, else plain ("User: ...\nAssistant:", a reply ends at "\nUser:" or EOS).
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
#include "zebra/data/tokenizer.hpp"
#include "zebra/generate/chat_template.hpp"
#include "zebra/generate/decode_loop.hpp"
#include "zebra/io/model_loader.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/threads.hpp"
#include "zebra/util/timer.hpp"

namespace zebra {
namespace {

struct ChatArgs {
  std::string model, tokenizer, chat_template, system;
  std::int64_t n = 256, chunk = 512, max_context = 0, group_size = 0, window = 0;
  SamplerOptions sampling;
  int threads = 0;
  bool stats = true;
};

// --template, else the tokenizer's own template, else plain.
const ChatTemplate& choose_template(const std::string& name, const Tokenizer& tok) {
  if (!name.empty()) return chat_template_by_name(name);
  const std::string jinja = tok.chat_template();
  return jinja.empty() ? chat_template_by_name("plain") : chat_template_from_jinja(jinja);
}

class Chat {
 public:
  Chat(const ChatArgs& a, LoadedModel model)
      : a_(a), model_(std::move(model)), tok_(load_model_tokenizer(model_)),
        template_(choose_template(a.chat_template, *tok_)),
        session_(model_.params, SessionOptions{a.max_context, a.chunk}), sampler_(a.sampling) {
    stop_tokens_ = chat_stop_tokens(template_, *tok_);
    stop_tokens_.push_back(tok_->bos_id());  // llama2.c models mark a new story with BOS
    reset();
  }

  void run() {
    const bool tty = ::isatty(STDIN_FILENO) != 0;
    std::fprintf(stderr, "chat with %s (%s, pattern %s, template %s). /reset starts over, /exit quits.\n",
                 model_.path.c_str(), to_string(model_.format), model_.params.config.pattern_string().c_str(),
                 template_.name.c_str());
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
  void reset() {
    session_.reset();
    messages_.clear();
    if (!a_.system.empty()) messages_.push_back({"system", a_.system});
    unkept_reply_.clear();
  }

  void turn(const std::string& message) {
    // The text this turn adds to the cache: after a reply, the part of it the cache lacks, its end-of-turn
    // marker and the new message; at the start, the rendering of the conversation so far.
    const ChatMessage user{"user", message};
    std::string delta;
    if (!messages_.empty() && messages_.back().role == "assistant") {
      delta = unkept_reply_ + render_after_reply(template_, messages_, std::span<const ChatMessage>(&user, 1), true);
      messages_.push_back(user);
    } else {
      messages_.push_back(user);
      delta = render_chat(template_, messages_, true).text;
    }
    const std::vector<std::int32_t> ids = encode_chat_text(template_, *tok_, delta);
    ZEBRA_CHECK(!ids.empty(), "the conversation renders to no tokens");
    Timer prefill_timer;
    session_.prefill(ids);
    const double prefill_s = prefill_timer.seconds();
    const std::size_t n_prompt = ids.size();
    const auto mark = session_.mark();

    DecodeOptions go;
    go.max_new_tokens = a_.n;
    if (session_.options().max_context > 0) {
      go.max_new_tokens = std::min(go.max_new_tokens, session_.options().max_context - session_.n_past());
      ZEBRA_CHECK(go.max_new_tokens >= 1, "the context is full (", session_.n_past(), " positions)");
    }
    go.stop_tokens = stop_tokens_;
    go.stop_strings = template_.stop_strings;
    StreamingDetokenizer detok(*tok_, session_.tokens());
    go.detokenizer = &detok;
    go.on_text = [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    const DecodeResult r = decode_loop(
        session_.last_logits(), sampler_, [&](std::int32_t t) { return session_.decode(t); }, go, session_.tokens());
    std::fputs("\n", stdout);
    std::fflush(stdout);

    // Bring the cache to exactly "prompt + the reply's kept tokens" (the loop ran all sampled tokens but the
    // last through the model).
    const auto fed = static_cast<std::size_t>(r.n_decoded);
    if (r.n_kept == fed + 1) {
      session_.decode(r.tokens[fed]);
    } else if (r.n_kept != fed) {
      session_.rewind(mark);
      if (r.n_kept > 0) session_.prefill(std::span<const std::int32_t>(r.tokens.data(), r.n_kept));
    }
    unkept_reply_ = r.text.substr(r.kept_bytes);
    std::string content = r.text;
    if (content.starts_with(template_.reply_prefix())) content.erase(0, template_.reply_prefix().size());
    messages_.push_back({"assistant", content});
    if (a_.stats) {
      std::fprintf(stderr, "[turn: %zu prompt tokens at %.0f tok/s; %zu reply tokens at %.1f tok/s (%s); cache %lld "
                           "positions, %.1f KiB]\n",
                   n_prompt, static_cast<double>(n_prompt) / prefill_s, r.tokens.size(),
                   r.n_decoded > 0 ? static_cast<double>(r.n_decoded) / r.decode_seconds : 0.0,
                   to_string(r.stop_reason), static_cast<long long>(session_.n_past()),
                   static_cast<double>(session_.cache().bytes_used()) / 1024.0);
    }
  }

  const ChatArgs& a_;
  LoadedModel model_;
  std::unique_ptr<Tokenizer> tok_;
  const ChatTemplate& template_;
  InferenceSession<float> session_;
  Sampler sampler_;
  std::vector<std::int32_t> stop_tokens_;
  std::vector<ChatMessage> messages_;
  std::string unkept_reply_;  // the end of the last reply as shown that the cache does not hold
};

void run_chat(const ChatArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  LoadedModel m = load_any_model(a.model, pattern_from_flags(peek_model_config(a.model), a.group_size, a.window),
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
  std::vector<std::string> names;
  for (const ChatTemplate& t : known_chat_templates()) names.push_back(t.name);
  cmd->add_option("--template", a->chat_template,
                  "chat template: " + known_chat_template_names() + " (default: the tokenizer's, else plain)")
      ->check(CLI::IsMember(names));
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
