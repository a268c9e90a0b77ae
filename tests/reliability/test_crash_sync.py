"""Reliability 1: SIGKILL at 100+ random moments of syncs of thousands of traces.

Each round starts from an empty database and kills `lfharvest` over and over while it works:
  - phase `sync`: the first harvest (score paging, observation paging, page commits);
  - phase `maintenance`: the scheduled re-scan and deletion sweep of `lfharvest sync` (their
    last run is moved back in the database so that they are due), after edits and deletions
    on the server;
  - phase `reconcile`: `lfharvest reconcile` after more edits and deletions.
After every kill: `PRAGMA integrity_check` is ok, nothing committed before has disappeared, every
trace marked done holds all of its observations, no history row exists twice. At the end of
each phase the database equals the server's truth: lost 0, duplicated 0. Work re-done per kill
is measured on the fake server's request log: a page whose answer (200) was received by an
earlier process and is asked for again.

Figures: kills (by what was in progress), lost, duplicated, integrity failures, pages re-done per
kill (max and total).
"""

from __future__ import annotations

import collections
import random
import subprocess
import time
import unittest
from typing import Any

from reliability_support import (EXIT_OK, SCORES_PATH, Workspace, assert_no_secret,
                                 compare_with_truth, db_rows, exit_is_signal, integrity_check,
                                 is_page_request, page_key, query_of, report, settings,
                                 start_fake)

SEED = 20261125
MIN_KILLS = 100
MIN_ROUNDS = 2
TIME_BUDGET_S = 150  # stop starting rounds after this (the kill count is asserted)
TRACES = 1600
LIMITS = {"requests_per_second": 1000, "max_in_flight": 1, "observation_page_size": 2,
          "score_page_size": 10}
# Half the requests take 8 ms longer: kills land inside requests as well as between them.
LATENCY = [{"path": r"^/api/public/", "probability": 0.5, "mode": "latency", "ms": 8}]
OLD = "2000-01-01T00:00:00.000Z"


