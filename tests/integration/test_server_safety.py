"""Do no harm to a struggling server: against the fake's heap model (a Node heap that in-flight
answers fill; two big answers at once crash it), a sync at the defaults crashes it at most once,
learns which traces are big, and completes with every annotated trace stored. With a heap that
holds two big answers: no crash at all. `status` reports what was learned. Counts, not timings.
(bench/safety_bench.py has the full-size figures.)"""

from __future__ import annotations

import json
import random
import unittest

from lfh_testlib import (EXIT_OK, EXIT_TEMPFAIL, FakeLangfuse, Workspace, compare_with_truth,
                         report)

import fake_langfuse as fl  # noqa: E402  (on the path once lfh_testlib is imported)

TRACES = 12
BIG = 3
BIG_SIZE = 1_500_000  # each big answer is about 1.5 MB: x5 = 7.5 MB of heap
# Above 1 MiB a page is big; the client budget is higher than the default so that the test is
# quick, and two requests are in flight as by default.
LIMITS = {"requests_per_second": 20, "max_in_flight": 2, "big_response_mib": 1}
RETRY = {"backoff_base_ms": 200, "backoff_cap_seconds": 2, "breaker_probe_base_seconds": 1,
         "breaker_probe_cap_seconds": 2}


def seed_with_big(traces: int, big: int) -> int:
    """A data seed that gives exactly `big` traces with a big input."""
    for seed in range(1, 5000):
        config = fl.DataConfig(traces=traces, annotated_fraction=1.0, big_fraction=big / traces,
                               big_size=10, seed=seed, start_time_ms=fl.wall_ms())
        rng = random.Random(config.seed)
        generated, _ = fl.DatasetGenerator(config, rng, fl.IdFactory(rng)).generate()
        if sum(1 for t in generated if any(o.is_big for o in t.observations)) == big:
            return seed
    raise RuntimeError("no such seed")


def fake_options(heap_mb: float) -> dict:
    return dict(traces=TRACES, annotated_fraction=1.0, big_fraction=BIG / TRACES,
                big_size=BIG_SIZE, seed=seed_with_big(TRACES, BIG), heap_limit_mb=heap_mb,
                heap_multiplier=5, crash_seconds=2, send_mb_per_s=3)


def sync_to_the_end(ws: Workspace, runs: int = 4) -> list[int]:
    codes = []
    for _ in range(runs):
        result = ws.run("sync", "--max-wait", "60", timeout=240)
        codes.append(result.rc)
        if result.rc != EXIT_TEMPFAIL:
            break
    return codes


class ServerSafetyTest(unittest.TestCase):
    def check_complete(self, ws: Workspace, fake: FakeLangfuse, codes: list[int]) -> dict:
        self.assertEqual(codes[-1], EXIT_OK, f"sync exits {codes}: {ws.runs[-1].describe()}")
        problems, figures = compare_with_truth(ws.db, fake.truth())
        self.assertEqual(problems, [])
        self.assertEqual(figures["db_done"], TRACES)
        self.assertEqual(figures["big_inputs_checked"], BIG)
        status = ws.run("status", "--json")
        self.assertEqual(status.rc, EXIT_OK, status.describe())
        return json.loads(status.stdout)["server_safety"]

    def test_small_heap_crashes_at_most_once_and_the_sync_completes(self) -> None:
        # 10 MB: one big answer (7.5 MB) fits, two do not.
        with FakeLangfuse(**fake_options(10)) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS, "retry": RETRY})
            codes = sync_to_the_end(ws)
            load = fake.control("GET", "load")
            safety = self.check_complete(ws, fake, codes)
            self.assertLessEqual(load["crashes"], 1, load)
            # Every big trace is known as big now, and status says what it saw.
            self.assertEqual(safety["big_traces"], BIG)
            self.assertGreater(safety["largest_response_bytes"], 1 << 20)
            self.assertEqual(safety["crashes_seen"] > 0, load["crashes"] > 0)
            self.assertLessEqual(safety["effective_concurrency"], LIMITS["max_in_flight"])
            report("safety.small_heap.crashes", load["crashes"])
            report("safety.small_heap.sync_runs", len(codes))

    def test_a_heap_that_holds_two_big_answers_never_crashes(self) -> None:
        with FakeLangfuse(**fake_options(40)) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS, "retry": RETRY})
            codes = sync_to_the_end(ws)
            safety = self.check_complete(ws, fake, codes)
            self.assertEqual(fake.control("GET", "load")["crashes"], 0)
            self.assertEqual(safety["crashes_seen"], 0)
            self.assertEqual(safety["big_traces"], BIG)
            # A healthy server keeps the configured caps.
            self.assertEqual(safety["effective_concurrency"], LIMITS["max_in_flight"])
            self.assertAlmostEqual(safety["effective_rate_per_second"],
                                   LIMITS["requests_per_second"])


if __name__ == "__main__":
    unittest.main()
