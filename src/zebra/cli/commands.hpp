// One registration function per subcommand; main.cpp calls each. A subcommand's file parses its
// arguments and calls the library; the work itself lives in the library.
#pragma once

namespace CLI {
class App;
}

namespace zebra {

void add_info_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_plot_command(CLI::App& app);

}  // namespace zebra
