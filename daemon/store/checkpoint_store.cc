#include "store/checkpoint_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <string_view>

#include "core/time_format.h"
#include "store/schema.h"

namespace lfh {
namespace {

// (timestamp, updatedAt) of a stored score is newer than an incoming one's. A missing updatedAt
// counts as the oldest.
bool is_newer(const std::string& stored_ts, const std::optional<std::string>& stored_updated,
              const std::string& incoming_ts, const std::optional<std::string>& incoming_updated) {
  if (stored_ts != incoming_ts) return stored_ts > incoming_ts;
  return stored_updated.value_or("") > incoming_updated.value_or("");
}

// The newest copy of each id in a page (the server does not de-duplicate), in page order.
std::vector<const Score*> newest_per_id(const std::vector<Score>& scores) {
  std::map<std::string_view, std::size_t> index;
  std::vector<const Score*> out;
  for (const Score& score : scores) {
    auto [it, inserted] = index.emplace(score.id, out.size());
    if (inserted) {
      out.push_back(&score);
    } else if (!is_newer(out[it->second]->timestamp, out[it->second]->updated_at, score.timestamp,
                         score.updated_at)) {
      out[it->second] = &score;  // equal or newer: the later copy wins, as a re-read would
    }
  }
  return out;
}

// Every statement the sync side runs, prepared once at open.
const std::pair<const char*, const char*> kStatements[] = {
    {"project_upsert", R"(
      INSERT INTO projects (project_id, name, base_url, server_version, api_generation,
                            first_seen_at, last_seen_at)
      VALUES (:id, :name, :base_url, :version, :generation, :now, :now)
      ON CONFLICT (project_id) DO UPDATE SET
        name = excluded.name, base_url = excluded.base_url,
        server_version = excluded.server_version, api_generation = excluded.api_generation,
        last_seen_at = excluded.last_seen_at)"},
    {"pass_get", R"(
      SELECT watermark, pass_from, pass_cursor, pass_max_timestamp, pass_started_at,
             last_completed_at, last_requests, total_requests
      FROM sync_state WHERE project_id = :p AND stream = :s)"},
    {"pass_begin", R"(
      INSERT INTO sync_state (project_id, stream, pass_from, pass_cursor, pass_max_timestamp,
                              pass_started_at)
      VALUES (:p, :s, :from, NULL, NULL, :now)
      ON CONFLICT (project_id, stream) DO UPDATE SET
        pass_from = excluded.pass_from, pass_cursor = NULL, pass_max_timestamp = NULL,
        pass_started_at = excluded.pass_started_at)"},
    {"pass_advance", R"(
      UPDATE sync_state SET
        pass_cursor = :cursor,
        pass_max_timestamp = CASE WHEN pass_max_timestamp IS NULL OR :max_ts > pass_max_timestamp
                                  THEN :max_ts ELSE pass_max_timestamp END
      WHERE project_id = :p AND stream = :s)"},
    {"pass_finish", R"(
      UPDATE sync_state SET
        watermark = CASE WHEN pass_max_timestamp IS NOT NULL
                          AND (watermark IS NULL OR pass_max_timestamp > watermark)
                         THEN pass_max_timestamp ELSE watermark END,
        pass_from = NULL, pass_cursor = NULL, pass_max_timestamp = NULL, pass_started_at = NULL,
        last_completed_at = :now, last_requests = :requests,
        total_requests = total_requests + :requests
      WHERE project_id = :p AND stream = :s)"},
    {"stream_completed", R"(
      INSERT INTO sync_state (project_id, stream, last_completed_at, last_requests)
      VALUES (:p, :s, :now, 0)
      ON CONFLICT (project_id, stream) DO UPDATE SET last_completed_at = excluded.last_completed_at)"},
    {"pass_set_cursor", R"(
      UPDATE sync_state SET pass_cursor = :cursor WHERE project_id = :p AND stream = :s)"},
    {"pass_reset", R"(
      UPDATE sync_state SET pass_cursor = NULL, pass_max_timestamp = NULL
      WHERE project_id = :p AND stream = :s)"},
    {"score_get", R"(
      SELECT value_json, string_value, comment, deleted_at, timestamp, updated_at FROM scores
      WHERE project_id = :p AND score_id = :id)"},
    {"score_upsert", R"(
      INSERT INTO scores (project_id, score_id, name, source, data_type, value_json, value_num,
        string_value, comment, subject_kind, trace_id, observation_id, session_id, environment,
        config_id, queue_id, author_user_id, metadata_json, timestamp, created_at, updated_at,
        raw_json, first_seen_at, last_seen_at, changed_at, deleted_at)
      VALUES (:p, :id, :name, :source, :data_type, :value_json, :value_num, :string_value,
        :comment, :subject_kind, :trace_id, :observation_id, :session_id, :environment,
        :config_id, :queue_id, :author_user_id, :metadata_json, :timestamp, :created_at,
        :updated_at, :raw_json, :now, :now, NULL, NULL)
      ON CONFLICT (project_id, score_id) DO UPDATE SET
        name = excluded.name, source = excluded.source, data_type = excluded.data_type,
        value_json = excluded.value_json, value_num = excluded.value_num,
        string_value = excluded.string_value, comment = excluded.comment,
        subject_kind = excluded.subject_kind, trace_id = excluded.trace_id,
        observation_id = excluded.observation_id, session_id = excluded.session_id,
        environment = excluded.environment, config_id = excluded.config_id,
        queue_id = excluded.queue_id, author_user_id = excluded.author_user_id,
        metadata_json = excluded.metadata_json, timestamp = excluded.timestamp,
        created_at = excluded.created_at, updated_at = excluded.updated_at,
        raw_json = excluded.raw_json, last_seen_at = excluded.last_seen_at,
        changed_at = CASE WHEN :changed THEN excluded.last_seen_at ELSE changed_at END,
        deleted_at = NULL)"},
    {"score_change", R"(
      INSERT INTO score_changes (project_id, score_id, seen_at, change, old_value_json,
        new_value_json, old_string_value, new_string_value, old_comment, new_comment)
      VALUES (:p, :id, :now, :change, :old_value, :new_value, :old_string, :new_string,
        :old_comment, :new_comment))"},
    {"trace_queue", R"(
      INSERT INTO traces (project_id, trace_id, state, queued_at) VALUES (:p, :t, 'pending', :now)
      ON CONFLICT (project_id, trace_id) DO NOTHING)"},
    {"trace_due", R"(
      SELECT trace_id, obs_cursor, page_size, attempts, pages_fetched, state,
             big_since IS NOT NULL, fetched_at IS NOT NULL,
             (SELECT min(s.timestamp) FROM scores s
              WHERE s.project_id = traces.project_id AND s.trace_id = traces.trace_id)
      FROM traces
      WHERE project_id = :p AND (state = 'pending'
        OR (state = 'retry' AND next_attempt_at <= :now)
        OR (state = 'done' AND refetch_at IS NOT NULL AND refetch_at <= :now))
      ORDER BY queued_at, trace_id LIMIT :limit)"},
    {"trace_next_due", R"(
      SELECT min(next_attempt_at) FROM traces
      WHERE project_id = :p AND state = 'retry' AND next_attempt_at > :now)"},
    {"obs_upsert", R"(
      INSERT INTO observations (project_id, observation_id, trace_id, type, name,
        parent_observation_id, start_time, end_time, level, environment, model, usage_json,
        metadata_json, input_json, output_json, attributes_json, fetched_at, updated_at)
      VALUES (:p, :id, :trace_id, :type, :name, :parent, :start, :end, :level, :environment,
        :model, :usage, :metadata, :input, :output, :attributes, :now, :updated_at)
      ON CONFLICT (project_id, observation_id) DO UPDATE SET
        trace_id = excluded.trace_id, type = excluded.type, name = excluded.name,
        parent_observation_id = excluded.parent_observation_id,
        start_time = excluded.start_time, end_time = excluded.end_time, level = excluded.level,
        environment = excluded.environment, model = excluded.model,
        usage_json = excluded.usage_json, metadata_json = excluded.metadata_json,
        input_json = excluded.input_json, output_json = excluded.output_json,
        attributes_json = excluded.attributes_json, fetched_at = excluded.fetched_at,
        updated_at = excluded.updated_at
      -- The server can return an observation twice (stored versions are not merged): an older
      -- version never replaces a newer one.
      WHERE excluded.updated_at IS NULL OR observations.updated_at IS NULL
        OR excluded.updated_at >= observations.updated_at)"},
    {"trace_progress", R"(
      UPDATE traces SET
        state = CASE WHEN state = 'done' THEN 'done' ELSE 'pending' END,
        obs_cursor = :cursor, page_size = :page_size, pages_fetched = pages_fetched + 1,
        attempts = 0, next_attempt_at = NULL, last_error = NULL
      WHERE project_id = :p AND trace_id = :t)"},
    {"trace_obs_summary", R"(
      SELECT max(start_time), count(*) FROM observations WHERE project_id = :p AND trace_id = :t)"},
    {"trace_done", R"(
      UPDATE traces SET
        state = 'done', obs_cursor = NULL, page_size = :page_size,
        pages_fetched = pages_fetched + 1, attempts = 0, next_attempt_at = NULL,
        last_error = NULL, failure_reason = NULL, fetched_at = :now,
        fetch_count = fetch_count + 1, newest_observation_at = :newest,
        observation_count = :count, refetch_at = :refetch_at
      WHERE project_id = :p AND trace_id = :t)"},
    {"trace_retry", R"(
      UPDATE traces SET
        state = CASE WHEN state = 'done' THEN 'done' ELSE 'retry' END,
        refetch_at = CASE WHEN state = 'done' THEN :next ELSE refetch_at END,
        attempts = :attempts, next_attempt_at = :next, last_error = :error,
        page_size = :page_size
      WHERE project_id = :p AND trace_id = :t)"},
    {"trace_failed", R"(
      UPDATE traces SET
        state = CASE WHEN state = 'done' THEN 'done' ELSE 'failed' END,
        refetch_at = NULL, obs_cursor = CASE WHEN state = 'done' THEN NULL ELSE obs_cursor END,
        next_attempt_at = NULL, failure_reason = :reason, last_error = :error
      WHERE project_id = :p AND trace_id = :t)"},
    {"trace_requeue", R"(
      UPDATE traces SET state = 'pending', attempts = 0, next_attempt_at = NULL,
        failure_reason = NULL
      WHERE (:p IS NULL OR project_id = :p)
        AND (state = 'failed' OR (:include_retry AND state = 'retry')))"},
    {"trace_counts", R"(
      SELECT state, count(*), sum(refetch_at IS NOT NULL) FROM traces WHERE project_id = :p
      GROUP BY state)"},
    {"score_live_ids", R"(
      SELECT score_id FROM scores
      WHERE project_id = :p AND deleted_at IS NULL AND score_id > :after
        AND NOT (:listed_only AND (subject_kind IN ('session', 'experiment')
                                   OR data_type = 'CORRECTION'))
      ORDER BY score_id LIMIT :limit)"},
    {"score_live_count", R"(
      SELECT count(*) FROM scores WHERE project_id = :p AND deleted_at IS NULL)"},
    {"score_mark_deleted", R"(
      UPDATE scores SET deleted_at = :now WHERE project_id = :p AND score_id = :id
        AND deleted_at IS NULL)"},
    {"event_insert", R"(
      INSERT INTO events (at, project_id, level, scope, subject, message)
      VALUES (:now, :p, :level, :scope, :subject, :message))"},
    {"event_prune", R"(
      DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - 1000)"},
    {"run_start", R"(
      INSERT INTO sync_runs (project_id, started_at) VALUES (:p, :now))"},
    {"run_finish", R"(
      UPDATE sync_runs SET finished_at = :now, outcome = :outcome, scores_seen = :scores,
        traces_fetched = :traces, requests = :requests
      WHERE id = :id)"},
    {"meta_set", R"(
      INSERT INTO meta (key, value) VALUES (:k, :v)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value)"},
    {"meta_get", R"(SELECT value FROM meta WHERE key = :k)"},
};

}  // namespace

Result<std::unique_ptr<CheckpointStore>> CheckpointStore::open(const std::string& path,
                                                               Clock& clock) {
  // Before the read-write open, which would switch another program's file to WAL mode.
  if (Status s = refuse_foreign_database(path); !s.ok()) return s;
  auto db = sql::Db::open(path, sql::Db::Mode::kReadWrite);
  if (!db.ok()) return db.status();
  if (Status s = migrate(*db); !s.ok()) return s;
  std::unique_ptr<CheckpointStore> store(new CheckpointStore(std::move(db).value(), clock));
  if (Status s = store->prepare_all(); !s.ok()) return s;
  return store;
}

Status CheckpointStore::prepare_all() {
  for (const auto& [name, text] : kStatements) {
    auto s = db_.prepare(text);
    if (!s.ok()) return s.status();
    stmts_.emplace(name, std::move(s).value());
  }
  return Status::Ok();
}

std::string CheckpointStore::now_text() const {
  return format_iso8601(clock_.now());
}

Status CheckpointStore::upsert_project(const ProjectInfo& project, const std::string& base_url,
                                       const ServerInfo& server) {
  std::lock_guard lock(mu_);
  return stmt("project_upsert")
      .bind(":id", project.id)
      .bind(":name", project.name)
      .bind(":base_url", base_url)
      .bind(":version", server.version)
      .bind(":generation", api_generation_name(server.generation))
      .bind(":now", now_text())
      .run();
}

Result<PassState> CheckpointStore::pass_state(const std::string& project,
                                              const std::string& stream) {
  std::lock_guard lock(mu_);
  auto& q = stmt("pass_get");
  q.bind(":p", project).bind(":s", stream);
  auto row = q.step();
  PassState st;
  if (!row.ok()) {
    q.reset();
    return row.status();
  }
  if (*row) {
    st.watermark = q.opt_text(0);
    st.pass_from = q.opt_text(1);
    st.pass_cursor = q.opt_text(2);
    st.pass_max_timestamp = q.opt_text(3);
    st.pass_started_at = q.opt_text(4);
    st.last_completed_at = q.opt_text(5);
    st.last_requests = q.int64(6);
    st.total_requests = q.int64(7);
  }
  q.reset();
  return st;
}

Status CheckpointStore::begin_pass(const std::string& project, const std::string& stream,
                                   const std::optional<std::string>& from) {
  std::lock_guard lock(mu_);
  return stmt("pass_begin")
      .bind(":p", project)
      .bind(":s", stream)
      .bind(":from", from)
      .bind(":now", now_text())
      .run();
}

Result<ScorePageCounts> CheckpointStore::apply_score_page(
    const std::string& project, const std::string& stream, const std::vector<Score>& scores,
    const std::optional<std::string>& next_cursor, bool queue_traces, int64_t pass_requests,
    const std::optional<std::string>& newest_allowed) {
  std::lock_guard lock(mu_);
  sql::Transaction tx(db_);
  if (Status s = tx.begin(); !s.ok()) return s;
  auto counts =
      apply_score_page_locked(project, stream, scores, next_cursor, queue_traces, newest_allowed);
  if (!counts.ok()) return counts;
  if (!next_cursor) {
    if (Status s = finish_pass_locked(project, stream, pass_requests); !s.ok()) return s;
  }
  if (Status s = tx.commit(); !s.ok()) return s;
  return counts;
}

Result<ScorePageCounts> CheckpointStore::apply_score_page_locked(
    const std::string& project, const std::string& stream, const std::vector<Score>& scores,
    const std::optional<std::string>& next_cursor, bool queue_traces,
    const std::optional<std::string>& newest_allowed) {
  ScorePageCounts counts;
  const std::string now = now_text();
  std::optional<std::string> max_ts;
  for (const Score* newest : newest_per_id(scores)) {
    const Score& score = *newest;
    if (!max_ts || score.timestamp > *max_ts) max_ts = score.timestamp;

    auto& get = stmt("score_get");
    get.bind(":p", project).bind(":id", score.id);
    auto row = get.step();
    if (!row.ok()) {
      get.reset();
      return row.status();
    }
    const bool exists = *row;
    std::optional<std::string> old_value, old_string, old_comment, old_deleted;
    bool stored_is_newer = false;
    if (exists) {
      old_value = get.opt_text(0);
      old_string = get.opt_text(1);
      old_comment = get.opt_text(2);
      old_deleted = get.opt_text(3);
      stored_is_newer = is_newer(get.text(4), get.opt_text(5), score.timestamp, score.updated_at);
    }
    get.reset();
    if (stored_is_newer) {
      // An older copy of a score re-saved on another day: the cache keeps the newer one.
      ++counts.unchanged;
      continue;
    }

    const bool changed =
        exists && (old_value != score.value_json || old_string != score.string_value ||
                   old_comment != score.comment);
    const bool restored = exists && old_deleted.has_value();
    if (!exists) {
      ++counts.inserted;
    } else if (changed) {
      ++counts.changed;
    } else if (!restored) {
      ++counts.unchanged;
    }
    if (restored) ++counts.restored;

    auto record_change = [&](const char* kind) {
      return stmt("score_change")
          .bind(":p", project)
          .bind(":id", score.id)
          .bind(":now", now)
          .bind(":change", kind)
          .bind(":old_value", old_value)
          .bind(":new_value", score.value_json)
          .bind(":old_string", old_string)
          .bind(":new_string", score.string_value)
          .bind(":old_comment", old_comment)
          .bind(":new_comment", score.comment)
          .run();
    };
    if (changed) {
      if (Status s = record_change("edited"); !s.ok()) return s;
    }
    if (restored) {
      if (Status s = record_change("restored"); !s.ok()) return s;
    }

    Status s = stmt("score_upsert")
                   .bind(":p", project)
                   .bind(":id", score.id)
                   .bind(":name", score.name)
                   .bind(":source", score.source)
                   .bind(":data_type", score.data_type)
                   .bind(":value_json", score.value_json)
                   .bind(":value_num", score.value_num)
                   .bind(":string_value", score.string_value)
                   .bind(":comment", score.comment)
                   .bind(":subject_kind", score.subject_kind)
                   .bind(":trace_id", score.trace_id)
                   .bind(":observation_id", score.observation_id)
                   .bind(":session_id", score.session_id)
                   .bind(":environment", score.environment)
                   .bind(":config_id", score.config_id)
                   .bind(":queue_id", score.queue_id)
                   .bind(":author_user_id", score.author_user_id)
                   .bind(":metadata_json", score.metadata_json)
                   .bind(":timestamp", score.timestamp)
                   .bind(":created_at", score.created_at)
                   .bind(":updated_at", score.updated_at)
                   .bind(":raw_json", score.raw_json)
                   .bind(":now", now)
                   .bind(":changed", changed)
                   .run();
    if (!s.ok()) return s;

    if (queue_traces && score.trace_id && !score.trace_id->empty()) {
      Status q = stmt("trace_queue")
                     .bind(":p", project)
                     .bind(":t", *score.trace_id)
                     .bind(":now", now)
                     .run();
      if (!q.ok()) return q;
      if (db_.changes() > 0) ++counts.traces_queued;
    }
  }
  // Annotators' browser clocks can run ahead: a watermark past the server's "now" would hide
  // every score stamped before it.
  if (max_ts && newest_allowed && *max_ts > *newest_allowed) max_ts = newest_allowed;
  Status s = stmt("pass_advance")
                 .bind(":p", project)
                 .bind(":s", stream)
                 .bind(":cursor", next_cursor)
                 .bind(":max_ts", max_ts)
                 .run();
  if (!s.ok()) return s;
  return counts;
}

Status CheckpointStore::finish_pass(const std::string& project, const std::string& stream,
                                    int64_t requests) {
  std::lock_guard lock(mu_);
  return finish_pass_locked(project, stream, requests);
}

Status CheckpointStore::finish_pass_locked(const std::string& project, const std::string& stream,
                                           int64_t requests) {
  return stmt("pass_finish")
      .bind(":p", project)
      .bind(":s", stream)
      .bind(":now", now_text())
      .bind(":requests", requests)
      .run();
}

Status CheckpointStore::mark_stream_completed(const std::string& project,
                                              const std::string& stream) {
  std::lock_guard lock(mu_);
  return stmt("stream_completed")
      .bind(":p", project)
      .bind(":s", stream)
      .bind(":now", now_text())
      .run();
}

Status CheckpointStore::set_pass_cursor(const std::string& project, const std::string& stream,
                                        const std::string& cursor) {
  std::lock_guard lock(mu_);
  return stmt("pass_set_cursor")
      .bind(":p", project)
      .bind(":s", stream)
      .bind(":cursor", cursor)
      .run();
}

Status CheckpointStore::reset_pass(const std::string& project, const std::string& stream) {
  std::lock_guard lock(mu_);
  return stmt("pass_reset").bind(":p", project).bind(":s", stream).run();
}

Result<std::vector<TraceTask>> CheckpointStore::due_traces(
    const std::string& project, int limit, const std::vector<std::string>& exclude) {
  std::lock_guard lock(mu_);
  auto& q = stmt("trace_due");
  q.bind(":p", project)
      .bind(":now", now_text())
      .bind(":limit", static_cast<int64_t>(limit + exclude.size()));
  std::vector<TraceTask> tasks;
  for (;;) {
    auto row = q.step();
    if (!row.ok()) {
      q.reset();
      return row.status();
    }
    if (!*row) break;
    TraceTask t;
    t.trace_id = q.text(0);
    if (std::find(exclude.begin(), exclude.end(), t.trace_id) != exclude.end()) continue;
    t.cursor = q.opt_text(1);
    t.page_size = q.is_null(2) ? 0 : static_cast<int>(q.int64(2));
    t.attempts = static_cast<int>(q.int64(3));
    t.pages_fetched = static_cast<int>(q.int64(4));
    t.refetch = q.text_view(5) == "done";
    t.big = q.int64(6) != 0;
    t.size_known = q.int64(7) != 0;
    t.anchor_time = q.opt_text(8);
    tasks.push_back(std::move(t));
    if (static_cast<int>(tasks.size()) >= limit) break;
  }
  q.reset();
  return tasks;
}

Result<std::optional<std::string>> CheckpointStore::next_due_at(const std::string& project) {
  std::lock_guard lock(mu_);
  auto& q = stmt("trace_next_due");
  q.bind(":p", project).bind(":now", now_text());
  auto row = q.step();
  std::optional<std::string> at;
  if (row.ok() && *row) at = q.opt_text(0);
  q.reset();
  if (!row.ok()) return row.status();
  return at;
}

Status CheckpointStore::apply_observation_page(const std::string& project, const TraceTask& task,
                                               const std::vector<Observation>& observations,
                                               const std::optional<std::string>& next_cursor,
                                               int page_size, Millis settle_time) {
  std::lock_guard lock(mu_);
  const std::string now = now_text();
  sql::Transaction tx(db_);
  if (Status s = tx.begin(); !s.ok()) return s;
  for (const Observation& o : observations) {
    Status s = stmt("obs_upsert")
                   .bind(":p", project)
                   .bind(":id", o.id)
                   .bind(":trace_id", o.trace_id)
                   .bind(":type", o.type)
                   .bind(":name", o.name)
                   .bind(":parent", o.parent_observation_id)
                   .bind(":start", o.start_time)
                   .bind(":end", o.end_time)
                   .bind(":level", o.level)
                   .bind(":environment", o.environment)
                   .bind(":model", o.model)
                   .bind(":usage", o.usage_json)
                   .bind(":metadata", o.metadata_json)
                   .bind(":input", o.input_json)
                   .bind(":output", o.output_json)
                   .bind(":attributes", o.attributes_json)
                   .bind(":updated_at", o.updated_at)
                   .bind(":now", now)
                   .run();
    if (!s.ok()) return s;
  }
  if (next_cursor) {
    Status s = stmt("trace_progress")
                   .bind(":p", project)
                   .bind(":t", task.trace_id)
                   .bind(":cursor", *next_cursor)
                   .bind(":page_size", page_size)
                   .run();
    if (!s.ok()) return s;
  } else {
    auto& summary = stmt("trace_obs_summary");
    summary.bind(":p", project).bind(":t", task.trace_id);
    auto row = summary.step();
    if (!row.ok()) {
      summary.reset();
      return row.status();
    }
    std::optional<std::string> newest = summary.opt_text(0);
    int64_t count = summary.int64(1);
    summary.reset();

    // A trace whose newest observation is younger than the settle time may still be written
    // to: fetch it once more when it has settled (never after a re-fetch).
    std::optional<std::string> refetch_at;
    if (!task.refetch && settle_time.count() > 0) {
      auto newest_t = newest ? parse_iso8601(*newest) : std::nullopt;
      SysTime base = newest_t ? *newest_t : clock_.now();
      if (base + settle_time > clock_.now()) refetch_at = format_iso8601(base + settle_time);
    }
    Status s = stmt("trace_done")
                   .bind(":p", project)
                   .bind(":t", task.trace_id)
                   .bind(":page_size", page_size)
                   .bind(":now", now)
                   .bind(":newest", newest)
                   .bind(":count", count)
                   .bind(":refetch_at", refetch_at)
                   .run();
    if (!s.ok()) return s;
  }
  return tx.commit();
}

Status CheckpointStore::mark_trace_retry(const std::string& project, const std::string& trace_id,
                                         int attempts, SysTime next_attempt_at,
                                         const std::string& error, int page_size) {
  std::lock_guard lock(mu_);
  return stmt("trace_retry")
      .bind(":p", project)
      .bind(":t", trace_id)
      .bind(":attempts", attempts)
      .bind(":next", format_iso8601(next_attempt_at))
      .bind(":error", error)
      .bind(":page_size", page_size)
      .run();
}

Status CheckpointStore::mark_trace_failed(const std::string& project, const std::string& trace_id,
                                          const std::string& reason, const std::string& error) {
  std::lock_guard lock(mu_);
  return stmt("trace_failed")
      .bind(":p", project)
      .bind(":t", trace_id)
      .bind(":reason", reason)
      .bind(":error", error)
      .run();
}

Result<int64_t> CheckpointStore::requeue(const std::optional<std::string>& project,
                                         bool include_retry) {
  std::lock_guard lock(mu_);
  Status s = stmt("trace_requeue").bind(":p", project).bind(":include_retry", include_retry).run();
  if (!s.ok()) return s;
  return db_.changes();
}

Result<TraceCounts> CheckpointStore::trace_counts(const std::string& project) {
  std::lock_guard lock(mu_);
  auto& q = stmt("trace_counts");
  q.bind(":p", project);
  TraceCounts c;
  for (;;) {
    auto row = q.step();
    if (!row.ok()) {
      q.reset();
      return row.status();
    }
    if (!*row) break;
    std::string state = q.text(0);
    int64_t n = q.int64(1);
    if (state == "pending") c.pending = n;
    if (state == "retry") c.retry = n;
    if (state == "done") c.done = n;
    if (state == "failed") c.failed = n;
    c.refetch_scheduled += q.int64(2);
  }
  q.reset();
  return c;
}

Result<std::vector<std::string>> CheckpointStore::live_score_ids(const std::string& project,
                                                                 const std::string& after_id,
                                                                 int limit,
                                                                 bool legacy_listed_only) {
  std::lock_guard lock(mu_);
  auto& q = stmt("score_live_ids");
  q.bind(":p", project)
      .bind(":after", after_id)
      .bind(":limit", limit)
      .bind(":listed_only", legacy_listed_only);
  std::vector<std::string> ids;
  for (;;) {
    auto row = q.step();
    if (!row.ok()) {
      q.reset();
      return row.status();
    }
    if (!*row) break;
    ids.push_back(q.text(0));
  }
  q.reset();
  return ids;
}

Result<int> CheckpointStore::mark_scores_deleted(const std::string& project,
                                                 const std::vector<std::string>& ids) {
  std::lock_guard lock(mu_);
  const std::string now = now_text();
  sql::Transaction tx(db_);
  if (Status s = tx.begin(); !s.ok()) return s;
  int marked = 0;
  for (const auto& id : ids) {
    auto& get = stmt("score_get");
    get.bind(":p", project).bind(":id", id);
    auto row = get.step();
    if (!row.ok()) {
      get.reset();
      return row.status();
    }
    if (!*row || !get.is_null(3)) {
      get.reset();
      continue;
    }
    auto old_value = get.opt_text(0), old_string = get.opt_text(1), old_comment = get.opt_text(2);
    get.reset();
    Status s =
        stmt("score_mark_deleted").bind(":p", project).bind(":id", id).bind(":now", now).run();
    if (!s.ok()) return s;
    s = stmt("score_change")
            .bind(":p", project)
            .bind(":id", id)
            .bind(":now", now)
            .bind(":change", "deleted")
            .bind(":old_value", old_value)
            .bind_null(":new_value")
            .bind(":old_string", old_string)
            .bind_null(":new_string")
            .bind(":old_comment", old_comment)
            .bind_null(":new_comment")
            .run();
    if (!s.ok()) return s;
    ++marked;
  }
  if (Status s = tx.commit(); !s.ok()) return s;
  return marked;
}

Result<int64_t> CheckpointStore::live_score_count(const std::string& project) {
  std::lock_guard lock(mu_);
  auto& q = stmt("score_live_count");
  q.bind(":p", project);
  auto row = q.step();
  int64_t n = row.ok() && *row ? q.int64(0) : 0;
  q.reset();
  if (!row.ok()) return row.status();
  return n;
}

Status CheckpointStore::record_event(const std::optional<std::string>& project,
                                     const std::string& level, const std::string& scope,
                                     const std::string& subject, const std::string& message) {
  std::lock_guard lock(mu_);
  Status s = stmt("event_insert")
                 .bind(":now", now_text())
                 .bind(":p", project)
                 .bind(":level", level)
                 .bind(":scope", scope)
                 .bind(":subject", subject)
                 .bind(":message", message)
                 .run();
  if (!s.ok()) return s;
  return stmt("event_prune").run();
}

Result<int64_t> CheckpointStore::start_run(const std::string& project) {
  std::lock_guard lock(mu_);
  Status s = stmt("run_start").bind(":p", project).bind(":now", now_text()).run();
  if (!s.ok()) return s;
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.handle()));
}

Status CheckpointStore::finish_run(int64_t run_id, const std::string& outcome, int64_t scores_seen,
                                   int64_t traces_fetched, int64_t requests) {
  std::lock_guard lock(mu_);
  return stmt("run_finish")
      .bind(":id", run_id)
      .bind(":now", now_text())
      .bind(":outcome", outcome)
      .bind(":scores", scores_seen)
      .bind(":traces", traces_fetched)
      .bind(":requests", requests)
      .run();
}

Status CheckpointStore::set_meta(const std::string& key, const std::string& value) {
  std::lock_guard lock(mu_);
  return stmt("meta_set").bind(":k", key).bind(":v", value).run();
}

Result<std::optional<std::string>> CheckpointStore::meta(const std::string& key) {
  std::lock_guard lock(mu_);
  auto& q = stmt("meta_get");
  q.bind(":k", key);
  auto row = q.step();
  std::optional<std::string> v;
  if (row.ok() && *row) v = q.text(0);
  q.reset();
  if (!row.ok()) return row.status();
  return v;
}

Status CheckpointStore::checkpoint_wal() {
  std::lock_guard lock(mu_);
  return db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace lfh
