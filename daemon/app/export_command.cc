// `lfharvest export`: a named [[export]] of the config, all of them (--all), or an ad-hoc one
// from flags. Reads the local database only; never contacts the server.
#include <cstdio>

#include "app/app_support.h"
#include "app/commands.h"
#include "app/exit_codes.h"
#include "core/log.h"
#include "export/exporter.h"
#include "service/signals.h"

namespace lfh {
namespace {

int export_one(const ExportSpec& spec, const Config& config, std::stop_token stop) {
  ExportRequest request;
  request.spec = spec;
  request.db_path = config.database;
  request.progress_on_tty = true;
  SystemClock clock;
  auto summary = run_export(request, clock, stop);
  if (!summary.ok()) {
    print_error((spec.name.empty() ? "export" : "export " + spec.name) + ": " +
                summary.status().message());
    return exit_code_for(summary.status());
  }
  // The summary goes to stderr: stdout may be the dataset itself (--out -).
  std::fprintf(stderr, "%s\n", format_summary_line(*summary).c_str());
  return kExitOk;
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
    for (const auto& spec : config->exports) {
      if (options.all || spec.name == *options.name) specs.push_back(spec);
    }
    if (specs.empty()) {
      print_error(options.all ? "export --all: the configuration has no [[export]] tables"
                              : "export: no [[export]] named \"" + *options.name +
                                    "\" in the configuration");
      return kExitUsage;
    }
    if (options.incremental) {
      for (auto& s : specs) s.incremental = *options.incremental;
    }
  } else {
    if (!options.adhoc_format_given) {
      print_error(
          "export: give --format (json, jsonl, openai-chat, openai-dpo, kto, sharegpt) "
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
    int rc = export_one(spec, *config, signals.stop_token());
    if (rc != kExitOk) worst = rc;
    if (signals.stop_token().stop_requested()) break;
  }
  return worst;
}

}  // namespace lfh
