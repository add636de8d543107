// The libFuzzer harness of every reader, one binary: the reader is the program's name, fuzz_<reader> (links made
// by tests/fuzz/CMakeLists.txt: fuzz_safetensors runs zebra::fuzz::safetensors). One binary keeps the fuzz build
// to one harness object and one link.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_entries.hpp"

namespace {
void (*g_entry)(zebra::fuzz::Bytes) = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string name = *argc > 0 ? (*argv)[0] : "";
  name = name.substr(name.find_last_of('/') + 1);
  for (const zebra::fuzz::Entry& e : zebra::fuzz::entries()) {
    if (name == std::string("fuzz_") + e.name) g_entry = e.run;
  }
  if (g_entry == nullptr) {
    std::fprintf(stderr, "fuzz harness: run it as fuzz_<reader>, one of:");
    for (const zebra::fuzz::Entry& e : zebra::fuzz::entries()) std::fprintf(stderr, " fuzz_%s", e.name);
    std::fprintf(stderr, "\n");
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  g_entry({data, size});
  return 0;
}
