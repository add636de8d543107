#include "zebra/train/metrics.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "zebra/util/atomic_file.hpp"
#include "zebra/util/error.hpp"
#include "zebra/util/json_text.hpp"

namespace zebra {

namespace fs = std::filesystem;

MetricsWriter::MetricsWriter(const std::string& path, std::int64_t keep_up_to_step) : path_(path) {
  if (keep_up_to_step >= 0 && fs::exists(path)) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      if (json_depth(line).depth > kMaxJsonDepth) continue;  // not a line zebra wrote
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) continue;  // a line cut by a crash
      if (j.value("step", std::int64_t{0}) <= keep_up_to_step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) fail("cannot open metrics file '", path, "' for appending");
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::write(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

void plot_loss_curves(const std::vector<std::string>& metrics_paths, const std::vector<std::string>& labels,
                      const std::string& out_path, const std::string& title) {
  if (!gnuplot_available()) fail("gnuplot not found (install the Debian package gnuplot-nox) to plot ", out_path);
  const fs::path tmp = fs::temp_directory_path() / ("zebra-plot-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  std::ostringstream script;
  const bool svg = out_path.size() >= 4 && out_path.substr(out_path.size() - 4) == ".svg";
  script << (svg ? "set terminal svg size 900,540\n" : "set terminal pngcairo size 900,540\n");
  script << "set output '" << out_path << "'\nset title '" << title << "'\n"
         << "set xlabel 'tokens'\nset ylabel 'loss (nats/token)'\nset grid\nset key top right\n";
  std::string plot = "plot ";
  bool any = false;
  for (std::size_t f = 0; f < metrics_paths.size(); ++f) {
    const std::string label = f < labels.size() ? labels[f] : metrics_paths[f];
    std::ifstream in(metrics_paths[f]);
    if (!in) fail("cannot read metrics file '", metrics_paths[f], "'");
    std::ofstream train(tmp / ("train" + std::to_string(f) + ".dat")),
        eval(tmp / ("eval" + std::to_string(f) + ".dat"));
    std::string line;
    std::int64_t n_train = 0, n_eval = 0;
    while (std::getline(in, line)) {
      if (json_depth(line).depth > kMaxJsonDepth) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("tokens")) continue;
      if (j.contains("loss")) {
        train << j["tokens"].get<double>() << ' ' << j["loss"].get<double>() << '\n';
        ++n_train;
      }
      if (j.contains("eval_loss")) {
        eval << j["tokens"].get<double>() << ' ' << j["eval_loss"].get<double>() << '\n';
        ++n_eval;
      }
    }
    if (n_train > 0) {
      plot += std::string(any ? ", " : "") + "'" + (tmp / ("train" + std::to_string(f) + ".dat")).string() +
              "' with lines lw 1 title '" + label + " train'";
      any = true;
    }
    if (n_eval > 0) {
      plot += std::string(any ? ", " : "") + "'" + (tmp / ("eval" + std::to_string(f) + ".dat")).string() +
              "' with linespoints lw 2 pt 7 title '" + label + " held-out'";
      any = true;
    }
  }
  if (!any) fail("no loss records to plot in ", metrics_paths.empty() ? std::string("(no files)") : metrics_paths[0]);
  script << plot << "\n";
  const std::string script_path = (tmp / "plot.gp").string();
  write_file_atomic(script_path, script.str());
  const std::string cmd = "gnuplot '" + script_path + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  fs::remove_all(tmp);
  if (rc != 0) fail("gnuplot failed (exit ", rc, ") rendering ", out_path);
}

}  // namespace zebra
