#include "app/commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

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

using nlohmann::json;

void print_json(const json& doc) {
  std::string out = log::redact(doc.dump(2)) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

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

json maintenance_json(const MaintenanceReport& m) {
  return {{"rescan_ran", m.rescan_ran},
          {"sweep_ran", m.sweep_ran},
          {"edits", m.edits_seen},
          {"deletions", m.deletions_seen},
          {"restored", m.restored},
          {"new_scores", m.new_scores},
          {"requests", m.rescan_requests + m.sweep_requests},
          {"complete", !m.waiting && !m.cancelled && m.error.ok()}};
}

// sync --json: one document whatever happened, so a script can read the outcome.
json sync_json(const std::string& outcome, int exit_code, const PassReport* r,
               const std::string& error) {
  json doc = {{"command", "sync"}, {"outcome", outcome}, {"exit_code", exit_code}};
  if (r) {
    doc["scores"] = {
        {"seen", r->scores_seen}, {"new", r->scores_new}, {"changed", r->scores_changed}};
    doc["traces"] = {{"fetched", r->traces_done}, {"queued", r->traces_queued},
                     {"done", r->counts.done},    {"pending", r->counts.pending},
                     {"retry", r->counts.retry},  {"failed", r->counts.failed}};
    doc["requests"] = r->requests;
    doc["maintenance"] = maintenance_json(r->maintenance);
    doc["next_retry_at"] = r->next_retry_at ? json(*r->next_retry_at) : json(nullptr);
  }
  doc["error"] = error.empty() ? json(nullptr) : json(error);
  return doc;
}

// The outcome named in sync --json for a stop (CommandStop::report's code).
std::string stop_outcome(int exit_code) {
  if (exit_code == kExitUnavailable) return "unreachable";
  if (exit_code == kExitTempFail) return "waiting";
  return "stopped";
}

bool progress_wanted(const SyncOptions& options) {
  if (options.no_progress) return false;
  if (options.progress) return true;
  // Not in the journal, not into a file: only a person at a terminal wants the line.
  return ::isatty(STDERR_FILENO) == 1 && std::getenv("JOURNAL_STREAM") == nullptr;
}

}  // namespace

int cmd_sync(const CommonOptions& common, const SyncOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  if (options.max_wait_seconds) config->max_wait = Seconds(*options.max_wait_seconds);
  auto writer = take_writer_lock(*config, &code);
  if (!writer) return code;

  auto finish = [&](const std::string& outcome, int exit_code, const PassReport* report,
                    const std::string& error) {
    if (common.json) print_json(sync_json(outcome, exit_code, report, error));
    return exit_code;
  };
  SignalWatcher signals;
  signals.install();  // before any thread starts
  auto rt = Runtime::create(*config);
  if (!rt.ok()) {
    print_error(rt.status().message());
    return finish("error", exit_code_for(rt.status()), nullptr, rt.status().message());
  }
  Runtime& runtime = **rt;
  CommandStop stop(signals, runtime, config->max_wait);
  Status connected = connect_with_retry(runtime, config->max_wait, stop.token());
  if (connected.kind() == ErrorKind::kCancelled || (!connected.ok() && stop.requested())) {
    const int rc = stop.report();
    return finish(stop_outcome(rc), rc, nullptr, "");
  }
  if (!connected.ok()) {
    print_error(connected.message());
    const int rc = exit_code_for(connected);
    return finish(rc == kExitUnavailable ? "unreachable" : "error", rc, nullptr,
                  connected.message());
  }
  PassReport report;
  {
    const std::string project = runtime.engine().project_id();
    ProgressLine progress(progress_wanted(options), runtime.clock(), budget_per_second(*config),
                          runtime.watch(), [&runtime, project]() -> std::optional<int64_t> {
                            auto counts = runtime.store().trace_counts(project);
                            if (!counts.ok()) return std::nullopt;
                            return counts->pending + counts->retry;
                          });
    runtime.engine().on_progress = [&](const PassProgress& p) { progress.update(p); };
    report = runtime.engine().run_pass(stop.token());
    runtime.engine().on_progress = nullptr;
  }
  print_pass_summary(report);
  if (stop.requested()) {
    const int rc = stop.report();
    return finish(stop_outcome(rc), rc, &report, "");
  }
  switch (report.outcome) {
    case PassReport::Outcome::kComplete:
      if (report.counts.failed > 0) {
        log::warn(
            "{} traces failed for good; `lfharvest status` lists them and `lfharvest "
            "retry` queues them again",
            report.counts.failed);
      }
      return finish("complete", kExitOk, &report, "");
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
      return finish("waiting", kExitTempFail, &report,
                    report.error.ok() ? "" : report.error.message());
    case PassReport::Outcome::kCancelled: {
      const int rc = stop.report();
      return finish(stop_outcome(rc), rc, &report, "");
    }
    case PassReport::Outcome::kFatal: {
      print_error(report.error.message());
      const int rc = exit_code_for(report.error);
      return finish(rc == kExitUnavailable ? "unreachable" : "error", rc, &report,
                    report.error.message());
    }
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
                    : common.json      ? render_status_json(*snapshot)
                                       : render_status_text(*snapshot);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

int cmd_check(const CommonOptions& common) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  const Config& c = *config;
  json doc = {{"command", "check"},
              {"config", c.config_path.empty() ? json(nullptr) : json(c.config_path)},
              {"config_origin", c.config_origin.empty() ? json(nullptr) : json(c.config_origin)},
              {"secret_source", c.secret_source},
              {"database", c.database},
              {"base_url", c.base_url}};
  auto fail = [&](const Status& s, int rc) {
    print_error(s.message());
    if (common.json) {
      doc["ok"] = false;
      doc["exit_code"] = rc;
      doc["error"] = s.message();
      print_json(doc);
    }
    return rc;
  };
  auto say = [&](const std::string& line) {
    if (!common.json) std::printf("%s\n", line.c_str());
  };
  say(fmt::format("config        {}",
                  c.config_path.empty() ? std::string("(none: defaults and environment)")
                                        : fmt::format("{} ({})", c.config_path, c.config_origin)));
  say(fmt::format("secret key    from {}", c.secret_source));
  say(fmt::format("database      {}", c.database));
  SignalWatcher signals;
  signals.install();
  auto rt = Runtime::create(c);
  if (!rt.ok()) return fail(rt.status(), exit_code_for(rt.status()));
  CommandStop stop(signals, **rt, c.max_wait);
  // A diagnosis reports the first problem at once: one attempt, no backoff.
  Status s = connect_with_retry(**rt, c.max_wait, stop.token(), /*single_attempt=*/true);
  if (s.kind() == ErrorKind::kCancelled || (!s.ok() && stop.requested())) {
    const int rc = stop.report();
    if (common.json) {
      doc["ok"] = false;
      doc["exit_code"] = rc;
      print_json(doc);
    }
    return rc;
  }
  if (!s.ok()) return fail(s, exit_code_for(s));
  const auto& server = (*rt)->engine().server();
  const char* generation = api_generation_name((*rt)->api().generation());
  say(fmt::format("server        {}: Langfuse {}, {} API", c.base_url,
                  server.version.empty() ? "(version unknown)" : server.version, generation));
  say(fmt::format("keys          valid for project {}", (*rt)->engine().project_id()));
  auto join = [](const std::vector<std::string>& v, const char* all) {
    if (v.empty()) return std::string(all);
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ",") + x;
    return out;
  };
  say(fmt::format("plan          scores from source {}, names {}, environments {}",
                  join(c.sources, "any"), join(c.score_names, "all"), join(c.environments, "all")));
  std::string budget = c.requests_per_minute
                           ? fmt::format("{:g} requests/minute", *c.requests_per_minute)
                           : fmt::format("{:g} requests/second", c.requests_per_second);
  say(fmt::format("budget        {}, at most {} in flight, maintenance share {:.0f}%", budget,
                  c.max_in_flight, c.maintenance_share * 100));
  say(fmt::format("pages         {} scores, {} observations, response cap {} MiB",
                  c.score_page_size, c.observation_page_size, c.max_response_bytes >> 20));
  say(fmt::format("schedule      poll every {}s, re-scan every {}s over {} days, sweep every {}h",
                  c.poll_interval.count(), c.rescan_interval.count(),
                  c.rescan_window.count() / 86400, c.sweep_interval.count() / 3600));
  say("ok");
  if (common.json) {
    doc["ok"] = true;
    doc["exit_code"] = kExitOk;
    doc["server"] = {{"version", server.version.empty() ? json(nullptr) : json(server.version)},
                     {"api", generation}};
    doc["project"] = (*rt)->engine().project_id();
    doc["plan"] = {
        {"sources", c.sources}, {"score_names", c.score_names}, {"environments", c.environments}};
    doc["budget"] = {{"requests_per_second", budget_per_second(c)},
                     {"max_in_flight", c.max_in_flight},
                     {"maintenance_share", c.maintenance_share}};
    print_json(doc);
  }
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
  if (common.json) {
    print_json({{"command", "retry"},
                {"queued_again", *n},
                {"included_waiting", options.include_waiting}});
  } else {
    std::printf("%lld traces queued again; the next sync fetches them\n",
                static_cast<long long>(*n));
  }
  return kExitOk;
}

