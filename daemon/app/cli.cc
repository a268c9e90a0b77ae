#include "app/cli.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "app/commands.h"
#include "app/completion.h"
#include "app/exit_codes.h"
#include "core/log.h"
#include "core/time_format.h"
#include "core/version.h"
#include "export/formats.h"

namespace lfh {
namespace {

// A crash must not write the secret key into a core file.
void disable_core_dumps() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

const std::vector<std::string> kLogLevels = {"trace", "debug", "info", "warn", "error", "off"};
const std::vector<std::string> kFormats = {"json", "jsonl",    "openai-chat", "openai-dpo",
                                           "kto",  "sharegpt", "trl-dpo"};
const std::vector<std::string> kPicks = {"last-generation", "all-generations", "root"};
const std::vector<std::string> kSources = {"ANNOTATION", "API", "EVAL"};
const std::vector<std::string> kShells = {"bash", "zsh", "fish"};

// Validators that refuse a bad value while parsing, so every command-line mistake is exit 64
// with one line naming the option, before any file or server is touched.
CLI::Validator one_of(const std::vector<std::string>& names,
                      std::function<bool(const std::string&)> accepts) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return CLI::Validator(
      [accepts = std::move(accepts), list](std::string& value) -> std::string {
        if (accepts(value)) return "";
        return "unknown value '" + value + "' (one of " + list + ")";
      },
      "", "");
}

CLI::Validator date_time() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (canonical_iso8601(value)) return "";
        return "not a date or time: '" + value +
               "' (ISO 8601: 2026-11-30, 2026-11-30T12:00:00Z, 2026-11-30T13:00:00+01:00)";
      },
      "", "");
}

// What the completion needs beyond the parser: the fixed value sets and the file options.
struct CompletionHints {
  std::map<std::string, std::vector<std::string>> choices;
  std::set<std::string> paths{"--config", "--db", "--out"};
};

void add_common(CLI::App& cmd, CommonOptions& common, int& verbosity, bool& quiet) {
  cmd.add_option_function<std::string>(
         "--config", [&](const std::string& v) { common.overrides.config_path = v; },
         "Configuration file (default: $LFHARVEST_CONFIG, ./lfharvest.toml, "
         "$XDG_CONFIG_HOME/lfharvest/lfharvest.toml, /etc/lfharvest/lfharvest.toml: the first "
         "that exists)")
      ->type_name("PATH");
  cmd.add_option_function<std::string>(
         "--db", [&](const std::string& v) { common.overrides.database = v; },
         "Checkpoint database (default $STATE_DIRECTORY/lfharvest.db or ./lfharvest.db)")
      ->type_name("PATH");
  cmd.add_option_function<std::string>(
         "--base-url", [&](const std::string& v) { common.overrides.base_url = v; },
         "Langfuse base URL (default $LANGFUSE_BASE_URL, $LANGFUSE_HOST, or the config)")
      ->type_name("URL");
  cmd.add_option_function<std::string>(
         "--log-level", [&](const std::string& v) { common.overrides.log_level = v; },
         "trace, debug, info, warn, error or off (wins over -q and -v)")
      // Checked by the configuration (exit 78, like LFHARVEST_LOG_LEVEL and the file).
      ->type_name("LEVEL");
  cmd.add_flag("-q,--quiet", quiet,
               "Only warnings and errors (--log-level warn), no progress line");
  cmd.add_flag("-v,--verbose", verbosity, "More detail: -v debug, -vv trace (every request)");
}

void add_json(CLI::App& cmd, CommonOptions& common) {
  cmd.add_flag("--json", common.json, "The report on stdout as one JSON document");
}

