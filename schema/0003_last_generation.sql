-- lfharvest checkpoint database, version 3: views that stay fast on large caches, and the
-- version of each observation.
--
-- Version 1's trace_last_generation asked, for every generation, whether a later one exists in
-- the same trace; SQLite answered the OR in that subquery with a scan of an index per row, so
-- annotated_examples took minutes on 20,000 traces. Each trace now stores the id of its last
-- generation (latest start_time, then greatest observation_id), kept by the triggers below, and
-- the views find it by primary key.

ALTER TABLE traces ADD COLUMN last_generation_id TEXT;

-- Langfuse's updatedAt of the stored version (v2 observations can come twice; the newer wins).
ALTER TABLE observations ADD COLUMN updated_at TEXT;

-- Lets the triggers and the backfill find a trace's latest generation without reading its
-- other observations.
CREATE INDEX observations_generations_by_trace
  ON observations (project_id, trace_id, start_time, observation_id) WHERE type = 'GENERATION';

UPDATE traces SET last_generation_id = (
  SELECT o.observation_id FROM observations o
  WHERE o.project_id = traces.project_id AND o.trace_id = traces.trace_id
    AND o.type = 'GENERATION'
  ORDER BY o.start_time DESC, o.observation_id DESC LIMIT 1);

CREATE TRIGGER observations_last_generation_insert
AFTER INSERT ON observations WHEN NEW.type = 'GENERATION'
BEGIN
  UPDATE traces SET last_generation_id = (
    SELECT o.observation_id FROM observations o
    WHERE o.project_id = NEW.project_id AND o.trace_id = NEW.trace_id AND o.type = 'GENERATION'
    ORDER BY o.start_time DESC, o.observation_id DESC LIMIT 1)
  WHERE project_id = NEW.project_id AND trace_id = NEW.trace_id;
END;

CREATE TRIGGER observations_last_generation_update
AFTER UPDATE OF type, trace_id, start_time ON observations
WHEN OLD.type = 'GENERATION' OR NEW.type = 'GENERATION'
BEGIN
  UPDATE traces SET last_generation_id = (
    SELECT o.observation_id FROM observations o
    WHERE o.project_id = traces.project_id AND o.trace_id = traces.trace_id
      AND o.type = 'GENERATION'
    ORDER BY o.start_time DESC, o.observation_id DESC LIMIT 1)
  WHERE project_id = NEW.project_id AND trace_id IN (OLD.trace_id, NEW.trace_id);
END;

CREATE TRIGGER observations_last_generation_delete
AFTER DELETE ON observations WHEN OLD.type = 'GENERATION'
BEGIN
  UPDATE traces SET last_generation_id = (
    SELECT o.observation_id FROM observations o
    WHERE o.project_id = OLD.project_id AND o.trace_id = OLD.trace_id AND o.type = 'GENERATION'
    ORDER BY o.start_time DESC, o.observation_id DESC LIMIT 1)
  WHERE project_id = OLD.project_id AND trace_id = OLD.trace_id;
END;

-- A trace queued after its observations were stored (not done by lfharvest, but cheap to keep
-- true) picks up its last generation.
CREATE TRIGGER traces_last_generation_insert
AFTER INSERT ON traces
BEGIN
  UPDATE traces SET last_generation_id = (
    SELECT o.observation_id FROM observations o
    WHERE o.project_id = NEW.project_id AND o.trace_id = NEW.trace_id AND o.type = 'GENERATION'
    ORDER BY o.start_time DESC, o.observation_id DESC LIMIT 1)
  WHERE project_id = NEW.project_id AND trace_id = NEW.trace_id;
END;

DROP VIEW annotated_examples;
DROP VIEW trace_last_generation;

-- Same columns as version 1 (every column of observations, updated_at now included).
CREATE VIEW trace_last_generation AS
  SELECT o.*
  FROM traces t
  JOIN observations o
    ON o.project_id = t.project_id AND o.observation_id = t.last_generation_id;

-- Same columns as version 1. Joins observations directly (not through trace_last_generation):
-- SQLite cannot flatten a view that is itself a join into the right side of a LEFT JOIN.
CREATE VIEW annotated_examples AS
  SELECT s.project_id, s.score_id, s.name AS score_name, s.source, s.data_type,
         s.value_json, s.value_num, s.string_value, s.comment, s.timestamp AS score_timestamp,
         s.trace_id, t.state AS trace_state,
         g.observation_id, g.model, g.input_json, g.output_json, g.usage_json
  FROM live_scores s
  JOIN traces t ON t.project_id = s.project_id AND t.trace_id = s.trace_id
  LEFT JOIN observations g
    ON g.project_id = t.project_id AND g.observation_id = t.last_generation_id;
