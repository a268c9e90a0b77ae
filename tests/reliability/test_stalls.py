"""Reliability 6: bodies that trickle, servers that accept and never answer, black holes.

Settings: low_speed_bytes_per_second = 1024, low_speed_time_seconds = 3, two workers.
  - one trace's first observation page trickles 1 byte every 10 s: the low-speed limit aborts it
    after about 3 s, the trace is retried and completes, and the other worker kept fetching the
    other traces meanwhile;
  - one trace's request is accepted and never answered: it fails within the low-speed time, the
    rest of the sync goes on; with the low-speed check off (0), the request timeout (4 s) ends it;
  - a connect to a port whose accept queue is full (SYNs dropped: a black hole on loopback)
    fails within connect_timeout_seconds (2 s).
Figures: seconds until each stalled request was given up (the retry's start minus the stalled
request's start on the server's log), requests served for other traces meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
import time
import unittest
from typing import Any

from reliability_support import (EXIT_OK, OBSERVATIONS_PATH, Workspace, assert_no_secret,
                                 compare_with_truth, report, settings, start_fake, trace_of)

LOW_SPEED_S = 3
REQUEST_TIMEOUT_S = 4
CONNECT_TIMEOUT_S = 2
SLACK_S = 1.5  # process and scheduling delays on a loaded machine, plus the backoff (<= 0.2 s)
LIMITS = {"requests_per_second": 50, "max_in_flight": 2, "observation_page_size": 10,
          "low_speed_bytes_per_second": 1024, "low_speed_time_seconds": LOW_SPEED_S,
          "request_timeout_seconds": 60, "connect_timeout_seconds": CONNECT_TIMEOUT_S}
RETRY = {"backoff_base_ms": 200, "backoff_cap_seconds": 1}


class StallTest(unittest.TestCase):
    def test_trickle_stall_and_black_hole(self) -> None:
        with start_fake(traces=80, annotated_fraction=0.8, seed=61) as fake, \
                contextlib.ExitStack() as stack:
            workspaces = []
            traces = sorted(fake.truth()["traces"])
            cases = [
                ("trickle", {"mode": "trickle", "interval_s": 10, "bytes_per_tick": 1}, LIMITS,
                 LOW_SPEED_S),
                ("no_answer", {"mode": "stall", "seconds": 30}, LIMITS, LOW_SPEED_S),
                ("no_answer_low_speed_off", {"mode": "stall", "seconds": 30},
                 {**LIMITS, "low_speed_bytes_per_second": 0,
                  "request_timeout_seconds": REQUEST_TIMEOUT_S}, REQUEST_TIMEOUT_S),
            ]
            for n, (name, fault, limits, limit_s) in enumerate(cases):
                ws = stack.enter_context(Workspace(fake))
                workspaces.append(ws)
                ws.write_config(settings(limits=limits, retry=RETRY))
                target = traces[len(traces) // 2 + n]
                fake.reset_stats()
                fake.faults([{"path": "v2/observations", "query": f"traceId={target}(&|$)",
                              "count": 1, **fault}])
                started = time.monotonic()
                result = ws.run("sync", "--max-wait", "30")
                seconds = time.monotonic() - started
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                requests = [r for r in fake.stats()["requests"] if r["path"] == OBSERVATIONS_PATH]
                mine = [r for r in requests if trace_of(r) == target]
                self.assertGreaterEqual(len(mine), 2, "the stalled trace was not retried")
                stalled, retried = mine[0], mine[1]
                given_up = retried["t"] - stalled["t"]
                others = [r for r in requests if trace_of(r) != target
                          and stalled["t"] < r["t"] < stalled["t"] + limit_s]
                report(f"stall.{name}.given_up_after_s", round(given_up, 2))
                report(f"stall.{name}.other_trace_requests_meanwhile", len(others))
                report(f"stall.{name}.sync_seconds", round(seconds, 1))
                self.assertGreaterEqual(given_up, limit_s - 0.3)
                self.assertLessEqual(given_up, limit_s + SLACK_S)
                self.assertGreater(len(others), 0, "the stall blocked the other traces")
                problems, _ = compare_with_truth(ws.db, fake.truth())
                self.assertEqual(problems, [], "\n".join(problems[:5]))

            # A black hole: a listening socket whose accept queue is full drops new SYNs.
            ws = stack.enter_context(Workspace(fake))
            workspaces.append(ws)
            ws.write_config(settings(limits=LIMITS, retry=RETRY))
            with self.black_hole() as port:
                started = time.monotonic()
                result = ws.run_raw(["check", "--config", str(ws.config_path), "--db", str(ws.db),
                                "--base-url", f"http://127.0.0.1:{port}"], timeout=60)
                seconds = time.monotonic() - started
            report("stall.black_hole_connect.failed_after_s", round(seconds, 2))
            report("stall.black_hole_connect.exit", result.rc)
            self.assertNotEqual(result.rc, EXIT_OK)
            self.assertLessEqual(seconds, CONNECT_TIMEOUT_S + SLACK_S)
            self.assertRegex(result.stderr, "(?i)time")
            assert_no_secret(self, "stall", fake, workspaces)

    @contextlib.contextmanager
    def black_hole(self) -> Any:
        server = socket.socket()
        fillers = []
        try:
            server.bind(("127.0.0.1", 0))
            server.listen(0)
            port = server.getsockname()[1]
            for _ in range(3):  # fill the accept queue; later SYNs are dropped
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            time.sleep(0.2)
            yield port
        finally:
            for filler in fillers:
                filler.close()
            server.close()


if __name__ == "__main__":
    unittest.main()
