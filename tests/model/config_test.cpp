#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "zebra/model/config.hpp"
#include "zebra/model/params.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using nlohmann::json;

json base_json() {
  return json{{"vocab_size", 100},        {"hidden_size", 32},        {"num_hidden_layers", 8},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 64}};
}

json with(const json& patch) {
  json j = base_json();
  j.update(patch);
  return j;
}

// The error must name the field and say what is allowed.
void expect_error(const json& j, const std::string& field, const std::string& allowed) {
  try {
    config_from_json(j);
    FAIL() << "accepted " << j.dump();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
    EXPECT_NE(msg.find(allowed), std::string::npos) << msg;
  }
}

TEST(Config, GroupSizeMakesThePattern) {
  json j = base_json();
  j["group_size"] = 4;
  j["sliding_window"] = 16;
  ModelConfig c = config_from_json(j);
  EXPECT_EQ(c.pattern_string(), "GLLLGLLL");
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.layer_window(0), kGlobalWindow);
  EXPECT_EQ(c.layer_window(1), 16);
  EXPECT_EQ(c.num_global_layers(), 2);
  EXPECT_EQ(c.full_attention_twin().pattern_string(), "GGGGGGGG");
  EXPECT_EQ(c.with_pattern(2, 5).pattern_string(), "GLGLGLGL");
}

// Which layer of a group is global, an explicit list, and the RoPE adjustments of continued training; the new
// layout survives the JSON round trip (layer_types is what is read back).
TEST(Config, AdjustmentsReLayAndRePosition) {
  json j = base_json();
  ModelConfig c = config_from_json(j);  // 8 layers, all global
  EXPECT_EQ(c.with_pattern(4, 16, 1).pattern_string(), "LGLLLGLL");
  EXPECT_EQ(c.with_pattern(3, 16, 2).pattern_string(), "LLGLLGLL");
  EXPECT_EQ(c.with_global_layers({7, 0, 3}, 16).pattern_string(), "GLLGLLLG");
  EXPECT_EQ(c.with_global_layers({0, 2, 4, 6}, 16).group_size, 2);  // a regular list records its L
  EXPECT_THROW((void)c.with_pattern(4, 16, 4), Error);
  EXPECT_THROW((void)c.with_global_layers({8}, 16), Error);
  EXPECT_THROW((void)c.with_global_layers({1, 1}, 16), Error);

  ModelAdjustment a;
  a.group_size = 4;
  a.window = 32;
  a.global_index = 3;
  a.set_rope_scaling = true;
  a.rope_scaling = RopeScaling::kYarn;
  a.rope_factor = 4.0;
  a.max_seq_len = 4 * c.max_seq_len;
  a.rope_theta = 5e5;
  const ModelConfig adjusted = adjust_config(c, a);
  EXPECT_EQ(adjusted.pattern_string(), "LLLGLLLG");
  EXPECT_EQ(adjusted.window, 32);
  EXPECT_EQ(adjusted.rope_theta, 5e5);
  EXPECT_EQ(adjusted.rope_params().original_max_positions, c.max_seq_len);  // YaRN from the length before
  EXPECT_EQ(adjusted.max_seq_len, 4 * c.max_seq_len);
  const ModelConfig back = config_from_json(config_to_json(adjusted));
  EXPECT_EQ(back.pattern_string(), "LLLGLLLG");
  EXPECT_EQ(back.rope_scaling, RopeScaling::kYarn);
  EXPECT_EQ(back.rope_params().original_max_positions, c.max_seq_len);
  EXPECT_EQ(back.rope_theta, 5e5);

  ModelAdjustment window_only;
  window_only.window = 8;
  EXPECT_THROW((void)adjust_config(c, window_only), Error);  // all global: a window alone changes nothing
  EXPECT_EQ(adjust_config(c.with_pattern(2, 16), window_only).pattern_string(), "GLGLGLGL");
  ModelAdjustment both;
  both.group_size = 2;
  both.global_layers = {0};
  EXPECT_THROW((void)adjust_config(c, both), Error);
  EXPECT_TRUE(ModelAdjustment{}.empty());
}

