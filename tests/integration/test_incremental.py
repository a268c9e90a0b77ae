"""Incremental polling: a sync with nothing new is nearly free, and 10 new annotations on top
of 20,000 cached scores cost their observation pages plus at most 3 requests."""

from __future__ import annotations

import math
import unittest

from lfh_testlib import (EXIT_OK, FAST_LIMITS, FakeLangfuse, Workspace, compare_with_truth,
                         db_scalar, endpoint_count, observation_requests, report, score_requests)

HISTORY = 20_000
OBSERVATION_PAGE = 10  # the default page size


class IncrementalTest(unittest.TestCase):
    def test_nothing_new_then_ten_new_annotations(self) -> None:
        with FakeLangfuse(traces=800, seed=23) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST_LIMITS})
            # Grow the history to 20,000 annotation scores, spread over the last days, on traces
            # already annotated (so the initial sync stays short).
            base = fake.truth()
            annotated = sorted(base["traces"])[:100]
            missing = HISTORY - len(base["scores"])
            batches = 80
            for i in range(batches):
                count = missing // batches + (1 if i < missing % batches else 0)
                fake.add_scores(count, new_traces=False, trace_ids=annotated,
                                timestamp_offset_s=-3600 * (2 + i), visible_after_s=0)

            first = ws.run("sync")
            self.assertEqual(first.rc, EXIT_OK, first.describe())
            cached = db_scalar(ws.db, "SELECT count(*) FROM scores")
            report("incremental.cached_scores", cached)
            report("incremental.initial_sync_seconds", f"{first.seconds:.1f}")
            self.assertGreaterEqual(cached, HISTORY)

            # 1. Nothing new on the server.
            fake.reset_stats()
            again = ws.run("sync")
            self.assertEqual(again.rc, EXIT_OK, again.describe())
            stats = fake.stats()
            scores_n = len(score_requests(stats))
            obs_n = len(observation_requests(stats))
            report("incremental.nothing_new.requests", f"{stats['requests_total']} "
                   f"({scores_n} score, {obs_n} observation, by endpoint {stats['by_endpoint']})")
            self.assertLessEqual(scores_n, 2)
            self.assertEqual(obs_n, 0)

            # 2. Ten new annotations on new traces, visible at once.
            added = fake.add_scores(10, new_traces=True, visible_after_s=0)
            truth = fake.truth()
            pages = sum(max(1, math.ceil(len(truth["traces"][t]["observations"])
                                         / OBSERVATION_PAGE))
                        for t in set(added["trace_ids"]))
            fake.reset_stats()
            refresh = ws.run("sync")
            self.assertEqual(refresh.rc, EXIT_OK, refresh.describe())
            stats = fake.stats()
            scores_n = len(score_requests(stats))
            obs_n = len(observation_requests(stats))
            report("incremental.ten_new.requests", f"{stats['requests_total']} "
                   f"({scores_n} score, {obs_n} observation; limit {pages} pages + 3)")
            self.assertEqual(obs_n, pages)
            self.assertLessEqual(stats["requests_total"], pages + 3)
            self.assertEqual(endpoint_count(stats, ["/api/public/v2/observations"], "200"), obs_n)

            problems, figures = compare_with_truth(ws.db, truth)
            self.assertEqual(problems, [], "\n".join(problems[:20]))
            for trace_id in added["trace_ids"]:
                self.assertEqual(db_scalar(ws.db, "SELECT state FROM traces WHERE trace_id = ?",
                                           [trace_id]), "done")
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM scores"), cached + 10)


if __name__ == "__main__":
    unittest.main()
