// Plots through gnuplot, an external program: found on PATH, or named by $ZEBRA_GNUPLOT (tests point it at a
// missing program). Plotting is an extra: callers print the returned reason as a warning and carry on.
#pragma once

#include <string>
#include <string_view>

namespace zebra {

// $ZEBRA_GNUPLOT when set and not empty, else "gnuplot".
std::string gnuplot_program();
bool gnuplot_found();

// 'text' for a gnuplot script: single-quoted, with single quotes doubled.
std::string gnuplot_quote(std::string_view text);

// Renders `script` (plot commands; the terminal and output lines are put in front: pngcairo, or svg when
// out_path ends in ".svg", width x height pixels) into out_path. Returns "" on success, else a sentence
// saying why no plot was written (gnuplot missing, or its exit status and output).
std::string render_gnuplot(const std::string& script, const std::string& out_path, int width = 900, int height = 540);

}  // namespace zebra
