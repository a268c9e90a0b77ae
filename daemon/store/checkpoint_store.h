// The sync side of the database: scores, the per-trace fetch queue, observations, pass cursors,
// events and run records. Every method is one transaction; every write is an idempotent upsert,
// so a page applied twice (after a crash between commit and the next request) changes nothing.
//
// Thread-safe: one read-write connection guarded by a mutex (SQLite serializes writers anyway).
// Readers in other processes (status, export, sqlite3) see committed data through WAL.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "langfuse/model.h"
#include "store/sqlite.h"

namespace lfh {

/// Score streams: new scores, the edit re-scan, the deletion sweep.
inline constexpr const char* kStreamPoll = "poll";
inline constexpr const char* kStreamRescan = "rescan";
inline constexpr const char* kStreamSweep = "sweep";

struct PassState {
  std::optional<std::string> watermark;           // newest timestamp a completed pass saw
  std::optional<std::string> pass_from;           // in-progress pass: its fromTimestamp
  std::optional<std::string> pass_cursor;         // in-progress pass: next page's cursor
  std::optional<std::string> pass_max_timestamp;  // in-progress pass: newest timestamp so far
  std::optional<std::string> pass_started_at;     // set while a pass is in progress
  std::optional<std::string> last_completed_at;
  int64_t last_requests = 0;
  int64_t total_requests = 0;
  bool in_progress() const { return pass_started_at.has_value(); }
};

struct ScorePageCounts {
  int inserted = 0;  // score ids never seen before
  int changed = 0;   // value, label or comment differs from the cache (history row written)
  int restored = 0;  // was marked deleted, is back
  int unchanged = 0;
  int traces_queued = 0;  // traces newly put in the fetch queue
};

struct TraceTask {
  std::string trace_id;
  std::optional<std::string> cursor;  // resume here (nullopt: from the first page)
  int page_size = 0;                  // 0: the configured default
  int attempts = 0;
  int pages_fetched = 0;
  bool refetch = false;                    // a settle re-fetch of a trace that was already done
  bool big = false;                        // held as big: fetched alone, one observation per page
  bool size_known = false;                 // fetched completely before (its size has been seen)
  std::optional<std::string> anchor_time;  // the trace's first score timestamp, if any
};

struct TraceCounts {
  int64_t pending = 0, retry = 0, done = 0, failed = 0, refetch_scheduled = 0;
  int64_t total() const { return pending + retry + done + failed; }
};

class CheckpointStore {
 public:
  /// Opens (creating) the database, migrates it, prepares statements.
  static Result<std::unique_ptr<CheckpointStore>> open(const std::string& path, Clock& clock);

  const std::string& path() const { return db_.path(); }

  Status upsert_project(const ProjectInfo& project, const std::string& base_url,
                        const ServerInfo& server);

  // --- score streams -----------------------------------------------------------------------
  Result<PassState> pass_state(const std::string& project, const std::string& stream);
  /// Starts a pass (from = its fromTimestamp, nullopt for "all history").
  Status begin_pass(const std::string& project, const std::string& stream,
                    const std::optional<std::string>& from);
  /// Upserts a page of scores, queues their traces (when queue_traces), and moves the pass
  /// cursor to next_cursor — all in one transaction. When next_cursor is nullopt (last page)
  /// the same transaction finishes the pass (as finish_pass with pass_requests). A score whose
  /// value, label or comment changed gets a score_changes row.
  /// Newest wins: of several copies of one id (in the page, or the page and the cache) only the
  /// one with the greatest timestamp, then updatedAt, is kept; an older copy changes nothing and
  /// counts as unchanged. The pass's newest timestamp (the next watermark) is capped at
  /// newest_allowed (the server's "now") when given.
  Result<ScorePageCounts> apply_score_page(
      const std::string& project, const std::string& stream, const std::vector<Score>& scores,
      const std::optional<std::string>& next_cursor, bool queue_traces, int64_t pass_requests,
      const std::optional<std::string>& newest_allowed = std::nullopt);
  /// Ends the pass: watermark = max(old watermark, newest timestamp the pass saw), cursor cleared.
  Status finish_pass(const std::string& project, const std::string& stream, int64_t requests);
  /// Records a stream as completed now without a pass (the first complete harvest counts as a
  /// re-scan and a sweep, so their schedules start from it).
  Status mark_stream_completed(const std::string& project, const std::string& stream);
  /// Moves an in-progress pass's cursor without a page of scores (the sweep walks local ids).
  Status set_pass_cursor(const std::string& project, const std::string& stream,
                         const std::string& cursor);
  /// Abandons an in-progress pass (its cursor was rejected by the server).
  Status reset_pass(const std::string& project, const std::string& stream);