TEST(Config, ExplicitLayerTypesWinOverGroupSize) {
  json j = base_json();
  j["group_size"] = 4;
  j["layer_types"] = {"sliding_attention", "full_attention",    "full_attention", "sliding_attention",
                      "sliding_attention", "sliding_attention", "full_attention", "sliding_attention"};
  EXPECT_EQ(config_from_json(j).pattern_string(), "LGGLLLGL");
}

TEST(Config, OriginalZebraKeysMapWindowPlusOne) {
  json j = base_json();
  j["self_attn_type"] = "mix";
  j["layer_group_size"] = 4;
  j["window_size"] = 512;  // the original sees i-512..i: 513 keys
  ModelConfig c = config_from_json(j);
  EXPECT_EQ(c.window, 513);
  EXPECT_EQ(c.pattern_string(), "GLLLGLLL");
  expect_error(with(json{{"self_attn_type", "mix"}, {"layer_group_size", 2}}), "window_size", "required");
  expect_error(with(json{{"self_attn_type", "banded"}}), "self_attn_type", "mix");
}

TEST(Config, JsonRoundTrip) {
  json j = base_json();
  j["group_size"] = 2;
  j["sliding_window"] = 7;
  j["pos_embedding"] = "alibi";
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  j["tie_word_embeddings"] = false;
  ModelConfig c = config_from_json(j);
  ModelConfig d = config_from_json(config_to_json(c));
  EXPECT_EQ(config_to_json(c), config_to_json(d));
  EXPECT_EQ(d.rope_scaling, RopeScaling::kLinear);
  EXPECT_EQ(d.rope_scaling_factor, 4.0);
  EXPECT_EQ(d.pos_embedding, PosEmbedding::kAlibi);
  EXPECT_FALSE(d.tie_embeddings);
  EXPECT_EQ(d.pattern_string(), "GLGLGLGL");
  // HF names are what the file carries.
  json out = config_to_json(c);
  EXPECT_EQ(out["sliding_window"], 7);
  EXPECT_EQ(out["layer_types"][1], "sliding_attention");
  EXPECT_EQ(out["num_key_value_heads"], 2);
}

TEST(Config, SaveAndLoadFile) {
  const auto dir = std::filesystem::temp_directory_path() / "zebra_config_test";
  std::filesystem::create_directories(dir);
  ModelConfig c = config_from_json(base_json());
  save_config(c, (dir / "config.json").string());
  EXPECT_EQ(config_to_json(load_config(dir.string())), config_to_json(c));
  write_file_atomic((dir / "bad.json").string(), "{\"vocab_size\": 12,");
  try {
    load_config((dir / "bad.json").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_config((dir / "missing.json").string()), Error);
  std::filesystem::remove_all(dir);
}

// Nesting ~10^5 deep in any field parses, but copying or printing the value overflows the stack: load_config
// refuses the text by its depth first, naming the file and the field.
TEST(Config, DeeplyNestedFieldIsRefusedByDepth) {
  const auto dir = std::filesystem::temp_directory_path() / "zebra_config_deep_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "config.json").string();
  for (const char* field : {"vocab_size", "rope_scaling", "layer_types", "unknown_field"}) {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    write_file_atomic(path, std::string(R"({"hidden_size": 32, ")") + field + "\": " + deep + "}");
    try {
      load_config(path);
      ADD_FAILURE() << field;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::string("field '") + field + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("more than 64 levels"), std::string::npos) << msg;
    }
  }
  std::filesystem::remove_all(dir);
}

