#include "app/commands.h"

#include <fmt/format.h>

#include <cstdio>

#include "app/app_support.h"
#include "app/exit_codes.h"
#include "core/log.h"
#include "core/time_format.h"
#include "service/signals.h"
#include "service/status_view.h"
#include "store/checkpoint_store.h"
#include "store/status_queries.h"

namespace lfh {
namespace {

void print_pass_summary(const PassReport& r) {
  std::string line = fmt::format(
      "sync: {} scores seen ({} new, {} changed), {} traces fetched, {} waiting for a retry, "
      "{} failed; {} requests",
      r.scores_seen, r.scores_new, r.scores_changed, r.traces_done, r.counts.retry, r.counts.failed,
      r.requests);
  if (r.maintenance.rescan_ran || r.maintenance.sweep_ran) {
    line += fmt::format("; maintenance: {} edits, {} deletions ({} requests)",
                        r.maintenance.edits_seen, r.maintenance.deletions_seen,
                        r.maintenance.rescan_requests + r.maintenance.sweep_requests);
  }
  log::info("{}", line);
}

}  // namespace

int cmd_sync(const CommonOptions& common, const SyncOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  if (options.max_wait_seconds) config->max_wait = Seconds(*options.max_wait_seconds);
  auto writer = take_writer_lock(*config, &code);
  if (!writer) return code;

  SignalWatcher signals;
  signals.install();  // before any thread starts
  auto rt = Runtime::create(*config);
  if (!rt.ok()) {
    print_error(rt.status().message());
    return exit_code_for(rt.status());
  }
  Runtime& runtime = **rt;
  bool waiting = false;
  Status connected = connect_with_retry(runtime, config->max_wait, signals.stop_token(), &waiting);
  if (connected.kind() == ErrorKind::kCancelled) return kExitOk;
  if (!connected.ok()) {
    print_error(connected.message());
    // Not every retry was spent: the server may answer the next run (like a waiting trace).
    return waiting ? kExitTempFail : exit_code_for(connected);
  }
  ProgressLine progress;
  runtime.engine().on_progress = [&](const PassProgress& p) { progress.update(p); };
  PassReport report = runtime.engine().run_pass(signals.stop_token());
  progress.clear();
  print_pass_summary(report);
  switch (report.outcome) {
    case PassReport::Outcome::kComplete:
      if (report.counts.failed > 0) {
        log::warn(
            "{} traces failed for good; `lfharvest status` lists them and `lfharvest "
            "retry` queues them again",
            report.counts.failed);
      }
      return kExitOk;
    case PassReport::Outcome::kWaiting:
      if (!report.error.ok()) {
        log::warn(
            "the server did not answer well enough to finish this pass ({}); the next "
            "run continues where this one stopped",
            report.error.message());
      }
      log::info("stopping with {} traces waiting{}; the next pass continues",
                report.counts.retry + report.counts.pending,
                report.next_retry_at ? " (next retry at " + *report.next_retry_at + ")" : "");
      return kExitTempFail;
    case PassReport::Outcome::kCancelled:
      log::info("stopped; everything fetched so far is saved");
      return kExitOk;
    case PassReport::Outcome::kFatal:
      print_error(report.error.message());
      return exit_code_for(report.error);
  }
  return kExitFailure;
}

int cmd_status(const CommonOptions& common, const StatusOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/false, &code);
  if (!config) return code;
  auto snapshot = read_status(config->database);
  if (!snapshot.ok()) {
    print_error(snapshot.status().message());
    return exit_code_for(snapshot.status());
  }
  std::string out = options.prometheus ? render_prometheus(*snapshot)
                    : options.json     ? render_status_json(*snapshot)
                                       : render_status_text(*snapshot);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

int cmd_check(const CommonOptions& common) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  const Config& c = *config;
  std::printf("config        %s\n",
              c.config_path.empty() ? "(none: defaults and environment)" : c.config_path.c_str());
  std::printf("secret key    from %s\n", c.secret_source.c_str());
  std::printf("database      %s\n", c.database.c_str());
  auto rt = Runtime::create(c);
  if (!rt.ok()) {
    print_error(rt.status().message());
    return exit_code_for(rt.status());
  }
  SignalWatcher signals;
  Status s = (*rt)->engine().connect(signals.stop_token());
  if (!s.ok()) {
    print_error(s.message());
    return exit_code_for(s);
  }
  (*rt)->share_generation();
  const auto& server = (*rt)->engine().server();
  std::printf("server        %s: Langfuse %s, %s API\n", c.base_url.c_str(),
              server.version.empty() ? "(version unknown)" : server.version.c_str(),
              api_generation_name((*rt)->api().generation()));
  std::printf("keys          valid for project %s\n", (*rt)->engine().project_id().c_str());
  auto join = [](const std::vector<std::string>& v, const char* all) {
    if (v.empty()) return std::string(all);
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
    return out;
  };
  std::printf("plan          scores from source %s, names %s, environments %s\n",
              join(c.sources, "any").c_str(), join(c.score_names, "all").c_str(),
              join(c.environments, "all").c_str());
  std::string budget = c.requests_per_minute
                           ? fmt::format("{:g} requests/minute", *c.requests_per_minute)
                           : fmt::format("{:g} requests/second", c.requests_per_second);
  std::printf("budget        %s, at most %d in flight, maintenance share %.0f%%\n", budget.c_str(),
              c.max_in_flight, c.maintenance_share * 100);
  std::printf("pages         %d scores, %d observations, response cap %zu MiB\n", c.score_page_size,
              c.observation_page_size, c.max_response_bytes >> 20);
  std::printf(
      "schedule      poll every %llds, re-scan every %llds over %lld days, sweep every "
      "%lldh\n",
      static_cast<long long>(c.poll_interval.count()),
      static_cast<long long>(c.rescan_interval.count()),
      static_cast<long long>(c.rescan_window.count() / 86400),
      static_cast<long long>(c.sweep_interval.count() / 3600));
  std::printf("ok\n");
  return kExitOk;
}

