// `lfharvest export`: a named [[export]] of the config, all of them (--all), or an ad-hoc one
// from flags. Reads the local database only; never contacts the server.
#include <cstdio>

#include "app/app_support.h"
#include "app/commands.h"
#include "app/exit_codes.h"
#include "core/log.h"
#include "export/explain_empty.h"
#include "export/exporter.h"
#include "service/signals.h"
#include "store/score_catalog.h"

namespace lfh {
namespace {

/// --fail-empty: the export wrote no record (EX_DATAERR: nothing usable in the input). Documented
/// in the README and the man page.
constexpr int kExitEmptyExport = 65;

// Command-line export options win over a named export's settings, as everywhere else.
void apply_overrides(const ExportOptions& options, ExportSpec& spec) {
  const ExportSpec& flags = options.adhoc;
  auto given = [&](const char* name) { return options.given.contains(name); };
  if (given("--out")) spec.out = flags.out;
  if (given("--score-name")) spec.score_names = flags.score_names;
  if (given("--value")) spec.values = flags.values;
  if (given("--source")) spec.source = flags.source;
  if (given("--min")) spec.min = flags.min;
  if (given("--max")) spec.max = flags.max;
  if (given("--since")) spec.since = flags.since;
  if (given("--until")) spec.until = flags.until;
  if (given("--environment")) spec.environments = flags.environments;
  if (given("--pick")) spec.pick = flags.pick;
  if (given("--positive")) spec.positive = flags.positive;
  if (given("--sharegpt-dialect")) spec.sharegpt_dialect = flags.sharegpt_dialect;
  if (given("--repeated-answer")) spec.repeated_answer = flags.repeated_answer;
  if (given("--non-alternating")) spec.non_alternating = flags.non_alternating;
  if (given("--max-record-bytes")) spec.max_record_bytes = flags.max_record_bytes;
  if (given("--drop-duplicates")) spec.drop_duplicates = flags.drop_duplicates;
  if (given("--validation-fraction")) spec.validation_fraction = flags.validation_fraction;
}

int export_one(const ExportSpec& spec, const Config& config, const ExportOptions& options,
               std::stop_token stop) {
  const std::string label = spec.name.empty() ? "export" : "export " + spec.name;
  ExportRequest request;
  request.spec = spec;
  request.db_path = config.database;
  request.progress_on_tty = true;
  request.dry_run = options.dry_run;
  SystemClock clock;
  auto summary = run_export(request, clock, stop);
  if (!summary.ok()) {
    std::string message = summary.status().message();
    // run_export's messages start with "export: "; say it once.
    if (message.starts_with("export: ")) message.erase(0, 8);
    print_error(label + ": " + message);
    return exit_code_for(summary.status());
  }
  // The summary goes to stderr: stdout may be the dataset itself (--out -).
  std::fprintf(stderr, "%s\n", format_summary_line(*summary).c_str());
  if (summary->output_closed) return kExitOk;  // the reader had enough (| head)
  if (summary->records + summary->validation_records > 0) return kExitOk;
  if (!summary->nothing_new) {
    auto catalog = read_score_catalog(config.database);
    if (catalog.ok()) {
      for (const std::string& why : explain_empty_export(spec, *summary, *catalog)) {
        print_error(label + ": nothing exported: " + why);
      }
    } else {
      log::debug("{}: cannot read the score catalog: {}", label, catalog.status().message());
    }
  }
  return options.fail_empty ? kExitEmptyExport : kExitOk;
}

}  // namespace

int cmd_export(const CommonOptions& common, const ExportOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/false, &code);
  if (!config) return code;
  SignalWatcher signals;
  signals.install();

  std::vector<ExportSpec> specs;
  if (options.all || options.name) {
    if (options.adhoc_format_given) {
      print_error("export: give either a named export (or --all) or --format, not both");
      return kExitUsage;
    }
    if (options.all && options.given.contains("--out")) {
      print_error("export --all: --out names one file; each [[export]] writes its own");
      return kExitUsage;
    }
    for (const auto& spec : config->exports) {
      if (options.all || spec.name == *options.name) specs.push_back(spec);
    }
    if (specs.empty()) {
      print_error(options.all ? "export --all: the configuration has no [[export]] tables"
                              : "export: no [[export]] named \"" + *options.name +
                                    "\" in the configuration");
      return kExitUsage;
    }
    for (auto& s : specs) {
      apply_overrides(options, s);
      if (options.incremental) s.incremental = *options.incremental;
    }
  } else {
    if (!options.adhoc_format_given) {
      print_error(
          "export: give --format (json, jsonl, openai-chat, openai-dpo, kto, sharegpt, trl-dpo) "
          "and --out, or the name of an [[export]] from the configuration");
      return kExitUsage;
    }
    if (options.adhoc.out.empty()) {
      print_error("export: give --out PATH (or --out - for standard output)");
      return kExitUsage;
    }
    if (options.incremental) {
      print_error("export: --incremental needs a named export (its state is kept by name)");
      return kExitUsage;
    }
    specs.push_back(options.adhoc);
  }
  int worst = kExitOk;
  for (const auto& spec : specs) {
    int rc = export_one(spec, *config, options, signals.stop_token());
    if (rc != kExitOk) worst = rc;
    if (signals.stop_token().stop_requested()) break;
  }
  return worst;
}

}  // namespace lfh
