#include "commands.h"

namespace harvit::cli {

Runner add_replay_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("replay", "(not built yet)");
  return [cmd]() -> int { return cmd ? 2 : 2; };
}

}  // namespace harvit::cli
