// One sync pass: connect, poll new scores, run due maintenance, then fetch every due trace with
// a pool of workers (as many as the in-flight cap), retrying within the pass while the next retry
// is no further away than max_wait.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "core/clock.h"
#include "core/random.h"
#include "core/status.h"
#include "langfuse/langfuse_api.h"
#include "store/checkpoint_store.h"
#include "sync/maintenance.h"
#include "sync/score_poller.h"
#include "sync/server_gate.h"
#include "sync/sync_settings.h"
#include "sync/trace_fetch_queue.h"
#include "sync/trace_fetcher.h"

namespace lfh {

struct PassReport {
  enum class Outcome {
    kComplete,   // nothing left to fetch (failed traces are reported, not waited for)
    kWaiting,    // traces (or the server) wait longer than max_wait: the next pass continues
    kCancelled,  // stop requested; everything done so far is committed
    kFatal,      // bad keys, unusable database, server unreachable after the retry policy
  };
  Outcome outcome = Outcome::kComplete;
  Status error;
  int64_t requests = 0;
  int64_t scores_seen = 0;
  int64_t scores_new = 0;
  int64_t scores_changed = 0;
  int64_t traces_queued = 0;
  int64_t traces_done = 0;
  int64_t traces_failed = 0;
  int64_t retries_scheduled = 0;
  int64_t record_errors = 0;
  MaintenanceReport maintenance;
  std::optional<std::string> next_retry_at;
  TraceCounts counts;  // queue by state at the end of the pass
};

/// A snapshot for progress lines and sd_notify STATUS=.
struct PassProgress {
  std::string phase;  // "scores", "traces", "maintenance", "waiting"
  int64_t traces_done = 0;
  int64_t traces_total = 0;  // due when the trace phase started (grows as retries come due)
  int64_t retries_waiting = 0;
};

class SyncEngine {
 public:
  /// `maintenance_api` is the same API behind the smaller maintenance share of the budget.
  /// `adaptive_budget` (optional): the request budget the trace queue slows down when the
  /// server shows distress (see TraceFetchQueue).
  SyncEngine(LangfuseApi& api, LangfuseApi& maintenance_api, CheckpointStore& store,
             CircuitBreaker& breaker, Clock& clock, Random& random, SyncSettings settings,
             RequestBudget* adaptive_budget = nullptr);

  /// Health check (generation), key check (project id); records the project. kAuth on bad
  /// keys, kRetryable when the server cannot be reached.
  Status connect(std::stop_token stop);
  const std::string& project_id() const { return project_id_; }
  const ServerInfo& server() const { return server_; }

  PassReport run_pass(std::stop_token stop);

  /// Forces a full re-scan and deletion sweep (lfharvest reconcile).
  MaintenanceReport reconcile(const std::optional<std::string>& since, std::stop_token stop);

  /// Called from the pass loop (the thread that called run_pass) after each step.
  std::function<void(const PassProgress&)> on_progress;

  SyncSettings& settings() { return settings_; }

  /// Adaptive concurrency, largest response, outages and crashes (also persisted in the
  /// database's meta table as "server_safety" after each trace round, for `status`).
  ServerSafety safety() const { return queue_->safety(); }

 private:
  void fetch_traces(PassReport& report, std::stop_token stop);
  void report_progress(const PassProgress& p) {
    if (on_progress) on_progress(p);
  }

  LangfuseApi& api_;
  CheckpointStore& store_;
  CircuitBreaker& breaker_;
  Clock& clock_;
  Random& random_;
  SyncSettings settings_;
  ServerGate gate_;
  ServerGate maintenance_gate_;
  ScorePoller poller_;
  TraceFetcher fetcher_;
  Maintenance maintenance_;
  std::unique_ptr<TraceFetchQueue> queue_;
  std::string project_id_;
  ServerInfo server_;
};

}  // namespace lfh
