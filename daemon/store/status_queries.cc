#include "store/status_queries.h"

#include <fmt/format.h>

#include <filesystem>

#include "store/schema.h"
#include "store/server_safety.h"
#include "store/sqlite.h"

namespace lfh {
namespace {

// Runs a query and calls row(stmt) for each row.
template <typename F>
Status each_row(sql::Db& db, const char* query, F row) {
  auto st = db.prepare(query);
  if (!st.ok()) return st.status();
  for (;;) {
    auto r = st->step();
    if (!r.ok()) return r.status();
    if (!*r) return Status::Ok();
    row(*st);
  }
}

}  // namespace

Result<StatusSnapshot> read_status(const std::string& db_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(db_path, ec)) {
    return Status::Error(ErrorKind::kIo,
                         fmt::format("{}: no database yet (run `lfharvest sync` first, or pass "
                                     "--db)",
                                     db_path));
  }
  auto db = sql::Db::open(db_path, sql::Db::Mode::kReadOnly);
  if (!db.ok()) return db.status();
  StatusSnapshot s;
  s.db_path = db_path;
  auto file_size = [&](const std::string& p) -> int64_t {
    auto n = fs::file_size(p, ec);
    return ec ? 0 : static_cast<int64_t>(n);
  };
  s.wal_bytes = file_size(db_path + "-wal");
  s.db_bytes = file_size(db_path) + s.wal_bytes;
  auto version = schema_version(*db);
  if (!version.ok()) return version.status();
  s.schema_version = *version;
  if (*version == 0) return s;  // created but never migrated: nothing to show

  if (Status st = db->exec("BEGIN"); !st.ok()) return st;
  Status st = each_row(
      *db, R"(
      SELECT project_id, coalesce(name, ''), base_url, coalesce(server_version, ''),
             coalesce(api_generation, ''), last_seen_at
      FROM projects ORDER BY project_id)",
      [&](sql::Stmt& q) {
        s.projects.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.text(4), q.text(5)});
      });
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT project_id, source, name, sum(deleted_at IS NULL), sum(deleted_at IS NOT NULL)
        FROM scores GROUP BY project_id, source, name ORDER BY project_id, source, name)",
                  [&](sql::Stmt& q) {
                    s.scores.push_back({q.text(0), q.text(1), q.text(2), q.int64(3), q.int64(4)});
                  });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT project_id, state, count(*), sum(refetch_at IS NOT NULL), sum(observation_count)
        FROM traces GROUP BY project_id, state)",
                  [&](sql::Stmt& q) {
                    auto& t = s.traces[q.text(0)];
                    std::string state = q.text(1);
                    int64_t n = q.int64(2);
                    if (state == "pending") t.pending = n;
                    if (state == "retry") t.retry = n;
                    if (state == "done") t.done = n;
                    if (state == "failed") t.failed = n;
                    t.refetch_scheduled += q.int64(3);
                    t.observations += q.int64(4);
                  });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT project_id, min(next_attempt_at) FROM traces WHERE state = 'retry'
        GROUP BY project_id)",
                  [&](sql::Stmt& q) { s.traces[q.text(0)].next_retry_at = q.opt_text(1); });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT coalesce(failure_reason, 'unknown'), count(*) FROM traces WHERE state = 'failed'
        GROUP BY 1 ORDER BY 1)",
                  [&](sql::Stmt& q) { s.failures_by_reason[q.text(0)] = q.int64(1); });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT project_id, trace_id, coalesce(failure_reason, ''), coalesce(last_error, '')
        FROM traces WHERE state = 'failed' ORDER BY queued_at DESC, trace_id LIMIT 20)",
                  [&](sql::Stmt& q) {
                    s.failures.push_back({q.text(0), q.text(1), q.text(2), q.text(3)});
                  });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT project_id, stream, watermark, last_completed_at, pass_started_at,
               coalesce(last_requests, 0), total_requests
        FROM sync_state ORDER BY project_id, stream)",
                  [&](sql::Stmt& q) {
                    s.streams.push_back({q.text(0), q.text(1), q.opt_text(2), q.opt_text(3),
                                         q.opt_text(4), q.int64(5), q.int64(6)});
                  });
  }
  if (st.ok()) {
    st = each_row(
        *db, R"(
        SELECT at, level, scope, coalesce(subject, ''), message FROM events
        WHERE level IN ('warn', 'error') ORDER BY id DESC LIMIT 10)",
        [&](sql::Stmt& q) {
          s.recent_events.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.text(4)});
        });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT sum(change = 'edited'), sum(change = 'deleted') FROM score_changes)",
                  [&](sql::Stmt& q) {
                    s.edits_seen = q.int64(0);
                    s.deletions_seen = q.int64(1);
                  });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT started_at, finished_at, outcome, scores_seen, traces_fetched, requests
        FROM sync_runs ORDER BY id DESC LIMIT 1)",
                  [&](sql::Stmt& q) {
                    s.last_run = StatusSnapshot::Run{q.text(0),  q.opt_text(1), q.opt_text(2),
                                                     q.int64(3), q.int64(4),    q.int64(5)};
                  });
  }
  if (st.ok()) {
    st = each_row(*db, R"(
        SELECT max(last_completed_at) FROM sync_state WHERE stream = 'poll')",
                  [&](sql::Stmt& q) { s.last_successful_poll = q.opt_text(0); });
  }
  if (st.ok()) {
    st = each_row(*db, R"(SELECT value FROM meta WHERE key = 'service')",
                  [&](sql::Stmt& q) { s.service_json = q.text(0); });
  }
  if (st.ok()) {
    st = each_row(*db, R"(SELECT value FROM meta WHERE key = 'server_safety')", [&](sql::Stmt& q) {
      if (auto safety = server_safety_from_json(q.text(0))) s.server_safety = *safety;
    });
  }
  if (st.ok() && s.schema_version >= 4) {  // size learning came with migration 0004
    st = each_row(*db, R"(
        SELECT count(big_since), coalesce(max(largest_page_bytes), 0) FROM traces)",
                  [&](sql::Stmt& q) {
                    s.big_traces = q.int64(0);
                    s.largest_big_page_bytes = q.int64(1);
                  });
  }
  (void)db->exec("COMMIT");
  if (!st.ok()) return st;
  return s;
}

}  // namespace lfh
