// Subcommands that live in their own files. Each add_* registers its subcommand (options and
// help) on the app and returns the function main() runs when that subcommand was chosen.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace harvit::cli {

using Runner = std::function<int()>;

Runner add_stream_command(CLI::App& app);  // stream_cmd.cpp: `harvit stream`
Runner add_replay_command(CLI::App& app);  // replay_cmd.cpp: `harvit replay`
Runner add_export_command(CLI::App& app);  // export_cmd.cpp: `harvit export`
Runner add_explain_command(CLI::App& app);  // explain_cmd.cpp: `harvit explain`
Runner add_calibrate_command(CLI::App& app);  // trust_cmd.cpp: `harvit calibrate`
Runner add_openset_command(CLI::App& app);    // trust_cmd.cpp: `harvit openset`

}  // namespace harvit::cli