// A vocab_size inside the allowed range can still ask for more memory than the machine has: the parameters are
// refused before they are allocated, naming the size and the fields (it used to end in std::bad_alloc).
TEST(Config, ParametersBeyondMemoryAreRefusedBeforeAllocation) {
  ModelConfig c = config_from_json(with(json{{"vocab_size", std::int64_t{1} << 24},
                                             {"hidden_size", std::int64_t{1} << 14},
                                             {"num_attention_heads", 128},
                                             {"num_key_value_heads", 128}}));
  try {
    ParameterSet<float> p(c);
    ADD_FAILURE() << "allocated " << p.layout.total << " parameters";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("GB of memory available"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.embed_tokens.weight' [16777216 x 16384]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("vocab_size 16777216"), std::string::npos) << msg;
  }
}

TEST(Config, RejectsInvalidValuesNamingTheField) {
  expect_error(with(json{{"sliding_window", 0}}), "sliding_window", ">= 1");
  expect_error(with(json{{"sliding_window", -3}}), "sliding_window", ">= 1");
  expect_error(with(json{{"num_key_value_heads", 3}}), "num_key_value_heads", "divisor");
  expect_error(with(json{{"head_dim", 7}}), "head_dim", "even");
  expect_error(with(json{{"layer_types", {"full_attention", "banded"}}}), "layer_types", "full_attention");
  expect_error(with(json{{"layer_types", {"full_attention"}}}), "layer_types", "8");
  expect_error(with(json{{"vocab_size", -1}}), "vocab_size", "positive");
  expect_error(with(json{{"intermediate_size", 0}}), "intermediate_size", "positive");
  expect_error(with(json{{"group_size", 0}}), "group_size", ">= 1");
  expect_error(with(json{{"pos_embedding", "sinusoid"}}), "pos_embedding", "alibi");
  expect_error(with(json{{"hidden_size", "big"}}), "hidden_size", "integer");
  expect_error(with(json{{"rms_norm_eps", 0.0}}), "rms_norm_eps", "> 0");
  expect_error(with(json{{"rope_scaling", {{"type", "llama3"}, {"factor", 2.0}}}}), "rope_scaling.type", "yarn");
  expect_error(with(json{{"rope_scaling", {{"rope_type", "longrope"}}}}), "rope_scaling.rope_type", "dynamic");
  expect_error(with(json{{"rope_scaling", {{"rope_type", "linear"}}}}), "rope_scaling.factor", "required");
  expect_error(with(json{{"rope_scaling", {{"rope_type", "linear"}, {"factor", 0.5}}}}), "rope_scaling.factor", ">= 1");
  expect_error(with(json{{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 2.0}, {"beta_fast", -1.0}}}}), "beta_fast",
               "> 0");
  expect_error(with(json{{"rope_parameters", {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}}}}),
               "rope_parameters.partial_rotary_factor", "expected 1");
  expect_error(with(json{{"rope_parameters", {{"full_attention", {{"rope_type", "default"}}}}}}), "rope_parameters",
               "one set");
  expect_error(with(json{{"rope_scaling", "yarn"}}), "rope_scaling", "object");
  expect_error(with(json{{"model_type", "qwen2"}}), "model_type", "ministral");
  expect_error(with(json{{"model_type", "ministral"},
                         {"layer_types", {"full_attention", "sliding_attention"}},
                         {"num_hidden_layers", 2}}),
               "sliding_window", "expected a window");
  expect_error(with(json{{"model_type", std::string(5000, 'x')}}), "model_type", "...");
  // A layer count is checked before a per-layer list is allocated from it.
  for (const char* type : {"mistral", "ministral", "llama", "zebra"}) {
    expect_error(with(json{{"model_type", type}, {"num_hidden_layers", std::int64_t{1} << 60}}), "num_hidden_layers",
                 "at most");
    expect_error(with(json{{"model_type", type}, {"num_hidden_layers", -2}}), "num_hidden_layers", "positive");
  }
  expect_error(with(json{{"hidden_size", 30}}), "head_dim", "multiple");
  expect_error(json::array({1, 2}), "config", "object");
  // head_dim odd is fine without RoPE.
  EXPECT_NO_THROW(config_from_json(with(json{{"head_dim", 7}, {"pos_embedding", "alibi"}})));
}

TEST(Config, NullSlidingWindowMeansDefault) {
  // Hugging Face Llama/Mistral configs carry "sliding_window": null.
  json j = base_json();
  j["sliding_window"] = nullptr;
  EXPECT_NO_THROW(config_from_json(j));
}

