// Generation with the KV cache (model/kv_cache.hpp, model/generator.hpp) against the training forward pass
// (model/transformer.hpp): DESIGN.md §6's invariant "incremental decoding with the KV cache gives the same
// logits as one full forward pass, including positions far past the window".
//
// Most comparisons run in double. The cached path and the full forward pass compute the same expressions;
// they differ only in the order of additions (attention tiles, BLAS blocking for different row counts) and
// in where softmax maxima are taken. Each logit is the end of a chain of ~30 operations (3 layers of norm,
// two projections, attention, MLP; the lm head) whose sums have at most max(D, F, T) = 40 terms of size
// O(1) (weights ~ N(0, 0.3^2), activations O(1)); each reordering costs <= 40 u |terms| with
// u = 1.1e-16, and the chain amplifies by at most the product of layer gains (~10 here), so differences stay
// below ~1e-12. We allow 1e-9 (abs) + 1e-9 (rel): orders of magnitude below what any masking or position
// mistake does (a wrong visible key moves logits by ~1e-2 or more).
// In float (u = 6e-8) the same argument gives ~1e-4 worst case: tolerance 2e-4 abs + 2e-4 rel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "zebra/model/flops.hpp"
#include "zebra/model/generator.hpp"
#include "zebra/model/transformer.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/rng.hpp"
#include "zebra/util/threads.hpp"

namespace zebra {
namespace {

struct Variant {
  PosEmbedding pos = PosEmbedding::kRope;
  std::vector<LayerType> pattern;
  std::int64_t window = 3;
  std::int64_t n_heads = 4, n_kv_heads = 2;
  std::string name() const {
    std::ostringstream s;
    s << to_string(pos) << " ";
    for (LayerType t : pattern) s << (t == LayerType::kGlobal ? 'G' : 'L');
    s << " w=" << window << " H=" << n_heads << "/" << n_kv_heads;
    return s.str();
  }
};

constexpr LayerType G = LayerType::kGlobal;
constexpr LayerType L = LayerType::kLocal;

ModelConfig make_config(const Variant& s) {
  ModelConfig c;
  c.vocab_size = 13;
  c.d_model = 16;
  c.n_layers = static_cast<std::int64_t>(s.pattern.size());
  c.n_heads = s.n_heads;
  c.n_kv_heads = s.n_kv_heads;
  c.head_dim = 4;
  c.ffn_dim = 24;
  c.max_seq_len = 64;
  c.window = s.window;
  c.layer_types = s.pattern;
  c.pos_embedding = s.pos;
  c.tie_embeddings = s.pos != PosEmbedding::kAlibi;  // exercise an untied head too
  c.resolve();
  return c;
}

std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(vocab)));
  return t;
}

// Logits [T, V] of one full forward pass.
template <typename T>
std::vector<T> full_logits(Transformer<T>& model, const std::vector<std::int32_t>& tokens) {
  const std::int64_t n = static_cast<std::int64_t>(tokens.size()), v = model.config().vocab_size;
  model.forward_hidden(BatchView{1, n, tokens.data(), nullptr, nullptr});
  std::vector<T> out(static_cast<std::size_t>(n * v));
  for (std::int64_t t = 0; t < n; ++t) model.logits_for_row(t, out.data() + t * v);
  return out;
}

// max over elements of |a - b| / (atol + rtol |b|): <= 1 passes.
template <typename T>
double violation(std::span<const T> a, std::span<const T> b, double atol, double rtol) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    worst = std::max(worst, d / (atol + rtol * std::abs(static_cast<double>(b[i]))));
  }
  return worst;
}

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (PosEmbedding pos : {PosEmbedding::kRope, PosEmbedding::kAlibi, PosEmbedding::kLearned, PosEmbedding::kNone}) {
    out.push_back({pos, {G, L, L}, 3, 4, 2});     // Zebra pattern, window 3, GQA 2:1
    out.push_back({pos, {L, G, L, L}, 1, 4, 1});  // window 1 (a query sees only itself), MQA
  }
  out.push_back({PosEmbedding::kRope, {L, L}, 5, 2, 2});      // all local
  out.push_back({PosEmbedding::kRope, {G, G}, 3, 4, 4});      // all global
  out.push_back({PosEmbedding::kRope, {G, L, L}, 64, 4, 2});  // window larger than the sequence
  return out;
}

constexpr std::int64_t kT = 40;  // 13 wrap-arounds of a window-3 ring

