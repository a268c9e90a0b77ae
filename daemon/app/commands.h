// The commands behind `lfharvest <command>`. Each returns the process exit code (exit_codes.h)
// and prints its own one-line errors; cli.cc only parses arguments.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace lfh {

struct CommonOptions {
  ConfigOverrides overrides;
  bool json = false;  // the report on stdout as one JSON document (commands that report)
};

struct SyncOptions {
  std::optional<int> max_wait_seconds;
  bool progress = false;     // draw the progress line even when stderr is not a terminal
  bool no_progress = false;  // never draw it (also implied by -q)
};

struct StatusOptions {
  bool prometheus = false;
};

struct RetryOptions {
  bool include_waiting = false;  // also make traces waiting for a retry due now
};

struct ReconcileOptions {
  std::optional<std::string> since;
};

struct ExportOptions {
  std::optional<std::string> name;  // a named [[export]] from the config
  bool all = false;
  ExportSpec adhoc;  // flags for an unnamed export
  bool adhoc_format_given = false;
  std::optional<bool> incremental;
  /// The export options given on the command line ("--out", "--value", ...): they override a
  /// named export's settings.
  std::set<std::string> given;
  bool dry_run = false;
  bool fail_empty = false;  // exit kExitEmptyExport when nothing was exported
};

struct ScoresOptions {
  bool json = false;
};

int cmd_sync(const CommonOptions& common, const SyncOptions& options);
int cmd_run(const CommonOptions& common);
int cmd_status(const CommonOptions& common, const StatusOptions& options);
int cmd_check(const CommonOptions& common);
int cmd_retry(const CommonOptions& common, const RetryOptions& options);
int cmd_reconcile(const CommonOptions& common, const ReconcileOptions& options);
int cmd_export(const CommonOptions& common, const ExportOptions& options);
int cmd_scores(const CommonOptions& common, const ScoresOptions& options);

/// Prints "lfharvest: <message>" on stderr with secrets masked (clearing the progress line).
void print_error(const std::string& message);
/// Prints "lfharvest: <context>: <message>", or "lfharvest: <message>" when the message already
/// starts with "<context>: " (a layer below named it): one prefix, never two.
void print_error(std::string_view context, const std::string& message);

/// `lfharvest completion bash|zsh|fish`: the completion script, generated from the command
/// tree, on stdout.
int cmd_completion(const std::string& shell, const std::string& script);

}  // namespace lfh
