#include "sync/sync_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "core/log.h"
#include "core/time_format.h"

namespace lfh {

SyncEngine::SyncEngine(LangfuseApi& api, LangfuseApi& maintenance_api, CheckpointStore& store,
                       CircuitBreaker& breaker, Clock& clock, Random& random, SyncSettings settings)
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
      maintenance_(maintenance_api, store, maintenance_gate_, clock, random, settings_) {}

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
  const int workers = std::max(1, settings_.workers);
  std::mutex mu;
  std::condition_variable cv;
  std::deque<TraceTask> queue;
  std::set<std::string> busy;  // queued or being fetched
  int running = 0;
  uint64_t completions = 0;
  bool closing = false;
  bool deferred = false;  // a worker found the breaker open
  Status fatal;
  std::stop_source worker_stop;

  auto worker = [&](std::stop_token) {
    for (;;) {
      TraceTask task;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return closing || !queue.empty(); });
        if (queue.empty()) return;
        task = std::move(queue.front());
        queue.pop_front();
        ++running;
      }
      TraceFetchResult r = fetcher_.fetch(project_id_, task, worker_stop.get_token());
      {
        std::lock_guard lock(mu);
        --running;
        ++completions;
        busy.erase(task.trace_id);
        report.requests += r.requests;
        report.record_errors += r.record_errors;
        switch (r.outcome) {
          case TraceFetchResult::Outcome::kDone:
            ++report.traces_done;
            break;
          case TraceFetchResult::Outcome::kRetry:
            ++report.retries_scheduled;
            break;
          case TraceFetchResult::Outcome::kFailed:
            ++report.traces_failed;
            break;
          case TraceFetchResult::Outcome::kDeferred:
            deferred = true;
            break;
          case TraceFetchResult::Outcome::kCancelled:
            break;
          case TraceFetchResult::Outcome::kFatal:
            if (fatal.ok()) fatal = r.error;
            break;
        }
      }
      cv.notify_all();
    }
  };

  // Forward a stop request to the workers (they use their own source so that a fatal error
  // can stop them too).
  std::stop_callback forward(stop, [&] {
    worker_stop.request_stop();
    std::lock_guard lock(mu);
    cv.notify_all();
  });
  std::vector<std::jthread> pool;
  pool.reserve(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) pool.emplace_back(worker);

  int64_t total = 0;
  bool waiting = false;
  for (;;) {
    std::unique_lock lock(mu);
    if (!fatal.ok() || stop.stop_requested()) break;
    if (deferred && running == 0) {
      // The breaker is open: wait for the server (one probe per interval), then go on.
      lock.unlock();
      report_progress({"waiting", report.traces_done, total, 0});
      auto w = gate_.wait_until_closed(settings_.max_wait, stop);
      lock.lock();
      if (w == ServerGate::Wait::kStopped) break;
      if (w == ServerGate::Wait::kTooLong) {
        waiting = true;
        report.error =
            Status::Error(ErrorKind::kRetryable, "server unavailable (circuit breaker open)");
        break;
      }
      deferred = false;
    }
    if (!deferred && static_cast<int>(queue.size()) < workers) {
      std::vector<std::string> exclude(busy.begin(), busy.end());
      lock.unlock();
      auto due = store_.due_traces(project_id_, workers * 4, exclude);
      lock.lock();
      if (!due.ok()) {
        if (fatal.ok()) fatal = due.status();
        break;
      }
      for (auto& t : *due) {
        if (busy.insert(t.trace_id).second) {
          queue.push_back(std::move(t));
          ++total;
        }
      }
      cv.notify_all();
    }
    if (queue.empty() && running == 0 && !deferred) {
      lock.unlock();
      auto next = store_.next_due_at(project_id_);
      if (!next.ok()) {
        lock.lock();
        if (fatal.ok()) fatal = next.status();
        break;
      }
      if (!*next) break;  // nothing left to fetch
      auto at = parse_iso8601(**next);
      Millis wait = at ? std::chrono::duration_cast<Millis>(*at - clock_.now()) : Millis(0);
      if (wait > settings_.max_wait) {
        waiting = true;
        break;
      }
      report_progress({"waiting", report.traces_done, total, 0});
      if (wait.count() > 0 && !clock_.sleep_for(wait + Millis(1), stop)) break;
      continue;
    }
    const uint64_t seen = completions;
    const PassProgress progress{"traces", report.traces_done, total, report.retries_scheduled};
    lock.unlock();
    report_progress(progress);
    lock.lock();
    cv.wait(lock, [&] {
      return !fatal.ok() || stop.stop_requested() || (deferred && running == 0) ||
             completions != seen;
    });
  }
  {
    std::lock_guard lock(mu);
    closing = true;
    queue.clear();
    if (!fatal.ok()) worker_stop.request_stop();
  }
  cv.notify_all();
  pool.clear();  // joins
  if (!fatal.ok()) {
    report.outcome = PassReport::Outcome::kFatal;
    report.error = fatal;
  } else if (waiting) {
    report.outcome = PassReport::Outcome::kWaiting;
  }
}

MaintenanceReport SyncEngine::reconcile(const std::optional<std::string>& since,
                                        std::stop_token stop) {
  return maintenance_.run_all(project_id_, since, stop);
}

}  // namespace lfh
