// zebra generate / chat / eval ppl / convert from the command line, on the real stories260K checkpoint
// (skipped when ../shared is absent) and on a randomly initialised config (always available).
// Everything runs with --threads 1: the models are tiny, and the test machine is shared.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli_util.hpp"
#include "test_paths.hpp"

namespace zebra {
namespace {

namespace fs = std::filesystem;
using test::run_zebra;

using test::stories_bin;
using test::stories_dir;

class GenerateCli : public test::CliTest {};

// The continuation printed after the prompt (stdout and stderr are mixed: cut at the statistics).
std::string text_part(const std::string& output) {
  const std::size_t stats = output.find("\nprefill:");
  std::string s = output.substr(0, stats);
  const std::size_t model_line = s.find("model: ");
  if (model_line != std::string::npos) s.erase(model_line, s.find('\n', model_line) - model_line + 1);
  return s;
}

TEST_F(GenerateCli, GreedyStoriesPrintsTextAndStatistics) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r =
      run_zebra("generate " + stories_bin() + " --prompt 'Once upon a time' -n 40 --temperature 0 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string text = text_part(r.output);
  EXPECT_NE(text.find("Once upon a time"), std::string::npos) << r.output;
  EXPECT_GT(text.size(), std::string("Once upon a time").size() + 40) << r.output;  // ~40 tokens of story
  EXPECT_NE(r.output.find("decode:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tok/s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kv cache:"), std::string::npos) << r.output;

  // Greedy decoding is deterministic, and the chunk size does not change the arithmetic's outcome.
  const auto again = run_zebra("generate " + stories_bin() +
                               " --prompt 'Once upon a time' -n 40 --temperature 0 "
                               "--threads 1 --chunk 2");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(text_part(again.output), text);
}

TEST_F(GenerateCli, ZebraPatternPromptFromStdinAndStopString) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  std::ofstream(path("prompt.txt")) << "Lily and Ben went to the park.";
  const auto r = run_zebra("generate " + stories_bin() +
                           " --group-size 2 --window 16 -n 60 --seed 3 --threads 1 "
                           "--stop . < " +
                           path("prompt.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("GLGLG"), std::string::npos) << r.output;  // re-laid (the checkpoint is GGGGG)
  // The stop string ends the continuation (unless 60 tokens pass without a '.').
  const std::string cont = text_part(r.output).substr(std::string("Lily and Ben went to the park.").size());
  EXPECT_EQ(cont.find('.'), std::string::npos) << r.output;
}

TEST_F(GenerateCli, BadInputGivesAClearErrorAndNonZeroExit) {
  auto r = run_zebra("generate " + path("missing.bin") + " -n 3");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;

  r = run_zebra("generate --random-init " + test::source_dir() + "/recipes/configs/demo.json --bogus-flag");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--bogus-flag"), std::string::npos) << r.output;

  std::ofstream(path("not_a_model.bin")) << "this is not a llama2.c checkpoint";
  r = run_zebra("generate " + path("not_a_model.bin") + " -n 3");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;

  r = run_zebra("generate");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("MODEL"), std::string::npos) << r.output;
}

// --kv-dtype: a 16-bit cache holds half the bytes of an fp32 one; anything else is refused naming the choices.
TEST_F(GenerateCli, KvDtypeHalvesTheCacheAndRefusesOtherTypes) {
  const std::string base = "generate --random-init " + test::source_dir() +
                           "/recipes/configs/demo.json --random-prompt 20 -n 3 --ignore-eos -q --threads 1";
  auto bytes_used = [](const std::string& out) {
    const std::size_t at = out.find(" bytes used)");
    const std::size_t open = out.rfind('(', at);
    return at == std::string::npos || open == std::string::npos ? -1LL
                                                                : std::stoll(out.substr(open + 1, at - open - 1));
  };
  const auto f32 = run_zebra(base);
  const auto f16 = run_zebra(base + " --kv-dtype f16");
  ASSERT_EQ(f32.exit_code, 0) << f32.output;
  ASSERT_EQ(f16.exit_code, 0) << f16.output;
  EXPECT_GT(bytes_used(f32.output), 0) << f32.output;
  EXPECT_EQ(2 * bytes_used(f16.output), bytes_used(f32.output)) << f16.output;
  const auto bad = run_zebra(base + " --kv-dtype q8_0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--kv-dtype must be f32, f16 or bf16, got 'q8_0'"), std::string::npos) << bad.output;
}

// zebra quantize refuses what it cannot write before writing anything: an unknown type, a directory as OUT,
// a model whose matrices do not fit the blocks (stories260K's FFN of 172 columns).
TEST_F(GenerateCli, QuantizeRefusesBadInputWithoutWriting) {
  const std::string out = path("q.gguf");
  auto r = run_zebra("quantize " + path("missing.bin") + " " + out + " --type q8_0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  r = run_zebra("quantize " + path("missing.bin") + " " + out + " --type q5_0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--type must be q8_0, q4_0, q4_1"), std::string::npos) << r.output;
  r = run_zebra("quantize " + path("missing.bin") + " " + test::source_dir() + " --type q8_0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("is a directory"), std::string::npos) << r.output;
  if (test::shared_available()) {
    r = run_zebra("quantize " + stories_bin() + " " + out + " --type q4_0");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("not a multiple of Q4_0's block of 32 values"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(GenerateCli, RandomInitConfigMeasuresWithoutATokenizer) {
  const auto r =
      run_zebra("generate --random-init " + test::source_dir() +
                "/recipes/configs/demo.json --random-prompt 100 -n 5 --ignore-eos --chunk 32 -q --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("prefill: 101 tokens"), std::string::npos) << r.output;  // BOS + 100
  EXPECT_NE(r.output.find("decode:  4 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("a full-attention cache"), std::string::npos) << r.output;
}

TEST_F(GenerateCli, ConvertThenGenerateGivesTheSameText) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  auto r = run_zebra("convert " + stories_bin() + " " + path("stories_dir"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(path("stories_dir/config.json")));
  EXPECT_TRUE(fs::exists(path("stories_dir/tokenizer.bin")));
  const std::string args = " --prompt 'The cat' -n 30 --temperature 0 --threads 1";
  const auto a = run_zebra("generate " + stories_bin() + args);
  const auto b = run_zebra("generate " + path("stories_dir") + args);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_EQ(text_part(a.output), text_part(b.output));

  r = run_zebra("convert " + stories_bin() + " " + path("zebra_bf16") + " --group-size 4 --window 64 --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json config = nlohmann::json::parse(std::ifstream(path("zebra_bf16/config.json")));
  EXPECT_EQ(config.at("sliding_window").get<int>(), 64);
  r = run_zebra("convert " + stories_bin() + " " + path("x") + " --dtype q4");
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(GenerateCli, EvalPplWritesJson) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  const auto r = run_zebra("eval ppl " + stories_bin() + " " + stories_dir() +
                           "/tinystories_val.txt --ctx 128 "
                           "--score-from 64 --bos-first --max-tokens 1024 --threads 1 --json " +
                           path("ppl.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(std::ifstream(path("ppl.json")));
  EXPECT_EQ(j.at("windows").get<int>(), 8);
  EXPECT_EQ(j.at("scored_tokens").get<int>(), 8 * 63);
  const double ppl = j.at("ppl").get<double>();
  EXPECT_GT(ppl, 2.0);  // a trained model: far below the vocabulary's 512, above a perfect 1
  EXPECT_LT(ppl, 20.0);

  const auto bad = run_zebra("eval ppl " + stories_bin() + " " + stories_dir() +
                             "/tinystories_val.txt --ctx 128 "
                             "--score-from 200");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("score_from"), std::string::npos) << bad.output;
  EXPECT_NE(run_zebra("eval").exit_code, 0);  // a sub-subcommand is required
}

TEST_F(GenerateCli, ChatKeepsTheConversation) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  std::ofstream(path("turns.txt")) << "Tell me a story.\nWhat happened next?\n/reset\nHi\n/exit\n";
  const auto r = run_zebra("chat " + stories_bin() + " -n 24 --threads 1 --temperature 0 < " + path("turns.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(conversation reset)"), std::string::npos) << r.output;
  // Three turns; the second one's cache extends the first's.
  std::size_t turns = 0;
  for (std::size_t at = r.output.find("[turn:"); at != std::string::npos; at = r.output.find("[turn:", at + 1)) ++turns;
  EXPECT_EQ(turns, 3u) << r.output;
}

// The "[turn: P prompt tokens ...; R reply tokens ... (stop); cache C positions" lines of zebra chat.
struct TurnStats {
  long prompt = 0, reply = 0, cache = 0;
  std::string stop;
};
std::vector<TurnStats> turn_stats(const std::string& output) {
  std::vector<TurnStats> v;
  for (std::size_t at = output.find("[turn:"); at != std::string::npos; at = output.find("[turn:", at + 1)) {
    TurnStats t;
    const std::string line = output.substr(at, output.find('\n', at) - at);
    t.prompt = std::stol(line.substr(7));
    const std::size_t r = line.find("; ", line.find("tok/s")) + 2;
    t.reply = std::stol(line.substr(r));
    const std::size_t open = line.find('(', r), close = line.find(')', open);
    t.stop = line.substr(open + 1, close - open - 1);
    t.cache = std::stol(line.substr(line.find("cache ") + 6));
    v.push_back(t);
  }
  return v;
}

TEST_F(GenerateCli, ChatTemplatesByNameAndTheCacheGrowsByWhatATurnAdds) {
  if (!test::shared_available()) GTEST_SKIP() << "../shared not present";
  std::ofstream(path("turns.txt")) << "Hi\nWhat next?\n/exit\n";
  for (const char* name : {"plain", "llama2", "chatml", "llama3"}) {
    SCOPED_TRACE(name);
    const auto r = run_zebra("chat " + stories_bin() + " -n 12 --threads 1 --temperature 0 --template " + name +
                             " --system 'Be brief.' < " + path("turns.txt"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find(std::string("template ") + name), std::string::npos) << r.output;
    const std::vector<TurnStats> t = turn_stats(r.output);
    ASSERT_EQ(t.size(), 2u) << r.output;
    // A reply that ran to its length is kept whole, one that ended at a stop token without it: the cache
    // holds every turn's prompt and reply tokens, and the second turn runs only its own tokens (the end of
    // turn and the new message).
    auto kept = [](const TurnStats& s) { return s.stop == "stop token" ? s.reply - 1 : s.reply; };
    for (const TurnStats& s : t) EXPECT_NE(s.stop, "stop string") << r.output;  // (then the cut decides)
    EXPECT_EQ(t[0].cache, t[0].prompt + kept(t[0])) << r.output;
    EXPECT_EQ(t[1].cache, t[0].cache + t[1].prompt + kept(t[1])) << r.output;
    EXPECT_LT(t[1].prompt, t[0].cache) << r.output;  // less than running the conversation again
  }
  const auto bad = run_zebra("chat " + stories_bin() + " --template vicuna < " + path("turns.txt"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("chatml"), std::string::npos) << bad.output;  // the known names are listed
}

}  // namespace
}  // namespace zebra
