// Training metrics: JSONL records, and loss curves rendered with gnuplot.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace zebra {

class MetricsWriter {
 public:
  // Opens `path` for appending. When `keep_up_to_step` >= 0 (a resumed run), records of later steps
  // left by the interrupted run are dropped first, so the file reads as one uninterrupted run.
  MetricsWriter(const std::string& path, std::int64_t keep_up_to_step = -1);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  void write(const nlohmann::json& record);  // one line, flushed
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Renders train and eval loss against tokens from one or more metrics files (one curve each, labelled
// with `labels`) into `out_path` (.png or .svg) with gnuplot. Throws when gnuplot is missing or fails.
void plot_loss_curves(const std::vector<std::string>& metrics_paths, const std::vector<std::string>& labels,
                      const std::string& out_path, const std::string& title = "loss");

bool gnuplot_available();

}  // namespace zebra