CompletionSpec completion_spec(const CLI::App& app, const CompletionHints& hints) {
  CompletionSpec spec;
  spec.program = app.get_name();
  auto convert = [&](const CLI::Option* o) {
    CompletionOption c;
    for (const auto& s : o->get_snames()) c.names.push_back("-" + s);
    for (const auto& l : o->get_lnames()) c.names.push_back("--" + l);
    c.help = o->get_description();
    c.takes_value = o->get_expected_min() > 0;
    const std::string first = o->get_lnames().empty() ? "" : "--" + o->get_lnames().front();
    if (auto it = hints.choices.find(first); it != hints.choices.end()) c.choices = it->second;
    c.path = hints.paths.count(first) > 0;
    return c;
  };
  for (const CLI::Option* o : app.get_options()) {
    if (!o->nonpositional()) continue;
    // Before the command only the long forms are offered: `lfharvest -<TAB>` is rare.
    CompletionOption top = convert(o);
    std::erase_if(top.names, [](const std::string& n) { return !n.starts_with("--"); });
    if (!top.names.empty()) spec.options.push_back(std::move(top));
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    CompletionCommand command;
    command.name = sub->get_name();
    command.help = sub->get_description();
    for (const CLI::Option* o : sub->get_options()) {
      if (o->nonpositional()) {
        command.options.push_back(convert(o));
      } else if (command.name == "export") {
        command.export_names = true;
      } else if (command.name == "completion") {
        command.positional_choices = kShells;
      }
    }
    spec.commands.push_back(std::move(command));
  }
  return spec;
}

}  // namespace

