// zebra plot: loss curves (train and held-out against tokens) from metrics.jsonl files, via gnuplot.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "zebra/cli/commands.hpp"
#include "zebra/train/metrics.hpp"

namespace zebra {

void add_plot_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> metrics, labels;
    std::string out = "loss.png", title = "loss";
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("plot", "Plot train and held-out loss curves from metrics.jsonl files (gnuplot)");
  cmd->add_option("metrics", a->metrics, "metrics.jsonl files (or run directories)")->required();
  cmd->add_option("-o,--out", a->out, "output image (.png or .svg)");
  cmd->add_option("--labels", a->labels, "one label per file")->delimiter(',');
  cmd->add_option("--title", a->title, "plot title");
  cmd->callback([a] {
    std::vector<std::string> files;
    for (const std::string& m : a->metrics) {
      files.push_back(m.size() > 6 && m.substr(m.size() - 6) == ".jsonl" ? m : m + "/metrics.jsonl");
    }
    plot_loss_curves(files, a->labels.empty() ? a->metrics : a->labels, a->out, a->title);
    std::printf("wrote %s\n", a->out.c_str());
  });
}

}  // namespace zebra