int cmd_retry(const CommonOptions& common, const RetryOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/false, &code);
  if (!config) return code;
  auto writer = take_writer_lock(*config, &code);
  if (!writer) return code;
  SystemClock clock;
  auto store = CheckpointStore::open(config->database, clock);
  if (!store.ok()) {
    print_error(store.status().message());
    return exit_code_for(store.status());
  }
  auto n = (*store)->requeue(std::nullopt, options.include_waiting);
  if (!n.ok()) {
    print_error(n.status().message());
    return exit_code_for(n.status());
  }
  std::printf("%lld traces queued again; the next sync fetches them\n", static_cast<long long>(*n));
  return kExitOk;
}

int cmd_reconcile(const CommonOptions& common, const ReconcileOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  std::optional<std::string> since;
  if (options.since) {
    auto t = canonical_iso8601(*options.since);
    if (!t) {
      print_error(fmt::format("--since: not a date or time: {}", *options.since));
      return kExitUsage;
    }
    since = *t;
  }
  auto writer = take_writer_lock(*config, &code);
  if (!writer) return code;
  SignalWatcher signals;
  signals.install();
  auto rt = Runtime::create(*config);
  if (!rt.ok()) {
    print_error(rt.status().message());
    return exit_code_for(rt.status());
  }
  Status connected = connect_with_retry(**rt, config->max_wait, signals.stop_token());
  if (!connected.ok()) {
    print_error(connected.message());
    return exit_code_for(connected);
  }
  log::info("reconcile: re-scanning scores since {} and sweeping for deletions",
            since.value_or("the re-scan window start"));
  MaintenanceReport r = (*rt)->engine().reconcile(since, signals.stop_token());
  log::info("reconcile: {} edits, {} deletions, {} restored, {} new scores; {} requests",
            r.edits_seen, r.deletions_seen, r.restored, r.new_scores,
            r.rescan_requests + r.sweep_requests);
  if (!r.error.ok()) {
    print_error(r.error.message());
    return exit_code_for(r.error);
  }
  if (r.waiting) return kExitTempFail;
  return kExitOk;
}

}  // namespace lfh
