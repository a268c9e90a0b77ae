"""A sync under 30% injected failures completes, stores everything exactly once, honours
Retry-After, and keeps the request limits."""

from __future__ import annotations

import collections
import datetime
import unittest

from lfh_testlib import (EXIT_OK, EXIT_TEMPFAIL, FakeLangfuse, Workspace, compare_with_truth,
                         db_scalar, fault_mix, integrity_check, page_key, report, sync_until_done,
                         wait_until)

LIMITS = {"requests_per_second": 100, "max_in_flight": 3}
RETRY = {"backoff_base_ms": 100, "backoff_cap_seconds": 3, "max_attempts": 10,
         "breaker_failures": 5, "breaker_probe_base_seconds": 1, "breaker_probe_cap_seconds": 2}


class FaultsTest(unittest.TestCase):
    def test_30_percent_failures(self) -> None:
        with FakeLangfuse(traces=300, big_fraction=0.02, seed=5) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS, "retry": RETRY, "sync": {"max_wait_seconds": 10}})
            fake.faults(fault_mix(0.30), seed=42)

            runs = sync_until_done(ws, max_runs=8)
            report("faults.sync_runs", len(runs))
            report("faults.exit_codes", [r.rc for r in runs])
            self.assertEqual(runs[-1].rc, EXIT_OK, runs[-1].describe())

            stats = fake.stats()
            rules = fake.fault_state()
            fired = sum(rule["fired"] for rule in rules)
            by_mode = collections.Counter()
            for rule in rules:
                by_mode[f"{rule['mode']}{rule.get('status', '')}"] += rule["fired"]
            total = stats["requests_total"]
            report("faults.requests_total", total)
            report("faults.faults_fired", f"{fired} ({100 * fired / total:.1f}% of requests)")
            report("faults.by_mode", dict(by_mode))
            # The mix really happened: roughly 30%, and every kind at least once.
            self.assertGreater(fired / total, 0.2)
            self.assertTrue(all(n > 0 for n in by_mode.values()), by_mode)

            fake.clear_faults()
            problems, figures = compare_with_truth(ws.db, fake.truth())
            for name in ("truth_traces", "db_done", "db_observations", "truth_observations",
                         "big_inputs_checked"):
                report(f"faults.{name}", figures[name])
            self.assertEqual(problems, [], "\n".join(problems[:20]))
            self.assertEqual(figures["db_observations"], figures["truth_observations"])
            self.assertEqual(
                db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state != 'done'"), 0)
            dup_scores = db_scalar(ws.db, "SELECT count(*) - count(DISTINCT score_id) FROM scores")
            self.assertEqual(dup_scores, 0)
            self.assertEqual(integrity_check(ws.db), "ok")

            # Limits hold under retries too.
            report("faults.peak_in_flight",
                   f"{stats['peak_in_flight']} (cap {LIMITS['max_in_flight']})")
            report("faults.max_per_second",
                   f"{stats['max_per_second']} (budget {LIMITS['requests_per_second']}/s)")
            self.assertLessEqual(stats["peak_in_flight"], LIMITS["max_in_flight"])
            self.assertLessEqual(stats["max_per_second"], LIMITS["requests_per_second"] + 1)
            self.assertEqual(stats["trace_detail_calls"], 0)

            # Never earlier than Retry-After: after a 429 (Retry-After: 1) the same page is not
            # asked for again within 1 s of the answer.
            requests = sorted(stats["requests"], key=lambda r: r["t"])
            early = []
            checked = 0
            for i, r in enumerate(requests):
                if r["status"] != 429 or r["endpoint"] == "/api/public/health":
                    continue
                key = page_key(r)
                later = next((n for n in requests[i + 1:] if page_key(n) == key), None)
                if later is None:
                    continue
                checked += 1
                if later["t"] < r["t_end"] + 1.0 - 0.005:
                    early.append((r["path"], round(later["t"] - r["t_end"], 3)))
            report("faults.retry_after_checked", checked)
            report("faults.retries_earlier_than_retry_after", len(early))
            self.assertGreater(checked, 0)
            self.assertEqual(early, [])

    def test_exit_75_then_the_next_passes_finish(self) -> None:
        # Backoff up to 2 s but --max-wait 0: a pass stops (exit 75) as soon as only retries
        # that are not due yet remain; the following passes pick them up.
        with FakeLangfuse(traces=200, seed=6) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS, "retry": {**RETRY, "backoff_base_ms": 2000}})
            fake.faults(fault_mix(0.30, path=r"^/api/public/v2/observations"), seed=9)
            codes = []
            for _ in range(30):
                result = ws.run("sync", "--max-wait", "0")
                codes.append(result.rc)
                if result.rc != EXIT_TEMPFAIL:
                    break
                self.assertIn("waiting for a retry", result.stderr)
                # Wait (bounded) until every scheduled retry is due, as a timer would.
                due = db_scalar(ws.db, "SELECT max(next_attempt_at) FROM traces "
                                       "WHERE state = 'retry'")
                if due:
                    at = datetime.datetime.fromisoformat(due.replace("Z", "+00:00"))
                    utc = datetime.timezone.utc
                    wait_until(lambda: datetime.datetime.now(utc) >= at, timeout=30)
            report("faults.exit75.codes", codes)
            self.assertEqual(codes[-1], EXIT_OK)
            self.assertIn(EXIT_TEMPFAIL, codes)
            fake.clear_faults()
            problems, figures = compare_with_truth(ws.db, fake.truth())
            self.assertEqual(problems, [], "\n".join(problems[:20]))
            report("faults.exit75.traces_done", figures["db_done"])


if __name__ == "__main__":
    unittest.main()
