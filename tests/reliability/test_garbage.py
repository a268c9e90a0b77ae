"""Reliability 8: garbage from the server.

One sync meets, each on its own trace's first observation page: wrong types, missing fields,
invalid UTF-8, arrays nested 10,000 deep, numbers beyond a double, a `data` that is an object, a
broken `meta`, malformed JSON; and on three multi-page traces the paging bugs: a cursor that
repeats forever, a page that returns its own cursor, empty pages that claim more. The score
pages get wrong types, missing fields, huge numbers and invalid UTF-8 too.
  - no crash (the exit code is not a signal);
  - a bad record becomes a record-level error with a reason (events table), the rest of its page
    is kept; invalid UTF-8 is replaced by U+FFFD and the record kept;
  - a page-level failure (malformed, data/meta of the wrong type) is retried and succeeds;
  - a paging loop is detected and stopped (the trace fails with its reason, its requests are
    bounded), and once the server behaves, `lfharvest retry` + sync completes it;
  - nothing else lost: every other trace and score equals the server's truth.
Then the same paging bugs on the score endpoint: the poll stops with a reason, requests bounded,
and the next sync after the server behaves completes.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import unittest
from typing import Any

from reliability_support import (EXIT_OK, EXIT_TEMPFAIL, SCORES_PATH, Workspace,
                                 assert_no_secret, compare_with_truth, db_rows, exit_is_signal,
                                 report, settings, start_fake, trace_of)

RECORD_KINDS = ["wrong_types", "missing_fields", "deep_nesting", "huge_number"]
KEPT_KINDS = ["invalid_utf8"]
PAGE_FAULTS = {"data_is_object": {"kind": "wrong_types", "target": "data"},
               "meta_broken": {"kind": "wrong_types", "target": "meta"},
               "malformed": None}
LOOP_KINDS = ["repeat_cursor", "duplicate_cursor", "empty_with_cursor"]
MAX_ATTEMPTS = 3
LIMITS = {"requests_per_second": 500, "max_in_flight": 2, "observation_page_size": 2,
          "score_page_size": 10}
RETRY = {"max_attempts": MAX_ATTEMPTS, "backoff_base_ms": 100, "backoff_cap_seconds": 1}


class GarbageTest(unittest.TestCase):
    def test_garbage_from_the_server(self) -> None:
        with start_fake(traces=120, annotated_fraction=0.8, seed=83) as fake, \
                contextlib.ExitStack() as stack:
            truth = fake.truth()
            workspaces: list[Workspace] = []

            def workspace() -> Workspace:
                ws = stack.enter_context(Workspace(fake))
                ws.write_config(settings(limits=LIMITS, retry=RETRY))
                workspaces.append(ws)
                return ws

            self.observation_garbage(fake, truth, workspace())
            self.score_garbage(fake, truth, workspace())
            for kind in LOOP_KINDS:
                self.score_paging_bug(fake, truth, workspace(), kind)
            assert_no_secret(self, "garbage", fake, workspaces)

    def observation_garbage(self, fake: Any, truth: dict[str, Any], ws: Workspace) -> None:
        by_size = sorted(truth["traces"],
                         key=lambda t: (-len(truth["traces"][t]["observations"]), t))
        multi_page = by_size[:len(LOOP_KINDS)]  # the biggest traces: several pages each
        rest = sorted(set(truth["traces"]) - set(multi_page))
        plan: dict[str, tuple[str, dict[str, Any]]] = {}
        for i, kind in enumerate(RECORD_KINDS + KEPT_KINDS):
            plan[rest[i]] = (kind, {"mode": "garbage", "kind": kind, "count": 1})
        for j, (name, spec) in enumerate(PAGE_FAULTS.items()):
            rule = ({"mode": "malformed", "count": 1} if spec is None else
                    {"mode": "garbage", "count": 1, **spec})
            plan[rest[len(RECORD_KINDS + KEPT_KINDS) + j]] = (name, rule)
        for trace_id, kind in zip(multi_page, LOOP_KINDS):
            plan[trace_id] = (kind, {"mode": "garbage", "kind": kind})
        fake.reset_stats()
        fake.faults([{"path": "v2/observations", "query": f"traceId={trace_id}(&|$)", **rule}
                     for trace_id, (_, rule) in plan.items()])
        result = ws.run("sync", "--max-wait", "20")
        self.assertFalse(exit_is_signal(result.rc), result.describe())
        self.assertIn(result.rc, (EXIT_OK, EXIT_TEMPFAIL), result.describe())
        stats = fake.stats()
        unfired = [r for r in fake.fault_state() if not r["fired"]]
        self.assertEqual(unfired, [], "fault rules that never fired")

        events = db_rows(ws.db, "SELECT scope, subject, message FROM events")
        states = {t: (s, reason, err) for t, s, reason, err in db_rows(
            ws.db, "SELECT trace_id, state, failure_reason, last_error FROM traces")}
        stored: dict[str, dict[str, str]] = {}
        for trace_id, obs_id, input_json in db_rows(
                ws.db, "SELECT trace_id, observation_id, input_json FROM observations"):
            stored.setdefault(trace_id, {})[obs_id] = input_json
        outcome: dict[str, str] = {}
        for trace_id, (kind, _) in plan.items():
            with self.subTest(observations=kind):
                self.check_trace(kind, trace_id, truth, stored, states, events, stats, outcome)
        for kind, text in outcome.items():
            report(f"garbage.observations.{kind}", text)

        # Everything else: exactly as on the server (compared on a copy without the traces that
        # met garbage).
        copy = ws.dir / "untouched.db"
        shutil.copy(ws.db, copy)
        connection = sqlite3.connect(str(copy))
        with connection:
            for trace_id in plan:
                connection.execute("DELETE FROM observations WHERE trace_id = ?", (trace_id,))
                connection.execute("DELETE FROM traces WHERE trace_id = ?", (trace_id,))
        connection.close()
        problems, figures = compare_with_truth(copy, dict(truth, traces={
            t: v for t, v in truth["traces"].items() if t not in plan}))
        copy.unlink()
        report("garbage.observations.other_traces_intact",
               f"{figures['db_done']} of {figures['truth_traces']}")
        self.assertEqual(problems, [], "\n".join(problems[:5]))

        # The server behaves again: `retry` + sync completes the traces whose paging looped.
        fake.clear_faults()
        self.assertEqual(ws.run("retry").rc, EXIT_OK)
        result = ws.run("sync")
        self.assertEqual(result.rc, EXIT_OK, result.describe())
        for trace_id, kind in zip(multi_page, LOOP_KINDS):
            have = {r[0] for r in db_rows(ws.db, "SELECT observation_id FROM observations "
                                                 "WHERE trace_id = ?", (trace_id,))}
            want = {o["id"] for o in truth["traces"][trace_id]["observations"]}
            report(f"garbage.observations.{kind}.after_retry",
                   f"{len(have & want)} of {len(want)} observations")
            with self.subTest(after_retry=kind):
                self.assertEqual(have, want, "observations missing once the server behaves")

    def score_garbage(self, fake: Any, truth: dict[str, Any], ws: Workspace) -> None:
        """Bad records on score pages: a record error each, every other score and trace kept."""
        kinds = ["wrong_types", "missing_fields", "huge_number", "deep_nesting", "invalid_utf8"]
        fake.faults([{"path": "v3/scores", "mode": "garbage", "kind": kind, "count": 1}
                     for kind in kinds])
        result = ws.run("sync", "--max-wait", "20")
        self.assertFalse(exit_is_signal(result.rc), result.describe())
        self.assertEqual(result.rc, EXIT_OK, result.describe())
        fake.clear_faults()
        events = [(s, m) for scope, s, m in db_rows(ws.db, "SELECT scope, subject, message "
                                                           "FROM events") if scope == "score"]
        live = {r[0] for r in db_rows(ws.db, "SELECT score_id FROM scores")}
        want = {s["id"] for s in truth["scores"]}
        # Traces named only by a score that was itself a bad record are not expected.
        named = {s["traceId"] for s in truth["scores"] if s["id"] in live and s["traceId"]}
        unnamed = set(truth["traces"]) - named
        problems, figures = compare_with_truth(ws.db, dict(truth, traces={
            t: v for t, v in truth["traces"].items() if t in named}))
        report("garbage.scores.record_errors", len(events))
        report("garbage.scores.reasons", sorted({m[:60] for _, m in events}))
        report("garbage.scores.missing", f"{len(want - live)} of {len(want)} (the bad records)")
        report("garbage.scores.other_traces_intact",
               f"{figures['db_done']} of {figures['truth_traces']}")
        self.assertGreaterEqual(len(events), len(kinds) - 1)  # invalid UTF-8 is repaired
        self.assertLessEqual(len(want - live), len(events))
        self.assertLessEqual(len(unnamed), len(events))
        self.assertEqual(problems, [], "\n".join(problems[:5]))

    def score_paging_bug(self, fake: Any, truth: dict[str, Any], ws: Workspace, kind: str) -> None:
        """A paging bug on the score endpoint from the second page of the poll on: the poll stops
        with a reason, and the next sync after the server behaves misses nothing."""
        fake.reset_stats()
        fake.faults([{"path": "v3/scores", "mode": "garbage", "kind": kind, "skip": 1}])
        result = ws.run("sync", "--max-wait", "10")
        score_requests = [r for r in fake.stats()["requests"] if r["path"] == SCORES_PATH]
        last = result.stderr.strip().splitlines()[-1]
        fake.clear_faults()
        again = ws.run("sync")
        problems, figures = compare_with_truth(ws.db, truth)
        report(f"garbage.scores.{kind}", f"exit {result.rc} after {len(score_requests)} score "
                                         f"requests: {last[:110]}")
        report(f"garbage.scores.{kind}.after_the_server_behaves",
               f"exit {again.rc}, {figures['db_done']} of {figures['truth_traces']} traces")
        with self.subTest(scores=kind):
            self.assertFalse(exit_is_signal(result.rc))
            self.assertLessEqual(len(score_requests), 2 + 2 * MAX_ATTEMPTS + 4)
            self.assertEqual(again.rc, EXIT_OK, again.describe())
            self.assertEqual(problems, [], "\n".join(problems[:3]))
            self.assertNotEqual(result.rc, EXIT_OK, "a broken score paging reported success")
            self.assertRegex(result.stderr, "(?i)loop|did not advance|empty")

    def check_trace(self, kind: str, trace_id: str, truth: dict[str, Any],
                    stored: dict[str, dict[str, str]], states: dict[str, tuple],
                    events: list[tuple], stats: dict[str, Any], outcome: dict[str, str]) -> None:
        want = [o["id"] for o in truth["traces"][trace_id]["observations"]]
        have = stored.get(trace_id, {})
        state = states[trace_id]
        asked = [r for r in stats["requests"] if trace_of(r) == trace_id]
        if kind in RECORD_KINDS:
            reasons = [m for scope, subject, m in events
                       if scope == "observation" and subject == trace_id]
            missing = set(want) - set(have)
            outcome[kind] = f"{state[0]}, record errors: {[r[:80] for r in reasons]}"
            self.assertEqual(state[0], "done", f"{kind}: {state}")
            self.assertEqual(len(reasons), 1, f"{kind}: events {reasons}")
            self.assertLessEqual(len(missing), 1, f"{kind}: more than the bad record lost")
            self.assertEqual(set(have) - set(want), set())
        elif kind in KEPT_KINDS:
            repaired = [i for i in have.values() if "\ufffd" in (i or "")]
            outcome[kind] = f"{state[0]}, {len(repaired)} record kept with U+FFFD"
            self.assertEqual(state[0], "done")
            self.assertEqual(set(have), set(want))
            self.assertEqual(len(repaired), 1, "invalid UTF-8 not replaced by U+FFFD")
        elif kind in PAGE_FAULTS:
            outcome[kind] = f"{state[0]} after {len(asked)} requests (page retried)"
            self.assertEqual(state[0], "done", f"{kind}: {state}")
            self.assertEqual(set(have), set(want))
            self.assertGreaterEqual(len(asked), 2)
        else:
            pages = -(-len(want) // LIMITS["observation_page_size"])
            outcome[kind] = (f"{state[0]} ({state[1]}) after {len(asked)} requests, "
                             f"{len(have)} of {len(want)} observations: {(state[2] or '')[:70]}")
            self.assertEqual(state[:2], ("failed", "max_attempts"),
                             f"{kind}: the paging bug was not detected: {state}, "
                             f"{len(have)} of {len(want)} observations stored")
            self.assertRegex(state[2] or "", "(?i)loop|cursor|empty")
            self.assertLessEqual(len(asked), pages + 1 + 2 * MAX_ATTEMPTS)
            self.assertTrue(set(have) <= set(want))

if __name__ == "__main__":
    unittest.main()
