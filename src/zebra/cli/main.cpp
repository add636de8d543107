// The zebra program: one binary, one file per subcommand (DESIGN.md §4).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "zebra/cli/commands.hpp"
#include "zebra/util/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"zebra: train and run long-context models with grouped local-global attention"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "zebra 0.1.0");
  zebra::add_info_command(app);
  // PREPARE
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const zebra::Error& e) {
    std::fprintf(stderr, "zebra: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "zebra: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
