#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "zebra/model/config.hpp"
#include "zebra/ops/mask.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"

namespace zebra {
namespace {

using nlohmann::json;

json base_json() {
  return json{{"vocab_size", 100}, {"hidden_size", 32}, {"num_hidden_layers", 8}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}, {"intermediate_size", 64}};
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

TEST(Config, ExplicitLayerTypesWinOverGroupSize) {
  json j = base_json();
  j["group_size"] = 4;
  j["layer_types"] = {"sliding_attention", "full_attention", "full_attention", "sliding_attention",
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
  expect_error(with(json{{"self_attn_type", "mix"}, {"layer_group_size", 2}}), "window_size",
               "required");
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

TEST(Config, RejectsInvalidValuesNamingTheField) {
  expect_error(with(json{{"sliding_window", 0}}), "sliding_window", ">= 1");
  expect_error(with(json{{"sliding_window", -3}}), "sliding_window", ">= 1");
  expect_error(with(json{{"num_key_value_heads", 3}}), "num_key_value_heads", "divisor");
  expect_error(with(json{{"head_dim", 7}}), "head_dim", "even");
  expect_error(with(json{{"layer_types", {"full_attention", "banded"}}}), "layer_types",
               "full_attention");
  expect_error(with(json{{"layer_types", {"full_attention"}}}), "layer_types", "8");
  expect_error(with(json{{"vocab_size", -1}}), "vocab_size", "positive");
  expect_error(with(json{{"intermediate_size", 0}}), "intermediate_size", "positive");
  expect_error(with(json{{"group_size", 0}}), "group_size", ">= 1");
  expect_error(with(json{{"pos_embedding", "sinusoid"}}), "pos_embedding", "alibi");
  expect_error(with(json{{"hidden_size", "big"}}), "hidden_size", "integer");
  expect_error(with(json{{"rms_norm_eps", 0.0}}), "rms_norm_eps", "> 0");
  expect_error(with(json{{"rope_scaling", {{"type", "yarn"}, {"factor", 2.0}}}}),
               "rope_scaling.type", "linear");
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

}  // namespace
}  // namespace zebra