// Every RoPE scaling survives config_to_json -> config_from_json, and is written in transformers' form.
TEST(Config, RopeScalingRoundTrips) {
  struct Case {
    RopeScaling scaling;
    double factor;
  };
  for (Case k : {Case{RopeScaling::kNone, 1.0}, Case{RopeScaling::kLinear, 2.0}, Case{RopeScaling::kNtk, 4.0},
                 Case{RopeScaling::kDynamic, 3.0}, Case{RopeScaling::kYarn, 8.0}}) {
    ModelConfig c = config_from_json(with(json{{"group_size", 2}, {"sliding_window", 5}}));
    c.rope_scaling = k.scaling;
    c.rope_scaling_factor = k.factor;
    if (k.scaling == RopeScaling::kYarn) {
      c.rope_original_max_positions = 64;
      c.rope_beta_fast = 16.0;
      c.rope_beta_slow = 2.0;
      c.rope_attention_factor = 1.25;
      c.rope_truncate = false;
    }
    const json out = config_to_json(c);
    const ModelConfig d = config_from_json(out);
    EXPECT_EQ(config_to_json(d), out) << to_string(k.scaling);
    EXPECT_EQ(d.rope_scaling, k.scaling);
    EXPECT_EQ(d.rope_scaling_factor, k.factor);
    EXPECT_EQ(d.rope_theta, c.rope_theta);
    const RopeParams a = c.rope_params(), b = d.rope_params();
    EXPECT_EQ(rope_inv_freq(a, 100), rope_inv_freq(b, 100)) << to_string(k.scaling);
    EXPECT_EQ(rope_attention_factor(a), rope_attention_factor(b));
    switch (k.scaling) {
      case RopeScaling::kNone: EXPECT_TRUE(out["rope_scaling"].is_null()); break;
      case RopeScaling::kNtk:
        // transformers has no static NTK: the equivalent base, and zebra's own record.
        EXPECT_TRUE(out["rope_scaling"].is_null());
        EXPECT_DOUBLE_EQ(out["rope_theta"].get<double>(), 10000.0 * std::pow(4.0, 8.0 / 6.0));
        EXPECT_EQ(out["zebra_rope_scaling"]["rope_type"], "ntk");
        break;
      case RopeScaling::kYarn:
        EXPECT_EQ(out["rope_scaling"]["rope_type"], "yarn");
        EXPECT_EQ(out["rope_scaling"]["original_max_position_embeddings"], 64);
        EXPECT_EQ(out["rope_scaling"]["attention_factor"], 1.25);
        EXPECT_EQ(out["rope_scaling"]["truncate"], false);
        break;
      default: EXPECT_EQ(out["rope_scaling"]["rope_type"], to_string(k.scaling));
    }
  }
}

