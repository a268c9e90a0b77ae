"""SIGKILL `lfharvest sync` at random moments, restart it until done: nothing lost, nothing
stored twice, the database intact after every kill, at most the pages in flight re-fetched."""

from __future__ import annotations

import os
import random
import subprocess
import unittest

from lfh_testlib import (EXIT_OK, FakeLangfuse, Workspace, compare_with_truth, db_rows,
                         db_scalar, integrity_check, observation_requests, repeated_requests,
                         report, score_requests, sigkill, sync_until_done)

# More kills for a longer exploratory run: LFH_CRASH_KILLS=100 python3 -m unittest test_crash_resume
KILLS = int(os.environ.get("LFH_CRASH_KILLS", "25"))
TRACES = max(1200, 48 * KILLS)
SEED = 20240611
# Slow enough that the work outlasts the kills, small pages so that traces take several pages
# and a kill can land between two pages of one trace.
LIMITS = {"requests_per_second": 40, "max_in_flight": 2, "observation_page_size": 2}


class CrashResumeTest(unittest.TestCase):
    def test_sigkill_at_random_moments(self) -> None:
        rng = random.Random(SEED)
        with FakeLangfuse(traces=TRACES, big_fraction=0.01, seed=13) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS})
            truth = fake.truth()
            expected_counts = {t: len(v["observations"]) for t, v in truth["traces"].items()}

            kills = 0
            runs = 0
            finished_early = False
            states_at_kill: list[int] = []
            while kills < KILLS:
                runs += 1
                process = ws.popen("sync")
                delay = rng.uniform(0.05, 1.5)
                try:
                    process.wait(timeout=delay)
                    finished_early = True  # the whole sync finished before this kill
                except subprocess.TimeoutExpired:
                    sigkill(process)
                    kills += 1
                if finished_early:
                    self.assertEqual(process.returncode, EXIT_OK)
                    break
                # After every kill: the file is intact and every trace marked done holds all of
                # its observations (a page and its cursor commit together).
                self.assertEqual(integrity_check(ws.db), "ok", f"after kill {kills}")
                done = db_rows(ws.db, "SELECT t.trace_id, count(o.observation_id) FROM traces t "
                                      "LEFT JOIN observations o USING (project_id, trace_id) "
                                      "WHERE t.state = 'done' GROUP BY t.trace_id")
                for trace_id, count in done:
                    self.assertEqual(count, expected_counts.get(trace_id),
                                     f"trace {trace_id} after kill {kills}")
                states_at_kill.append(len(done))

            report("crash.kills", kills)
            report("crash.done_traces_at_each_kill", states_at_kill)
            self.assertGreaterEqual(kills, min(20, KILLS),
                                    "the sync finished before 20 kills landed")
            self.assertFalse(finished_early, "the sync finished before all kills: slow it down")

            # The rest at full speed (the kills are over).
            ws.write_config({"limits": {**LIMITS, "requests_per_second": 200}})
            final = sync_until_done(ws, max_runs=5)
            self.assertEqual(final[-1].rc, EXIT_OK, final[-1].describe())

            problems, figures = compare_with_truth(ws.db, fake.truth())
            for name in ("truth_traces", "db_done", "db_observations", "truth_observations",
                         "big_inputs_checked"):
                report(f"crash.{name}", figures[name])
            self.assertEqual(problems, [], "\n".join(problems[:20]))
            self.assertEqual(figures["db_observations"], figures["truth_observations"])
            self.assertEqual(
                db_scalar(ws.db, "SELECT count(*) - count(DISTINCT score_id) FROM scores"), 0)
            self.assertEqual(integrity_check(ws.db), "ok")

            stats = fake.stats()
            obs = observation_requests(stats)
            repeats = repeated_requests(obs)
            page = LIMITS["observation_page_size"]
            pages_needed = sum(-(-n // page) for n in expected_counts.values())
            report("crash.observation_requests", f"{len(obs)} for {pages_needed} pages needed")
            report("crash.observation_pages_refetched", repeats)
            report("crash.pages_refetched_per_kill", f"{repeats / kills:.2f}")
            report("crash.score_requests", len(score_requests(stats)))
            report("crash.score_pages_repeated", repeated_requests(score_requests(stats)))
            # Not asserted: a killed client's request stays in flight on the server while the
            # next process starts.
            report("crash.peak_in_flight_across_processes", stats["peak_in_flight"])
            # A kill loses at most the pages in flight: one per worker.
            self.assertLessEqual(repeats, kills * LIMITS["max_in_flight"])
            self.assertLessEqual(len(obs), pages_needed + kills * LIMITS["max_in_flight"])


if __name__ == "__main__":
    unittest.main()