int cmd_reconcile(const CommonOptions& common, const ReconcileOptions& options) {
  int code = kExitOk;
  auto config = load_for_command(common, /*need_secret=*/true, &code);
  if (!config) return code;
  std::optional<std::string> since;
  if (options.since) {
    // cli.cc has checked it already; canonical form for the engine.
    auto t = canonical_iso8601(*options.since);
    if (!t) {
      print_error(fmt::format("reconcile: --since: not a date or time: {}", *options.since));
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
  CommandStop stop(signals, **rt, config->max_wait);
  Status connected = connect_with_retry(**rt, config->max_wait, stop.token());
  if (connected.kind() == ErrorKind::kCancelled || (!connected.ok() && stop.requested())) {
    return stop.report();
  }
  if (!connected.ok()) {
    print_error(connected.message());
    return exit_code_for(connected);
  }
  log::info("reconcile: re-scanning scores since {} and sweeping for deletions",
            since.value_or("the re-scan window start"));
  MaintenanceReport r = (*rt)->engine().reconcile(since, stop.token());
  log::info("reconcile: {} edits, {} deletions, {} restored, {} new scores; {} requests",
            r.edits_seen, r.deletions_seen, r.restored, r.new_scores,
            r.rescan_requests + r.sweep_requests);
  int rc = kExitOk;
  if (stop.requested()) {
    rc = stop.report();
  } else if (!r.error.ok()) {
    print_error(r.error.message());
    rc = exit_code_for(r.error);
  } else if (r.waiting) {
    rc = kExitTempFail;
  }
  if (common.json) {
    json doc = maintenance_json(r);
    doc["command"] = "reconcile";
    doc["since"] = since ? json(*since) : json(nullptr);
    doc["exit_code"] = rc;
    doc["error"] = r.error.ok() ? json(nullptr) : json(r.error.message());
    print_json(doc);
  }
  return rc;
}

int cmd_completion(const std::string& shell, const std::string& script) {
  if (script.empty()) {
    print_error("completion: unknown shell '" + shell + "' (bash, zsh or fish)");
    return kExitUsage;
  }
  std::fwrite(script.data(), 1, script.size(), stdout);
  return kExitOk;
}

}  // namespace lfh
