// Crash-safe file and directory writes: write under a temporary name, fsync, rename.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace zebra {

// Writes bytes to `path` atomically: readers see the old file or the whole new one.
void write_file_atomic(const std::string& path, std::span<const std::uint8_t> bytes);
void write_file_atomic(const std::string& path, const std::string& text);

// Reads a whole file; throws naming the path.
std::string read_file(const std::string& path);

// Fills a fresh temporary directory beside `final_dir` with `fill(tmp_dir)`, fsyncs its files and
// renames it to `final_dir` (replacing an existing directory of that name only after success).
void write_directory_atomic(const std::string& final_dir, const std::function<void(const std::string&)>& fill);

}  // namespace zebra
