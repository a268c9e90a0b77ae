#include "sync/sync_engine.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/log.h"
#include "core/time_format.h"

namespace lfh {

SyncEngine::SyncEngine(LangfuseApi& api, LangfuseApi& maintenance_api, CheckpointStore& store,
                       CircuitBreaker& breaker, Clock& clock, Random& random, SyncSettings settings,
                       RequestBudget* adaptive_budget)
    : api_(api),
      store_(store),
      breaker_(breaker),
      clock_(clock),
      random_(random),
      settings_(std::move(settings)),
      gate_(api, breaker, clock),
      maintenance_gate_(maintenance_api, breaker, clock),
      poller_(api, store, gate_, clock, random, settings_),
      fetcher_(api, store, gate_, clock, random, settings_),
      maintenance_(maintenance_api, store, maintenance_gate_, clock, random, settings_),
      queue_(std::make_unique<TraceFetchQueue>(fetcher_, store, gate_, clock, settings_,
                                               adaptive_budget)) {
  // What earlier processes learned about this server (careful mode, the counters).
  if (auto earlier = store_.meta(kServerSafetyMetaKey); earlier.ok() && *earlier) {
    if (auto parsed = server_safety_from_json(**earlier)) queue_->restore(*parsed);
  }
}

Status SyncEngine::connect(std::stop_token stop) {
  auto health = api_.health(stop);
  if (!health.ok()) {
    // An old server without /health: the client detects the generation on first use.
    if (health.status().kind() != ErrorKind::kNotFound) return health.status();
    server_ = ServerInfo{};
  } else {
    server_ = *health;
  }
  auto project = api_.project(stop);
  if (!project.ok()) return project.status();
  project_id_ = project->id;
  if (project_id_.empty()) {
    return Status::Error(ErrorKind::kFatal, "the server returned no project for these keys");
  }
  server_.generation = api_.generation();
  if (Status s = store_.upsert_project(*project, settings_.base_url, server_); !s.ok()) return s;
  log::info("connected to {} (Langfuse {}, {} API), project {}", settings_.base_url,
            server_.version.empty() ? "version unknown" : server_.version,
            api_generation_name(server_.generation), project_id_);
  return Status::Ok();
}

PassReport SyncEngine::run_pass(std::stop_token stop) {
  PassReport report;
  auto run_id = store_.start_run(project_id_);
  auto finish = [&](PassReport::Outcome outcome, Status error = Status::Ok()) {
    report.outcome = outcome;
    report.error = std::move(error);
    if (auto counts = store_.trace_counts(project_id_); counts.ok()) report.counts = *counts;
    if (auto next = store_.next_due_at(project_id_); next.ok()) report.next_retry_at = *next;
    static const char* kNames[] = {"complete", "waiting", "cancelled", "fatal"};
    if (run_id.ok()) {
      (void)store_.finish_run(*run_id, kNames[static_cast<int>(outcome)], report.scores_seen,
                              report.traces_done, report.requests);
    }
    if (!report.error.ok() && report.error.kind() != ErrorKind::kCancelled) {
      (void)store_.record_event(project_id_, "error", "sync", "pass", report.error.message());
    }
    return report;
  };

  // 1. New scores.
  report_progress({"scores", 0, 0, 0});
  ScorePassResult scores = poller_.poll_new(project_id_, stop);
  report.requests += scores.requests;
  report.scores_seen += scores.scores_seen;
  report.scores_new += scores.counts.inserted;
  report.scores_changed += scores.counts.changed;
  report.traces_queued += scores.counts.traces_queued;
  report.record_errors += scores.record_errors;
  switch (scores.outcome) {
    case ScorePassResult::Outcome::kComplete:
      break;
    case ScorePassResult::Outcome::kCancelled:
      return finish(PassReport::Outcome::kCancelled);
    case ScorePassResult::Outcome::kFatal:
      return finish(PassReport::Outcome::kFatal, scores.error);
    case ScorePassResult::Outcome::kWaiting:
      // Fetch what is already queued anyway; the poll resumes next pass.
      log::warn("score poll interrupted: {}", scores.error.message());
      break;
  }
  if (scores.scores_seen > 0 || scores.counts.traces_queued > 0) {
    log::info("scores: {} seen, {} new, {} changed, {} traces queued ({} requests)",
              scores.scores_seen, scores.counts.inserted, scores.counts.changed,
              scores.counts.traces_queued, scores.requests);
  }

  // 2. Traces.
  fetch_traces(report, stop);
  if (report.outcome == PassReport::Outcome::kFatal) {
    return finish(PassReport::Outcome::kFatal, report.error);
  }
  if (stop.stop_requested()) return finish(PassReport::Outcome::kCancelled);

  // 3. Maintenance, once fresh work is done (only after a complete poll).
  if (scores.outcome == ScorePassResult::Outcome::kComplete) {
    report_progress({"maintenance", report.traces_done, report.traces_done, 0});
    report.maintenance = maintenance_.run_due(project_id_, stop);
    report.requests += report.maintenance.rescan_requests + report.maintenance.sweep_requests;
    if (!report.maintenance.error.ok()) {
      return finish(PassReport::Outcome::kFatal, report.maintenance.error);
    }
    if (report.maintenance.cancelled) return finish(PassReport::Outcome::kCancelled);
    // Traces the re-scan found.
    if (report.maintenance.new_scores > 0) fetch_traces(report, stop);
    if (report.outcome == PassReport::Outcome::kFatal) {
      return finish(PassReport::Outcome::kFatal, report.error);
    }
  }
  if (stop.stop_requested()) return finish(PassReport::Outcome::kCancelled);
  if (report.outcome == PassReport::Outcome::kWaiting ||
      scores.outcome == ScorePassResult::Outcome::kWaiting) {
    return finish(PassReport::Outcome::kWaiting, report.error.ok() ? scores.error : report.error);
  }
  return finish(PassReport::Outcome::kComplete);
}

void SyncEngine::fetch_traces(PassReport& report, std::stop_token stop) {
  TraceFetchRound round = queue_->run(
      project_id_, stop, [&](int64_t done, int64_t total, int64_t retries, bool waiting) {
        report_progress({waiting ? "waiting" : "traces", report.traces_done + done,
                         report.traces_done + total, retries});
      });
  report.requests += round.requests;
  report.record_errors += round.record_errors;
  report.traces_done += round.traces_done;
  report.retries_scheduled += round.retries_scheduled;
  report.traces_failed += round.traces_failed;
  ServerSafety safety = queue_->safety();
  safety.updated_at = format_iso8601(clock_.now());
  (void)store_.set_meta(kServerSafetyMetaKey, server_safety_to_json(safety));
  if (!round.fatal.ok()) {
    report.outcome = PassReport::Outcome::kFatal;
    report.error = round.fatal;
  } else if (round.waiting) {
    report.outcome = PassReport::Outcome::kWaiting;
    if (!round.error.ok()) report.error = round.error;
  }
}

MaintenanceReport SyncEngine::reconcile(const std::optional<std::string>& since,
                                        std::stop_token stop) {
  return maintenance_.run_all(project_id_, since, stop);
}

}  // namespace lfh