// The forms transformers writes: transformers 5's rope_parameters, the legacy "type" key, YaRN defaults.
TEST(Config, ReadsTransformersRopeForms) {
  ModelConfig c = config_from_json(with(json{{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 5e5}}}}));
  EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);
  EXPECT_EQ(c.rope_theta, 5e5);
  c = config_from_json(with(json{{"rope_theta", 1e4}, {"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}}));
  EXPECT_EQ(c.rope_scaling, RopeScaling::kDynamic);
  EXPECT_EQ(c.rope_params().original_max_positions, c.max_seq_len);  // transformers' dynamic L0
  // YaRN without a factor: max_position_embeddings / original (transformers 5); L0 defaults to
  // max_position_embeddings; beta 0 means the default, as transformers' `or 32`.
  c = config_from_json(with(json{
      {"max_position_embeddings", 4096},
      {"rope_parameters",
       {{"rope_type", "yarn"}, {"original_max_position_embeddings", 1024}, {"beta_fast", 0}, {"rope_theta", 1e6}}}}));
  EXPECT_EQ(c.rope_scaling, RopeScaling::kYarn);
  EXPECT_EQ(c.rope_scaling_factor, 4.0);
  EXPECT_EQ(c.rope_beta_fast, 32.0);
  EXPECT_EQ(c.rope_params().original_max_positions, 1024);
  EXPECT_NEAR(rope_attention_factor(c.rope_params()), 0.1 * std::log(4.0) + 1.0, 1e-15);
  c = config_from_json(
      with(json{{"max_position_embeddings", 512}, {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 2.0}}}}));
  EXPECT_EQ(c.rope_params().original_max_positions, 512);
  // DeepSeek's mscale pair sets the attention factor.
  c = config_from_json(with(json{{"rope_scaling",
                                  {{"rope_type", "yarn"},
                                   {"factor", 40.0},
                                   {"mscale", 1.0},
                                   {"mscale_all_dim", 0.5},
                                   {"original_max_position_embeddings", 64}}}}));
  const double lf = std::log(40.0);
  EXPECT_NEAR(c.rope_attention_factor, (0.1 * lf + 1) / (0.05 * lf + 1), 1e-15);
}

json with_layers(const json& patch) {
  json j = with(json{{"num_hidden_layers", 4}});
  j.update(patch);
  return j;
}

// What transformers would run, per model_type.
TEST(Config, ReadsEachFamilyAsTransformersRunsIt) {
  const json mixed = {"full_attention", "sliding_attention", "sliding_attention", "full_attention"};
  // Mistral: the window is every layer's; its layer_types are ignored, as transformers does.
  ModelConfig c =
      config_from_json(with_layers({{"model_type", "mistral"}, {"sliding_window", 9}, {"layer_types", mixed}}));
  EXPECT_EQ(c.pattern_string(), "LLLL");
  EXPECT_EQ(c.window, 9);
  c = config_from_json(with_layers({{"model_type", "mistral"}, {"sliding_window", nullptr}}));
  EXPECT_EQ(c.pattern_string(), "GGGG");
  // Ministral: layer_types, defaulting to all sliding when a window is set.
  c = config_from_json(with_layers({{"model_type", "ministral"}, {"sliding_window", 9}, {"layer_types", mixed}}));
  EXPECT_EQ(c.pattern_string(), "GLLG");
  c = config_from_json(with_layers({{"model_type", "ministral"}, {"sliding_window", 9}}));
  EXPECT_EQ(c.pattern_string(), "LLLL");
  c = config_from_json(with_layers({{"model_type", "ministral"}, {"sliding_window", nullptr}}));
  EXPECT_EQ(c.pattern_string(), "GGGG");
  // A Llama from elsewhere is full attention whatever its config carries; one zebra wrote keeps its pattern.
  c = config_from_json(with_layers({{"model_type", "llama"}, {"sliding_window", 9}, {"layer_types", mixed}}));
  EXPECT_EQ(c.pattern_string(), "GGGG");
  c = config_from_json(with_layers({{"model_type", "llama"}, {"group_size", 2}, {"sliding_window", 9}}));
  EXPECT_EQ(c.pattern_string(), "GLGL");
  // The original Zebra release, whatever its model_type.
  c = config_from_json(
      with_layers({{"model_type", "llama"}, {"self_attn_type", "mix"}, {"layer_group_size", 2}, {"window_size", 15}}));
  EXPECT_EQ(c.pattern_string(), "GLGL");
  EXPECT_EQ(c.window, 16);
}

TEST(Config, WritesTheFamilyTransformersReadsAsTheSameModel) {
  ModelConfig zebra = config_from_json(with_layers({{"group_size", 2}, {"sliding_window", 7}}));
  json out = config_to_json(zebra);
  EXPECT_EQ(out["architectures"], json::array({"MinistralForCausalLM"}));
  EXPECT_EQ(out["model_type"], "ministral");
  EXPECT_EQ(out["sliding_window"], 7);  // transformers' mask: q - window < kv <= q, zebra's own
  EXPECT_EQ(out["layer_types"],
            json::array({"full_attention", "sliding_attention", "full_attention", "sliding_attention"}));
  EXPECT_EQ(out["head_dim"], zebra.head_dim);
  EXPECT_EQ(config_to_json(config_from_json(out)), out);

  ModelConfig llama = config_from_json(with_layers({{"sliding_window", 7}}));
  out = config_to_json(llama);
  EXPECT_EQ(out["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(out["model_type"], "llama");
  EXPECT_FALSE(out.contains("sliding_window"));
  EXPECT_FALSE(out.contains("layer_types"));
  const ModelConfig back = config_from_json(out);
  EXPECT_EQ(back.pattern_string(), "GGGG");
  EXPECT_EQ(back.window, 7);  // kept for a later re-lay

  for (const char* pos : {"alibi", "learned", "none"}) {
    out = config_to_json(config_from_json(with_layers({{"pos_embedding", pos}, {"group_size", 2}})));
    EXPECT_EQ(out["model_type"], "zebra") << pos;
    EXPECT_EQ(out["architectures"], json::array({"ZebraForCausalLM"}));
    EXPECT_EQ(config_from_json(out).pos_embedding, parse_pos_embedding(pos));
    EXPECT_EQ(config_from_json(out).pattern_string(), "GLGL");
  }
}

}  // namespace
}  // namespace zebra
