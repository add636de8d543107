// Instruction data for LIT: each template's rendering against hand-written token sequences with the answer-only
// mask, truncation that never cuts an answer, bad records counted by kind, and the training side: a prompt
// token's target gives no gradient, and a step's loss is the mean over all its answer tokens.
#include "zebra/train/chat_dataset.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/temp_dir.hpp"
#include "generate/test_tokenizer.hpp"
#include "train/tiny_train_config.hpp"
#include "zebra/data/batcher.hpp"
#include "zebra/data/token_dataset.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/train/step.hpp"
#include "zebra/train/trainer.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"

namespace zebra {
namespace {

using test::PieceTokenizer;
using test::TempDir;

std::shared_ptr<const PieceTokenizer> piece_tokenizer() {
  return std::make_shared<PieceTokenizer>(
      std::vector<std::string>{"<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"});
}

const char* kConversation = R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},)"
                            R"( {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Q"},)"
                            R"( {"role": "assistant", "content": "A"}]})";

struct Piece {
  std::string text;  // "<s>" / "</s>" stand for BOS / EOS
  int scored;
};

// The hand-written rendering of kConversation in one template, as pieces scored or not.
std::vector<Piece> expected_pieces(const std::string& name) {
  if (name == "plain") {
    return {{"<s>", 0}, {"S\n\nUser: Hi\nAssistant:", 0}, {" Yo\n", 1}, {"User: Q\nAssistant:", 0}, {" A\n", 1}};
  }
  if (name == "llama2") {
    return {{"<s>", 0},  {"[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST]", 0},
            {" Yo ", 1}, {"</s>", 1},
            {"<s>", 0},  {"[INST] Q [/INST]", 0},
            {" A ", 1},  {"</s>", 1}};
  }
  if (name == "chatml") {
    return {{"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", 0},
            {"Yo<|im_end|>", 1},
            {"\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n", 0},
            {"A<|im_end|>", 1},
            {"\n", 0}};
  }
  return {
      {"<s>", 0},
      {"<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
       "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
       0},
      {"Yo<|eot_id|>", 1},
      {"<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", 0},
      {"A<|eot_id|>", 1}};
}

ChatPrepareOptions chat_options(const TempDir& dir, const std::vector<std::string>& lines,
                                std::shared_ptr<const Tokenizer> tok) {
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  write_file_atomic(dir / "chat.jsonl", text);
  ChatPrepareOptions o;
  o.inputs = {dir / "chat.jsonl"};
  o.out_dir = dir / "out";
  o.tokenizer = std::move(tok);
  o.progress = false;
  return o;
}

TEST(ChatDataset, EachTemplateAsWrittenByHandWithTheAnswerMask) {
  const auto tok = piece_tokenizer();
  for (const std::string name : {"plain", "llama2", "chatml", "llama3"}) {
    TempDir dir;
    ChatPrepareOptions o = chat_options(dir, {kConversation}, tok);
    o.template_name = name;
    const ChatPrepareResult r = prepare_chat_dataset(o);
    std::vector<std::int32_t> want;
    std::vector<std::uint8_t> want_mask;
    for (const Piece& p : expected_pieces(name)) {
      std::vector<std::int32_t> ids;
      if (p.text == "<s>" || p.text == "</s>") {
        ids = {p.text == "<s>" ? tok->bos_id() : tok->eos_id()};
      } else {
        ids = tok->encode(p.text);
      }
      want.insert(want.end(), ids.begin(), ids.end());
      want_mask.insert(want_mask.end(), ids.size(), static_cast<std::uint8_t>(p.scored));
    }
    const TokenDataset ds = TokenDataset::open(dir / "out/train.bin");
    ASSERT_TRUE(ds.has_loss_mask()) << name;
    ASSERT_EQ(ds.n_docs(), 1) << name;
    ASSERT_EQ(ds.n_tokens(), static_cast<std::int64_t>(want.size())) << name;
    std::int64_t scored = 0;
    for (std::int64_t i = 0; i < ds.n_tokens(); ++i) {
      EXPECT_EQ(ds.token(i), want[static_cast<std::size_t>(i)]) << name << " token " << i;
      EXPECT_EQ(ds.scored(i), want_mask[static_cast<std::size_t>(i)] == 1) << name << " token " << i;
      scored += want_mask[static_cast<std::size_t>(i)];
    }
    EXPECT_EQ(r.train.scored_tokens, scored) << name;
    EXPECT_EQ(r.template_name, name);
  }
}

