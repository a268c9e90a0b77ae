"""A full sync of 2,000 traces, and the default request budget as the server sees it."""

from __future__ import annotations

import unittest
import urllib.parse

from lfh_testlib import (FAST_LIMITS, FakeLangfuse, Workspace, compare_with_truth, endpoint_count,
                         integrity_check, observation_requests, report)


class FullSyncTest(unittest.TestCase):
    def test_2000_traces_half_annotated_2_percent_big(self) -> None:
        with FakeLangfuse(traces=2000, annotated_fraction=0.5, big_fraction=0.02,
                          big_size=6_000_000, seed=7) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST_LIMITS})
            result = ws.run("sync")
            self.assertEqual(result.rc, 0, result.describe())
            report("full_sync.seconds", f"{result.seconds:.1f}")

            stats = fake.stats()
            truth = fake.truth()
            problems, figures = compare_with_truth(ws.db, truth)
            for name, value in figures.items():
                report(f"full_sync.{name}", value)
            self.assertEqual(problems, [], "\n".join(problems[:20]))
            self.assertGreaterEqual(figures["truth_traces"], 900)
            self.assertGreater(figures["big_inputs_checked"], 0, "no 6 MB input was checked")
            self.assertEqual(figures["db_observations"], figures["truth_observations"])
            self.assertEqual(integrity_check(ws.db), "ok")

            # Never the whole-trace endpoint; observations with the field groups needed.
            self.assertEqual(stats["trace_detail_calls"], 0)
            obs = observation_requests(stats)
            for request in obs:
                query = urllib.parse.parse_qs(request["query"])
                fields = set(",".join(query.get("fields", [""])).split(","))
                self.assertTrue({"io", "model", "usage"} <= fields, request["query"])
                self.assertIn("traceId", query)
            ok_obs = endpoint_count(stats, ["/api/public/v2/observations"], "200")
            report("full_sync.requests_total", stats["requests_total"])
            report("full_sync.observation_requests", len(obs))
            report("full_sync.requests_per_annotated_trace",
                   f"{stats['requests_total'] / figures['truth_traces']:.3f}")
            self.assertEqual(ok_obs, len(obs), "every observation request succeeded (no faults)")

            # The configured limits, as the server measured them.
            cap, rate = FAST_LIMITS["max_in_flight"], FAST_LIMITS["requests_per_second"]
            report("full_sync.peak_in_flight", f"{stats['peak_in_flight']} (cap {cap})")
            report("full_sync.max_per_second", f"{stats['max_per_second']} (budget {rate}/s)")
            self.assertLessEqual(stats["peak_in_flight"], FAST_LIMITS["max_in_flight"])
            self.assertLessEqual(stats["max_per_second"], FAST_LIMITS["requests_per_second"] + 1)

            status = ws.run("status", "--json", base_url=False)
            self.assertEqual(status.rc, 0, status.describe())

    def test_default_budget_holds_as_the_server_sees_it(self) -> None:
        # No [limits] at all: 5 requests/s, 2 in flight.
        with FakeLangfuse(traces=100, seed=11) as fake, Workspace(fake) as ws:
            result = ws.run("sync")
            self.assertEqual(result.rc, 0, result.describe())
            stats = fake.stats()
            problems, figures = compare_with_truth(ws.db, fake.truth())
            self.assertEqual(problems, [], "\n".join(problems[:20]))

            arrivals = sorted(r["t"] for r in stats["requests"])
            # Our own check of the sliding window, and of the very first second (no burst).
            worst = max(sum(1 for t in arrivals[i:] if t - start < 1.0)
                        for i, start in enumerate(arrivals))
            first_second = sum(1 for t in arrivals if t - arrivals[0] < 1.0)
            span = arrivals[-1] - arrivals[0]
            achieved = (len(arrivals) - 1) / span if span > 0 else float("inf")
            report("default_budget.requests", len(arrivals))
            report("default_budget.seconds", f"{result.seconds:.1f}")
            report("default_budget.achieved_rate", f"{achieved:.2f}/s (budget 5/s)")
            report("default_budget.max_per_second", f"{stats['max_per_second']} (limit 6)")
            report("default_budget.requests_in_first_second", first_second)
            report("default_budget.peak_in_flight", f"{stats['peak_in_flight']} (cap 2)")
            self.assertGreater(len(arrivals), 30)
            self.assertLessEqual(stats["max_per_second"], 6)
            self.assertLessEqual(worst, 6)
            self.assertLessEqual(first_second, 6)
            self.assertLessEqual(stats["peak_in_flight"], 2)
            self.assertLessEqual(achieved, 5.5)
            # The budget is used, not wasted: at least 60% of 5/s over the whole sync.
            self.assertGreater(achieved, 3.0)

    def test_per_minute_budget_has_no_burst(self) -> None:
        # 1,200 requests/minute = 20/s: smooth, never a minute's worth at once.
        with FakeLangfuse(traces=120, seed=3) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_minute": 1200, "max_in_flight": 2}})
            result = ws.run("sync")
            self.assertEqual(result.rc, 0, result.describe())
            stats = fake.stats()
            report("per_minute_budget.requests", stats["requests_total"])
            report("per_minute_budget.max_per_second", f"{stats['max_per_second']} (limit 21)")
            self.assertGreater(stats["requests_total"], 40)
            self.assertLessEqual(stats["max_per_second"], 21)
            self.assertLessEqual(stats["peak_in_flight"], 2)


if __name__ == "__main__":
    unittest.main()
