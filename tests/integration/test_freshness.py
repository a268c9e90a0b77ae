"""Keeping the cache true to the server (issue 4): after a sync, 50 labels are edited in place
(same id and timestamp), 30 scores are hard-deleted and 100 new ones appear only seconds after
their (past) timestamp. After the next syncs and one maintenance cycle the cache and a json
export equal the server's truth exactly. Prints the requests each step cost."""

from __future__ import annotations

import json
import random
import unittest

from lfh_testlib import (EXIT_OK, FAST_LIMITS, FakeLangfuse, Workspace, db_rows, db_scalar,
                         report, wait_until)


def live_cache(db) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in db_rows(
        db, "SELECT score_id, string_value, comment FROM scores "
            "WHERE deleted_at IS NULL AND source = 'ANNOTATION'")}


class FreshnessTest(unittest.TestCase):
    def test_edits_deletions_and_late_scores(self) -> None:
        with FakeLangfuse(traces=600, seed=11) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST_LIMITS, "maintenance": {"settle_minutes": 0}})

            def step(name: str, *args: str) -> None:
                fake.reset_stats()
                result = ws.run(*args)
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                report(f"freshness.{name}.requests", fake.stats()["requests_total"])

            step("initial_sync", "sync")
            truth = fake.truth()
            rng = random.Random(5)
            good = [s["id"] for s in truth["scores"] if s["stringValue"] == "Good"]
            self.assertGreaterEqual(len(good), 60)
            edited = rng.sample(good, 50)
            others = [s["id"] for s in truth["scores"] if s["id"] not in set(edited)]
            deleted = rng.sample(others, 30)
            fake.edit_score(edited, value="Bad", string_value="Bad")
            fake.delete_score(deleted)
            added = fake.add_scores(100, name="quality", new_traces=True,
                                    timestamp_offset_s=-600, visible_after_s=3)

            # The late scores are not visible yet: this sync cannot see them.
            step("sync_before_lag", "sync")
            wait_until(lambda: all(s["visible"] for s in fake.scores()
                                   if s["id"] in set(added["score_ids"])), timeout=30)
            step("sync_after_lag", "sync")
            step("reconcile", "reconcile")

            truth = fake.truth()
            expected = {s["id"]: (s["stringValue"], s["comment"]) for s in truth["scores"]}
            cache = live_cache(ws.db)
            self.assertEqual(set(cache), set(expected), "live score ids differ from the server")
            mismatched = [i for i in expected if cache[i] != expected[i]]
            self.assertEqual(mismatched, [], "cached values differ from the server")
            edits = db_scalar(ws.db, "SELECT count(DISTINCT score_id) FROM score_changes "
                                     "WHERE change = 'edited'")
            deletions = db_scalar(ws.db, "SELECT count(*) FROM score_changes "
                                         "WHERE change = 'deleted'")
            report("freshness.edits_seen", edits)
            report("freshness.deletions_seen", deletions)
            self.assertEqual(edits, 50)
            self.assertEqual(deletions, 30)
            for score_id in added["score_ids"]:
                self.assertIn(score_id, cache)
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state != 'done'"),
                             0)

            # The export holds exactly the traces that still have a live annotation.
            out = ws.dir / "all.json"
            result = ws.run("export", "--format", "json", "--out", str(out))
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            records = json.loads(out.read_text())
            manifest = json.loads((ws.dir / "all.json.manifest.json").read_text())
            live_traces = {s["traceId"] for s in truth["scores"] if s["traceId"]}
            exported = {r["trace_id"] for r in records}
            self.assertTrue(exported <= live_traces)
            self.assertEqual(len(records) + manifest["skipped"], len(live_traces))
            only_score = {}
            for s in truth["scores"]:
                only_score.setdefault(s["traceId"], []).append(s)
            for r in records:
                scores = only_score[r["trace_id"]]
                if len(scores) == 1:
                    self.assertEqual(r["string_value"], scores[0]["stringValue"])
            report("freshness.exported_records", len(records))


if __name__ == "__main__":
    unittest.main()
