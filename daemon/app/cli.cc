#include "app/cli.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>

#include "app/commands.h"
#include "app/exit_codes.h"
#include "core/version.h"

namespace lfh {
namespace {

// A crash must not write the secret key into a core file.
void disable_core_dumps() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void add_common(CLI::App& cmd, CommonOptions& common) {
  cmd.add_option_function<std::string>(
         "--config", [&](const std::string& v) { common.overrides.config_path = v; },
         "Configuration file (default /etc/lfharvest/lfharvest.toml when it exists)")
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
         "trace, debug, info, warn, error or off")
      ->type_name("LEVEL");
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
      "credentials).\nExit codes: 0 ok, 64 usage, 69 server unavailable, 74 database or file "
      "error, 75 traces waiting for a retry, 77 keys refused, 78 configuration error.\nRun "
      "`lfharvest COMMAND --help` for a command's options.");

  CommonOptions common;
  SyncOptions sync;
  StatusOptions status;
  RetryOptions retry;
  ReconcileOptions reconcile;
  ExportOptions exp;

  auto* sync_cmd = app.add_subcommand(
      "sync", "One pass: poll new scores, fetch every annotated trace that needs it, then exit");
  add_common(*sync_cmd, common);
  sync_cmd
      ->add_option_function<int>(
          "--max-wait", [&](int v) { sync.max_wait_seconds = v; },
          "Wait at most this long for a retry within the pass; exit 75 if more remain (default "
          "60)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0, 86400));

  auto* run_cmd = app.add_subcommand(
      "run", "Run as a service: a sync pass every poll interval until SIGTERM/SIGINT");
  add_common(*run_cmd, common);

  auto* status_cmd =
      app.add_subcommand("status", "Show progress, queue, failures and server info from the DB");
  add_common(*status_cmd, common);
  status_cmd->add_flag("--json", status.json, "Machine-readable JSON");
  status_cmd->add_flag("--prometheus", status.prometheus, "Prometheus text format");

  auto* check_cmd = app.add_subcommand(
      "check", "Validate config and secret, reach the server, validate the keys, print the plan");
  add_common(*check_cmd, common);

  auto* retry_cmd = app.add_subcommand("retry", "Put failed traces back in the fetch queue");
  add_common(*retry_cmd, common);
  bool failed_flag = false;
  retry_cmd->add_flag("--failed", failed_flag, "Failed traces (the default)");
  retry_cmd->add_flag("--waiting", retry.include_waiting,
                      "Also make traces waiting for a retry due now");

  auto* reconcile_cmd = app.add_subcommand(
      "reconcile", "Re-read scores now to catch edits, and sweep for deleted scores");
  add_common(*reconcile_cmd, common);
  reconcile_cmd
      ->add_option_function<std::string>(
          "--since", [&](const std::string& v) { reconcile.since = v; },
          "Re-scan scores from this date (default: the re-scan window)")
      ->type_name("DATE");

  auto* export_cmd = app.add_subcommand(
      "export", "Write a dataset file from the local cache (never contacts the server)");
  add_common(*export_cmd, common);
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
      ->type_name("FORMAT");
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
      ->type_name("DATE");
  export_cmd
      ->add_option_function<std::string>(
          "--until", [&](const std::string& v) { exp.adhoc.until = v; },
          "Scores before this time (exclusive)")
      ->type_name("DATE");
  export_cmd->add_option("--environment", exp.adhoc.environments, "Only this environment")
      ->type_name("ENV");
  export_cmd
      ->add_option("--pick", exp.adhoc.pick, "last-generation (default), all-generations or root")
      ->type_name("PICK");
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
  add_common(*scores_cmd, common);
  scores_cmd->add_flag("--json", scores.json, "Machine-readable JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

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
  return kExitUsage;
}

}  // namespace lfh
