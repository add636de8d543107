#include "zebra/util/gnuplot.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace zebra {

namespace {

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string gnuplot_program() {
  const char* env = std::getenv("ZEBRA_GNUPLOT");
  return env != nullptr && env[0] != '\0' ? std::string(env) : std::string("gnuplot");
}

bool gnuplot_found() {
  const std::string cmd = "command -v " + shell_quote(gnuplot_program()) + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::string gnuplot_quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string render_gnuplot(const std::string& script, const std::string& out_path, int width, int height) {
  const std::string program = gnuplot_program();
  if (!gnuplot_found()) {
    return "gnuplot ('" + program + "') not found, so no plot was written to " + out_path +
           " (install the Debian package gnuplot-nox, or set ZEBRA_GNUPLOT to its path)";
  }
  namespace fs = std::filesystem;
  const fs::path script_path = fs::temp_directory_path() / ("zebra-gnuplot-" + std::to_string(::getpid()) + ".gp");
  {
    std::ofstream out(script_path);
    if (ends_with(out_path, ".svg")) {
      out << "set terminal svg size " << width << "," << height << "\n";
    } else {
      out << "set terminal pngcairo size " << width << "," << height << "\n";
    }
    out << "set output " << gnuplot_quote(out_path) << "\n" << script << "\n";
    if (!out) return "cannot write the gnuplot script " + script_path.string() + ", so no plot was written";
  }
  const std::string cmd = shell_quote(program) + " " + shell_quote(script_path.string()) + " 2>&1";
  std::string output;
  int status = -1;
  if (std::FILE* pipe = ::popen(cmd.c_str(), "r")) {
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) output.append(buf.data(), n);
    status = ::pclose(pipe);
  }
  std::error_code ec;
  fs::remove(script_path, ec);
  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0) return "gnuplot failed (exit " + std::to_string(code) + ") rendering " + out_path + ": " + output;
  return "";
}

}  // namespace zebra
