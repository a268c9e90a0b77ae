-- lfharvest checkpoint database, version 1.
-- Every timestamp is canonical ISO 8601 UTC text ("2026-01-31T12:00:00.000Z"), so text order is
-- time order. Every table is keyed by the Langfuse project id: several projects can share a file.
-- docs/schema.md documents each table and column for people who query the file directly.

CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE projects (
  project_id     TEXT PRIMARY KEY,
  name           TEXT,
  base_url       TEXT NOT NULL,
  server_version TEXT,
  api_generation TEXT,
  first_seen_at  TEXT NOT NULL,
  last_seen_at   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE scores (
  project_id     TEXT NOT NULL,
  score_id       TEXT NOT NULL,
  name           TEXT NOT NULL,
  source         TEXT NOT NULL,
  data_type      TEXT,
  value_json     TEXT NOT NULL,
  value_num      REAL,
  string_value   TEXT,
  comment        TEXT,
  subject_kind   TEXT,
  trace_id       TEXT,
  observation_id TEXT,
  session_id     TEXT,
  environment    TEXT,
  config_id      TEXT,
  queue_id       TEXT,
  author_user_id TEXT,
  metadata_json  TEXT,
  timestamp      TEXT NOT NULL,
  created_at     TEXT,
  updated_at     TEXT,
  raw_json       TEXT NOT NULL,
  first_seen_at  TEXT NOT NULL,
  last_seen_at   TEXT NOT NULL,
  changed_at     TEXT,
  deleted_at     TEXT,
  PRIMARY KEY (project_id, score_id)
);
CREATE INDEX scores_by_trace ON scores (project_id, trace_id);
CREATE INDEX scores_by_name ON scores (project_id, name, source);
CREATE INDEX scores_by_timestamp ON scores (project_id, timestamp);

CREATE TABLE score_changes (
  id               INTEGER PRIMARY KEY,
  project_id       TEXT NOT NULL,
  score_id         TEXT NOT NULL,
  seen_at          TEXT NOT NULL,
  change           TEXT NOT NULL CHECK (change IN ('edited', 'deleted', 'restored')),
  old_value_json   TEXT,
  new_value_json   TEXT,
  old_string_value TEXT,
  new_string_value TEXT,
  old_comment      TEXT,
  new_comment      TEXT
);
CREATE INDEX score_changes_by_score ON score_changes (project_id, score_id);

CREATE TABLE traces (
  project_id            TEXT NOT NULL,
  trace_id              TEXT NOT NULL,
  state                 TEXT NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'retry', 'done', 'failed')),
  obs_cursor            TEXT,
  page_size             INTEGER,
  pages_fetched         INTEGER NOT NULL DEFAULT 0,
  observation_count     INTEGER NOT NULL DEFAULT 0,
  attempts              INTEGER NOT NULL DEFAULT 0,
  next_attempt_at       TEXT,
  last_error            TEXT,
  failure_reason        TEXT,
  queued_at             TEXT NOT NULL,
  fetched_at            TEXT,
  fetch_count           INTEGER NOT NULL DEFAULT 0,
  newest_observation_at TEXT,
  refetch_at            TEXT,
  PRIMARY KEY (project_id, trace_id)
);
CREATE INDEX traces_by_state ON traces (project_id, state, next_attempt_at);
CREATE INDEX traces_by_refetch ON traces (project_id, refetch_at) WHERE refetch_at IS NOT NULL;

CREATE TABLE observations (
  project_id            TEXT NOT NULL,
  observation_id        TEXT NOT NULL,
  trace_id              TEXT NOT NULL,
  type                  TEXT NOT NULL,
  name                  TEXT,
  parent_observation_id TEXT,
  start_time            TEXT NOT NULL,
  end_time              TEXT,
  level                 TEXT,
  environment           TEXT,
  model                 TEXT,
  usage_json            TEXT,
  metadata_json         TEXT,
  input_json            TEXT NOT NULL,
  output_json           TEXT NOT NULL,
  attributes_json       TEXT NOT NULL,
  fetched_at            TEXT NOT NULL,
  PRIMARY KEY (project_id, observation_id)
);
CREATE INDEX observations_by_trace ON observations (project_id, trace_id, start_time);

-- Progress of the score streams: "poll" (new scores), "rescan" (edits), "sweep" (deletions).
-- An in-progress pass keeps its query start and next cursor here, committed with each page.
CREATE TABLE sync_state (
  project_id         TEXT NOT NULL,
  stream             TEXT NOT NULL,
  watermark          TEXT,
  pass_from          TEXT,
  pass_cursor        TEXT,
  pass_max_timestamp TEXT,
  pass_started_at    TEXT,
  last_completed_at  TEXT,
  last_requests      INTEGER,
  total_requests     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, stream)
) WITHOUT ROWID;

-- Recent errors and notable events (bounded: old rows are pruned).
CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  at         TEXT NOT NULL,
  project_id TEXT,
  level      TEXT NOT NULL,
  scope      TEXT NOT NULL,
  subject    TEXT,
  message    TEXT NOT NULL
);

-- One row per sync pass.
CREATE TABLE sync_runs (
  id             INTEGER PRIMARY KEY,
  project_id     TEXT,
  started_at     TEXT NOT NULL,
  finished_at    TEXT,
  outcome        TEXT,
  scores_seen    INTEGER NOT NULL DEFAULT 0,
  traces_fetched INTEGER NOT NULL DEFAULT 0,
  requests       INTEGER NOT NULL DEFAULT 0
);

-- Views for people (docs/schema.md has example queries).
CREATE VIEW live_scores AS
  SELECT * FROM scores WHERE deleted_at IS NULL;

CREATE VIEW trace_last_generation AS
  SELECT o.*
  FROM observations o
  WHERE o.type = 'GENERATION'
    AND NOT EXISTS (
      SELECT 1 FROM observations o2
      WHERE o2.project_id = o.project_id AND o2.trace_id = o.trace_id
        AND o2.type = 'GENERATION'
        AND (o2.start_time > o.start_time
             OR (o2.start_time = o.start_time AND o2.observation_id > o.observation_id)));

CREATE VIEW annotated_examples AS
  SELECT s.project_id, s.score_id, s.name AS score_name, s.source, s.data_type,
         s.value_json, s.value_num, s.string_value, s.comment, s.timestamp AS score_timestamp,
         s.trace_id, t.state AS trace_state,
         g.observation_id, g.model, g.input_json, g.output_json, g.usage_json
  FROM live_scores s
  JOIN traces t ON t.project_id = s.project_id AND t.trace_id = s.trace_id
  LEFT JOIN trace_last_generation g ON g.project_id = s.project_id AND g.trace_id = s.trace_id;