TEST(KvCache, IncrementalDecodingMatchesFullForwardAtEveryPosition) {
  ScopedThreads single_thread(1);
  for (const Variant& s : variants()) {
    SCOPED_TRACE(s.name());
    Transformer<double> model(make_config(s));
    init_parameters(model.params(), 17, 0.3);
    const auto tokens = random_tokens(kT, model.config().vocab_size, 3);
    const std::vector<double> ref = full_logits(model, tokens);
    const std::int64_t v = model.config().vocab_size;

    InferenceSession<double> session(model.params());
    for (std::int64_t t = 0; t < kT; ++t) {
      const std::span<const double> got = session.decode(tokens[static_cast<std::size_t>(t)]);
      ASSERT_LE(
          violation<double>(
              got, std::span<const double>(ref).subspan(static_cast<std::size_t>(t * v), static_cast<std::size_t>(v)),
              1e-9, 1e-9),
          1.0)
          << "position " << t;
    }
    EXPECT_EQ(session.n_past(), kT);
  }
}

// RoPE scaling through the cache. Linear, static NTK and YaRN tables do not depend on the length: decoding
// matches the full pass everywhere. Dynamic NTK recomputes the frequencies per call from its length, as
// transformers does: a one-shot prefill equals the full pass, and so does decoding while the length stays
// within the original 16 positions (past them the cached keys keep the rotation they were given).
TEST(KvCache, RopeScalingsThroughTheCache) {
  ScopedThreads single_thread(1);
  for (RopeScaling scaling : {RopeScaling::kLinear, RopeScaling::kNtk, RopeScaling::kYarn, RopeScaling::kDynamic}) {
    SCOPED_TRACE(to_string(scaling));
    ModelConfig c = make_config({PosEmbedding::kRope, {G, L, L}, 3, 4, 2});
    c.rope_scaling = scaling;
    c.rope_scaling_factor = 3.0;
    c.max_seq_len = 16;  // dynamic's L0
    c.rope_original_max_positions = 16;
    Transformer<double> model(c);
    init_parameters(model.params(), 19, 0.3);
    const auto tokens = random_tokens(kT, c.vocab_size, 5);
    const std::vector<double> ref = full_logits(model, tokens);
    const std::int64_t v = c.vocab_size;
    InferenceSession<double> one_shot(model.params());
    std::vector<double> got;
    one_shot.prefill(tokens, kT, &got);
    EXPECT_LE(violation<double>(got, ref, 1e-9, 1e-9), 1.0);
    InferenceSession<double> session(model.params());
    const std::int64_t exact = scaling == RopeScaling::kDynamic ? 16 : kT;
    for (std::int64_t t = 0; t < exact; ++t) {
      const std::vector<std::int32_t> prefix(tokens.begin(), tokens.begin() + t + 1);
      const std::vector<double> want = scaling == RopeScaling::kDynamic ? full_logits(model, prefix) : ref;
      const std::span<const double> step = session.decode(tokens[static_cast<std::size_t>(t)]);
      ASSERT_LE(
          violation<double>(
              step, std::span<const double>(want).subspan(static_cast<std::size_t>(t * v), static_cast<std::size_t>(v)),
              1e-9, 1e-9),
          1.0)
          << "position " << t;
    }
  }
}

TEST(KvCache, ChunkedPrefillEqualsOneShotForEveryChunkSize) {
  ScopedThreads single_thread(1);
  for (const Variant& s : {variants()[0], variants()[3], variants()[4]}) {
    SCOPED_TRACE(s.name());
    Transformer<double> model(make_config(s));
    init_parameters(model.params(), 21, 0.3);
    const auto tokens = random_tokens(kT, model.config().vocab_size, 8);
    const std::vector<double> ref = full_logits(model, tokens);

    InferenceSession<double> session(model.params());
    std::vector<double> one_shot;
    session.prefill(tokens, kT, &one_shot);
    EXPECT_LE(violation<double>(one_shot, ref, 1e-9, 1e-9), 1.0);
    for (std::int64_t chunk = 1; chunk <= kT; ++chunk) {
      session.reset();
      std::vector<double> got;
      const std::span<const double> last = session.prefill(tokens, chunk, &got);
      ASSERT_LE(violation<double>(got, one_shot, 1e-9, 1e-9), 1.0) << "chunk " << chunk;
      const std::int64_t v = model.config().vocab_size;
      EXPECT_TRUE(std::equal(last.begin(), last.end(), got.end() - v));
    }
  }
}

