// Keeping the cache true to the server (Langfuse edits keep their id and timestamp; deletes
// leave no trace):
// - re-scan: every rescan_interval, re-read the scores of the last rescan_window and let the
//   store record every changed value, label or comment;
// - deletion sweep: every sweep_interval, ask the server for the known ids in batches of 100
//   and mark the missing ones deleted. A sweep is spread over several passes (a few batches per
//   pass) so it never holds up fresh annotations; it resumes at the last id checked.
// Both run on the maintenance API, whose budget is a share of the global one.
#pragma once

#include <optional>
#include <stop_token>
#include <string>

#include "core/clock.h"
#include "core/random.h"
#include "langfuse/langfuse_api.h"
#include "store/checkpoint_store.h"
#include "sync/score_poller.h"
#include "sync/server_gate.h"
#include "sync/sync_settings.h"

namespace lfh {

struct MaintenanceReport {
  bool rescan_ran = false;
  bool rescan_complete = false;
  bool sweep_ran = false;
  bool sweep_complete = false;
  int64_t rescan_requests = 0;
  int64_t sweep_requests = 0;
  int64_t edits_seen = 0;
  int64_t deletions_seen = 0;
  int64_t restored = 0;
  int64_t new_scores = 0;  // scores the re-scan found that the poll had not
  bool waiting = false;    // stopped early on server trouble; resumes next pass
  bool cancelled = false;
  Status error;  // fatal problem (database, auth)
};

class Maintenance {
 public:
  Maintenance(LangfuseApi& api, CheckpointStore& store, ServerGate& gate, Clock& clock,
              Random& random, const SyncSettings& settings);

  /// Runs what is due: the re-scan when its interval has passed, a slice of the sweep when one
  /// is due or in progress. Streams never completed start their schedule now.
  MaintenanceReport run_due(const std::string& project, std::stop_token stop);

  /// Full re-scan (from `since`, default the re-scan window) and full sweep, now.
  MaintenanceReport run_all(const std::string& project, const std::optional<std::string>& since,
                            std::stop_token stop);

  /// Batches the sweep may send in one pass (at least 1): enough to finish within half the
  /// sweep interval at one pass per poll interval.
  static int64_t sweep_batches_per_pass(int64_t live_scores, Millis sweep_interval,
                                        Millis poll_interval);

 private:
  void rescan(const std::string& project, const std::string& from, MaintenanceReport& report,
              std::stop_token stop);
  /// Sweeps up to max_batches batches (negative: all).
  void sweep(const std::string& project, int64_t max_batches, MaintenanceReport& report,
             std::stop_token stop);
  bool due(const std::optional<std::string>& last_completed, Millis interval) const;

  CheckpointStore& store_;
  Clock& clock_;
  const SyncSettings& settings_;
  ScorePoller poller_;
};

}  // namespace lfh
