"""Reliability 3: ENOSPC and EIO on database writes, injected with strace.

Here SQLite (WAL mode) writes the database with pwrite64 and syncs it with fdatasync; a dry run
under strace shows which syscalls touch the database files (printed as a figure). strace's
`inject=SYSCALL:error=ERRNO:when=N+` makes the Nth and every later call of that syscall in a
thread fail, so from the Nth write on the disk looks full (ENOSPC) or broken (EIO).

Scenarios, each from the same starting database (a complete harvest, then 25 new annotated
traces on the server):
  - the first score page of the pass fails to commit (ENOSPC): exit 74, a clear message, the
    page rolled back (no new score, no new trace), the poll cursor and watermark unchanged;
  - the second observation page of one trace fails to commit (EIO): exit 74, that trace still
    at the cursor after its first page with exactly that page's observations;
  - every fdatasync fails (EIO);
  - ENOSPC from the Nth write on, for N spread over a whole run.
After each: no crash, `PRAGMA integrity_check` ok, every trace consistent with its cursor, and the
next run without the fault completes with nothing lost (the database equals the server's truth).
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path
from typing import Any

from reliability_support import (EXIT_IO, EXIT_OK, OBSERVATIONS_PATH, RunResult, Workspace,
                                 assert_no_secret, binary, compare_with_truth, db_rows,
                                 integrity_check, report, settings, start_fake)

LIMITS = {"requests_per_second": 1000, "max_in_flight": 1, "observation_page_size": 2,
          "score_page_size": 10}
NEW_TRACES = 25
SWEEP = (1, 3, 10, 30, 60, 120, 250)
CALL = re.compile(r"^(\d+) +(\w+)\((.*)$")


def strace_available() -> str | None:
    if shutil.which("strace") is None:
        return "strace is not installed (scripts/bootstrap.sh installs it)"
    probe = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        return f"strace cannot trace here (ptrace refused?): {probe.stderr.strip()[:200]}"
    return None


class DiskFaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        reason = strace_available()
        if reason:
            raise unittest.SkipTest(reason)

    def setUp(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="lfh-rel-strace-"))  # strace logs: not scanned

    def tearDown(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -- running under strace -------------------------------------------------------------------

    def strace_run(self, ws: Workspace, name: str, options: list[str]) -> tuple[RunResult, Path]:
        log = self.scratch / f"{name}.strace"
        argv = ws.argv("sync")
        command = ["strace", "-f", "-qq", "-e", "signal=none", "-o", str(log), *options,
                   binary(), *argv]
        process = subprocess.run(command, env=ws.env(), cwd=ws.dir, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, errors="replace", timeout=120)
        result = RunResult(["sync (strace)"] + options, process.returncode, process.stdout,
                           process.stderr, 0.0)
        ws.runs.append(result)
        return result, log

    @staticmethod
    def parse_calls(log: Path) -> list[tuple[int, str, str]]:
        calls = []
        for line in log.read_text(errors="replace").splitlines():
            match = CALL.match(line)
            if match:
                calls.append((int(match.group(1)), match.group(2), match.group(3)))
        return calls

    def dry_run(self, ws: Workspace) -> list[tuple[int, str, str]]:
        """Runs the scenario's sync once without faults, tracing the database syscalls."""
        result, log = self.strace_run(ws, "dry", [
            "-s", "4200", "-e",
            "trace=openat,pwrite64,write,writev,pwritev,pwritev2,fsync,fdatasync,ftruncate"])
        self.assertEqual(result.rc, EXIT_OK, result.stderr[-2000:])
        return self.parse_calls(log)

    def database_syscalls(self, calls: list[tuple[int, str, str]], db: Path) -> dict[str, int]:
        """Counts write-side syscalls on the database, WAL and journal files."""
        fds: dict[tuple[int, int], str] = {}
        counts: collections.Counter[str] = collections.Counter()
        pid = calls[0][0]
        for tid, name, rest in calls:
            if name == "openat" and str(db) in rest:
                match = re.search(r"= (\d+)$", rest)
                if match:
                    fds[(pid, int(match.group(1)))] = rest.split('"')[1]
            elif name != "openat":
                fd = re.match(r"(\d+)", rest)
                if fd and (pid, int(fd.group(1))) in fds:
                    counts[name] += 1
        return dict(counts)

    @staticmethod
    def nth_write(calls: list[tuple[int, str, str]], needles: set[str]) -> tuple[int, int] | None:
        """(thread, index of that thread's pwrite64) of the first write holding any needle."""
        per_thread: collections.Counter[int] = collections.Counter()
        for tid, name, rest in calls:
            if name != "pwrite64":
                continue
            per_thread[tid] += 1
            if any(n in rest for n in needles):
                return tid, per_thread[tid]
        return None

    @staticmethod
    def writes_of(calls: list[tuple[int, str, str]], tid: int) -> int:
        return sum(1 for t, name, _ in calls if t == tid and name == "pwrite64")

    # -- database views -------------------------------------------------------------------------

    @staticmethod
    def state(db: Path) -> dict[str, Any]:
        return {
            "sync_state": db_rows(db, "SELECT stream, watermark, pass_cursor, pass_max_timestamp, "
                                      "last_completed_at FROM sync_state ORDER BY stream"),
            "scores": db_rows(db, "SELECT score_id, value_json, comment FROM scores ORDER BY 1"),
            "traces": db_rows(db, "SELECT trace_id, state, obs_cursor, pages_fetched FROM traces "
                                  "ORDER BY 1"),
            "observations": db_rows(db, "SELECT observation_id FROM observations ORDER BY 1"),
        }

    def assert_consistent(self, db: Path, expected_obs: dict[str, int], label: str) -> None:
        self.assertEqual(integrity_check(db), "ok", label)
        torn = db_rows(db, "SELECT t.trace_id, count(o.observation_id) FROM traces t LEFT JOIN "
                           "observations o USING (project_id, trace_id) WHERE t.state = 'done' "
                           "GROUP BY t.trace_id")
        self.assertEqual([t for t, n in torn if n != expected_obs.get(t)], [],
                         f"{label}: a done trace lacks observations")
        partial = db_rows(db, "SELECT t.trace_id FROM traces t LEFT JOIN observations o "
                              "USING (project_id, trace_id) WHERE t.state != 'done' "
                              "GROUP BY t.trace_id HAVING count(o.observation_id) != "
                              "t.pages_fetched * coalesce(t.page_size, 0)")
        self.assertEqual(partial, [], f"{label}: observations disagree with the trace's cursor")

    def recover(self, ws: Workspace, fake: Any, label: str) -> None:
        result = ws.run("sync")
        self.assertEqual(result.rc, EXIT_OK, f"{label}: recovery run\n{result.describe()}")
        problems, figures = compare_with_truth(ws.db, fake.truth())
        self.assertEqual(problems, [], f"{label}: after recovery: " + "\n".join(problems[:5]))
        self.assertEqual(integrity_check(ws.db), "ok")
        self.recovered += 1
        self.lost += max(0, figures["truth_observations"] - figures["db_observations"])

    # -- the test ---------------------------------------------------------------------------------

    def test_enospc_and_eio_on_database_writes(self) -> None:
        self.recovered = 0
        self.lost = 0
        messages: dict[str, str] = {}
        with start_fake(traces=60, annotated_fraction=0.75, seed=11) as fake, \
                Workspace(fake) as ws:
            ws.write_config(settings(limits=LIMITS))
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            added = fake.add_scores(NEW_TRACES, new_traces=True, timestamp_offset_s=-60)
            truth = fake.truth()
            expected_obs = {t: len(v["observations"]) for t, v in truth["traces"].items()}
            base = self.scratch / "base.db"
            shutil.copy(ws.db, base)
            for suffix in ("-wal", "-shm"):
                self.assertFalse(Path(str(ws.db) + suffix).exists(), "WAL left after a clean exit")

            def fresh() -> None:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(ws.db) + suffix).unlink(missing_ok=True)
                shutil.copy(base, ws.db)

            # Which syscalls write the database here.
            fresh()
            calls = self.dry_run(ws)
            report("disk.database_syscalls_in_a_sync", self.database_syscalls(calls, ws.db))
            main = calls[0][0]
            fresh()

            # 1. The first score page of the pass cannot be committed (ENOSPC).
            target = self.nth_write(calls, set(added["score_ids"]))
            self.assertIsNotNone(target, "no write of the new scores in the dry run")
            tid, nth = target
            self.assertEqual(tid, main, "score pages are committed by the main thread")
            before = self.state(ws.db)
            result, _ = self.strace_run(ws, "score-enospc",
                                        ["-e", f"inject=pwrite64:error=ENOSPC:when={nth}+"])
            messages["ENOSPC on a score page"] = result.stderr.strip().splitlines()[-1]
            self.assertEqual(result.rc, EXIT_IO, result.stderr[-2000:])
            self.assertIn("database or disk is full", result.stderr)
            after = self.state(ws.db)
            self.assertEqual(after["sync_state"], before["sync_state"], "the poll cursor moved")
            self.assertEqual(after["scores"], before["scores"], "score page not rolled back")
            self.assertEqual(after["traces"], before["traces"], "traces queued by a failed page")
            self.assertEqual(after["observations"], before["observations"])
            self.assert_consistent(ws.db, expected_obs, "score page ENOSPC")
            report("disk.score_page_enospc", f"failed at write {nth} of the main thread: exit "
                                             f"{result.rc}, page rolled back, cursor unchanged")
            self.recover(ws, fake, "score page ENOSPC")

            # 2. An observation page written by a worker cannot be committed (EIO). The fault is
            # placed where the dry run wrote the second page of a new trace; the order of the
            # traces may differ from run to run, so every unfinished trace is checked.
            fresh()
            main_writes = self.writes_of(calls, main)
            chosen = None
            for trace_id in sorted(added["trace_ids"]):
                pages = self.observation_pages(fake, trace_id)
                if len(pages) < 2:
                    continue
                hit = self.nth_write(calls, set(pages[1][0]))
                if hit and hit[0] != main and hit[1] > main_writes:
                    if chosen is None or hit[1] > chosen[1]:
                        chosen = hit
            self.assertIsNotNone(chosen, "no trace whose second page a worker writes late enough")
            tid, nth = chosen
            result, _ = self.strace_run(ws, "obs-eio",
                                        ["-e", f"inject=pwrite64:error=EIO:when={nth}+"])
            messages["EIO on an observation page"] = result.stderr.strip().splitlines()[-1]
            self.assertEqual(result.rc, EXIT_IO, result.stderr[-2000:])
            self.assertIn("disk I/O error", result.stderr)
            unfinished = self.assert_cursors_match_server(ws.db, fake, "observation page EIO")
            self.assertGreater(unfinished, 0, "the fault did not stop the fetch")
            self.assert_consistent(ws.db, expected_obs, "observation page EIO")
            report("disk.observation_page_eio", f"failed at write {nth} of a worker: exit "
                                                f"{result.rc}; {unfinished} unfinished traces, "
                                                f"each at the cursor of its last committed page")
            self.recover(ws, fake, "observation page EIO")

            # 3. Every fdatasync fails (EIO).
            fresh()
            result, _ = self.strace_run(ws, "fdatasync-eio", ["-e", "inject=fdatasync:error=EIO"])
            messages["EIO on fdatasync"] = result.stderr.strip().splitlines()[-1]
            self.assertIn(result.rc, (EXIT_OK, EXIT_IO), result.stderr[-2000:])
            self.assert_consistent(ws.db, expected_obs, "fdatasync EIO")
            report("disk.fdatasync_eio", f"exit {result.rc}")
            self.recover(ws, fake, "fdatasync EIO")

            # 4. The disk fills up at the Nth write, for N over a whole run.
            outcomes = {}
            for nth in SWEEP:
                fresh()
                result, _ = self.strace_run(ws, f"sweep-{nth}",
                                            ["-e", f"inject=pwrite64:error=ENOSPC:when={nth}+"])
                outcomes[nth] = result.rc
                self.assertGreaterEqual(result.rc, 0, "killed by a signal")
                self.assertIn(result.rc, (EXIT_OK, EXIT_IO), result.stderr[-2000:])
                if result.rc == EXIT_IO:
                    # SQLite reports ENOSPC while growing its shared-memory file as an I/O error.
                    self.assertRegex(result.stderr, "database or disk is full|disk I/O error")
                self.assert_consistent(ws.db, expected_obs, f"ENOSPC from write {nth}")
                self.assert_cursors_match_server(ws.db, fake, f"ENOSPC from write {nth}")
                self.recover(ws, fake, f"ENOSPC from write {nth}")
            report("disk.enospc_from_write_n_exit_codes", outcomes)
            report("disk.messages", messages)
            report("disk.runs_recovered", self.recovered)
            report("disk.lost", self.lost)
            self.assertEqual(self.lost, 0)
            assert_no_secret(self, "disk", fake, [ws])

    def test_disk_error_names_the_database(self) -> None:
        """An operator reading the error must learn which file could not be written."""
        with start_fake(traces=20, seed=12) as fake, Workspace(fake) as ws:
            ws.write_config(settings(limits=LIMITS))
            self.assertEqual(ws.run("sync").rc, EXIT_OK)
            fake.add_scores(5, new_traces=True, timestamp_offset_s=-60)
            result, _ = self.strace_run(ws, "message", ["-e", "inject=pwrite64:error=ENOSPC"])
            line = result.stderr.strip().splitlines()[-1]
            report("disk.error_message", line)
            self.assertEqual(result.rc, EXIT_IO)
            self.assertIn(str(ws.db), line, "the error does not say which database is full")

    def assert_cursors_match_server(self, db: Path, fake: Any, label: str) -> int:
        """Every unfinished trace holds exactly its first k pages (k = pages_fetched) and the
        server's cursor after page k: a page and its cursor were committed together."""
        rows = db_rows(db, "SELECT trace_id, obs_cursor, pages_fetched FROM traces "
                           "WHERE state != 'done'")
        for trace_id, cursor, fetched in rows:
            pages = self.observation_pages(fake, trace_id)
            want_ids = sorted(i for ids, _ in pages[:fetched] for i in ids)
            want_cursor = pages[fetched - 1][1] if fetched else None
            have_ids = sorted(r[0] for r in db_rows(db, "SELECT observation_id FROM observations "
                                                        "WHERE trace_id = ?", (trace_id,)))
            self.assertEqual((cursor, have_ids), (want_cursor, want_ids),
                             f"{label}: trace {trace_id} after {fetched} pages")
        return len(rows)

    @staticmethod
    def observation_pages(fake: Any, trace_id: str) -> list[tuple[list[str], str | None]]:
        """The trace's pages as the fake serves them at LIMITS' page size: (ids, next cursor)."""
        pages = []
        cursor = None
        for _ in range(20):
            params = {"traceId": trace_id, "limit": LIMITS["observation_page_size"],
                      "fields": "core"}
            if cursor:
                params["cursor"] = cursor
            status, _, body = fake.api_get(OBSERVATIONS_PATH, params)
            assert status == 200, body
            cursor = body["meta"].get("cursor")
            pages.append(([o["id"] for o in body["data"]], cursor))
            if not cursor:
                break
        return pages


if __name__ == "__main__":
    unittest.main()
