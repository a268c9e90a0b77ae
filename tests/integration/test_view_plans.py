"""Query plans of the documented views and example queries (docs/schema.md).

People query the cache directly, so every view and example must stay fast on big caches: no
query may read a whole table (or a range of it keyed only by project) once per row of another.
The rule is checked on SQLite's EXPLAIN QUERY PLAN, on a cache built by the migrations in
schema/ and filled with enough rows for the planner to choose its real plan. The same rule
applied to version 1's trace_last_generation (the view that took minutes) must flag it, so the
rule is known to catch the real problem.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from view_cache import documented_queries, fill, migrate  # noqa: E402

LOOP = re.compile(r"^(SCAN|SEARCH) (\S+)(?: USING (?:COVERING )?(?:INDEX \S+|INTEGER PRIMARY KEY|"
                  r"PRIMARY KEY))?(?: \((.*)\))?")


def per_row_scans(plan: list[tuple[int, int, int, str]]) -> list[str]:
    """Loops of a plan that read a whole table (or a project-wide range) per row of another.

    The first loop of the outermost query may scan: that is the query's own scan. Every later
    loop of the same query, and every loop inside a correlated subquery, must be a SEARCH that
    pins some column other than project_id by equality. Virtual tables (json_each over one
    row's JSON) are per-row by nature and allowed.
    """
    parents = {node: parent for node, parent, _, _ in plan}
    details = {node: detail for node, _, _, detail in plan}

    def inside_correlated(node: int) -> bool:
        while node in parents and parents[node] != 0:
            node = parents[node]
            if details.get(node, "").startswith("CORRELATED"):
                return True
        return False

    problems, seen_outer_loop = [], False
    for node, parent, _, detail in plan:
        match = LOOP.match(detail)
        if not match or "VIRTUAL TABLE" in detail:
            continue
        nested = inside_correlated(node) or parent != 0
        if not nested and not seen_outer_loop:
            seen_outer_loop = True
            continue
        constraints = match.group(3) or ""
        pinned = [c for c in re.findall(r"(\w+)=\?", constraints) if c != "project_id"]
        if match.group(1) == "SCAN" or not pinned:
            problems.append(detail)
    return problems


def plan_of(db: sqlite3.Connection, sql: str) -> list[tuple[int, int, int, str]]:
    return [tuple(row) for row in db.execute("EXPLAIN QUERY PLAN " + sql)]


class ViewPlanTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.db = sqlite3.connect(":memory:")
        migrate(cls.db)
        fill(cls.db, 2000)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.db.close()

    def test_every_documented_query_is_found(self) -> None:
        titles = [title for title, _ in documented_queries(self.db)]
        for view in ("live_scores", "trace_last_generation", "annotated_examples"):
            self.assertIn(f"view {view}", titles)
        self.assertGreaterEqual(sum(t.startswith("example:") for t in titles), 5, titles)

    def test_no_view_or_example_reads_a_table_per_row(self) -> None:
        # As lfharvest leaves the file (no ANALYZE), and after a user ran ANALYZE.
        analyzed = sqlite3.connect(":memory:")
        migrate(analyzed)
        fill(analyzed, 2000, analyze=True)
        for db, label in ((self.db, "plain"), (analyzed, "analyzed")):
            for title, sql in documented_queries(db):
                with self.subTest(title, db=label):
                    plan = plan_of(db, sql)
                    self.assertEqual(per_row_scans(plan), [], "\n".join(d for *_, d in plan))
        analyzed.close()

    def test_the_rule_flags_version_1s_last_generation_view(self) -> None:
        old = sqlite3.connect(":memory:")
        old.executescript((ROOT / "schema" / "0001_init.sql").read_text(encoding="utf-8"))
        try:
            problems = per_row_scans(plan_of(
                old, "SELECT count(*) FROM annotated_examples WHERE score_name = 'quality'"))
            self.assertTrue(problems, "the old NOT EXISTS view should be flagged")
        finally:
            old.close()

    def test_every_example_returns_rows_on_a_filled_cache(self) -> None:
        for title, sql in documented_queries(self.db):
            with self.subTest(title):
                self.assertTrue(self.db.execute(sql).fetchall(), f"no rows: {sql}")

    def test_last_user_message_reads_messages_objects_and_lists(self) -> None:
        sql = dict(documented_queries(self.db))
        query = next(q for t, q in sql.items() if "last user message" in t.lower())
        rows = self.db.execute(query).fetchall()
        inputs = dict(self.db.execute(
            "SELECT trace_id, json_type(input_json) FROM annotated_examples").fetchall())
        kinds = {inputs[trace_id] for trace_id, message in rows if message}
        self.assertEqual(kinds, {"array", "object"})
        self.assertTrue(all(message.startswith("question ") for _, message in rows))

    def test_last_generation_follows_new_and_changed_observations(self) -> None:
        db = sqlite3.connect(":memory:")
        migrate(db)
        db.execute("INSERT INTO traces (project_id, trace_id, queued_at) VALUES ('p', 't', 'x')")
        insert = ("INSERT INTO observations (project_id, observation_id, trace_id, type, start_time,"
                  " input_json, output_json, attributes_json, fetched_at)"
                  " VALUES ('p', ?, 't', ?, ?, 'null', 'null', '{}', 'x')")
        last = lambda: db.execute(  # noqa: E731
            "SELECT observation_id FROM trace_last_generation WHERE trace_id = 't'").fetchall()
        db.execute(insert, ("g1", "GENERATION", "2026-01-01T00:00:01.000Z"))
        db.execute(insert, ("s1", "SPAN", "2026-01-01T00:00:09.000Z"))
        self.assertEqual(last(), [("g1",)])
        db.execute(insert, ("g2", "GENERATION", "2026-01-01T00:00:02.000Z"))
        self.assertEqual(last(), [("g2",)])
        db.execute("UPDATE observations SET start_time = '2026-01-01T00:00:03.000Z' WHERE observation_id = 'g1'")
        self.assertEqual(last(), [("g1",)])
        db.execute(insert, ("g0", "GENERATION", "2026-01-01T00:00:03.000Z"))  # tie: greater id wins
        self.assertEqual(last(), [("g1",)])
        db.execute("DELETE FROM observations WHERE observation_id = 'g1'")
        self.assertEqual(last(), [("g0",)])
        db.close()


if __name__ == "__main__":
    unittest.main()