TEST(KvCache, PromptReuseExtendsTheCache) {
  ScopedThreads single_thread(1);
  for (const Variant& s : {variants()[0], variants()[2], variants()[5]}) {
    SCOPED_TRACE(s.name());
    Transformer<double> model(make_config(s));
    init_parameters(model.params(), 5, 0.3);
    const auto tokens = random_tokens(kT, model.config().vocab_size, 4);
    const std::int64_t v = model.config().vocab_size;
    InferenceSession<double> whole(model.params());
    std::vector<double> ref;
    whole.prefill(tokens, 7, &ref);

    for (std::int64_t split : {1, 2, 3, 17, 39}) {
      InferenceSession<double> session(model.params());
      const std::span<const std::int32_t> all(tokens);
      std::vector<double> a, b;
      session.prefill(all.first(static_cast<std::size_t>(split)), 4, &a);
      session.prefill(all.subspan(static_cast<std::size_t>(split)), 6, &b);
      a.insert(a.end(), b.begin(), b.end());
      EXPECT_LE(violation<double>(a, ref, 1e-9, 1e-9), 1.0) << "split " << split;
      EXPECT_EQ(session.tokens(), tokens);
    }

    // prefill_reusing: a prompt that extends the cached tokens runs only the new ones; another prompt resets.
    InferenceSession<double> session(model.params());
    const std::span<const std::int32_t> all(tokens);
    session.prefill(all.first(10));
    std::vector<double> got(session.prefill_reusing(all.first(25)).begin(), session.last_logits().end());
    EXPECT_EQ(session.n_past(), 25);
    EXPECT_LE(
        violation<double>(
            got, std::span<const double>(ref).subspan(24 * static_cast<std::size_t>(v), static_cast<std::size_t>(v)),
            1e-9, 1e-9),
        1.0);
    session.prefill_reusing(all.subspan(1, 5));
    EXPECT_EQ(session.n_past(), 5);
  }
}

// mark() / rewind(): prefill(A), mark, prefill(B), rewind, prefill(C) equals prefill(A + C), also when B
// wrapped the rings many times over.
TEST(KvCache, RewindForgetsLaterPositions) {
  ScopedThreads single_thread(1);
  // Window 3: the ring is full at the mark. Window 8 with a 3-token prefix: the ring grows from 3 to 8 rows
  // per head after the mark, and rewinding must put the old rows back into the new layout.
  for (std::int64_t window : {3, 8}) {
    const Variant s{PosEmbedding::kRope, {G, L, L}, window, 4, 2};
    Transformer<double> model(make_config(s));
    init_parameters(model.params(), 12, 0.3);
    const auto a = random_tokens(window == 3 ? 5 : 3, model.config().vocab_size, 1);
    const auto b = random_tokens(17, model.config().vocab_size, 2);
    const auto cc = random_tokens(9, model.config().vocab_size, 3);
    std::vector<std::int32_t> ac(a);
    ac.insert(ac.end(), cc.begin(), cc.end());
    InferenceSession<double> whole(model.params());
    std::vector<double> ref;
    whole.prefill(ac, 4, &ref);

    InferenceSession<double> session(model.params());
    session.prefill(a);
    const auto mark = session.mark();
    session.prefill(b, 5);
    session.rewind(mark);
    EXPECT_EQ(session.n_past(), static_cast<std::int64_t>(a.size()));
    EXPECT_EQ(session.tokens(), a);
    std::vector<double> got;
    session.prefill(cc, 2, &got);
    EXPECT_LE(violation<double>(got, std::span<const double>(ref).subspan(a.size() * 13), 1e-9, 1e-9), 1.0)
        << "window " << window;
  }
}

