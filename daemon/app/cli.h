// Command-line entry point: argv -> CommonOptions + one command (CLI11).
#pragma once

namespace lfh {

/// Parses arguments, runs the command, returns the exit code.
int run_cli(int argc, char** argv);

}  // namespace lfh
