// zebra info: what it accepts (a config file, a directory holding only config.json, a model file, re-laid with
// --group-size/--window) and what it refuses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli/cli_util.hpp"

namespace zebra::test {
namespace {

class InfoCli : public CliTest {};

TEST_F(InfoCli, ReadsAConfigFileADirectoryWithOnlyItsConfigAndAModelFile) {
  const std::string demo = std::string(ZEBRA_SOURCE_DIR) + "/recipes/configs/demo.json";
  const CommandResult file = run_zebra("info " + demo + " -T 512");
  ASSERT_EQ(file.exit_code, 0) << file.output;
  EXPECT_NE(file.output.find("GLLLGLLL"), std::string::npos) << file.output;

  // A directory with config.json and no weights: the config is all info needs.
  std::filesystem::create_directories(path("cfg"));
  std::filesystem::copy_file(demo, path("cfg/config.json"));
  const CommandResult dir = run_zebra("info " + path("cfg") + " -T 512");
  ASSERT_EQ(dir.exit_code, 0) << dir.output;
  EXPECT_EQ(dir.output.substr(dir.output.find("parameters")), file.output.substr(file.output.find("parameters")));

  // Re-laid at load time.
  const CommandResult relaid = run_zebra("info " + demo + " -T 512 --group-size 2 --window 64");
  ASSERT_EQ(relaid.exit_code, 0) << relaid.output;
  EXPECT_NE(relaid.output.find("GLGLGLGL"), std::string::npos) << relaid.output;

  if (shared_available()) {
    const CommandResult l2c = run_zebra("info " + stories_bin() + " -T 256");
    ASSERT_EQ(l2c.exit_code, 0) << l2c.output;
    EXPECT_NE(l2c.output.find("5 (d_model 64"), std::string::npos) << l2c.output;
  }
}

TEST_F(InfoCli, RefusesWhatIsNotAModel) {
  const CommandResult missing = run_zebra("info " + path("nothing-here"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find("does not exist"), std::string::npos) << missing.output;
  std::ofstream(path("bad.json")) << "{\"hidden_size\": ";
  const CommandResult bad = run_zebra("info " + path("bad.json"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("not valid JSON"), std::string::npos) << bad.output;
}

// --weights-dtype (generate, chat, eval) takes f32, bf16 or f16 and names the flag otherwise.
TEST_F(InfoCli, WeightsDtypeRefusesOtherTypesNamingTheFlag) {
  const std::string demo = std::string(ZEBRA_SOURCE_DIR) + "/recipes/configs/demo.json";
  for (const char* bad : {"q4_0", "f64", "int8"}) {
    const CommandResult r =
        run_zebra("generate --random-init " + demo + " --random-prompt 4 -n 2 --weights-dtype " + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.output.find("--weights-dtype must be f32, bf16 or f16"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace zebra::test