int run_cli(int argc, char** argv) {
  disable_core_dumps();
  // A closed pipe (export --out - | head) is an I/O error to report, not a reason to die.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{
      "lfharvest: harvest annotated Langfuse traces into a local SQLite cache and export them as "
      "datasets, without overloading the Langfuse server.",
      "lfharvest"};
  app.set_version_flag("--version", std::string("lfharvest ") + kVersion);
  app.require_subcommand(1);
  app.footer(
      "Keys: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY (or secret_key_file / systemd "
      "credentials).\nExit codes: 0 ok, 64 usage, 65 export --fail-empty wrote nothing, 69 server "
      "unreachable or not answering, 74 "
      "database or file error, 75 traces waiting for a retry past --max-wait, 77 keys refused, "
      "78 configuration error, 130/143 stopped by SIGINT/SIGTERM.\nRun `lfharvest COMMAND "
      "--help` for a command's options.");

  CommonOptions common;
  int verbosity = 0;
  bool quiet = false;
  SyncOptions sync;
  StatusOptions status;
  RetryOptions retry;
  ReconcileOptions reconcile;
  ExportOptions exp;
  std::string shell;
  CompletionHints hints;
  hints.choices["--log-level"] = kLogLevels;
  hints.choices["--format"] = kFormats;
  hints.choices["--pick"] = kPicks;
  hints.choices["--source"] = kSources;

  auto* sync_cmd = app.add_subcommand(
      "sync", "One pass: poll new scores, fetch every annotated trace that needs it, then exit");
  add_common(*sync_cmd, common, verbosity, quiet);
  add_json(*sync_cmd, common);
  sync_cmd
      ->add_option_function<int>(
          "--max-wait", [&](int v) { sync.max_wait_seconds = v; },
          "Wait at most this long for the server within the pass (retries, Retry-After, a "
          "server that does not answer); exit 75 if traces remain waiting (default 60)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0, 86400));
  sync_cmd->add_flag("--progress", sync.progress,
                     "Draw the progress line even when stderr is not a terminal");
  sync_cmd->add_flag("--no-progress", sync.no_progress, "Never draw the progress line");

  auto* run_cmd = app.add_subcommand(
      "run", "Run as a service: a sync pass every poll interval until SIGTERM/SIGINT");
  add_common(*run_cmd, common, verbosity, quiet);

  auto* status_cmd =
      app.add_subcommand("status", "Show progress, queue, failures and server info from the DB");
  add_common(*status_cmd, common, verbosity, quiet);
  add_json(*status_cmd, common);
  status_cmd->add_flag("--prometheus", status.prometheus, "Prometheus text format");

  auto* check_cmd = app.add_subcommand(
      "check", "Validate config and secret, reach the server, validate the keys, print the plan");
  add_common(*check_cmd, common, verbosity, quiet);
  add_json(*check_cmd, common);

  auto* retry_cmd = app.add_subcommand("retry", "Put failed traces back in the fetch queue");
  add_common(*retry_cmd, common, verbosity, quiet);
  add_json(*retry_cmd, common);
  bool failed_flag = false;
  retry_cmd->add_flag("--failed", failed_flag, "Failed traces (the default)");
  retry_cmd->add_flag("--waiting", retry.include_waiting,
                      "Also make traces waiting for a retry due now");

  auto* reconcile_cmd = app.add_subcommand(
      "reconcile", "Re-read scores now to catch edits, and sweep for deleted scores");
  add_common(*reconcile_cmd, common, verbosity, quiet);
  add_json(*reconcile_cmd, common);
  reconcile_cmd
      ->add_option_function<std::string>(
          "--since", [&](const std::string& v) { reconcile.since = v; },
          "Re-scan scores from this date (default: the re-scan window)")
      ->type_name("DATE")
      ->check(date_time());

  auto* export_cmd = app.add_subcommand(
      "export", "Write a dataset file from the local cache (never contacts the server)");
  add_common(*export_cmd, common, verbosity, quiet);
  add_json(*export_cmd, common);
  export_cmd
      ->add_option_function<std::string>(
          "name", [&](const std::string& v) { exp.name = v; }, "A named [[export]] of the config")
      ->type_name("NAME");
  export_cmd->add_flag("--all", exp.all, "Run every [[export]] of the config");
  export_cmd
      ->add_option_function<std::string>(
          "--format",
          [&](const std::string& v) {
            exp.adhoc.format = v;
            exp.adhoc_format_given = true;
          },
          "json, jsonl, openai-chat, openai-dpo, kto, sharegpt or trl-dpo")
      ->type_name("FORMAT")
      ->check(one_of(kFormats,
                     [](const std::string& v) { return parse_export_format(v).has_value(); }));
  export_cmd->add_option("--out", exp.adhoc.out, "Output file, or - for standard output")
      ->type_name("PATH");
  export_cmd->add_option("--score-name", exp.adhoc.score_names, "Only scores with this name")
      ->type_name("NAME");
  export_cmd
      ->add_option("--value", exp.adhoc.values,
                   "Only scores with this value (label, number, true/false); repeatable")
      ->type_name("VALUE");
  export_cmd->add_option("--source", exp.adhoc.source, "Score source (default ANNOTATION)")
      ->type_name("SOURCE");
  export_cmd
      ->add_option_function<double>(
          "--min", [&](double v) { exp.adhoc.min = v; }, "Minimum numeric value")
      ->type_name("NUMBER");
  export_cmd
      ->add_option_function<double>(
          "--max", [&](double v) { exp.adhoc.max = v; }, "Maximum numeric value")
      ->type_name("NUMBER");
  export_cmd
      ->add_option_function<std::string>(
          "--since", [&](const std::string& v) { exp.adhoc.since = v; },
          "Scores from this time (inclusive)")
      ->type_name("DATE")
      ->check(date_time());
  export_cmd
      ->add_option_function<std::string>(
          "--until", [&](const std::string& v) { exp.adhoc.until = v; },
          "Scores before this time (exclusive)")
      ->type_name("DATE")
      ->check(date_time());
  export_cmd->add_option("--environment", exp.adhoc.environments, "Only this environment")
      ->type_name("ENV");
  export_cmd
      ->add_option("--pick", exp.adhoc.pick, "last-generation (default), all-generations or root")
      ->type_name("PICK")
      ->check(one_of(kPicks, [](const std::string& v) { return parse_pick(v).has_value(); }));
  export_cmd
      ->add_option_function<std::string>(
          "--positive", [&](const std::string& v) { exp.adhoc.positive = v; },
          "kto: the value that counts as a positive label (e.g. Good)")
      ->type_name("VALUE");
  export_cmd->add_flag_function(
      "--incremental", [&](std::int64_t) { exp.incremental = true; },
      "Named exports: only records new or changed since that export's last run");
  export_cmd
      ->add_option("--sharegpt-dialect", exp.adhoc.sharegpt_dialect,
                   "sharegpt: llamafactory (default) or axolotl role names")
      ->type_name("DIALECT");
  export_cmd
      ->add_option("--repeated-answer", exp.adhoc.repeated_answer,
                   "Input ending with the answer itself: keep (default), drop or merge")
      ->type_name("POLICY");
  export_cmd
      ->add_option("--non-alternating", exp.adhoc.non_alternating,
                   "Consecutive same-role messages: keep (default), drop or merge")
      ->type_name("POLICY");
  export_cmd
      ->add_option_function<std::uint64_t>(
          "--max-record-bytes", [&](std::uint64_t v) { exp.adhoc.max_record_bytes = v; },
          "Skip records larger than this (counted as record_too_large)")
      ->type_name("BYTES")
      ->check(CLI::PositiveNumber);
  export_cmd->add_flag("--drop-duplicates", exp.adhoc.drop_duplicates,
                       "Skip records identical to an earlier one (always counted)");
  export_cmd
      ->add_option_function<double>(
          "--validation-fraction", [&](double v) { exp.adhoc.validation_fraction = v; },
          "Also write PATH's .validation file with this share of traces, by a hash of the id")
      ->type_name("FRACTION");
  export_cmd->add_flag("--dry-run", exp.dry_run,
                       "Count what would be written and skipped; write nothing");
  export_cmd->add_flag("--fail-empty", exp.fail_empty, "Exit 65 when no record was exported");

  ScoresOptions scores;
  auto* scores_cmd = app.add_subcommand(
      "scores", "List score names, sources, types and values in the cache, with counts");
  add_common(*scores_cmd, common, verbosity, quiet);
  scores_cmd->add_flag("--json", scores.json, "Machine-readable JSON");

  auto* completion_cmd = app.add_subcommand(
      "completion", "Print the shell completion script for bash, zsh or fish on stdout");
  completion_cmd->add_option("shell", shell, "bash, zsh or fish")
      ->required()
      ->type_name("SHELL")
      ->check(one_of(kShells, [](const std::string& v) {
        return std::find(kShells.begin(), kShells.end(), v) != kShells.end();
      }));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      app.exit(e);
      return kExitOk;
    }
    // CLI11 quotes the bad value: a secret pasted into the wrong option must not be echoed.
    if (const char* secret = std::getenv("LANGFUSE_SECRET_KEY");
        secret && std::strlen(secret) >= 8) {
      log::add_secret(secret);
    }
    std::string commands;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      commands += (commands.empty() ? "" : ", ") + sub->get_name();
      if (argc > 1 && sub->get_name() == argv[1]) known = true;
    }
    if (argc > 1 && argv[1][0] != '-' && !known) {
      print_error(std::string("unknown command '") + argv[1] + "' (" + commands +
                  "; see `lfharvest --help`)");
      return kExitUsage;
    }
    // One line, with the command it belongs to, and the way to the help.
    std::string where;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->parsed()) where = sub->get_name();
    }
    print_error((where.empty() ? std::string() : where + ": ") + e.what() + " (see `lfharvest " +
                (where.empty() ? "" : where + " ") + "--help`)");
    return kExitUsage;
  }
  if (!common.overrides.log_level) {
    if (quiet) {
      common.overrides.log_level = "warn";
    } else if (verbosity == 1) {
      common.overrides.log_level = "debug";
    } else if (verbosity >= 2) {
      common.overrides.log_level = "trace";
    }
  }
  if (quiet) sync.no_progress = true;

  if (sync_cmd->parsed()) return cmd_sync(common, sync);
  if (run_cmd->parsed()) return cmd_run(common);
  if (status_cmd->parsed()) return cmd_status(common, status);
  if (check_cmd->parsed()) return cmd_check(common);
  if (retry_cmd->parsed()) return cmd_retry(common, retry);
  if (reconcile_cmd->parsed()) return cmd_reconcile(common, reconcile);
  if (export_cmd->parsed()) {
    for (const CLI::Option* option : export_cmd->get_options()) {
      if (option->count() > 0) exp.given.insert(option->get_name());
    }
    return cmd_export(common, exp);
  }
  if (scores_cmd->parsed()) return cmd_scores(common, scores);
  if (completion_cmd->parsed()) {
    auto script = completion_script(completion_spec(app, hints), shell);
    return cmd_completion(shell, script.value_or(""));
  }
  return kExitUsage;
}

}  // namespace lfh
