#include "zebra/train/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "zebra/io/checkpoint_dir.hpp"
#include "zebra/io/safetensors.hpp"
#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateTensors = "trainer_state.safetensors";
constexpr const char* kStateJson = "trainer_state.json";
constexpr const char* kStateFormat = "zebra-trainer-state";
constexpr int kStateVersion = 1;
// Bound on step and tokens_seen: the trainer adds to both every step, and the metrics carry them as JSON numbers
// that plots read as doubles (exact up to 2^53). A real run stays far below (10^15 tokens is 2^50).
constexpr std::int64_t kMaxCounter = std::int64_t{1} << 53;

std::int64_t get_i64(const nlohmann::json& j, const char* key, const std::string& file) {
  if (!j.contains(key) || !j.at(key).is_number_integer()) {
    fail("'", file, "': field '", key, "' missing or not an integer (expected a zebra trainer state)");
  }
  return j.at(key).get<std::int64_t>();
}

}  // namespace

std::string checkpoint_name(std::int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "checkpoint-%08lld", static_cast<long long>(step));
  return buf;
}

void save_checkpoint(const std::string& dir, const ParameterSet<float>& params, const AlignedBuffer<float>& m,
                     const AlignedBuffer<float>& v, const TrainerState& state, const std::string& tokenizer_file) {
  ZEBRA_CHECK(m.size() == params.layout.total && v.size() == params.layout.total, "optimizer moments have ", m.size(),
              "/", v.size(), " elements, expected ", params.layout.total);
  SaveModelOptions options;
  options.tokenizer_file = tokenizer_file;
  options.extra_files = [&](const std::string& tmp) {
    std::vector<TensorToWrite> tensors;
    for (const TensorInfo& t : params.layout.tensors) {
      tensors.push_back(TensorToWrite{"m." + t.name, t.shape, m.data() + t.offset, nullptr, DType::kF32});
      tensors.push_back(TensorToWrite{"v." + t.name, t.shape, v.data() + t.offset, nullptr, DType::kF32});
    }
    write_safetensors((fs::path(tmp) / kStateTensors).string(), tensors, {{"format", kStateFormat}});
    nlohmann::json j;
    j["format"] = kStateFormat;
    j["version"] = kStateVersion;
    j["step"] = state.step;
    j["tokens_seen"] = state.tokens_seen;
    j["batcher"] = batcher_state_to_json(state.batcher.long_batcher);
    if (state.batcher.short_batcher) {
      j["short_batcher"] = batcher_state_to_json(*state.batcher.short_batcher);
      j["kind_rng_state"] = state.batcher.kind_rng_state;
    }
    j["run"] = state.run;
    write_file_atomic((fs::path(tmp) / kStateJson).string(), j.dump(2) + "\n");
  };
  save_model_dir(dir, params, options);
}

TrainerState parse_trainer_state(std::string_view text, const std::string& json_path) {
  check_json_depth(text, "'" + json_path + "'");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("'", json_path, "': not valid JSON (expected a zebra trainer state)");
  if (!j.contains("format") || j["format"] != kStateFormat) {
    fail("'", json_path, "': field 'format' is not \"", kStateFormat, "\"");
  }
  if (get_i64(j, "version", json_path) != kStateVersion) {
    fail("'", json_path, "': version ", shown_json(j["version"]), ", expected ", kStateVersion);
  }
  TrainerState state;
  state.step = get_i64(j, "step", json_path);
  state.tokens_seen = get_i64(j, "tokens_seen", json_path);
  for (const auto& [key, value] :
       {std::pair<const char*, std::int64_t>{"step", state.step}, {"tokens_seen", state.tokens_seen}}) {
    if (value < 0 || value > kMaxCounter) {
      fail("'", json_path, "': field '", key, "' is ", value, ", expected an integer in [0, 2^53]");
    }
  }
  if (!j.contains("batcher")) fail("'", json_path, "': field 'batcher' missing");
  try {
    state.batcher.long_batcher = batcher_state_from_json(j["batcher"]);
    if (j.contains("short_batcher")) {
      state.batcher.short_batcher = batcher_state_from_json(j["short_batcher"]);
      const auto it = j.find("kind_rng_state");
      if (it == j.end() || !it->is_number_unsigned()) fail("field 'kind_rng_state' missing or not an unsigned integer");
      state.batcher.kind_rng_state = it->get<std::uint64_t>();
    }
  } catch (const Error& e) {
    fail("'", json_path, "': ", e.what());
  }
  state.run = j.value("run", nlohmann::json::object());
  return state;
}

Checkpoint load_checkpoint(const std::string& dir) {
  const std::string json_path = (fs::path(dir) / kStateJson).string();
  const std::string tensors_path = (fs::path(dir) / kStateTensors).string();
  if (!fs::exists(json_path)) fail("'", dir, "': no ", kStateJson, " (expected a zebra training checkpoint)");
  Checkpoint ck;
  ck.state = parse_trainer_state(read_file(json_path), json_path);
  ck.params = load_model_dir(dir);
  SafetensorsFile st = SafetensorsFile::open(tensors_path);
  ck.m.resize(ck.params.layout.total);
  ck.v.resize(ck.params.layout.total);
  for (const TensorInfo& t : ck.params.layout.tensors) {
    st.read("m." + t.name, ck.m.data() + t.offset, t.shape);
    st.read("v." + t.name, ck.v.data() + t.offset, t.shape);
  }
  if (st.tensors().size() != 2 * ck.params.layout.tensors.size()) {
    fail("'", tensors_path, "': ", st.tensors().size(), " tensors, expected ", 2 * ck.params.layout.tensors.size(),
         " (m and v of every parameter)");
  }
  return ck;
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(run_dir)) return out;
  for (const auto& e : fs::directory_iterator(run_dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("checkpoint-", 0) == 0 && name.find(".tmp") == std::string::npos &&
        name.size() == std::string("checkpoint-").size() + 8) {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort by name
  return out;
}

std::string resolve_checkpoint(const std::string& path) {
  if (fs::exists(fs::path(path) / kStateJson)) return path;
  std::vector<std::string> all = list_checkpoints(path);
  if (all.empty()) fail("'", path, "': neither a training checkpoint nor a run directory holding checkpoint-*");
  return all.back();
}

void prune_checkpoints(const std::string& run_dir, std::int64_t keep) {
  if (keep <= 0) return;
  std::vector<std::string> all = list_checkpoints(run_dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) fs::remove_all(all[i]);
}

}  // namespace zebra
