#!/usr/bin/env python3
"""The anchor exporter: what a user would write by hand against the lfharvest cache.

    python3 bench/anchor_export.py DB SCORE_NAME OUT

One window-function query (the last generation of each trace next to its newest live ANNOTATION
score of that name), then `json` per row: one JSON line per trace with the score and the parsed
input and output. It is the yardstick for `lfharvest export --format jsonl` in
bench/perf_compare.py, not a tool: it has none of lfharvest's checks.
"""

import json
import sqlite3
import sys

QUERY = """
WITH s AS (
  SELECT project_id, trace_id, score_id, name, value_json, string_value, comment, timestamp,
         row_number() OVER (PARTITION BY project_id, trace_id
                            ORDER BY timestamp DESC, score_id DESC) AS n
  FROM scores
  WHERE name = ? AND source = 'ANNOTATION' AND deleted_at IS NULL AND trace_id IS NOT NULL),
g AS (
  SELECT project_id, trace_id, observation_id, model, usage_json, input_json, output_json,
         row_number() OVER (PARTITION BY project_id, trace_id
                            ORDER BY start_time DESC, observation_id DESC) AS n
  FROM observations WHERE type = 'GENERATION')
SELECT s.project_id, s.trace_id, g.observation_id, s.score_id, s.name, s.value_json,
       s.string_value, s.comment, s.timestamp, g.model, g.usage_json, g.input_json, g.output_json
FROM s JOIN traces t ON t.project_id = s.project_id AND t.trace_id = s.trace_id
JOIN g ON g.project_id = s.project_id AND g.trace_id = s.trace_id AND g.n = 1
WHERE s.n = 1 AND t.state = 'done'
ORDER BY s.project_id, s.trace_id
"""

KEYS = ("project_id", "trace_id", "observation_id", "score_id", "score_name", "score_value",
        "string_value", "comment", "score_timestamp", "model", "usage", "input", "output")


def main() -> int:
    db, name, out = sys.argv[1:4]
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with open(out, "w", encoding="utf-8") as f:
        for row in connection.execute(QUERY, (name,)):
            record = list(row)
            for i in (5, 10, 11, 12):  # value, usage, input, output are stored JSON text
                record[i] = json.loads(record[i]) if record[i] is not None else None
            f.write(json.dumps(dict(zip(KEYS, record)), ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
