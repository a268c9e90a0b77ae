"""Reliability 4: 429 and Retry-After, measured by the server.

  - `Retry-After: 7` (delay-seconds) on a score page: no request of any kind reaches the server
    until 7 s after the 429 was sent;
  - `Retry-After: <HTTP-date>` on an observation page while two workers fetch: no request before
    that date (a request the other worker had already sent is reported, not counted);
  - a garbage `Retry-After` falls back to capped exponential backoff: requests continue, each
    retry within its backoff bound;
  - the fake's fixed-window limit (Langfuse's, including its off-by-one) with a client
    `requests_per_minute` below it: the whole sync completes with 429s <= 1% of requests.
The fixed-window part runs with a 1 s window instead of 60 s (same mechanism, 60 times faster):
limit 60 per window on the server, 3000 per minute (50 per second) on the client.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
import unittest
from typing import Any

from reliability_support import (EXIT_OK, HEALTH_PATH, SCORES_PATH, Workspace,
                                 assert_no_secret, compare_with_truth, report, settings,
                                 start_fake, wall_to_monotonic)

BASE_MS = 200
RACE_S = 0.05  # a request the other worker sent before the 429 reached the client


def after(requests: list[dict[str, Any]], answered: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in requests if r["t"] > answered["t_end"] and r is not answered]


class RateLimitTest(unittest.TestCase):
    def test_retry_after_and_budget(self) -> None:
        with start_fake(traces=150, annotated_fraction=0.75, seed=41) as fake, \
                contextlib.ExitStack() as stack:
            workspaces: list[Workspace] = []

            def workspace() -> Workspace:
                ws = stack.enter_context(Workspace(fake))
                workspaces.append(ws)
                return ws
            limits = {"requests_per_second": 500, "max_in_flight": 2, "observation_page_size": 10}
            retry = {"backoff_base_ms": BASE_MS, "backoff_cap_seconds": 2}

            # 1. Retry-After: 7 on the first score page.
            ws = workspace()
            ws.write_config(settings(limits=limits, retry=retry))
            fake.reset_stats()
            fake.faults([{"path": "v3/scores", "mode": "status", "status": 429,
                          "retry_after": "7", "count": 1}])
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            requests = fake.stats()["requests"]
            limited = [r for r in requests if r["status"] == 429]
            self.assertEqual(len(limited), 1)
            later = after(requests, limited[0])
            first_gap = min(r["t"] for r in later) - limited[0]["t_end"]
            early = [r for r in later if r["t"] < limited[0]["t_end"] + 7]
            report("rate.retry_after_7.first_request_after_s", round(first_gap, 3))
            report("rate.retry_after_7.requests_before_time", len(early))
            self.assertEqual(early, [])
            self.assert_complete(ws, fake)

            # 2. Retry-After as an HTTP-date, on an observation page, two workers.
            ws = workspace()
            ws.write_config(settings(limits=limits, retry=retry))
            fake.reset_stats()
            until = int(time.time()) + 5
            fake.faults([{"path": "v2/observations", "mode": "status", "status": 429,
                          "retry_after": email.utils.formatdate(until, usegmt=True),
                          "skip": 20, "count": 1}])
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            requests = fake.stats()["requests"]
            limited = [r for r in requests if r["status"] == 429]
            self.assertEqual(len(limited), 1)
            deadline = wall_to_monotonic(until)
            later = after(requests, limited[0])
            in_flight = [r for r in later if r["t"] < limited[0]["t_end"] + RACE_S]
            early = [r for r in later if limited[0]["t_end"] + RACE_S <= r["t"] < deadline]
            held = deadline - limited[0]["t_end"]
            report("rate.retry_after_date.wait_asked_s", round(held, 3))
            report("rate.retry_after_date.first_request_after_date_s",
                   round(min(r["t"] for r in later if r not in in_flight) - deadline, 3))
            report("rate.retry_after_date.requests_before_date",
                   f"{len(early)} (+{len(in_flight)} sent before the 429 reached the client)")
            self.assertGreater(held, 2.5)
            self.assertEqual(early, [])
            self.assertLessEqual(len(in_flight), 1)
            self.assert_complete(ws, fake)

            # 3. A garbage Retry-After: backoff instead (three times on the score endpoint).
            ws = workspace()
            ws.write_config(settings(limits=limits, retry=retry))
            fake.reset_stats()
            fake.faults([{"path": "v3/scores", "mode": "status", "status": 429,
                          "retry_after": "soon, please", "count": 3}])
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            scores = [r for r in fake.stats()["requests"] if r["path"] == SCORES_PATH]
            gaps = [round(b["t"] - a["t_end"], 3) for a, b in zip(scores, scores[1:])
                    if a["status"] == 429]
            report("rate.garbage_retry_after.retry_gaps_s", gaps)
            report("rate.garbage_retry_after.backoff_bounds_s",
                   [BASE_MS * 2 ** k / 1000 for k in range(3)])
            self.assertEqual(len(gaps), 3)
            for k, gap in enumerate(gaps):
                # Full jitter: uniform(0, base * 2^k); 0.5 s covers the process's own pace on a
                # loaded machine.
                self.assertLessEqual(gap, BASE_MS * 2 ** k / 1000 + 0.5, f"retry {k + 1}")
            self.assert_complete(ws, fake)

            # 4a. Control: a client budget above the server's limit does draw 429s (the server's
            # limiter works), and the sync still completes by honouring Retry-After.
            ws = workspace()
            ws.write_config(settings(limits={"requests_per_second": 500, "max_in_flight": 2,
                                             "observation_page_size": 2}, retry=retry))
            fake.clear_faults()
            fake.set_options(rate_limit_per_minute=60, rate_limit_window_s=1.0,
                             rate_limit_langfuse_quirk=True)
            fake.reset_stats()
            result = ws.run("sync")
            stats = fake.stats()
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            report("rate.control_over_budget.share_429",
                   f"{stats['responses_429'] / max(1, stats['requests_total']):.2%} of "
                   f"{stats['requests_total']} requests")
            self.assertGreater(stats["responses_429"], 0)
            self.assert_complete(ws, fake)

            # 4b. The server's fixed-window limit with a client budget below it.
            ws = workspace()
            ws.write_config(settings(limits={"requests_per_minute": 3000, "max_in_flight": 2,
                                             "observation_page_size": 2}, retry=retry))
            fake.clear_faults()
            fake.set_options(rate_limit_per_minute=60, rate_limit_window_s=1.0,
                             rate_limit_langfuse_quirk=True)
            fake.reset_stats()
            started = time.monotonic()
            result = ws.run("sync")
            seconds = time.monotonic() - started
            stats = fake.stats()
            fake.set_options(rate_limit_per_minute=None)
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            limited_share = stats["responses_429"] / max(1, stats["requests_total"])
            api = [r for r in stats["requests"] if r["path"] != HEALTH_PATH]
            report("rate.window_limit.requests", stats["requests_total"])
            report("rate.window_limit.responses_429", stats["responses_429"])
            report("rate.window_limit.share_429", f"{limited_share:.2%}")
            report("rate.window_limit.max_per_second_seen_by_server", stats["max_per_second"])
            report("rate.window_limit.sync_seconds", round(seconds, 1))
            self.assertGreater(len(api), 150)
            self.assertLessEqual(limited_share, 0.01)
            self.assert_complete(ws, fake)

            assert_no_secret(self, "rate", fake, workspaces)

    def assert_complete(self, ws: Workspace, fake: Any) -> None:
        problems, _ = compare_with_truth(ws.db, fake.truth())
        self.assertEqual(problems, [], "\n".join(problems[:5]))


if __name__ == "__main__":
    unittest.main()
