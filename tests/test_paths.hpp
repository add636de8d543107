// Where tests find the repository and ../shared; tests that need shared data skip when it is absent.
#pragma once

#include <filesystem>
#include <string>

namespace zebra::test {

inline std::string source_dir() { return ZEBRA_SOURCE_DIR; }
inline std::string shared_dir() { return (std::filesystem::path(ZEBRA_SOURCE_DIR).parent_path() / "shared").string(); }
inline bool shared_available() { return std::filesystem::exists(shared_dir() + "/DESIGN.md"); }

}  // namespace zebra::test
