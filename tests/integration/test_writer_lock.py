"""One writer per database: a second `sync` (or `retry`, `reconcile`, `run`) on a database that
a running writer holds refuses at once, naming the holder's PID, with exit 75; `status` and
`export` keep working meanwhile; the server sees one budget, and no trace is fetched twice.
The lock dies with its holder: after kill -9 the next writer starts without any cleanup."""

from __future__ import annotations

import unittest

from lfh_testlib import (EXIT_OK, EXIT_TEMPFAIL, FakeLangfuse, Workspace, compare_with_truth,
                         observation_requests, repeated_requests, report, sigkill, wait_until)

# Slow enough that the first writer is still running when the others try.
RATE = 20
LIMITS = {"requests_per_second": RATE, "max_in_flight": 2, "observation_page_size": 2}


class WriterLockTest(unittest.TestCase):
    def test_second_writer_refuses_and_nothing_is_fetched_twice(self) -> None:
        with FakeLangfuse(traces=120, seed=5) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS})
            first = ws.popen("sync")
            try:
                lock_file = ws.dir / "lfharvest.db.lock"
                # The first writer holds the lock once it has written its PID, and is fetching
                # traces once the server has seen observation requests.
                wait_until(lambda: lock_file.exists() and lock_file.read_text().strip(), 20)
                self.assertEqual(lock_file.read_text().strip(), str(first.pid))
                wait_until(lambda: observation_requests(fake.stats()), 30)

                refusals = {}
                for command in ("sync", "retry", "reconcile"):
                    result = ws.run(command, timeout=30)
                    refusals[command] = result
                    self.assertEqual(result.rc, EXIT_TEMPFAIL, result.describe())
                    self.assertIn(f"PID {first.pid}", result.stderr, result.describe())
                    # "At once": it did not wait for the first writer (which runs for seconds).
                    self.assertIsNone(first.poll(), "the first writer ended before the test")
                # Readers are not writers.
                status = ws.run("status", "--json", timeout=30)
                self.assertEqual(status.rc, EXIT_OK, status.describe())
                export = ws.run("export", "--format", "jsonl", "--out",
                                str(ws.dir / "during.jsonl"), timeout=60)
                self.assertEqual(export.rc, EXIT_OK, export.describe())
                self.assertEqual(first.wait(timeout=240), EXIT_OK)
            finally:
                if first.poll() is None:
                    sigkill(first)

            stats = fake.stats()
            problems, figures = compare_with_truth(ws.db, fake.truth())
            self.assertEqual(problems, [])
            # One writer means one budget (the pacing allows one more in any 1 s window) and
            # every observation page asked for once.
            self.assertLessEqual(stats["max_per_second"], RATE + 1)
            obs = observation_requests(stats)
            self.assertGreater(len(obs), 0)
            self.assertEqual(repeated_requests(obs), 0)
            report("writer_lock.max_per_second", stats["max_per_second"])
            report("writer_lock.observation_requests", len(obs))

    def test_lock_dies_with_its_holder(self) -> None:
        with FakeLangfuse(traces=60, seed=6) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": LIMITS})
            first = ws.popen("sync")
            lock_file = ws.dir / "lfharvest.db.lock"
            try:
                wait_until(lambda: lock_file.exists() and lock_file.read_text().strip(), 20)
            finally:
                sigkill(first)
            # The file stays behind with the dead PID in it; the lock does not.
            self.assertTrue(lock_file.exists())
            result = ws.run("sync", timeout=240)
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            problems, _ = compare_with_truth(ws.db, fake.truth())
            self.assertEqual(problems, [])


if __name__ == "__main__":
    unittest.main()