TEST(KvCache, LocalLayersNeverHoldMoreThanTheirWindow) {
  ScopedThreads single_thread(1);
  const Variant s{PosEmbedding::kRope, {G, L, L, L}, 3, 4, 2};
  Transformer<double> model(make_config(s));
  init_parameters(model.params(), 1);
  const ModelConfig& c = model.config();
  const auto tokens = random_tokens(kT, c.vocab_size, 1);
  InferenceSession<double> session(model.params());
  for (std::int64_t t = 0; t < kT; ++t) {
    session.decode(tokens[static_cast<std::size_t>(t)]);
    const SequenceCache<double>& cache = session.cache();
    for (std::int64_t l = 0; l < c.n_layers; ++l) {
      if (cache.is_global(l)) {
        EXPECT_GE(cache.rows(l), t + 1);
        EXPECT_EQ(cache.first_held(l), 0);
      } else {
        EXPECT_LE(cache.rows(l), s.window);
        EXPECT_EQ(cache.first_held(l), std::max<std::int64_t>(0, t + 1 - s.window));
      }
    }
    // Used bytes: every position in the global layer, min(n, window) in each local one -- the figure
    // `zebra info` reports (model/flops.hpp).
    EXPECT_EQ(cache.bytes_used(), static_cast<std::size_t>(kv_cache_bytes(c, t + 1, sizeof(double))));
  }
  const SequenceCache<double>& cache = session.cache();
  EXPECT_EQ(cache.full_attention_bytes(kT), static_cast<std::size_t>(kv_cache_bytes(c.full_attention_twin(), kT, 8)));
  // Allocated: the global layer may have grown past n (by quarters); the three local layers hold exactly 3 rows.
  const std::size_t row_bytes = 2 * static_cast<std::size_t>(c.kv_dim()) * sizeof(double);
  EXPECT_EQ(cache.bytes_allocated(), (static_cast<std::size_t>(cache.rows(0)) + 3 * 3) * row_bytes);
  // A long prefill in one chunk stores the same: only the window's worth of rows in local layers.
  InferenceSession<double> one(model.params());
  one.prefill(tokens, kT);
  for (std::int64_t l = 1; l < c.n_layers; ++l) EXPECT_EQ(one.cache().rows(l), s.window);
  // The ring holds exactly the last `window` keys of the sequence, the same ones decoding wrote.
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    for (std::int64_t p = one.cache().first_held(l); p < kT; ++p) {
      for (std::int64_t g = 0; g < c.n_kv_heads; ++g) {
        for (std::int64_t e = 0; e < c.head_dim; ++e) {
          EXPECT_NEAR(one.cache().key(l, p, g)[e], cache.key(l, p, g)[e], 1e-12);
          EXPECT_NEAR(one.cache().value(l, p, g)[e], cache.value(l, p, g)[e], 1e-12);
        }
      }
    }
  }
  EXPECT_THROW(one.cache().key(1, kT - 4, 0), Error);  // dropped from the ring
}

TEST(KvCache, FloatSessionMatchesFloatForward) {
  ScopedThreads single_thread(1);
  const Variant s{PosEmbedding::kRope, {G, L, L, L}, 3, 4, 2};
  Transformer<float> model(make_config(s));
  init_parameters(model.params(), 2, 0.3);
  const auto tokens = random_tokens(kT, model.config().vocab_size, 6);
  const std::vector<float> ref = full_logits(model, tokens);
  InferenceSession<float> session(model.params());
  std::vector<float> got;
  session.prefill(std::span<const std::int32_t>(tokens).first(11), 4, &got);
  for (std::int64_t t = 11; t < kT; ++t) {
    const auto l = session.decode(tokens[static_cast<std::size_t>(t)]);
    got.insert(got.end(), l.begin(), l.end());
  }
  EXPECT_LE(violation<float>(got, ref, 2e-4, 2e-4), 1.0);
}

TEST(KvCache, RefusesWhatItCannotDo) {
  ScopedThreads single_thread(1);
  const Variant s{PosEmbedding::kLearned, {G, L}, 3, 2, 1};
  ModelConfig c = make_config(s);
  c.max_seq_len = 8;
  Transformer<double> model(c);
  init_parameters(model.params(), 1);
  InferenceSession<double> session(model.params());
  const std::vector<std::int32_t> tokens(8, 1);
  session.prefill(tokens);
  try {
    session.decode(1);
    ADD_FAILURE() << "position 8 of an 8-position learned table was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("learned position table"), std::string::npos) << e.what();
  }
  session.reset();
  EXPECT_THROW(session.decode(static_cast<std::int32_t>(c.vocab_size)), Error);  // not a token
  EXPECT_THROW(session.prefill({}), Error);

  Transformer<double> rope(make_config(Variant{PosEmbedding::kRope, {G, L}, 3, 2, 1}));
  InferenceSession<double> limited(rope.params(), SessionOptions{5, 2});
  limited.prefill(std::vector<std::int32_t>(5, 1));
  EXPECT_THROW(limited.decode(1), Error);  // the context is full
}

}  // namespace
}  // namespace zebra
