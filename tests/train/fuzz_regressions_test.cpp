// Replays the fuzzing corpora through the entries the libFuzzer harnesses run (tests/fuzz/fuzz_entries.hpp):
// every input that ever crashed a reader (tests/fuzz/regressions/<reader>/, where scripts/fuzz.sh copies
// findings) and the seed files (tests/fuzz/seeds/<reader>/). Each must be refused with a zebra::Error or read;
// under the ASan/UBSan build of CI a regression is a sanitizer report.
#include <gtest/gtest.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "fuzz/fuzz_entries.hpp"
#include "zebra/util/atomic_file.hpp"

namespace zebra {
namespace fuzz {
// gtest prints a parameter by its name.
inline void PrintTo(const Entry& e, std::ostream* os) { *os << e.name; }
}  // namespace fuzz
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename() != "README.md") out.push_back(e.path());
  }
  return out;
}

class FuzzCorpus : public ::testing::TestWithParam<fuzz::Entry> {};

TEST_P(FuzzCorpus, EveryRegressionAndSeedIsReadOrRefused) {
  const fs::path root = fs::path(ZEBRA_SOURCE_DIR) / "tests" / "fuzz";
  const std::vector<fs::path> seeds = files_under(root / "seeds" / GetParam().name);
  EXPECT_FALSE(seeds.empty()) << "no seeds for " << GetParam().name;  // a harness without seeds fuzzes blind
  std::vector<fs::path> all = files_under(root / "regressions" / GetParam().name);
  all.insert(all.end(), seeds.begin(), seeds.end());
  for (const fs::path& p : all) {
    SCOPED_TRACE(p.string());
    const std::string bytes = read_file(p.string());
    EXPECT_NO_THROW(GetParam().run({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}));
  }
}

INSTANTIATE_TEST_SUITE_P(Readers, FuzzCorpus, ::testing::ValuesIn(fuzz::entries()),
                         [](const ::testing::TestParamInfo<fuzz::Entry>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace zebra
