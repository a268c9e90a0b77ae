"""The legacy API generation (self-hosted Langfuse v2/v3): page/limit paging, detected from
the health version, full sync stored correctly."""

from __future__ import annotations

import unittest
import urllib.parse

from lfh_testlib import (EXIT_OK, FAST_LIMITS, FakeLangfuse, Workspace, compare_with_truth,
                         db_scalar, endpoint_count, integrity_check, report)

LEGACY_ENDPOINTS = ("/api/public/scores", "/api/public/v2/scores", "/api/public/observations")
CURRENT_ENDPOINTS = ("/api/public/v3/scores", "/api/public/v2/observations")


class LegacyTest(unittest.TestCase):
    def test_full_sync_with_page_paging(self) -> None:
        with FakeLangfuse(generation="legacy", traces=400, big_fraction=0.01, seed=17) as fake, \
                Workspace(fake) as ws:
            # Legacy offset paging has no tie-breaker, so observations always come 100 to a page
            # there, whatever observation_page_size says: one trace with 205 observations
            # takes three pages.
            ws.write_config({"limits": {**FAST_LIMITS, "observation_page_size": 3}})
            long_trace = next(iter(fake.truth()["traces"]))
            for _ in range(200):
                fake.add_observation(long_trace)
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            stats = fake.stats()

            # Legacy observations come as parsed JSON, so compare every input as a value (the
            # big ones too, from the full truth).
            problems, figures = compare_with_truth(ws.db, fake.truth(full=True))
            for name in ("truth_traces", "db_done", "db_observations", "truth_observations"):
                report(f"legacy.{name}", figures[name])
            self.assertEqual(problems, [], "\n".join(problems[:20]))
            self.assertEqual(integrity_check(ws.db), "ok")
            self.assertEqual(db_scalar(ws.db, "SELECT api_generation FROM projects"), "legacy")

            self.assertEqual(endpoint_count(stats, CURRENT_ENDPOINTS), 0)
            self.assertEqual(stats["trace_detail_calls"], 0)
            legacy = [r for r in stats["requests"] if r["endpoint"] in LEGACY_ENDPOINTS]
            pages_by_trace: dict[str, set[int]] = {}
            for r in legacy:
                query = urllib.parse.parse_qs(r["query"])
                self.assertIn("page", query, r["query"])
                self.assertIn("limit", query, r["query"])
                self.assertNotIn("cursor", query, r["query"])
                self.assertLessEqual(int(query["limit"][0]), 100)
                if r["endpoint"] == "/api/public/observations":
                    self.assertEqual(query["limit"], ["100"], r["query"])
                if r["endpoint"] == "/api/public/observations":
                    pages_by_trace.setdefault(query["traceId"][0], set()).add(int(query["page"][0]))
            multi = sum(1 for pages in pages_by_trace.values() if len(pages) > 1)
            report("legacy.requests_total", stats["requests_total"])
            report("legacy.score_requests", endpoint_count(stats, LEGACY_ENDPOINTS[:2]))
            report("legacy.observation_requests", endpoint_count(stats, LEGACY_ENDPOINTS[2:]))
            report("legacy.traces_over_several_pages", multi)
            self.assertGreater(multi, 0)
            self.assertEqual(len(pages_by_trace[long_trace]), 3)
            # Every trace's pages are 1..n without gaps.
            for trace_id, pages in pages_by_trace.items():
                self.assertEqual(pages, set(range(1, max(pages) + 1)), trace_id)


if __name__ == "__main__":
    unittest.main()