  // --- trace queue -------------------------------------------------------------------------
  /// Traces due now: pending, retry with next_attempt_at <= now, done with refetch_at <= now.
  /// Oldest queued first. Skips ids in `exclude` (in flight).
  Result<std::vector<TraceTask>> due_traces(const std::string& project, int limit,
                                            const std::vector<std::string>& exclude);
  /// Earliest future time something becomes due (retry or settle re-fetch); nullopt if none.
  Result<std::optional<std::string>> next_due_at(const std::string& project);
  /// Stores a page of a trace's observations and the cursor after it in one transaction. When
  /// next_cursor is nullopt the trace is done: attempts reset, fetched_at set, and a settle
  /// re-fetch is scheduled when its newest observation is younger than settle_time (only once:
  /// not after a re-fetch).
  Status apply_observation_page(const std::string& project, const TraceTask& task,
                                const std::vector<Observation>& observations,
                                const std::optional<std::string>& next_cursor, int page_size,
                                Millis settle_time);
  /// Failed attempt: state retry, attempts, next_attempt_at, last_error, page size to use next.
  Status mark_trace_retry(const std::string& project, const std::string& trace_id, int attempts,
                          SysTime next_attempt_at, const std::string& error, int page_size);
  /// Gives up: state failed with reason (too_large, max_attempts, permanent, ...).
  Status mark_trace_failed(const std::string& project, const std::string& trace_id,
                           const std::string& reason, const std::string& error);
  /// Puts failed traces (and with include_retry, waiting ones) back to pending, attempts 0.
  Result<int64_t> requeue(const std::optional<std::string>& project, bool include_retry);
  Result<TraceCounts> trace_counts(const std::string& project);
  /// Holds a trace as big from now on (big_since set the first time) and remembers the
  /// largest observation page it has returned. Idempotent. (store/trace_sizes.cc)
  Status mark_trace_big(const std::string& project, const std::string& trace_id,
                        int64_t page_bytes);

  // --- maintenance support -----------------------------------------------------------------
  /// Live (not deleted) score ids of the project, ordered by id, after `after_id`, up to limit.
  /// legacy_listed_only: only scores the legacy API lists (not session, experiment or
  /// CORRECTION scores), for a sweep over that API.
  Result<std::vector<std::string>> live_score_ids(const std::string& project,
                                                  const std::string& after_id, int limit,
                                                  bool legacy_listed_only = false);
  /// Marks these ids deleted (deleted_at = now, history row) unless already deleted.
  Result<int> mark_scores_deleted(const std::string& project, const std::vector<std::string>& ids);
  Result<int64_t> live_score_count(const std::string& project);

  // --- events and runs ---------------------------------------------------------------------
  /// Keeps the last 1,000 events.
  Status record_event(const std::optional<std::string>& project, const std::string& level,
                      const std::string& scope, const std::string& subject,
                      const std::string& message);
  Result<int64_t> start_run(const std::string& project);
  Status finish_run(int64_t run_id, const std::string& outcome, int64_t scores_seen,
                    int64_t traces_fetched, int64_t requests);

  Status set_meta(const std::string& key, const std::string& value);
  Result<std::optional<std::string>> meta(const std::string& key);

  /// PRAGMA wal_checkpoint(TRUNCATE): keeps the WAL small in a long-running service.
  Status checkpoint_wal();

 private:
  CheckpointStore(sql::Db db, Clock& clock) : db_(std::move(db)), clock_(clock) {}
  Status prepare_all();
  std::string now_text() const;
  Result<ScorePageCounts> apply_score_page_locked(const std::string& project,
                                                  const std::string& stream,
                                                  const std::vector<Score>& scores,
                                                  const std::optional<std::string>& next_cursor,
                                                  bool queue_traces,
                                                  const std::optional<std::string>& newest_allowed);
  Status finish_pass_locked(const std::string& project, const std::string& stream,
                            int64_t requests);

  std::mutex mu_;
  sql::Db db_;
  Clock& clock_;
  std::map<std::string, sql::Stmt> stmts_;  // prepared once, by name
  sql::Stmt& stmt(const char* name) { return stmts_.at(name); }
};

}  // namespace lfh
