#include "commands.h"

namespace harvit::cli {

Runner add_stream_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("stream", "(not built yet)");
  return [cmd]() -> int { return cmd ? 2 : 2; };
}

}  // namespace harvit::cli