TEST(ChatDataset, TruncationDropsTheEarliestContextNeverAnAnswer) {
  const std::int32_t bos = 1;
  EncodedChat c{{bos, 10, 11, 12, 13, 20, 21, 14, 22}, {0, 0, 0, 0, 0, 1, 1, 0, 1}};
  bool truncated = false;
  EncodedChat fits = c;
  EXPECT_EQ(fit_chat(fits, 9, ChatOverflow::kTruncate, bos, &truncated), ChatRecordProblem::kOk);
  EXPECT_FALSE(truncated);
  EXPECT_EQ(fits.tokens, c.tokens);

  EncodedChat t = c;
  ASSERT_EQ(fit_chat(t, 7, ChatOverflow::kTruncate, bos, &truncated), ChatRecordProblem::kOk);
  EXPECT_TRUE(truncated);
  EXPECT_EQ(t.tokens, (std::vector<std::int32_t>{bos, 12, 13, 20, 21, 14, 22}));  // BOS kept, 10 11 dropped
  EXPECT_EQ(t.assistant, (std::vector<std::uint8_t>{0, 0, 0, 1, 1, 0, 1}));
  EncodedChat at_answer = c;  // keeping 5 would drop 10..13 and make 20 the first token after BOS: still fine
  EXPECT_EQ(fit_chat(at_answer, 5, ChatOverflow::kTruncate, bos, &truncated), ChatRecordProblem::kOk);
  EXPECT_EQ(at_answer.tokens, (std::vector<std::int32_t>{bos, 20, 21, 14, 22}));
  EncodedChat cut = c;  // keeping 4 would drop the answer token 20
  EXPECT_EQ(fit_chat(cut, 4, ChatOverflow::kTruncate, bos, &truncated), ChatRecordProblem::kTooLong);
  EncodedChat skip = c;
  EXPECT_EQ(fit_chat(skip, 7, ChatOverflow::kSkip, bos, &truncated), ChatRecordProblem::kTooLong);

  // Without a BOS the first kept token is never a target, so it must not be an answer token.
  EncodedChat no_bos{{10, 11, 20, 21}, {0, 0, 1, 1}};
  EncodedChat a = no_bos;
  EXPECT_EQ(fit_chat(a, 3, ChatOverflow::kTruncate, bos, &truncated), ChatRecordProblem::kOk);
  EXPECT_EQ(a.tokens, (std::vector<std::int32_t>{11, 20, 21}));
  EncodedChat b = no_bos;
  EXPECT_EQ(fit_chat(b, 2, ChatOverflow::kTruncate, bos, &truncated), ChatRecordProblem::kTooLong);
}

std::string conversation(const std::string& user, const std::string& answer) {
  return R"({"messages": [{"role": "user", "content": ")" + user + R"("}, {"role": "assistant", "content": ")" +
         answer + R"("}]})";
}

