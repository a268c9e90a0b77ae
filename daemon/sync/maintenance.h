// Keeping the cache true to the server (Langfuse edits keep their id and timestamp; deletes
// leave no trace):
// - re-scan: every rescan_interval, re-read the scores of the last rescan_window and let the
//   store record every changed value, label or comment;
// - deletion sweep: every sweep_interval, ask the server for the known ids in batches (at most
//   100 ids and kMaxIdListBytes of encoded ids, so the request line stays under nginx's 8 KB)
//   and mark the missing ones deleted. A sweep is spread over several passes (a few batches per
//   pass) so it never holds up fresh annotations; it resumes at the last id checked.
//   A batch the server refuses with 414 or 431 is halved until it passes. A batch refused for
//   good (400, 404, or 414/431 with a single id) is skipped: nothing in it is marked, an error
//   event is recorded, the sweep cursor moves past it, and the slice ends with report.error set
//   (kPermanent), so the pass and `lfharvest sync`'s exit code show it. Over the legacy API the
//   sweep never asks for session, experiment or CORRECTION scores, which that API never lists.
// Both run on the maintenance API, whose budget is a share of the global one.
#pragma once

#include <optional>
#include <set>
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
  int64_t new_scores = 0;         // scores the re-scan found that the poll had not
  int64_t sweep_skipped_ids = 0;  // ids in batches the server refused for good
  bool waiting = false;           // stopped early on server trouble; resumes next pass
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

  /// Asks the server which of `ids` exist; halves on 414/431. Returns the ids checked (a prefix
  /// of `ids`) or the error; `present` gets the ids found.
  Result<std::size_t> check_batch(const std::vector<std::string>& ids,
                                  std::set<std::string>& present, ScorePassResult& pass,
                                  std::stop_token stop);

  LangfuseApi& api_;
  CheckpointStore& store_;
  Clock& clock_;
  const SyncSettings& settings_;
  ScorePoller poller_;
};

}  // namespace lfh
