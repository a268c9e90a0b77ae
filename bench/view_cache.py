"""The documented views and example queries of the checkpoint database, and a synthetic cache.

Shared by bench/view_bench.py (timings) and tests/integration/test_view_plans.py (query plans).

- `migrate(db)` applies schema/NNNN_*.sql in order, as the program does.
- `documented_queries()` returns every view of the schema and every example query of
  docs/schema.md, so both the benchmark and the plan test follow the documentation.
- `fill(db, traces)` writes a cache shaped like a real harvest: per trace 1 root SPAN, 1 to 3
  GENERATIONs, sometimes an EVENT, about 3.5 observations per trace; one or two scores per
  trace. Without ANALYZE, as lfharvest leaves its databases (analyze=True for planner stats).
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "proj-bench"


def migrate(db: sqlite3.Connection, upto: int | None = None) -> int:
    """Applies the migrations in order (only those numbered <= upto when given)."""
    files = sorted((ROOT / "schema").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    files = [f for f in files if upto is None or int(f.name[:4]) <= upto]
    for file in files:
        db.executescript(file.read_text(encoding="utf-8"))
        db.execute(f"PRAGMA user_version = {int(file.name[:4])}")
    return len(files)


def views(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM sqlite_schema WHERE type = 'view' ORDER BY name")]


def example_queries() -> list[tuple[str, str]]:
    """(title, sql) for each example in the "Example queries" block of docs/schema.md."""
    text = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    section = text.split("## Example queries", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block, "docs/schema.md: no ```sql block under 'Example queries'"
    examples: list[tuple[str, str]] = []
    title, lines = "", []
    for line in block.group(1).splitlines():
        if line.startswith("--"):
            if lines:
                examples.append((title, "\n".join(lines)))
                lines, title = [], ""
            title = title or line.lstrip("- ").strip()  # a title's first comment line
        elif line.strip():
            lines.append(line)
    if lines:
        examples.append((title, "\n".join(lines)))
    return examples


def documented_queries(db: sqlite3.Connection) -> list[tuple[str, str]]:
    queries = [(f"view {v}", f"SELECT * FROM {v}") for v in views(db)]
    queries.append(("annotated_examples by score name",
                    "SELECT count(*) FROM annotated_examples WHERE score_name = 'quality'"))
    return queries + [(f"example: {t}", q.rstrip().rstrip(";")) for t, q in example_queries()]


def iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    import time as _time
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(seconds)) + f".{millis:03d}Z"


def _input(rng: random.Random, i: int) -> str:
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": f"question {i}: " + "x" * rng.randint(20, 200)}]
    kind = i % 3
    if kind == 0:
        return json.dumps(messages)
    if kind == 1:
        return json.dumps({"messages": messages, "tools": []})
    return json.dumps(f"plain question {i}")


def fill(db: sqlite3.Connection, traces: int, seed: int = 1, analyze: bool = False) -> dict[str, int]:
    rng = random.Random(seed)
    base_ms = 1_767_225_600_000  # 2026-01-01
    now = iso(base_ms + 40 * 86_400_000)
    trace_rows, obs_rows, score_rows = [], [], []
    for t in range(traces):
        trace_id = f"trace-{t:07d}"
        start = base_ms + t * 20_000
        trace_rows.append((PROJECT, trace_id, "done" if t % 50 else "failed", now))
        root = f"obs-{t:07d}-0"
        obs_rows.append((PROJECT, root, trace_id, "SPAN", "root", None, iso(start), "null", "null"))
        for g in range(rng.randint(1, 3)):
            obs_rows.append((PROJECT, f"obs-{t:07d}-g{g}", trace_id, "GENERATION", "chat", root,
                             iso(start + 1000 * (g + 1)), _input(rng, t),
                             json.dumps({"role": "assistant", "content": "answer"})))
        if rng.random() < 0.5:
            obs_rows.append((PROJECT, f"obs-{t:07d}-e", trace_id, "EVENT", "log", root,
                             iso(start + 9000), "null", "null"))
        for k, name in enumerate(["quality"] + (["rating"] if t % 3 == 0 else [])):
            value = '"Good"' if (t + k) % 2 else '"Bad"'
            score_rows.append((PROJECT, f"score-{t:07d}-{k}", name, "ANNOTATION", "CATEGORICAL",
                               value, json.loads(value), "trace", trace_id, iso(start + 3_600_000),
                               "{}", now, now))
    with db:
        db.executemany("INSERT INTO traces (project_id, trace_id, state, queued_at) VALUES (?, ?, ?, ?)",
                       trace_rows)
        db.executemany(
            "INSERT INTO observations (project_id, observation_id, trace_id, type, name,"
            " parent_observation_id, start_time, input_json, output_json, attributes_json, fetched_at)"
            f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{{}}', '{now}')", obs_rows)
        db.executemany(
            "INSERT INTO scores (project_id, score_id, name, source, data_type, value_json,"
            " string_value, subject_kind, trace_id, timestamp, raw_json, first_seen_at, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", score_rows)
        db.executemany(
            "INSERT INTO score_changes (project_id, score_id, seen_at, change, old_string_value,"
            " new_string_value) VALUES (?, ?, ?, 'edited', 'Bad', 'Good')",
            [(PROJECT, r[1], now) for r in score_rows[::20]])
    if analyze:  # lfharvest never runs ANALYZE: by default the planner sees what users get
        db.execute("ANALYZE")
    return {"traces": len(trace_rows), "observations": len(obs_rows), "scores": len(score_rows)}