TEST(ChatDataset, BadRecordsAreCountedByKindAndTheRestIsWritten) {
  const auto tok = piece_tokenizer();
  const std::string long_prompt(200, 'x'), long_answer(200, 'y');
  const std::vector<std::string> lines = {
      conversation("Hi", "Yo"),
      "",  // blank: not a record
      "not json",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"\xFF\"}]}",
      R"({"text": "corpus, not chat"})",
      R"({"messages": [{"role": "wizard", "content": "x"}]})",
      R"({"messages": []})",
      R"({"messages": [{"role": "user", "content": "no answer"}]})",
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "assistant", "content": "c"}]})",
      conversation(long_prompt, "ok"),  // too long, but the context can go
      conversation("q", long_answer),   // too long: the answer itself does not fit
      R"({"instruction": "Say hi", "input": "", "output": "hi"})",
  };
  for (ChatOverflow policy : {ChatOverflow::kTruncate, ChatOverflow::kSkip}) {
    TempDir dir;
    ChatPrepareOptions o = chat_options(dir, lines, tok);
    o.template_name = "chatml";
    o.max_tokens = 64;
    o.overflow = policy;
    const ChatPrepareResult r = prepare_chat_dataset(o);
    const bool truncate = policy == ChatOverflow::kTruncate;
    EXPECT_EQ(r.train.records, 11);
    EXPECT_EQ(r.train.conversations, truncate ? 3 : 2);
    EXPECT_EQ(r.train.truncated, truncate ? 1 : 0);
    const ChatRecordCounts& n = r.train.problems;
    EXPECT_EQ(n[ChatRecordProblem::kNotJson], 1);
    EXPECT_EQ(n[ChatRecordProblem::kInvalidUtf8], 1);
    EXPECT_EQ(n[ChatRecordProblem::kUnknownFormat], 1);
    EXPECT_EQ(n[ChatRecordProblem::kUnknownRole], 1);
    EXPECT_EQ(n[ChatRecordProblem::kEmpty], 1);
    EXPECT_EQ(n[ChatRecordProblem::kNoAssistant], 1);
    EXPECT_EQ(n[ChatRecordProblem::kBadOrder], 1);
    EXPECT_EQ(n[ChatRecordProblem::kTooLong], truncate ? 1 : 2);
    EXPECT_LE(r.train.max_conversation_tokens, 64);
    const TokenDataset ds = TokenDataset::open(dir / "out/train.bin");
    EXPECT_EQ(ds.n_docs(), r.train.conversations);
    EXPECT_EQ(ds.n_scored(), r.train.scored_tokens);
    std::ifstream in(dir / "out/prepare.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j["train"]["bad_records"]["too_long"], truncate ? 1 : 2);
    EXPECT_EQ(j["train"]["bad_records"]["unknown_role"], 1);
    EXPECT_EQ(j["options"]["overflow"], to_string(policy));
  }
  // Nothing usable is an error that says so, and the files of an earlier run stay as they were.
  TempDir dir;
  ChatPrepareOptions good = chat_options(dir, {conversation("Hi", "Yo")}, tok);
  prepare_chat_dataset(good);
  const std::string before = read_file(dir / "out/train.bin");
  ChatPrepareOptions o = chat_options(dir, {"nope", R"({"messages": []})"}, tok);
  try {
    prepare_chat_dataset(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable conversation"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(dir / "out/train.bin"), before);
  for (const auto& e : std::filesystem::directory_iterator(dir / "out")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();  // no temporary left
  }
  // A bad --valid set leaves the training file of the earlier run too.
  write_file_atomic(dir / "bad_valid.jsonl", "nope\n");
  ChatPrepareOptions v = chat_options(dir, {conversation("Other", "Answer")}, tok);
  v.valid_inputs = {dir / "bad_valid.jsonl"};
  EXPECT_THROW(prepare_chat_dataset(v), Error);
  EXPECT_EQ(read_file(dir / "out/train.bin"), before);
}

ModelConfig chat_model_config(std::int64_t vocab) { return test::tiny_train_config(vocab); }

// Conversation A (10 tokens, the last 4 the answer) then B (6 tokens, the last 2 the answer); a row of T = 12
// from the stream start ends with the target B[2], a prompt token. `b2` is its id, `masked` whether the file
// has the answer mask (else everything is scored).
TokenDataset two_conversations(const std::string& path, std::int32_t b2, bool masked) {
  TokenDatasetWriter w(path, 32, 1, 2, true);
  const std::vector<std::int32_t> a = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, b = {13, 14, b2, 15, 16, 17};
  std::vector<std::uint8_t> ma = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1}, mb = {0, 0, 0, 0, 1, 1};
  if (!masked) {
    ma.assign(ma.size(), 1);
    mb.assign(mb.size(), 1);
  }
  w.add_masked_document(a, ma);
  w.add_masked_document(b, mb);
  w.finish();
  return TokenDataset::open(path);
}

std::vector<float> step_grads(Transformer<float>& m, const TokenDataset& ds, LossResult* loss) {
  Batcher batcher(ds, 1, 12, BatchMode::kSequential);
  const Batch b = batcher.next();
  const BatchView v{1, 12, b.tokens.data(), b.targets.data(), nullptr};
  *loss = step_gradients(m, {&v, 1});
  return {m.grads().data(), m.grads().data() + m.grads().size()};
}

TEST(ChatDataset, APromptTokensTargetGivesNoGradient) {
  TempDir dir;
  Transformer<float> m(chat_model_config(32));
  init_parameters(m.params(), 5, 0.3);
  LossResult l1, l2;
  const std::vector<float> g1 = step_grads(m, two_conversations(dir / "a.bin", 20, true), &l1);
  const std::vector<float> g2 = step_grads(m, two_conversations(dir / "b.bin", 25, true), &l2);
  EXPECT_EQ(l1.n_valid, 4);  // A's answer
  EXPECT_EQ(l1.loss_sum, l2.loss_sum);
  EXPECT_EQ(g1, g2);  // bit for bit: the perturbed target is not part of the loss
  // Without the mask the same perturbation changes the loss and the gradient: the check above can fail.
  LossResult u1, u2;
  const std::vector<float> h1 = step_grads(m, two_conversations(dir / "c.bin", 20, false), &u1);
  const std::vector<float> h2 = step_grads(m, two_conversations(dir / "d.bin", 25, false), &u2);
  EXPECT_EQ(u1.n_valid, 12);
  EXPECT_NE(u1.loss_sum, u2.loss_sum);
  EXPECT_NE(h1, h2);
}

// Micro-batches drawn from conversations with answers of different lengths score different numbers of
// targets; the step's loss is the sum of the per-token losses of all answer tokens over their count.
TEST(ChatDataset, StepLossIsTheMeanOverAllAnswerTokensOfTheStep) {
  TempDir dir;
  {
    TokenDatasetWriter w(dir / "c.bin", 32, 1, 2, true);
    Rng rng(9);
    for (int c = 0; c < 12; ++c) {
      std::vector<std::int32_t> ids;
      std::vector<std::uint8_t> mask;
      const int answer = 1 + c % 6;
      for (int k = 0; k < 8 + answer; ++k) {
        ids.push_back(3 + static_cast<std::int32_t>(rng.below(29)));
        mask.push_back(k >= 8 ? 1 : 0);
      }
      w.add_masked_document(ids, mask);
    }
    w.finish();
  }
  const TokenDataset ds = TokenDataset::open(dir / "c.bin");
  Batcher batcher(ds, 1, 12, BatchMode::kDocument, 4);
  batcher.set_one_document_per_row(true);
  std::vector<Batch> batches(3);
  std::vector<BatchView> views;
  for (Batch& b : batches) {
    batcher.next(b);
    views.push_back(BatchView{1, 12, b.tokens.data(), b.targets.data(), nullptr});
  }
  Transformer<float> m(chat_model_config(32));
  init_parameters(m.params(), 5, 0.3);
  std::vector<LossResult> per(3);
  const LossResult step = step_gradients(m, views, per);
  double sum = 0;
  std::int64_t count = 0, expected_count = 0;
  std::vector<std::int64_t> counts;
  for (std::size_t i = 0; i < 3; ++i) {
    const LossResult r = m.forward_loss(views[i]);
    sum += r.loss_sum;
    count += r.n_valid;
    counts.push_back(r.n_valid);
    for (std::int32_t t : batches[i].targets) expected_count += t >= 0 ? 1 : 0;
  }
  EXPECT_EQ(step.n_valid, count);
  EXPECT_EQ(count, expected_count);
  ASSERT_TRUE(counts[0] != counts[1] || counts[1] != counts[2]) << "the draw should give uneven answers";
  // Both sides sum the same fp32 per-row losses in double: the difference is rounding of the sum order only.
  EXPECT_NEAR(step.mean(), sum / static_cast<double>(count), 1e-12 * std::fabs(sum));
  double mean_of_means = 0;
  for (const LossResult& r : per) mean_of_means += r.mean() / 3.0;
  EXPECT_GT(std::fabs(mean_of_means - step.mean()), 1e-6);
}

TEST(ChatDataset, TrainingOnChatDataNeedsTheMaskAndRuns) {
  TempDir dir;
  const auto tok = piece_tokenizer();
  std::vector<std::string> lines;
  for (int i = 0; i < 30; ++i)
    lines.push_back(conversation("count " + std::to_string(i % 5), "ab" + std::string(i % 3 + 1, 'c')));
  ChatPrepareOptions co = chat_options(dir, lines, tok);
  co.template_name = "chatml";
  prepare_chat_dataset(co);
  TrainOptions o;
  o.train_data = dir / "out/train.bin";
  o.config = chat_model_config(tok->vocab_size());
  o.config->max_seq_len = 64;
  o.out_dir = dir / "run";
  o.steps = 4;
  o.batch_size = 2;
  o.seq_len = 48;
  o.eval_every = 0;
  o.log_every = 0;
  o.plot = false;
  o.chat = true;
  o.doc_mask = true;
  o.batch_mode = BatchMode::kDocument;
  const TrainResult r = run_training(o);
  EXPECT_EQ(r.steps, 4);
  EXPECT_TRUE(std::isfinite(r.last_train_loss));
  EXPECT_TRUE(std::filesystem::exists(r.final_checkpoint));
  // Text data without a mask is refused for chat training.
  {
    TokenDatasetWriter w(dir / "text.bin", tok->vocab_size(), 1, 2);
    for (int i = 0; i < 20; ++i) w.add_document(tok->encode("plain text, no answers"));
    w.finish();
  }
  o.train_data = dir / "text.bin";
  o.out_dir = dir / "run2";
  try {
    run_training(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("loss mask"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zebra
