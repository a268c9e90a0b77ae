// Shell completion scripts generated from the command tree of cli.cc, so that the completion
// never disagrees with the parser (`lfharvest completion bash|zsh|fish`; the packaged bash file
// is this output, checked by a test).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lfh {

struct CompletionOption {
  std::vector<std::string> names;  // "--db", "-q"
  std::string help;
  bool takes_value = false;
  std::vector<std::string> choices;  // the values it accepts, when they are a fixed set
  bool path = false;                 // its value is a file name
};

struct CompletionCommand {
  std::string name;
  std::string help;
  std::vector<CompletionOption> options;
  std::vector<std::string> positional_choices;  // e.g. completion: bash zsh fish
  bool export_names = false;  // positional: a [[export]] name from the configuration file
};

struct CompletionSpec {
  std::string program;
  std::vector<CompletionOption> options;  // before the command (--help, --version)
  std::vector<CompletionCommand> commands;
};

/// The completion script for "bash", "zsh" or "fish"; nullopt for another shell.
std::optional<std::string> completion_script(const CompletionSpec& spec, std::string_view shell);

}  // namespace lfh
