"""Truth at the edges of a real Langfuse server (issue 11), one test per defect, against the fake
server behaving as the Langfuse source does (its options under "Server edges" in
tests/fake_langfuse/README.md)."""

from __future__ import annotations

import json
import time
import unittest
import urllib.parse

from lfh_testlib import (EXIT_OK, FAST_LIMITS, FakeLangfuse, Workspace, db_rows, db_scalar,
                         observation_requests, score_requests, wait_until)

QUICK = {"limits": FAST_LIMITS, "maintenance": {"settle_minutes": 0}}


def query_of(request: dict) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request["query"], keep_blank_values=True)


class ServerEdgesTest(unittest.TestCase):
    def sync(self, ws: Workspace, *args: str) -> None:
        result = ws.run("sync", *args)
        self.assertEqual(result.rc, EXIT_OK, result.describe())

    # 1. A sweep batch the server refuses for good is reported and passed over.
    def test_sweep_refusal_is_reported_and_the_sweep_moves_on(self) -> None:
        with FakeLangfuse(traces=40, seed=3) as fake, Workspace(fake) as ws:
            ws.write_config(QUICK)
            self.sync(ws)
            fake.faults([{"path": "v3/scores", "query": "(^|&)id=", "mode": "status",
                          "status": 400, "count": 1}])
            refused = ws.run("reconcile")
            self.assertNotEqual(refused.rc, EXIT_OK, refused.describe())
            events = db_rows(ws.db, "SELECT message FROM events WHERE scope = 'sweep' "
                                    "AND level = 'error'")
            self.assertEqual(len(events), 1, events)
            self.assertIn("HTTP 400", events[0][0])
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM scores WHERE deleted_at "
                                              "IS NOT NULL"), 0, "a refused batch marks nothing")
            # The next sweep is not stuck on that batch: a deletion is found.
            victim = fake.truth()["scores"][0]["id"]
            fake.delete_score(victim)
            again = ws.run("reconcile")
            self.assertEqual(again.rc, EXIT_OK, again.describe())
            self.assertIsNotNone(db_scalar(ws.db, "SELECT deleted_at FROM scores WHERE "
                                                  "score_id = ?", (victim,)))

    # 2. Batches by URL bytes; 414 halves a batch.
    def test_long_ids_stay_under_the_request_line_limit(self) -> None:
        with FakeLangfuse(traces=10, seed=4) as fake, Workspace(fake) as ws:
            ws.write_config(QUICK)
            added = fake.add_scores(120, name="quality", id_length=240, new_traces=False)
            self.sync(ws)
            fake.reset_stats()
            result = ws.run("reconcile")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            sweeps = [r for r in score_requests(fake.stats()) if "id" in query_of(r)]
            self.assertGreaterEqual(len(sweeps), 5)
            self.assertTrue(all(r["status"] == 200 for r in sweeps), [r["status"] for r in sweeps])
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM scores WHERE deleted_at "
                                              "IS NOT NULL"), 0)
            # A proxy with a shorter limit: 414s, halved batches, still no false deletion.
            fake.set_options(max_request_line=2500)
            fake.reset_stats()
            fake.delete_score(added["score_ids"][7])
            result = ws.run("reconcile")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            statuses = [r["status"] for r in score_requests(fake.stats())]
            self.assertIn(414, statuses)
            deleted = db_rows(ws.db, "SELECT score_id FROM scores WHERE deleted_at IS NOT NULL")
            self.assertEqual(deleted, [(added["score_ids"][7],)])

    # 3. An older copy of a score (re-saved on another day) never overwrites the newer one.
    def test_a_score_resaved_on_another_day_keeps_its_newest_value(self) -> None:
        with FakeLangfuse(traces=30, seed=5) as fake, Workspace(fake) as ws:
            # One score a page: the two copies come on different pages, as on the real server.
            ws.write_config({**QUICK, "limits": {**FAST_LIMITS, "score_page_size": 1}})
            added = fake.add_scores(1, name="quality", value="Bad", timestamp_offset_s=-3 * 86_400,
                                    new_traces=False)
            score_id = added["score_ids"][0]
            self.sync(ws)
            fake.control("POST", "scores/resave",
                         {"ids": [score_id], "timestamp_offset_s": 2 * 86_400,
                          "stringValue": "Good"})
            _, _, body = fake.api_get("/api/public/v3/scores", {"id": score_id, "limit": 100})
            listed = body["data"]
            self.assertEqual(len(listed), 2, "the fake lists both stored copies")
            for _ in range(2):
                result = ws.run("reconcile", "--since", "2000-01-01T00:00:00Z")
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                self.sync(ws)
            self.assertEqual(db_scalar(ws.db, "SELECT string_value FROM scores WHERE score_id = ?",
                                       (score_id,)), "Good")
            changes = db_rows(ws.db, "SELECT old_string_value, new_string_value FROM "
                                     "score_changes WHERE score_id = ?", (score_id,))
            self.assertEqual(changes, [("Bad", "Good")])

    # 4. A score stamped ahead of the server's clock does not push the watermark past "now".
    def test_skewed_score_timestamps_do_not_hide_later_scores(self) -> None:
        with FakeLangfuse(traces=20, seed=6) as fake, Workspace(fake) as ws:
            ws.write_config(QUICK)
            fake.add_scores(1, name="quality", timestamp_offset_s=6 * 3600, new_traces=False)
            self.sync(ws)
            watermark = db_scalar(ws.db, "SELECT watermark FROM sync_state WHERE stream = 'poll'")
            now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 120))
            self.assertLessEqual(watermark, now)
            later = fake.add_scores(1, name="quality", timestamp_offset_s=-60, new_traces=False)
            self.sync(ws)
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM scores WHERE score_id = ?",
                                       (later["score_ids"][0],)), 1)

    # 5. Legacy: no fields parameter, observation pages of 100, sweep spares unlisted kinds.
    def test_legacy_requests_and_sweep(self) -> None:
        with FakeLangfuse(traces=40, seed=7, generation="legacy") as fake, Workspace(fake) as ws:
            ws.write_config({**QUICK, "harvest": {"sources": ["ANNOTATION", "API", "EVAL"]}})
            self.sync(ws)
            unlisted = db_scalar(ws.db, "SELECT count(*) FROM scores WHERE subject_kind IN "
                                        "('session', 'experiment') OR data_type = 'CORRECTION'")
            self.assertGreater(unlisted, 0)
            stats = fake.stats()
            for request in score_requests(stats):
                self.assertNotIn("fields", query_of(request))
            self.assertTrue(all(query_of(r)["limit"] == ["100"] for r in observation_requests(stats)))
            fake.set_options(legacy_lists_all_kinds=False)  # as the real /scores
            result = ws.run("reconcile")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM scores WHERE deleted_at "
                                              "IS NOT NULL"), 0)

    # 6. Generation per endpoint: v3 scores with v1 observations (404 or 501 on v2).
    def test_v4_server_without_v2_observations(self) -> None:
        # 501: v2 observations of 3.133..3.158 (legacy scores), behind a /health that names no
        # version, so the client has to try the current API.
        cases = (("404", "auto", "current"), ("404", "current", "current"), ("501", "auto", "legacy"))
        for answer, api, generation in cases:
            with self.subTest(v2=answer, api=api), \
                    FakeLangfuse(traces=30, seed=8, generation=generation) as fake, \
                    Workspace(fake) as ws:
                fake.set_options(v2_observations=answer)
                if answer == "501":
                    fake.set_options(health_version="unknown")
                ws.write_config({**QUICK, "langfuse": {"api": api}})
                self.sync(ws)
                self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state != "
                                                  "'done'"), 0)
                self.assertGreater(db_scalar(ws.db, "SELECT count(*) FROM observations"), 0)
                by_endpoint = fake.stats()["by_endpoint"]
                self.assertIn("200", json.dumps(by_endpoint.get("/api/public/observations", {})))
                v2 = by_endpoint.get("/api/public/v2/observations", {})
                # Only the first requests in flight (FAST_LIMITS: 4) try v2 before it is known gone.
                self.assertLessEqual(sum(v2.values()), FAST_LIMITS["max_in_flight"])
                self.assertTrue(set(v2) <= {answer}, v2)
                legacy_scores = sum(by_endpoint.get("/api/public/scores", {}).values())
                self.assertEqual(legacy_scores > 0, generation == "legacy")

    # 7. The same observation twice: the newer updatedAt wins.
    def test_an_observation_listed_twice_keeps_its_newer_version(self) -> None:
        with FakeLangfuse(traces=10, seed=9) as fake, Workspace(fake) as ws:
            ws.write_config(QUICK)
            truth = fake.truth()
            trace_id = next(iter(truth["traces"]))
            generation = next(o for o in truth["traces"][trace_id]["observations"]
                              if o["type"] == "GENERATION")
            fake.control("POST", "observations/resave",
                         {"ids": [generation["id"]], "output": {"content": "newer"}})
            self.sync(ws)
            stored = db_scalar(ws.db, "SELECT output_json FROM observations WHERE "
                                      "observation_id = ?", (generation["id"],))
            self.assertEqual(json.loads(stored), {"content": "newer"})
            fields = {f for r in observation_requests(fake.stats())
                      for f in query_of(r)["fields"][0].split(",")}
            self.assertIn("time", fields)

    # 8. A score name with a comma, which v3 splits, is filtered on the client.
    def test_score_name_with_a_comma(self) -> None:
        with FakeLangfuse(traces=10, seed=10) as fake, Workspace(fake) as ws:
            added = fake.add_scores(3, name="tone, style", data_type="NUMERIC", value=0.5,
                                    new_traces=False)
            ws.write_config({**QUICK, "harvest": {"score_names": ["tone, style"]}})
            self.sync(ws)
            names = {row[0] for row in db_rows(ws.db, "SELECT DISTINCT name FROM scores")}
            self.assertEqual(names, {"tone, style"})
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM scores"), 3, added)

    # 9. 422 "Request timed out" is retried narrower, not failed as too large.
    def test_observation_query_timeouts_are_narrowed(self) -> None:
        with FakeLangfuse(traces=30, seed=11) as fake, Workspace(fake) as ws:
            ws.write_config(QUICK)
            fake.set_options(observation_query_timeout=True)
            self.sync(ws)
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state != "
                                              "'done'"), 0)
            requests = observation_requests(fake.stats())
            timeouts = [r for r in requests if r["status"] == 422]
            # Bounded from the first timeout on: only requests already in flight time out.
            self.assertGreaterEqual(len(timeouts), 1)
            self.assertLessEqual(len(timeouts), FAST_LIMITS["max_in_flight"])
            bounded = [r for r in requests if "fromStartTime" in query_of(r)]
            self.assertEqual(len(bounded), len(requests) - len(timeouts))
            self.assertFalse(db_rows(ws.db, "SELECT trace_id FROM traces WHERE failure_reason "
                                            "= 'too_large'"))

    # 10. The breaker closes on an API call that works, not on /health alone.
    def test_health_alone_does_not_close_the_breaker(self) -> None:
        with FakeLangfuse(traces=80, seed=12) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_second": 10, "max_in_flight": 2},
                             "retry": {"breaker_failures": 3, "breaker_probe_base_seconds": 1,
                                       "breaker_probe_cap_seconds": 1, "backoff_base_ms": 50},
                             "sync": {"max_wait_seconds": 60},
                             "maintenance": {"settle_minutes": 0}})
            fake.set_options(outage_spares_health=True)
            process = ws.popen("sync")
            try:
                wait_until(lambda: len(observation_requests(fake.stats())) >= 3, timeout=60)
                fake.outage(4, "503")
                self.assertEqual(process.wait(timeout=240), EXIT_OK)
            finally:
                if process.poll() is None:
                    process.kill()
            requests = fake.stats()["requests"]
            during = [r for r in requests if r.get("fault") == "outage-503"]
            data_calls = [r for r in during if "/scores" in r["path"] or "observations" in r["path"]]
            probes = [r for r in during if r["path"].endswith("/projects")]
            self.assertGreaterEqual(len(probes), 2, "API probes went out")
            # Only the requests that opened the breaker (and those already in flight) fail: a
            # health answer never lets the workers loose on a failing API.
            self.assertLessEqual(len(data_calls), 3 + 2, [r["path"] for r in during])
            self.assertEqual(db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state != "
                                              "'done'"), 0)

if __name__ == "__main__":
    unittest.main()