class KillLog:
    """Every run of a phase: when it started and ended (monotonic) and whether it was killed."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def add(self, start: float, end: float, killed: bool, rc: int | None) -> None:
        self.runs.append({"start": start, "end": end, "killed": killed, "rc": rc})


class CrashSyncTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rng = random.Random(SEED)
        self.kinds: collections.Counter[str] = collections.Counter()
        self.redone_per_kill: list[int] = []
        self.redone_by_phase: collections.Counter[str] = collections.Counter()
        self.kills_by_phase: collections.Counter[str] = collections.Counter()
        self.integrity_failures = 0
        self.lost = 0
        self.duplicated = 0
        self.checks = 0
        self.reconcile_rescan_reread = 0

    # -- one kill loop ---------------------------------------------------------------------

    def kill_loop(self, ws: Workspace, fake: Any, phase: str, argv: list[str],
                  delay: tuple[float, float], done: Any, max_kills: int,
                  expected_obs: dict[str, int]) -> None:
        """Runs argv until `done()` after a clean exit; kills each run after a random delay
        (at most max_kills times, then runs it to the end)."""
        fake.reset_stats()
        log = KillLog()
        before = self.snapshot(ws)
        for _ in range(400):
            kill_now = self.kills_by_phase[phase + "#round"] < max_kills
            process = ws.popen(*argv)
            start = time.monotonic()
            wait = self.rng.uniform(*delay) if kill_now else 120
            try:
                rc = process.wait(timeout=wait)
                log.add(start, time.monotonic(), False, rc)
                self.assertFalse(exit_is_signal(rc), f"{phase}: died of signal {-rc}")
                self.assertIn(rc, (EXIT_OK,), f"{phase}: exit {rc}\n{self.tail(ws)}")
                after = self.check_after_stop(ws, before, expected_obs, phase)
                before = after
                if done():
                    break
                continue
            except subprocess.TimeoutExpired:
                killed_at = time.monotonic()
                process.kill()
                process.wait()
                log.add(start, killed_at, True, None)
                self.kills_by_phase[phase] += 1
                self.kills_by_phase[phase + "#round"] += 1
            before = self.check_after_stop(ws, before, expected_obs, phase)
        else:
            self.fail(f"{phase}: did not finish")
        self.kills_by_phase[phase + "#round"] = 0
        self.account(fake.stats()["requests"], log, phase)

    def tail(self, ws: Workspace) -> str:
        errs = sorted(ws.dir.glob("popen-*.err"), key=lambda p: p.stat().st_mtime)
        return errs[-1].read_text(errors="replace")[-2000:] if errs else ""

    # -- what must hold after every stop ---------------------------------------------------

    def snapshot(self, ws: Workspace) -> dict[str, Any]:
        if not ws.db.exists():
            return {"scores": set(), "observations": set(), "changes": 0}
        return {
            "scores": {r[0] for r in db_rows(ws.db, "SELECT score_id FROM scores")},
            "observations": {r[0] for r in db_rows(ws.db, "SELECT observation_id "
                                                          "FROM observations")},
            "changes": db_rows(ws.db, "SELECT count(*) FROM score_changes")[0][0],
        }

    def check_after_stop(self, ws: Workspace, before: dict[str, Any], expected_obs: dict[str, int],
                         phase: str) -> dict[str, Any]:
        self.checks += 1
        if not ws.db.exists():
            return before
        status = integrity_check(ws.db)
        if status != "ok":
            self.integrity_failures += 1
        self.assertEqual(status, "ok", f"{phase}: integrity_check after a kill")
        now = self.snapshot(ws)
        lost_scores = before["scores"] - now["scores"]
        lost_obs = before["observations"] - now["observations"]
        self.lost += len(lost_scores) + len(lost_obs)
        self.assertEqual(lost_scores, set(), f"{phase}: committed scores disappeared")
        self.assertEqual(lost_obs, set(), f"{phase}: committed observations disappeared")
        # A trace marked done holds all of its observations (page and cursor commit together).
        torn = [(t, n, expected_obs.get(t)) for t, n in db_rows(
            ws.db, "SELECT t.trace_id, count(o.observation_id) FROM traces t "
                   "LEFT JOIN observations o USING (project_id, trace_id) "
                   "WHERE t.state = 'done' GROUP BY t.trace_id")
                if n != expected_obs.get(t)]
        self.assertEqual(torn, [], f"{phase}: done traces without all their observations")
        # A trace in progress holds exactly the pages its row says were committed.
        partial = db_rows(
            ws.db, "SELECT t.trace_id, t.pages_fetched, t.page_size, count(o.observation_id) "
                   "FROM traces t LEFT JOIN observations o USING (project_id, trace_id) "
                   "WHERE t.state != 'done' GROUP BY t.trace_id "
                   "HAVING count(o.observation_id) != t.pages_fetched * coalesce(t.page_size, 0)")
        self.assertEqual(partial, [], f"{phase}: a trace's observations disagree with its cursor")
        twice = db_rows(ws.db, "SELECT score_id, change, count(*) FROM score_changes "
                               "GROUP BY score_id, change HAVING count(*) > 1")
        self.duplicated += len(twice)
        self.assertEqual(twice, [], f"{phase}: a history row was written twice")
        return now

    # -- re-done work and where the kills landed ---------------------------------------------

    def account(self, requests: list[dict[str, Any]], log: KillLog, phase: str) -> None:
        runs = log.runs
        answered: set[tuple] = set()
        for i, run in enumerate(runs):
            mine = [r for r in requests if run["start"] <= r["t"] <= run["end"]]
            redone = 0
            for r in mine:
                if not is_page_request(r):
                    continue
                key = page_key(r)
                q = query_of(r)
                # A new poll pass always starts with its first page (the overlap window): that is
                # the design, not work lost to a kill.
                first_page_of_pass = (r["path"] == SCORES_PATH and "cursor" not in q
                                      and "id" not in q)
                if key in answered and not first_page_of_pass:
                    if phase == "reconcile" and r["path"] == SCORES_PATH and "id" not in q:
                        # `reconcile` starts its re-scan over on every run (by design).
                        self.reconcile_rescan_reread += 1
                    else:
                        redone += 1
            for r in mine:
                if is_page_request(r) and r.get("status") == 200:
                    answered.add(page_key(r))
            if i > 0 and runs[i - 1]["killed"]:
                self.redone_per_kill.append(redone)
                self.redone_by_phase[phase] += redone
            if run["killed"]:
                self.kinds[self.classify(mine, run["end"], phase)] += 1

    @staticmethod
    def classify(requests: list[dict[str, Any]], killed_at: float, phase: str) -> str:
        if not requests:
            return "startup (config, database open)"
        last = max(requests, key=lambda r: r["t"])
        in_flight = last.get("t_end") is None or last["t_end"] >= killed_at
        if not in_flight:
            return "between pages (parse, commit)"
        q = query_of(last)
        if last["path"] == SCORES_PATH:
            if "id" in q:
                return "maintenance: deletion sweep request"
            if phase != "sync" and q.get("fromTimestamp", [""])[0] < time.strftime(
                    "%Y-%m-%d", time.gmtime(time.time() - 86400)):
                return "maintenance: re-scan page"
            return "score page"
        if "observations" in last["path"]:
            return "observation page"
        return "connect (health, projects)"

    # -- the test ------------------------------------------------------------------------------

    def test_sigkill_at_random_moments(self) -> None:
        started = time.monotonic()
        rounds = 0
        with start_fake(traces=TRACES, annotated_fraction=0.8, seed=SEED % 1000) as fake:
            fake.faults(LATENCY, seed=SEED)
            workspaces = []
            while rounds < MIN_ROUNDS or (sum(self.kills_by_phase[p] for p in
                                              ("sync", "maintenance", "reconcile")) < MIN_KILLS
                                          and time.monotonic() - started < TIME_BUDGET_S):
                rounds += 1
                with Workspace(fake) as ws:
                    workspaces.append(ws)
                    self.round(fake, ws, rounds)
                    assert_no_secret(self, f"crash.round{rounds}", fake, [ws])
        kills = sum(self.kills_by_phase[p] for p in ("sync", "maintenance", "reconcile"))
        report("crash.rounds", rounds)
        report("crash.kills", kills)
        report("crash.kills_by_phase", {p: self.kills_by_phase[p]
                                        for p in ("sync", "maintenance", "reconcile")})
        report("crash.kills_landed_in", dict(self.kinds.most_common()))
        report("crash.integrity_checks", f"{self.checks} run, {self.integrity_failures} failed")
        report("crash.lost", self.lost)
        report("crash.duplicated", self.duplicated)
        report("crash.pages_redone_per_kill_max", max(self.redone_per_kill, default=0))
        report("crash.pages_redone_total", f"{sum(self.redone_per_kill)} over "
                                           f"{len(self.redone_per_kill)} restarts "
                                           f"{dict(self.redone_by_phase)}")
        report("crash.reconcile_rescan_pages_reread", self.reconcile_rescan_reread)
        report("crash.seconds", round(time.monotonic() - started, 1))
        self.assertGreaterEqual(kills, MIN_KILLS)
        for kind in ("score page", "observation page", "between pages (parse, commit)"):
            self.assertGreater(self.kinds[kind], 0, f"no kill landed in: {kind}")
        self.assertGreater(self.kinds["maintenance: re-scan page"]
                           + self.kinds["maintenance: deletion sweep request"], 0)
        self.assertEqual(self.integrity_failures, 0)
        self.assertEqual(self.lost, 0)
        self.assertEqual(self.duplicated, 0)
        # One process sends one request at a time here: a kill can lose at most that page.
        self.assertLessEqual(max(self.redone_per_kill, default=0), 1)

    def round(self, fake: Any, ws: Workspace, number: int) -> None:
        ws.write_config(settings(limits=LIMITS, maintenance={"budget_share": 0.5}))
        truth = fake.truth()
        self.all_traces = dict(truth["traces"])
        expected_obs = {t: len(v["observations"]) for t, v in truth["traces"].items()}

        # Phase 1: the first harvest.
        self.kill_loop(ws, fake, "sync", ["sync"], (0.03, 0.9), lambda: True, 60, expected_obs)
        self.assert_matches_truth(ws, fake.truth(), "sync")

        # Phase 2: scheduled maintenance inside `lfharvest sync`, after edits and deletions.
        edited, deleted = self.change_server(fake, truth, number, 24, 12)
        self.move_maintenance_back(ws)
        self.kill_loop(ws, fake, "maintenance", ["sync"], (0.03, 0.6),
                       lambda: self.maintenance_finished(ws), 30, expected_obs)
        self.assert_changes(ws, edited, deleted, "maintenance")
        self.assert_matches_truth(ws, fake.truth(), "maintenance")

        # Phase 3: `lfharvest reconcile` (killed 8 times, then run to the end).
        truth = fake.truth()
        edited2, deleted2 = self.change_server(fake, truth, number + 100, 16, 8)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 8 * 86400))
        self.kill_loop(ws, fake, "reconcile", ["reconcile", "--since", since], (0.05, 0.6),
                       lambda: True, 8, expected_obs)
        self.assert_changes(ws, edited | edited2, deleted | deleted2, "reconcile")
        self.assert_matches_truth(ws, fake.truth(), "reconcile")

    # -- server changes and what the database must show -----------------------------------------

    def change_server(self, fake: Any, truth: dict[str, Any], salt: int, edits: int,
                      deletions: int) -> tuple[set[str], set[str]]:
        recent = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 5 * 86400))
        candidates = sorted(s["id"] for s in truth["scores"] if s["timestamp"] > recent)
        picked = random.Random(salt).sample(candidates, edits + deletions)
        edited, deleted = set(picked[:edits]), set(picked[edits:])
        fake.edit_score(sorted(edited), comment=f"edited by the crash test ({salt})")
        fake.delete_score(sorted(deleted))
        return edited, deleted

    @staticmethod
    def move_maintenance_back(ws: Workspace) -> None:
        import sqlite3
        connection = sqlite3.connect(str(ws.db), timeout=10)
        with connection:
            connection.execute("UPDATE sync_state SET last_completed_at = ? "
                               "WHERE stream IN ('rescan', 'sweep')", (OLD,))
        connection.close()

    @staticmethod
    def maintenance_finished(ws: Workspace) -> bool:
        rows = db_rows(ws.db, "SELECT stream, pass_started_at, last_completed_at FROM sync_state "
                              "WHERE stream IN ('rescan', 'sweep')")
        return len(rows) == 2 and all(started is None and done and done > OLD
                                      for _, started, done in rows)

    def assert_changes(self, ws: Workspace, edited: set[str], deleted: set[str],
                       phase: str) -> None:
        changes = collections.Counter(
            (score_id, change) for score_id, change in
            db_rows(ws.db, "SELECT score_id, change FROM score_changes"))
        edits_seen = {s for (s, c) in changes if c == "edited"}
        deletions_seen = {s for (s, c) in changes if c == "deleted"}
        self.assertEqual(edits_seen, edited, f"{phase}: edits recorded")
        self.assertEqual(deletions_seen, deleted, f"{phase}: deletions recorded")
        self.assertEqual(max(changes.values(), default=1), 1, f"{phase}: a change recorded twice")
        marked = {r[0] for r in db_rows(ws.db, "SELECT score_id FROM scores "
                                               "WHERE deleted_at IS NOT NULL")}
        self.assertEqual(marked, deleted, f"{phase}: scores marked deleted")

    def assert_matches_truth(self, ws: Workspace, truth: dict[str, Any], phase: str) -> None:
        # Traces whose only annotation was deleted stay in the cache (with their observations).
        kept = {r[0] for r in db_rows(ws.db, "SELECT trace_id FROM traces")}
        truth = dict(truth, traces={**{t: v for t, v in self.all_traces.items() if t in kept},
                                    **truth["traces"]})
        problems, figures = compare_with_truth(ws.db, truth)
        live = dict(db_rows(ws.db, "SELECT score_id, comment FROM scores WHERE deleted_at IS NULL"))
        want = {s["id"]: s["comment"] for s in truth["scores"]}
        missing = sorted(set(want) - set(live))
        extra = sorted(set(live) - set(want))
        stale = sorted(s for s in set(want) & set(live) if want[s] != live[s])
        self.lost += len(missing) + max(0, figures["truth_observations"]
                                        - figures["db_observations"])
        self.duplicated += max(0, figures["db_observations"] - figures["truth_observations"])
        self.assertEqual(problems, [], f"{phase}: " + "\n".join(problems[:10]))
        self.assertEqual((missing, extra, stale), ([], [], []), f"{phase}: scores differ")


class ReconcileAfterKillTest(unittest.TestCase):
    """A reconcile killed during its re-scan, then run again with another --since: the new run
    must re-scan from the date it was given (an older date must not be narrowed to the killed
    run's, or older edits are silently missed)."""

    def test_reconcile_after_a_kill_uses_the_new_since(self) -> None:
        with start_fake(traces=300, annotated_fraction=0.8, seed=7) as fake, Workspace(fake) as ws:
            ws.write_config(settings(limits={"requests_per_second": 1000, "score_page_size": 10}))
            self.assertEqual(ws.run("sync").rc, EXIT_OK)
            recent = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 2 * 86400))
            old = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 30 * 86400))
            # Slow score pages so the kill lands inside the re-scan.
            fake.faults([{"path": r"v3/scores", "mode": "latency", "ms": 150}])
            process = ws.popen("reconcile", "--since", recent)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                rows = db_rows(ws.db, "SELECT pass_cursor FROM sync_state WHERE stream = 'rescan'")
                if rows and rows[0][0]:
                    break  # the re-scan has committed a page: it is in progress
                time.sleep(0.05)
            process.kill()
            process.wait()
            fake.clear_faults()
            fake.reset_stats()
            result = ws.run("reconcile", "--since", old)
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            froms = sorted({query_of(r)["fromTimestamp"][0] for r in fake.stats()["requests"]
                            if r["path"] == SCORES_PATH and "fromTimestamp" in query_of(r)})
            report("crash.reconcile_after_kill.fromTimestamps", froms)
            self.assertEqual(froms, [old.replace("Z", ".000Z")],
                             "the second reconcile re-scanned from the killed run's --since")
            assert_no_secret(self, "crash.reconcile_after_kill", fake, [ws])


if __name__ == "__main__":
    unittest.main()
