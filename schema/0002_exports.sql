-- lfharvest checkpoint database, version 2: state of named exports (`lfharvest export NAME`).
-- Only named exports write here; an export given entirely on the command line leaves the
-- database untouched. docs/formats.md explains --incremental.

-- One row per run of a named export. finished_at stays NULL while the run is in progress (or
-- when it was killed); only a finished run moves its records into export_records.
CREATE TABLE export_runs (
  id            INTEGER PRIMARY KEY,
  export_name   TEXT NOT NULL,
  format        TEXT NOT NULL,
  pick          TEXT NOT NULL,
  incremental   INTEGER NOT NULL CHECK (incremental IN (0, 1)),
  started_at    TEXT NOT NULL,
  finished_at   TEXT,
  records       INTEGER,
  unchanged     INTEGER,
  skipped       INTEGER,
  bytes         INTEGER,
  out_path      TEXT,
  sha256        TEXT
);
CREATE INDEX export_runs_by_name ON export_runs (export_name, id);

-- What each named export last wrote for each record: the SHA-256 of the record's bytes in the
-- output file. A record is "new or changed" for --incremental when its key is missing here or its
-- bytes hash differently. record_key is "project_id/trace_id" ("/observation_id" appended for
-- pick all-generations).
CREATE TABLE export_records (
  export_name       TEXT NOT NULL,
  record_key        TEXT NOT NULL,
  content_sha256    TEXT NOT NULL,
  first_exported_at TEXT NOT NULL,
  last_exported_at  TEXT NOT NULL,
  last_run_id       INTEGER NOT NULL,
  PRIMARY KEY (export_name, record_key)
) WITHOUT ROWID;

-- Records written by a run that has not finished yet, in small batches so memory stays flat.
-- The run's last transaction moves them into export_records; rows of killed runs are deleted by
-- the next run of the same export.
CREATE TABLE export_pending (
  run_id         INTEGER NOT NULL,
  record_key     TEXT NOT NULL,
  content_sha256 TEXT NOT NULL,
  PRIMARY KEY (run_id, record_key)
) WITHOUT ROWID;
