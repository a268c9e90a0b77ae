// `lfharvest export`: a named [[export]] of the config, all of them (--all), or an ad-hoc one
// from flags. Reads the local database only; never contacts the server.
#include <cstdio>
#include <nlohmann/json.hpp>

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

// The --json form of one export's outcome (the same figures as the summary line).
nlohmann::json summary_json(const std::string& name, const ExportSummary& s, int exit_code) {
  nlohmann::json skipped = nlohmann::json::object();
  for (const auto& [reason, count] : s.skipped_by_reason) skipped[reason] = count;
  nlohmann::json j = {{"export", name.empty() ? nlohmann::json() : nlohmann::json(name)},
                      {"exit_code", exit_code},
                      {"dry_run", s.dry_run},
                      {"records", s.records},
                      {"unchanged", s.unchanged},
                      {"skipped", skipped},
                      {"unfetched_traces", s.unfetched_traces},
                      {"bytes", s.bytes},
                      {"out", s.out_path},
                      {"manifest", s.manifest_path},
                      {"sha256", s.sha256},
                      {"repeated_answers", s.repeated_answers},
                      {"non_alternating", s.non_alternating},
                      {"duplicates", s.duplicates},
                      {"approx_tokens", s.approx_tokens},
                      {"approx_tokens_max", s.approx_tokens_max},
                      {"nothing_new", s.nothing_new},
                      {"output_closed", s.output_closed}};
  if (!s.validation_path.empty()) {
    j["validation"] = {{"records", s.validation_records},
                       {"bytes", s.validation_bytes},
                       {"out", s.validation_path},
                       {"manifest", s.validation_manifest_path},
                       {"sha256", s.validation_sha256}};
  }
  return j;
}

int export_one(const ExportSpec& spec, const Config& config, const ExportOptions& options,
               std::stop_token stop, nlohmann::json* report) {
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
    const int rc = exit_code_for(summary.status());
    if (report) report->push_back({{"export", spec.name}, {"exit_code", rc}, {"error", message}});
    return rc;
  }
  // The summary goes to stderr: stdout may be the dataset itself (--out -).
  std::fprintf(stderr, "%s\n", format_summary_line(*summary).c_str());
  std::vector<std::string> reasons;
  int rc = kExitOk;
  if (!summary->output_closed && summary->records + summary->validation_records == 0) {
    if (!summary->nothing_new) {
      auto catalog = read_score_catalog(config.database);
      if (catalog.ok()) {
        reasons = explain_empty_export(spec, *summary, *catalog);
      } else {
        log::debug("{}: cannot read the score catalog: {}", label, catalog.status().message());
      }
    }
    for (const std::string& why : reasons) print_error(label + ": nothing exported: " + why);
    if (options.fail_empty) rc = kExitEmptyExport;
  }
  if (report) {
    nlohmann::json j = summary_json(spec.name, *summary, rc);
    j["nothing_exported_because"] = reasons;
    report->push_back(std::move(j));
  }
  return rc;
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
  for (const auto& spec : specs) {
    if (common.json && spec.out == "-") {
      print_error("export: --json prints the report on standard output, which --out - holds");
      return kExitUsage;
    }
  }
  int worst = kExitOk;
  nlohmann::json report = nlohmann::json::array();
  for (const auto& spec : specs) {
    int rc =
        export_one(spec, *config, options, signals.stop_token(), common.json ? &report : nullptr);
    if (rc != kExitOk) worst = rc;
    if (signals.stop_token().stop_requested()) break;
  }
  if (common.json) {
    std::printf("%s\n", nlohmann::json({{"exports", report}, {"exit_code", worst}}).dump().c_str());
  }
  return worst;
}

}  // namespace lfh
