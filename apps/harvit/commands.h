// Subcommands that live in their own files. Each add_* registers its subcommand (options and
// help) on the app and returns the function main() runs when that subcommand was chosen.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "deploy/stream.h"

namespace harvit::cli {

using Runner = std::function<int()>;

// The streaming recogniser's settings, as `stream` and `replay` take them (stream_cmd.cpp).
struct RecognizerArgs {
  std::string precision = "fp32", method = "mean";
  int64_t hop = 0;
  int smooth = 1, votes = 0, hysteresis = 1, threads = 1;
  float min_confidence = 0.0f, reject = -1.0f;
};
// --hop --smooth --method --votes --reject --min-confidence --hysteresis --precision --threads
void add_recognizer_options(CLI::App* cmd, RecognizerArgs& r);
// The StreamOptions they make (max_gap_ns and queue left at their defaults).
deploy::StreamOptions stream_options(const RecognizerArgs& r);

Runner add_stream_command(CLI::App& app);  // stream_cmd.cpp: `harvit stream`
Runner add_replay_command(CLI::App& app);  // replay_cmd.cpp: `harvit replay`
Runner add_export_command(CLI::App& app);  // export_cmd.cpp: `harvit export`
Runner add_explain_command(CLI::App& app);  // explain_cmd.cpp: `harvit explain`
Runner add_calibrate_command(CLI::App& app);  // trust_cmd.cpp: `harvit calibrate`
Runner add_openset_command(CLI::App& app);    // trust_cmd.cpp: `harvit openset`

}  // namespace harvit::cli
