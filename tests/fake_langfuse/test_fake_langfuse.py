"""Self-tests of the fake Langfuse server: run ``python3 -m unittest`` in this folder."""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
from typing import Any

import fake_langfuse as fl
from harness import FakeLangfuse, FakeLangfuseError

START_TIME = "2025-06-01T12:00:00Z"
START_MS = fl.parse_iso_ms(START_TIME)


def generate(**overrides: Any) -> tuple[list[fl.Trace], list[fl.Score]]:
    config = fl.DataConfig(start_time_ms=START_MS, **overrides)
    rng = fl.random.Random(config.seed)
    return fl.DatasetGenerator(config, rng, fl.IdFactory(rng)).generate()


def raw_exchange(fake: FakeLangfuse, path: str, auth: bool = True,
                 timeout: float = 10.0) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
    """A GET on a fresh connection, for tests that look at what the socket does."""
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=timeout)
    headers = {"Authorization": fake.auth_header()} if auth else {}
    connection.request("GET", path, headers=headers)
    return connection.getresponse(), connection


def failed_exchange(fake: FakeLangfuse, path: str, timeout: float = 10.0) -> Exception | None:
    """A GET that is expected to fail at the socket level; returns the error."""
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=timeout)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException) as error:
        return error
    finally:
        connection.close()
    return None


# ----------------------------------------------------------------------------
# Generated data (in process, no server)
# ----------------------------------------------------------------------------

class GeneratedDataTest(unittest.TestCase):
    def test_same_seed_gives_same_data(self) -> None:
        first, second = generate(traces=60, seed=5), generate(traces=60, seed=5)
        self.assertEqual([t.id for t in first[0]], [t.id for t in second[0]])
        self.assertEqual([(s.id, s.value, s.timestamp_ms) for s in first[1]],
                         [(s.id, s.value, s.timestamp_ms) for s in second[1]])
        other = generate(traces=60, seed=6)
        self.assertNotEqual([t.id for t in first[0]], [t.id for t in other[0]])

    def test_trace_shape(self) -> None:
        traces, _ = generate(traces=200, seed=2)
        for trace in traces:
            observations = trace.observations
            self.assertTrue(2 <= len(observations) <= 6, len(observations))
            roots = [o for o in observations if o.parent_id is None]
            self.assertEqual(len(roots), 1)
            self.assertEqual(roots[0].type, "SPAN")
            generations = [o for o in observations if o.type == "GENERATION"]
            self.assertTrue(1 <= len(generations) <= 3)
            self.assertTrue(all(g.parent_id == roots[0].id for g in generations))
            starts = [g.start_ms for g in generations]
            self.assertEqual(starts, sorted(set(starts)))
            self.assertTrue(all(g.model and g.usage for g in generations))

    def test_content_variety(self) -> None:
        traces, scores = generate(traces=300, seed=3)
        generations = [o for t in traces for o in t.observations if o.type == "GENERATION"]
        inputs = [g.input for g in generations]
        outputs = [g.output for g in generations]
        self.assertTrue(any(isinstance(i, str) for i in inputs))
        self.assertTrue(any(isinstance(i, list) for i in inputs))
        self.assertTrue(any(isinstance(i, dict) and "tools" in i for i in inputs))
        self.assertTrue(any(o is None for o in outputs))
        self.assertTrue(any(isinstance(o, str) for o in outputs))
        self.assertTrue(any(isinstance(o, dict) and "choices" in o for o in outputs))
        self.assertTrue(any(isinstance(o, dict) and "tool_calls" in o for o in outputs))
        everything = json.dumps([inputs, outputs], ensure_ascii=False)
        self.assertIn("向量", everything)
        self.assertIn("🥞", everything)
        sources = {s.source for s in scores}
        self.assertEqual(sources, {"ANNOTATION", "API", "EVAL"})
        kinds = {s.subject_kind for s in scores}
        self.assertEqual(kinds, {"trace", "observation", "session", "experiment"})
        self.assertEqual({s.data_type for s in scores}, set(fl.SCORE_DATA_TYPES))
        self.assertEqual(len({s.id for s in scores}), len(scores))
        stamps = [s.timestamp_ms for s in scores]
        self.assertTrue(0 < len(stamps) - len(set(stamps)) < len(stamps) // 10)  # a few ties
        self.assertLess(max(stamps), START_MS)

    def test_value_types_by_data_type(self) -> None:
        _, scores = generate(traces=300, seed=4)
        for score in scores:
            if score.data_type == "NUMERIC":
                self.assertIsInstance(score.value, float)
            elif score.data_type == "BOOLEAN":
                self.assertIsInstance(score.value, bool)
            else:
                self.assertIsInstance(score.value, str)

    def test_demo_dataset(self) -> None:
        traces, scores = generate(demo=True)
        self.assertEqual(len(traces), 40)
        annotations = [s for s in scores if s.source == "ANNOTATION"]
        quality = [s for s in annotations if s.name == "quality" and s.trace_id]
        self.assertEqual(len(quality), 25)
        self.assertEqual({s.value for s in quality}, {"Good", "Bad"})
        self.assertTrue(any(s.data_type == "NUMERIC" and s.name == "rating" for s in annotations))
        self.assertTrue(any(s.data_type == "CORRECTION" for s in annotations))
        self.assertEqual(sum(1 for s in annotations if s.subject_kind == "session"), 1)
        self.assertEqual(sum(1 for s in annotations if s.subject_kind == "observation"), 1)

    def test_big_input_is_lazy_and_exact(self) -> None:
        big = fl.BigInput(6_000_000, seed=9)
        raw = big.raw()
        self.assertEqual(len(raw.encode("utf-8")), 6_000_000)
        self.assertEqual(raw, fl.BigInput(6_000_000, seed=9).raw())
        self.assertEqual(json.loads(raw)[1]["role"], "user")
        traces, _ = generate(traces=100, big_fraction=0.2, big_size=50_000, seed=8)
        big_traces = [t for t in traces if any(o.is_big for o in t.observations)]
        self.assertTrue(5 <= len(big_traces) <= 40)
        self.assertTrue(all(sum(o.is_big for o in t.observations) == 1 for t in big_traces))

    def test_observation_cursor_has_characters_that_need_encoding(self) -> None:
        for index in range(50):
            cursor = fl.encode_observation_cursor(START_MS + index * 7, "%032x" % index, "%016x" % index)
            self.assertIn("+", cursor)
            self.assertIn("/", cursor)
            self.assertTrue(cursor.endswith("="))
            self.assertEqual(fl.decode_observation_cursor(cursor), (START_MS + index * 7, "%032x" % index,
                                                                    "%016x" % index))

    def test_js_formats(self) -> None:
        self.assertEqual(fl.iso(START_MS + 5), "2025-06-01T12:00:00.005Z")
        self.assertEqual(fl.js_date_string(START_MS / 1000),
                         "Sun Jun 01 2025 12:00:00 GMT+0000 (Coordinated Universal Time)")
        self.assertEqual(fl.js_decimal_string(1.5e-7), "1.5e-7")


# ----------------------------------------------------------------------------
# Current generation (v4): scores v3 and observations v2
# ----------------------------------------------------------------------------

class ServerTestCase(unittest.TestCase):
    server_options: dict[str, Any] = {}
    fake: FakeLangfuse

    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = FakeLangfuse(start_time=START_TIME, **cls.server_options).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()

    def tearDown(self) -> None:
        if self.fake.process and self.fake.process.poll() is None:
            self.fake.clear_faults()
            self.fake.set_options(duplicate_across_pages=False, v3_require_from_timestamp=False,
                                  v3_layout="flat")

    def get(self, path: str, params: dict[str, Any] | None = None, auth: bool = True) -> tuple[int, Any]:
        status, _, body = self.fake.api_get(path, params, auth)
        return status, body

    def page_all(self, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        items: list[dict[str, Any]] = []
        cursors: list[str] = []
        cursor = None
        while True:
            query = dict(params, **({"cursor": cursor} if cursor else {}))
            status, body = self.get(path, query)
            self.assertEqual(status, 200, body)
            items += body["data"]
            cursor = body["meta"].get("cursor")
            if not cursor:
                self.assertNotIn("cursor", body["meta"])
                return items, cursors
            cursors.append(cursor)
            self.assertLess(len(cursors), 10_000)


class CurrentApiTest(ServerTestCase):
    server_options = {"traces": 120, "seed": 3}

    def all_scores(self) -> list[dict[str, Any]]:
        return [s for s in self.fake.scores() if s["visible"]]

    # -- health, projects, auth ----------------------------------------------

    def test_health_needs_no_auth(self) -> None:
        self.assertEqual(self.get("/api/public/health", auth=False),
                         (200, {"status": "OK", "version": "4.16.0"}))

    def test_projects_and_auth(self) -> None:
        status, body = self.get("/api/public/projects")
        self.assertEqual(status, 200)
        self.assertEqual(body["data"][0]["id"], "proj-demo")
        self.assertEqual(body["data"][0]["metadata"], {})
        status, body = self.get("/api/public/projects", auth=False)
        self.assertEqual(status, 401)
        self.assertIn("message", body)
        self.assertIn("error", body)
        bad = {"Authorization": self.fake.auth_header(secret_key="sk-lf-wrong")}
        status, _, raw = self.fake.request("GET", "/api/public/v3/scores", headers=bad)
        self.assertEqual(status, 401)
        self.assertNotIn(b"sk-lf-wrong", raw)
        bearer = {"Authorization": "Bearer pk-lf-demo"}
        self.assertEqual(self.fake.request("GET", "/api/public/projects", headers=bearer)[0], 403)
        self.assertEqual(self.fake.request("GET", "/api/public/projects",
                                           headers={"Authorization": "Basic !!!"})[0], 401)

    def test_unknown_and_legacy_paths_are_404(self) -> None:
        for path in ("/api/public/scores", "/api/public/v2/scores", "/api/public/observations",
                     "/api/public/nope", "/other"):
            status, body = self.get(path)
            self.assertEqual(status, 404, path)
            self.assertIn("message", body)

    def test_trace_detail_is_served_and_counted(self) -> None:
        trace_id = self.all_scores()[0]["traceId"] or self.all_scores()[1]["traceId"]
        before = self.fake.stats()["trace_detail_calls"]
        status, body = self.get(f"/api/public/traces/{trace_id}")
        self.assertEqual(status, 200)
        self.assertEqual(body["id"], trace_id)
        self.assertTrue(body["observations"])
        self.assertIn("htmlPath", body)
        self.assertEqual(self.get("/api/public/traces/does-not-exist")[0], 404)
        self.assertEqual(self.fake.stats()["trace_detail_calls"], before + 2)

    # -- v3 scores ------------------------------------------------------------

    def test_v3_query_is_strict(self) -> None:
        for params in ({"page": 1}, {"limit": 101}, {"limit": 0}, {"limit": "abc"}, {"limit": 2.5},
                       {"fields": "subject,trace"}, {"fields": "everything"}, {"source": "HUMAN"},
                       {"dataType": "FLOAT"}, {"observationId": "abc"}, {"fromTimestamp": "yesterday"},
                       {"traceId": "a", "sessionId": "b"}, {"value": "1"}, {"userId": "u"},
                       {"name": ["a", "b"]}, {"cursor": "not-a-cursor!"},
                       {"cursor": base64.urlsafe_b64encode(b'{"v":2}').decode()}):
            status, body = self.get("/api/public/v3/scores", params)
            self.assertEqual(status, 400, params)
            self.assertIn("message", body)
        status, body = self.get("/api/public/v3/scores", {"page": 1})
        self.assertEqual(body["error"][0]["code"], "unrecognized_keys")
        self.assertEqual(self.get("/api/public/v3/scores", {"source": "annotation"})[0], 200)

    def test_v3_paging_returns_everything_in_order(self) -> None:
        expected = {s["id"] for s in self.all_scores()}
        items, cursors = self.page_all("/api/public/v3/scores", {"limit": 7})
        self.assertEqual([i["id"] for i in items if i["id"] in expected], [i["id"] for i in items])
        self.assertEqual({i["id"] for i in items}, expected)
        self.assertEqual(len(items), len(expected))
        keys = [(i["timestamp"], i["id"]) for i in items]
        self.assertEqual(keys, sorted(keys, reverse=True))
        self.assertEqual(len(cursors), (len(items) - 1) // 7)
        self.assertTrue(all(set(c) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
                            for c in cursors))
        status, body = self.get("/api/public/v3/scores", {})
        self.assertEqual(body["meta"]["limit"], 50)
        self.assertEqual(len(body["data"]), 50)

    def test_v3_field_groups(self) -> None:
        status, body = self.get("/api/public/v3/scores", {"limit": 100})
        core = {"id", "projectId", "name", "dataType", "value", "source", "timestamp", "environment",
                "createdAt", "updatedAt"}
        self.assertTrue(all(set(item) == core for item in body["data"]))
        status, body = self.get("/api/public/v3/scores", {"limit": 100, "fields": "details,annotation,subject"})
        extra = {"comment", "configId", "metadata", "authorUserId", "queueId", "subject"}
        self.assertTrue(all(set(item) == core | extra for item in body["data"]))
        for item in body["data"]:
            subject = item["subject"]
            if subject["kind"] == "observation":
                self.assertIn("traceId", subject)
            else:
                self.assertNotIn("traceId", subject)
        self.fake.set_options(v3_layout="nested")
        status, body = self.get("/api/public/v3/scores", {"limit": 5, "fields": "details,annotation"})
        self.assertTrue(all("details" in i and "annotation" in i for i in body["data"]))

    def test_v3_value_types(self) -> None:
        items, _ = self.page_all("/api/public/v3/scores", {"limit": 100})
        seen = set()
        for item in items:
            kind = item["dataType"]
            seen.add(kind)
            if kind == "NUMERIC":
                self.assertTrue(isinstance(item["value"], (int, float)) and not isinstance(item["value"], bool))
            elif kind == "BOOLEAN":
                self.assertIsInstance(item["value"], bool)
            else:
                self.assertIsInstance(item["value"], str)
        self.assertEqual(seen, set(fl.SCORE_DATA_TYPES))

    def test_v3_filters(self) -> None:
        scores = self.all_scores()
        items, _ = self.page_all("/api/public/v3/scores", {"limit": 100, "source": "ANNOTATION"})
        self.assertEqual(len(items), sum(1 for s in scores if s["source"] == "ANNOTATION"))
        self.assertTrue(all(i["source"] == "ANNOTATION" for i in items))
        ids = [s["id"] for s in scores[:5]] + ["missing-id"]
        status, body = self.get("/api/public/v3/scores", {"id": ",".join(ids)})
        self.assertEqual({i["id"] for i in body["data"]}, set(ids[:5]))
        names = {"quality", "rating"}
        items, _ = self.page_all("/api/public/v3/scores", {"limit": 100, "name": "quality,rating",
                                                            "dataType": "CATEGORICAL,NUMERIC"})
        self.assertTrue(items and all(i["name"] in names for i in items))
        # fromTimestamp inclusive, toTimestamp exclusive
        pivot = sorted(scores, key=lambda s: s["timestamp"])[len(scores) // 2]["timestamp"]
        newer, _ = self.page_all("/api/public/v3/scores", {"limit": 100, "fromTimestamp": pivot})
        older, _ = self.page_all("/api/public/v3/scores", {"limit": 100, "toTimestamp": pivot})
        self.assertTrue(any(i["timestamp"] == pivot for i in newer))
        self.assertFalse(any(i["timestamp"] == pivot for i in older))
        self.assertEqual(len(newer) + len(older), len(scores))
        with_trace = next(s for s in scores if s["observationId"])
        status, body = self.get("/api/public/v3/scores", {"traceId": with_trace["traceId"],
                                                          "observationId": with_trace["observationId"],
                                                          "fields": "subject"})
        self.assertEqual(status, 200)
        self.assertTrue(all(i["subject"]["kind"] == "observation" for i in body["data"]))
        self.fake.set_options(v3_require_from_timestamp=True)
        self.assertEqual(self.get("/api/public/v3/scores", {})[0], 400)
        self.assertEqual(self.get("/api/public/v3/scores", {"fromTimestamp": pivot})[0], 200)
        self.assertEqual(self.get("/api/public/v3/scores", {"id": ids[0]})[0], 200)

    def test_v3_duplicate_across_pages(self) -> None:
        self.fake.set_options(duplicate_across_pages=True)
        items, cursors = self.page_all("/api/public/v3/scores", {"limit": 10})
        ids = [i["id"] for i in items]
        self.assertEqual(len(ids) - len(set(ids)), len(cursors))
        self.assertEqual(set(ids), {s["id"] for s in self.all_scores()})

    # -- v2 observations --------------------------------------------------------

    def test_v2_observations_paging(self) -> None:
        small, cursors = self.page_all("/api/public/v2/observations", {"limit": 37})
        large, _ = self.page_all("/api/public/v2/observations", {"limit": 1000})
        self.assertEqual([o["id"] for o in small], [o["id"] for o in large])
        self.assertEqual(len({o["id"] for o in small}), len(small))
        keys = [(o["startTime"], o["traceId"], o["id"]) for o in small]
        self.assertEqual(keys, sorted(keys, reverse=True))
        self.assertTrue(all("+" in c and c.endswith("=") for c in cursors))
        self.assertEqual(set(small[0]), {"id", "traceId", "startTime", "endTime", "projectId",
                                         "parentObservationId", "type", "modelId", "inputPrice",
                                         "outputPrice", "totalPrice", "name", "level", "statusMessage",
                                         "version", "environment", "bookmarked", "public", "userId",
                                         "sessionId", "isRootObservation"})

    def test_v2_cursor_must_be_url_encoded(self) -> None:
        _, body = self.get("/api/public/v2/observations", {"limit": 3})
        cursor = body["meta"]["cursor"]
        response, connection = raw_exchange(self.fake, "/api/public/v2/observations?limit=3&cursor=" + cursor)
        self.assertEqual(response.status, 400)
        connection.close()
        response, connection = raw_exchange(
            self.fake, "/api/public/v2/observations?limit=3&cursor=" + urllib.parse.quote(cursor, safe=""))
        self.assertEqual(response.status, 200)
        connection.close()

    def test_v2_io_is_raw_strings(self) -> None:
        items, _ = self.page_all("/api/public/v2/observations", {"limit": 500, "fields": "io",
                                                                 "type": "GENERATION", "ignored": "yes"})
        self.assertTrue(items)
        self.assertNotIn("name", items[0])  # fields=io means core + io only
        plain_text = [i for i in items if isinstance(i["input"], str) and not i["input"].startswith(("[", "{"))]
        self.assertTrue(plain_text)
        with self.assertRaises(ValueError):
            json.loads(plain_text[0]["input"])
        structured = [i for i in items if isinstance(i["input"], str) and i["input"].startswith("[")]
        self.assertIsInstance(json.loads(structured[0]["input"]), list)
        self.assertTrue(any(i["output"] is None for i in items))
        self.assertTrue(all(isinstance(i["input"], str) for i in items))

    def test_v2_filters_and_groups(self) -> None:
        trace_id = self.all_scores()[0]["traceId"] or self.all_scores()[1]["traceId"]
        groups = "core,basic,model,usage,metadata,time"
        items, _ = self.page_all("/api/public/v2/observations", {"traceId": trace_id, "limit": 2, "fields": groups})
        self.assertTrue(2 <= len(items) <= 6)
        self.assertTrue(all(i["traceId"] == trace_id for i in items))
        generation = next(i for i in items if i["type"] == "GENERATION")
        self.assertTrue(generation["providedModelName"])
        self.assertIn("input", generation["usageDetails"])
        self.assertTrue(all(len(v) <= 200 for v in generation["metadata"].values()))
        roots, _ = self.page_all("/api/public/v2/observations", {"parentObservationId": "", "limit": 1000})
        everything, _ = self.page_all("/api/public/v2/observations", {"limit": 1000})
        self.assertEqual(len(roots), len({o["traceId"] for o in everything}))
        self.assertTrue(all(o["parentObservationId"] is None for o in roots))
        self.assertEqual(self.get("/api/public/v2/observations", {"limit": 1001})[0], 400)
        self.assertEqual(self.get("/api/public/v2/observations", {"parseIoAsJson": "true"})[0], 400)
        self.assertEqual(self.get("/api/public/v2/observations", {"type": "BOGUS"})[0], 400)
        self.assertEqual(self.get("/api/public/v2/observations", {"cursor": "%%%"})[0], 400)
        status, body = self.get("/api/public/v2/observations", {"limit": 0})
        self.assertEqual((status, body["data"], body["meta"]), (200, [], {}))

    # -- stats ------------------------------------------------------------------

    def test_stats_count_api_requests_only(self) -> None:
        self.fake.reset_stats()
        self.get("/api/public/health", auth=False)
        self.get("/api/public/v3/scores", {"limit": 1})
        self.get("/api/public/v3/scores", {"page": 2})
        self.fake.truth()
        stats = self.fake.stats()
        self.assertEqual(stats["requests_total"], 3)
        self.assertEqual(stats["by_endpoint"]["/api/public/v3/scores"], {"200": 1, "400": 1})
        self.assertEqual([r["status"] for r in stats["requests"]], [200, 200, 400])
        self.assertEqual(stats["requests"][2]["query"], "page=2")
        self.assertGreater(stats["bytes_sent"], 0)
        self.assertLessEqual(stats["requests"][0]["t"], stats["now"])

    def test_stats_concurrency_and_rates(self) -> None:
        self.fake.faults([{"path": "/api/public/health", "mode": "latency", "ms": 400}])
        self.fake.reset_stats()
        threads = [threading.Thread(target=self.get, args=("/api/public/health",), kwargs={"auth": False})
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = self.fake.stats()
        self.assertGreaterEqual(stats["peak_in_flight"], 5)
        self.assertGreaterEqual(stats["max_per_second"], 6)
        self.assertGreaterEqual(stats["max_per_minute"], 6)
        self.assertEqual(stats["in_flight"], 0)
        self.assertTrue(all(r["t_end"] - r["t"] >= 0.39 for r in stats["requests"]))

    # -- data changes -------------------------------------------------------------

    def test_edit_keeps_id_timestamp_and_updated_at(self) -> None:
        target = next(s for s in self.all_scores()
                      if s["dataType"] == "CATEGORICAL" and s["source"] == "ANNOTATION")
        _, before = self.get("/api/public/v3/scores", {"id": target["id"], "fields": "details"})
        new_label = "Bad" if before["data"][0]["value"] == "Good" else "Good"
        result = self.fake.edit_score(target["id"], string_value=new_label, comment="edited ✍️")
        self.assertEqual(result["edited"], [target["id"]])
        _, after = self.get("/api/public/v3/scores", {"id": target["id"], "fields": "details"})
        old, new = before["data"][0], after["data"][0]
        self.assertEqual(new["value"], new_label)
        self.assertEqual(new["comment"], "edited ✍️")
        for name in ("id", "timestamp", "updatedAt", "createdAt"):
            self.assertEqual(old[name], new[name])

    def test_delete_is_hard(self) -> None:
        target = self.all_scores()[-1]
        self.assertEqual(self.fake.delete_score([target["id"]])["deleted"], [target["id"]])
        _, body = self.get("/api/public/v3/scores", {"id": target["id"]})
        self.assertEqual(body["data"], [])
        listed = {s["id"]: s for s in self.fake.scores()}
        self.assertTrue(listed[target["id"]]["deleted"])
        self.assertEqual(self.fake.delete_score(target["id"])["missing"], [target["id"]])

    def test_added_scores_appear_after_the_lag(self) -> None:
        added = self.fake.add_scores(3, name="quality", timestamp_offset_s=-600, visible_after_s=0.6,
                                     new_traces=True)
        self.assertEqual(len(added["score_ids"]), 3)
        _, body = self.get("/api/public/v3/scores", {"id": ",".join(added["score_ids"])})
        self.assertEqual(body["data"], [])
        truth_ids = {s["id"] for s in self.fake.truth()["scores"]}
        self.assertFalse(truth_ids & set(added["score_ids"]))
        status, body = self.get("/api/public/v2/observations", {"traceId": added["trace_ids"][0]})
        self.assertTrue(body["data"])  # the annotated traces themselves are visible at once
        time.sleep(0.7)
        _, body = self.get("/api/public/v3/scores", {"id": ",".join(added["score_ids"]), "fields": "subject"})
        self.assertEqual({i["id"] for i in body["data"]}, set(added["score_ids"]))
        self.assertEqual({i["subject"]["id"] for i in body["data"]}, set(added["trace_ids"]))
        truth = self.fake.truth()
        self.assertTrue(set(added["score_ids"]) <= {s["id"] for s in truth["scores"]})
        self.assertTrue(set(added["trace_ids"]) <= set(truth["traces"]))

    def test_late_observation(self) -> None:
        trace_id = self.all_scores()[0]["traceId"] or self.all_scores()[1]["traceId"]
        before, _ = self.page_all("/api/public/v2/observations", {"traceId": trace_id})
        added = self.fake.add_observation(trace_id)
        after, _ = self.page_all("/api/public/v2/observations", {"traceId": trace_id})
        self.assertEqual(len(after), len(before) + 1)
        self.assertEqual(after[0]["id"], added["id"])  # newest start time first

    def test_truth(self) -> None:
        truth = self.fake.truth()
        annotations = [s for s in self.all_scores() if s["source"] == "ANNOTATION"]
        self.assertEqual(len(truth["scores"]), len(annotations))
        for score in truth["scores"]:
            if score["subjectKind"] in ("session", "experiment"):
                self.assertIsNone(score["traceId"])
            else:
                self.assertIn(score["traceId"], truth["traces"])
        some_trace = next(iter(truth["traces"].values()))
        self.assertTrue(all({"id", "type", "startTime", "input", "output"} <= set(o)
                            for o in some_trace["observations"]))

    # -- faults ---------------------------------------------------------------------

    def test_fault_status_with_skip_count_and_retry_after(self) -> None:
        self.fake.faults([{"path": "^/api/public/v3/scores$", "mode": "status", "status": 429,
                           "retry_after": "7", "skip": 1, "count": 2}])
        statuses = []
        for _ in range(5):
            status, headers, _ = self.fake.api_get("/api/public/v3/scores", {"limit": 1})
            statuses.append((status, headers.get("Retry-After")))
        self.assertEqual(statuses, [(200, None), (429, "7"), (429, "7"), (200, None), (200, None)])
        self.assertEqual(self.fake.fault_state()[0]["fired"], 2)
        self.fake.faults([{"path": "health", "mode": "status", "status": 503,
                           "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}])
        status, headers, _ = self.fake.api_get("/api/public/health", auth=False)
        self.assertEqual((status, headers["Retry-After"]), (503, "Wed, 21 Oct 2015 07:28:00 GMT"))
        self.fake.faults([{"path": "health", "mode": "status", "status": 524}])
        status, headers, body = self.fake.api_get("/api/public/health", auth=False)
        self.assertEqual(status, 524)
        stats = self.fake.stats()
        self.assertGreaterEqual(stats["responses_429"], 2)

    def test_fault_query_regex_and_probability(self) -> None:
        self.fake.faults([{"path": "health", "query": "x=1", "mode": "status", "status": 500}])
        self.assertEqual(self.fake.api_get("/api/public/health", {"x": 1}, auth=False)[0], 500)
        self.assertEqual(self.fake.api_get("/api/public/health", {"x": 2}, auth=False)[0], 200)

        def run() -> list[int]:
            self.fake.faults([{"path": "health", "mode": "status", "status": 502, "probability": 0.5}], seed=4)
            return [self.fake.api_get("/api/public/health", auth=False)[0] for _ in range(20)]

        first = run()
        self.assertEqual(first, run())
        self.assertTrue(0 < first.count(502) < 20)

    def test_fault_reset(self) -> None:
        self.fake.faults([{"path": "health", "mode": "reset", "count": 1}])
        self.assertIsInstance(failed_exchange(self.fake, "/api/public/health"),
                              (ConnectionResetError, http.client.RemoteDisconnected))
        self.assertEqual(self.get("/api/public/health", auth=False)[0], 200)

    def test_fault_truncate(self) -> None:
        self.fake.faults([{"path": "v3/scores", "mode": "truncate", "fraction": 0.3}])
        response, connection = raw_exchange(self.fake, "/api/public/v3/scores?limit=20")
        self.assertEqual(response.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            response.read()
        connection.close()

    def test_fault_malformed(self) -> None:
        self.fake.faults([{"path": "v3/scores", "mode": "malformed"}])
        status, _, body = self.fake.api_get("/api/public/v3/scores")
        self.assertEqual(status, 200)
        self.assertIsInstance(body, bytes)  # did not parse as JSON

    def test_fault_latency_and_trickle(self) -> None:
        self.fake.faults([{"path": "health", "mode": "latency", "ms": 300, "count": 1}])
        started = time.monotonic()
        self.assertEqual(self.get("/api/public/health", auth=False)[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.29)
        self.fake.faults([{"path": "health", "mode": "trickle", "interval_s": 0.01}])
        started = time.monotonic()
        status, body = self.get("/api/public/health", auth=False)
        self.assertEqual((status, body["status"]), (200, "OK"))
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_fault_stall(self) -> None:
        self.fake.faults([{"path": "health", "mode": "stall", "seconds": 0.5}])
        started = time.monotonic()
        self.assertIsInstance(failed_exchange(self.fake, "/api/public/health", timeout=5),
                              (ConnectionError, http.client.HTTPException))
        self.assertGreaterEqual(time.monotonic() - started, 0.45)
        self.fake.faults([{"path": "health", "mode": "stall"}])
        self.assertIsInstance(failed_exchange(self.fake, "/api/public/health", timeout=0.3), socket.timeout)
        stats = self.fake.stats()
        self.assertGreaterEqual(stats["in_flight"], 1)  # still stalled, still counted

    def test_fault_huge_bodies(self) -> None:
        for chunked in (False, True):
            self.fake.faults([{"path": "v3/scores", "mode": "huge", "bytes": 3_000_000, "chunked": chunked}])
            response, connection = raw_exchange(self.fake, "/api/public/v3/scores")
            self.assertEqual(response.getheader("Transfer-Encoding") == "chunked", chunked)
            self.assertEqual(response.getheader("Content-Length") is None, chunked)
            body = response.read()
            self.assertEqual(len(body), 3_000_000)
            self.assertEqual(json.loads(body)["data"], [])
            connection.close()

    def test_garbage_record_corruption(self) -> None:
        def fetch(kind: str, path: str = "/api/public/v3/scores", **extra: Any) -> bytes:
            self.fake.faults([{"path": path, "mode": "garbage", "kind": kind, **extra}])
            params = {"limit": 5, "fields": "io,basic"} if "observations" in path else {"limit": 5}
            status, _, raw = self.fake.request("GET", path, params,
                                               headers={"Authorization": self.fake.auth_header()})
            self.assertEqual(status, 200)
            return raw

        wrong = json.loads(fetch("wrong_types"))
        self.assertIsInstance(wrong["data"][0]["id"], int)
        self.assertIsInstance(wrong["data"][1]["id"], str)
        self.assertIsInstance(json.loads(fetch("wrong_types", target="data"))["data"], dict)
        missing = json.loads(fetch("missing_fields", "/api/public/v2/observations"))
        self.assertNotIn("id", missing["data"][0])
        self.assertNotIn("traceId", missing["data"][0])
        self.assertIn("id", missing["data"][1])
        invalid = fetch("invalid_utf8", "/api/public/v2/observations")
        self.assertIn(b"\xff\xfe", invalid)
        with self.assertRaises(UnicodeDecodeError):
            invalid.decode("utf-8")
        deep = fetch("deep_nesting", "/api/public/v2/observations")
        self.assertIn(b"[" * 10_000 + b"]" * 10_000, deep)
        huge = fetch("huge_number", "/api/public/v2/observations")
        self.assertIn(b"123456789012345678901234567890", huge)
        self.assertIn(b"1e400", huge)

    def test_garbage_cursors(self) -> None:
        path = "/api/public/v3/scores"
        _, first = self.get(path, {"limit": 5})
        self.fake.faults([{"path": path, "mode": "garbage", "kind": "repeat_cursor"}])
        _, page = self.get(path, {"limit": 5, "cursor": first["meta"]["cursor"]})
        self.assertEqual(page["meta"]["cursor"], first["meta"]["cursor"])
        _, page2 = self.get(path, {"limit": 5, "cursor": page["meta"]["cursor"]})
        self.assertEqual(page2["meta"]["cursor"], first["meta"]["cursor"])

        self.fake.faults([{"path": path, "mode": "garbage", "kind": "duplicate_cursor"}])
        _, page = self.get(path, {"limit": 5, "cursor": first["meta"]["cursor"]})
        self.assertEqual(page["meta"]["cursor"], first["meta"]["cursor"])
        self.assertNotEqual(page["data"], first["data"])

        self.fake.faults([{"path": path, "mode": "garbage", "kind": "empty_with_cursor", "count": 1}])
        _, empty = self.get(path, {"limit": 5})
        self.assertEqual(empty["data"], [])
        _, resumed = self.get(path, {"limit": 5, "cursor": empty["meta"]["cursor"]})
        self.assertEqual(resumed["data"], first["data"])  # the empty page skipped nothing

        self.fake.faults([{"path": "v2/observations", "mode": "garbage", "kind": "empty_with_cursor"}])
        _, empty = self.get("/api/public/v2/observations", {"limit": 5})
        self.assertEqual(empty["data"], [])
        self.assertIn("cursor", empty["meta"])

    def test_fault_rules_are_validated(self) -> None:
        for rule in ({"mode": "explode"}, {"mode": "status"}, {"mode": "garbage", "kind": "x"},
                     {"mode": "status", "status": 500, "path": "("}):
            with self.assertRaises(FakeLangfuseError):
                self.fake.faults([rule])


# ----------------------------------------------------------------------------
# Legacy generation
# ----------------------------------------------------------------------------

class LegacyApiTest(ServerTestCase):
    server_options = {"traces": 60, "seed": 11, "generation": "legacy"}

    def test_health_and_current_endpoints_404(self) -> None:
        self.assertEqual(self.get("/api/public/health", auth=False)[1]["version"], "3.120.0")
        self.assertEqual(self.get("/api/public/v3/scores")[0], 404)
        self.assertEqual(self.get("/api/public/v2/observations")[0], 404)
        self.assertEqual(self.get("/api/public/scores", auth=False)[0], 401)

    def page_legacy(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items, page = [], 1
        while True:
            status, body = self.get(path, dict(params, page=page))
            self.assertEqual(status, 200, body)
            meta = body["meta"]
            self.assertEqual((meta["page"], meta["limit"]), (page, params["limit"]))
            items += body["data"]
            if page >= meta["totalPages"]:
                self.assertEqual(len(items), meta["totalItems"])
                return items
            page += 1

    def test_legacy_scores(self) -> None:
        for path in ("/api/public/scores", "/api/public/v2/scores"):
            items = self.page_legacy(path, {"limit": 9})
            self.assertEqual(len(items), len({i["id"] for i in items}))
            self.assertEqual(len(items), sum(1 for s in self.fake.scores() if s["visible"]))
            for item in items:
                kind = item["dataType"]
                if kind == "BOOLEAN":
                    self.assertIn(item["value"], (0, 1))
                    self.assertEqual(item["stringValue"], "True" if item["value"] == 1 else "False")
                elif kind == "TEXT":
                    self.assertNotIn("value", item)
                    self.assertIsInstance(item["stringValue"], str)
                elif kind == "CATEGORICAL":
                    self.assertIn(item["stringValue"], ("Good", "Bad"))
                    self.assertIsInstance(item["value"], (int, float))
                self.assertIn("trace", item)
                self.assertIn("observationId", item)
                if item["traceId"]:
                    self.assertEqual(set(item["trace"]), {"userId", "tags", "environment", "sessionId"})
        _, body = self.get("/api/public/scores", {"fields": "score", "limit": 3})
        self.assertTrue(all("trace" not in i for i in body["data"]))
        _, body = self.get("/api/public/scores", {"source": "ANNOTATION", "limit": 100})
        self.assertTrue(all(i["source"] == "ANNOTATION" for i in body["data"]))
        self.assertEqual(self.get("/api/public/scores", {"limit": 101})[0], 400)
        self.assertEqual(self.get("/api/public/scores", {"page": 0})[0], 400)
        self.assertEqual(self.get("/api/public/scores", {"unknown": 1})[0], 200)
        some = [i["id"] for i in body["data"][:3]]
        _, chosen = self.get("/api/public/scores", {"scoreIds": ",".join(some)})
        self.assertEqual({i["id"] for i in chosen["data"]}, set(some))

    def test_legacy_observations(self) -> None:
        items = self.page_legacy("/api/public/observations", {"limit": 40})
        self.assertEqual(len(items), len({i["id"] for i in items}))
        generations = [i for i in items if i["type"] == "GENERATION"]
        self.assertTrue(any(isinstance(g["input"], list) for g in generations))
        self.assertTrue(any(isinstance(g["input"], str) for g in generations))
        self.assertTrue(all(isinstance(g["usage"]["input"], int) for g in generations))
        trace_id = items[0]["traceId"]
        _, body = self.get("/api/public/observations", {"traceId": trace_id, "limit": 100})
        self.assertTrue(all(i["traceId"] == trace_id for i in body["data"]))
        self.assertEqual(self.get("/api/public/observations", {"limit": 101})[0], 400)

    def test_legacy_garbage_paging(self) -> None:
        self.fake.faults([{"path": "scores", "mode": "garbage", "kind": "empty_with_cursor"}])
        _, body = self.get("/api/public/scores", {"limit": 5, "page": 3})
        self.assertEqual(body["data"], [])
        self.assertGreater(body["meta"]["totalPages"], 3)


# ----------------------------------------------------------------------------
# Smaller servers: big inputs, rate limits, outages, TLS, signals
# ----------------------------------------------------------------------------

class BigInputServerTest(ServerTestCase):
    server_options = {"traces": 4, "big_fraction": 1.0, "big_size": 300_000, "seed": 2}

    def test_big_inputs_are_served_and_summarised_in_truth(self) -> None:
        status, body = self.get("/api/public/v2/observations", {"fields": "io", "type": "GENERATION",
                                                                "limit": 100})
        sizes = sorted(len(i["input"].encode()) for i in body["data"])
        self.assertEqual(sizes.count(300_000), 4)
        for added in self.fake.truth()["traces"].values():
            big = [o for o in added["observations"] if o["big"]]
            for obs in big:
                self.assertIsNone(obs["input"])
                self.assertEqual(obs["inputBytes"], 300_000)
        full = self.fake.truth(full=True)
        self.assertTrue(all(o["input"] is not None for t in full["traces"].values() for o in t["observations"]
                            if o["big"]))


class RateLimitTest(ServerTestCase):
    server_options = {"traces": 5, "rate_limit_per_minute": 3, "rate_limit_window_s": 1.0}

    def test_fixed_window(self) -> None:
        self.fake.set_options(rate_limit_per_minute=3, rate_limit_langfuse_quirk=False)  # fresh window
        statuses = [self.fake.api_get("/api/public/projects")[0] for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 200])
        status, headers, body = self.fake.api_get("/api/public/projects")
        self.assertEqual(status, 429)
        self.assertEqual(body["code"], "rate_limited")
        self.assertEqual(body["message"], "Rate limit exceeded")
        self.assertEqual(body["details"]["retryAfterSeconds"], int(headers["Retry-After"]))
        self.assertEqual(headers["Retry-After"], "1")
        self.assertEqual(headers["X-RateLimit-Limit"], "3")
        self.assertEqual(headers["X-RateLimit-Remaining"], "0")
        self.assertIn("GMT+0000 (Coordinated Universal Time)", headers["X-RateLimit-Reset"])
        self.assertEqual(self.fake.api_get("/api/public/health", auth=False)[0], 200)  # not limited
        time.sleep(1.05)
        self.assertEqual(self.fake.api_get("/api/public/projects")[0], 200)
        self.assertGreaterEqual(self.fake.stats()["responses_429"], 1)

    def test_langfuse_quirk_rejects_the_last_point(self) -> None:
        self.fake.set_options(rate_limit_langfuse_quirk=True)  # also starts a fresh window
        try:
            statuses = [self.fake.api_get("/api/public/projects")[0] for _ in range(3)]
            self.assertEqual(statuses, [200, 200, 429])
        finally:
            self.fake.set_options(rate_limit_langfuse_quirk=False)


class OutageTest(ServerTestCase):
    server_options = {"traces": 5}

    def test_503_outage(self) -> None:
        self.fake.outage(0.5, "503")
        self.assertEqual(self.get("/api/public/health", auth=False)[0], 503)
        self.assertEqual(self.get("/api/public/projects")[0], 503)
        time.sleep(0.6)
        self.assertEqual(self.get("/api/public/health", auth=False)[0], 200)

    def test_refused_connections(self) -> None:
        self.fake.outage(0.6, "refuse")
        time.sleep(0.15)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.fake.port), timeout=1).close()
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.fake.port), timeout=1).close()
                break
            except ConnectionRefusedError:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        self.assertEqual(self.get("/api/public/health", auth=False)[0], 200)


@unittest.skipUnless(shutil.which("openssl"), "openssl is needed to make a test certificate")
class TlsTest(unittest.TestCase):
    def test_https(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                            "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                           check=True, capture_output=True)
            with FakeLangfuse(traces=3, tls_cert=cert, tls_key=key) as fake:
                self.assertTrue(fake.base_url.startswith("https://127.0.0.1:"))
                status, _, body = fake.api_get("/api/public/health", auth=False)
                self.assertEqual((status, body["status"]), (200, "OK"))
                self.assertEqual(fake.stats()["requests_total"], 1)
                context = ssl.create_default_context(cafile=cert)
                with self.assertRaises(ssl.SSLError):  # the name does not match "localhost"
                    with socket.create_connection(("127.0.0.1", fake.port)) as raw:
                        context.wrap_socket(raw, server_hostname="localhost")


class ProcessTest(unittest.TestCase):
    def test_sigterm_exits_promptly_and_binds_loopback_only(self) -> None:
        fake = FakeLangfuse(traces=3).start()
        try:
            fake.faults([{"path": "health", "mode": "stall"}])
            threading.Thread(target=lambda: self._swallow(fake), daemon=True).start()
            time.sleep(0.2)
            connections = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout \
                if shutil.which("ss") else ""
            for line in connections.splitlines():
                if f":{fake.port} " in line:
                    self.assertIn(f"127.0.0.1:{fake.port}", line)
            started = time.monotonic()
            assert fake.process is not None
            fake.process.send_signal(signal.SIGTERM)
            fake.process.wait(5)
            self.assertLess(time.monotonic() - started, 2.0)
        finally:
            fake.stop()

    @staticmethod
    def _swallow(fake: FakeLangfuse) -> None:
        try:
            fake.api_get("/api/public/health", auth=False, timeout=10)
        except Exception:
            pass

    def test_first_line_and_log_file(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            log = os.path.join(folder, "requests.log")
            with FakeLangfuse(traces=3, log_requests=log, secret_key="sk-lf-canary-123") as fake:
                self.assertRegex(fake.base_url, r"^http://127\.0\.0\.1:\d+$")
                fake.api_get("/api/public/v3/scores", {"limit": 2})
                fake.api_get("/api/public/projects", auth=False)
            with open(log, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            self.assertEqual(len(lines), 2)
            # Lines are written when an answer is complete: two quick requests may log in
            # either order.
            self.assertEqual(sum("/api/public/v3/scores?limit=2 200" in line for line in lines), 1)
            self.assertEqual(sum("/api/public/projects 401" in line for line in lines), 1)
            self.assertNotIn("canary", "\n".join(lines))


class ServerEdgeTest(unittest.TestCase):
    """The edges of the real server (README "Server edges")."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = FakeLangfuse(traces=20, seed=2)
        cls.fake.__enter__()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.__exit__(None, None, None)

    def tearDown(self) -> None:
        self.fake.set_options(max_request_line=8192, v2_observations="ok",
                              observation_query_timeout=False)

    def test_request_line_and_header_limits(self) -> None:
        status, _, _ = self.fake.api_get("/api/public/v3/scores", {"id": "x" * 9000})
        self.assertEqual(status, 414)
        status, _, _ = self.fake.api_get("/api/public/v3/scores", {"id": "x" * 7000})
        self.assertEqual(status, 200)
        status, _, _ = self.fake.request("GET", "/api/public/health",
                                         headers={"X-Big": "y" * 17000})
        self.assertEqual(status, 431)

    def test_v2_observations_missing_or_not_implemented(self) -> None:
        trace_id = next(iter(self.fake.truth()["traces"]))
        self.fake.set_options(v2_observations="404")
        self.assertEqual(self.fake.api_get("/api/public/v2/observations", {"traceId": trace_id})[0], 404)
        status, _, body = self.fake.api_get("/api/public/observations", {"traceId": trace_id})
        self.assertEqual(status, 200)
        self.assertTrue(body["data"])
        self.assertEqual(self.fake.api_get("/api/public/v3/scores", {})[0], 200)
        self.fake.set_options(v2_observations="501")
        self.assertEqual(self.fake.api_get("/api/public/v2/observations", {"traceId": trace_id})[0], 501)

    def test_unbounded_observation_queries_time_out(self) -> None:
        trace_id = next(iter(self.fake.truth()["traces"]))
        self.fake.set_options(observation_query_timeout=True)
        status, _, body = self.fake.api_get("/api/public/v2/observations", {"traceId": trace_id})
        self.assertEqual((status, body["message"]), (422, "Request timed out"))
        status, _, _ = self.fake.api_get("/api/public/v2/observations",
                                         {"traceId": trace_id, "fromStartTime": "2000-01-01T00:00:00Z"})
        self.assertEqual(status, 200)

    def test_resaved_copies_are_listed_and_only_the_new_one_is_the_truth(self) -> None:
        added = self.fake.add_scores(1, name="quality", value="Bad", new_traces=False)
        score_id = added["score_ids"][0]
        self.fake.control("POST", "scores/resave", {"ids": [score_id], "stringValue": "Good"})
        _, _, body = self.fake.api_get("/api/public/v3/scores", {"id": score_id})
        self.assertEqual(sorted(item["value"] for item in body["data"]), ["Bad", "Good"])
        truth = [s for s in self.fake.truth()["scores"] if s["id"] == score_id]
        self.assertEqual([s["stringValue"] for s in truth], ["Good"])
        trace_id, trace = next(iter(self.fake.truth()["traces"].items()))
        obs_id = trace["observations"][0]["id"]
        self.fake.control("POST", "observations/resave", {"ids": [obs_id], "output": "v2"})
        _, _, body = self.fake.api_get("/api/public/v2/observations",
                                       {"traceId": trace_id, "fields": "core,time,io", "limit": 100})
        versions = [item for item in body["data"] if item["id"] == obs_id]
        self.assertEqual(len(versions), 2)
        self.assertGreater(versions[0]["updatedAt"], versions[1]["updatedAt"])
        self.assertEqual(versions[0]["output"], "v2")


if __name__ == "__main__":
    unittest.main()


# ----------------------------------------------------------------------------
# Server load: the heap model and load-dependent latency (server_load.py)
# ----------------------------------------------------------------------------

class _Handler:
    """Stands in for a request handler in the in-process ServerLoad tests."""

    def __init__(self) -> None:
        self.connection = socket.socket()
        self.close_connection = False
        self.sent: list[bytes] = []

    def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.sent.append(f"{status}".encode())

    def _write(self, data: bytes) -> None:
        self.sent.append(data)


class ServerLoadModelTest(unittest.TestCase):
    def test_one_answer_fits_two_do_not(self) -> None:
        import server_load
        load = server_load.ServerLoad(heap_limit_bytes=1000, heap_multiplier=4.0, crash_seconds=60)
        first, second = _Handler(), _Handler()
        try:
            load.enter(first)
            load.enter(second)
            # 200 bytes x 4 = 800 of 1000: fits; sent at once.
            self.assertTrue(load.send(first, 200, b"x" * 200, [], threading.Event()))
            self.assertEqual(load.snapshot()["heap_peak"], 800)
            self.assertEqual(load.snapshot()["heap_in_use"], 0)  # released once sent
            self.assertIsNone(load.crashed_status())
            # Two at once do not: hold the first reservation, then ask for the second.
            self.assertTrue(load._reserve(first, 200))
            self.assertFalse(load.send(second, 200, b"y" * 200, [], threading.Event()))
            snap = load.snapshot()
            self.assertEqual(snap["crashes"], 1)
            self.assertEqual(snap["heap_in_use"], 0)  # the dead process holds nothing
            self.assertEqual(load.crashed_status(), 503)
            self.assertEqual(second.sent, [])  # nothing of the answer went out
            self.assertTrue(second.close_connection)
        finally:
            first.connection.close()
            second.connection.close()

    def test_no_heap_model_by_default(self) -> None:
        import server_load
        load = server_load.ServerLoad()
        handler = _Handler()
        try:
            load.enter(handler)
            self.assertTrue(load.send(handler, 200, b"z" * 10_000_000, [], threading.Event()))
            self.assertEqual(load.snapshot()["crashes"], 0)
            self.assertEqual(load.snapshot()["biggest_answer"], 10_000_000)
        finally:
            handler.connection.close()

    def test_latency_grows_with_requests_in_flight(self) -> None:
        import server_load
        load = server_load.ServerLoad(load_latency_ms=100, load_capacity=2)
        handlers = [_Handler() for _ in range(4)]
        try:
            self.assertEqual(load.latency_s(), 0)
            load.enter(handlers[0])
            self.assertAlmostEqual(load.latency_s(), 0.05)
            for h in handlers[1:]:
                load.enter(h)
            self.assertAlmostEqual(load.latency_s(), 0.2)
            load.leave(handlers[3])
            self.assertAlmostEqual(load.latency_s(), 0.15)
        finally:
            for h in handlers:
                h.connection.close()

    def test_bad_options_are_refused(self) -> None:
        import server_load
        load = server_load.ServerLoad()
        for bad in ({"heap_limit": 1}, {"heap_limit_bytes": "1"}, {"crash_status": 500},
                    {"load_capacity": 0}, {"heap_multiplier": -1}, {"crash_seconds": True}):
            with self.assertRaises(ValueError, msg=str(bad)):
                load.configure(bad)


class ServerLoadServerTest(unittest.TestCase):
    # Each big trace's answer is about 400 KB with io: x5 = 2 MB of a 3 MB heap. Paced at
    # 1 MB/s, an answer takes about 0.4 s, so two requests sent together overlap.
    server_options = {"traces": 6, "big_fraction": 1.0, "big_size": 400_000, "seed": 4,
                      "heap_limit_mb": 3, "heap_multiplier": 5, "crash_seconds": 1.5,
                      "send_mb_per_s": 1}

    def _big_traces(self, fake: FakeLangfuse) -> list[str]:
        truth = fake.truth()
        return [t for t, v in truth["traces"].items()
                if any(o.get("big") for o in v["observations"])]

    def _observations(self, fake: FakeLangfuse, trace_id: str) -> tuple[int, Any]:
        status, _, body = fake.api_get("/api/public/v2/observations",
                                       {"traceId": trace_id, "fields": "core,basic,io"})
        return status, body

    def test_one_at_a_time_fits(self) -> None:
        with FakeLangfuse(**self.server_options) as fake:
            traces = self._big_traces(fake)
            self.assertGreaterEqual(len(traces), 2)
            for trace_id in traces[:2]:
                status, _ = self._observations(fake, trace_id)
                self.assertEqual(status, 200)
            load = fake.control("GET", "load")
            self.assertEqual(load["crashes"], 0)
            self.assertGreater(load["heap_peak"], 1_000_000)
            self.assertLessEqual(load["heap_peak"], 3_000_000)
            self.assertEqual(load["heap_in_use"], 0)
            # Without io the same listing is small and costs the heap almost nothing.
            status, _, _ = fake.api_get("/api/public/v2/observations", {"traceId": traces[0]})
            self.assertEqual(status, 200)

    def test_two_big_answers_at_once_crash_the_server(self) -> None:
        with FakeLangfuse(**self.server_options) as fake:
            traces = self._big_traces(fake)[:2]
            results: dict[str, Any] = {}

            def fetch(trace_id: str) -> None:
                try:
                    results[trace_id] = self._observations(fake, trace_id)[0]
                except (OSError, http.client.HTTPException) as error:
                    results[trace_id] = error

            threads = [threading.Thread(target=fetch, args=(t,)) for t in traces]
            for t in threads:
                t.start()
                time.sleep(0.1)  # the second arrives while the first is being sent
            for t in threads:
                t.join(30)
            self.assertEqual(fake.control("GET", "load")["crashes"], 1)
            # Neither got its answer: the first was cut off, the second never started.
            self.assertFalse([r for r in results.values() if r == 200], results)
            # While the Node process restarts, nginx answers with its HTML page.
            status, headers, body = fake.api_get("/api/public/v2/observations",
                                                 {"traceId": traces[0]})
            self.assertEqual(status, 503)
            self.assertIn("text/html", headers.get("Content-Type", headers.get("content-type", "")))
            self.assertIn(b"nginx", body)
            # And then it is back.
            wait = fake.control("GET", "load")["down_for_s"]
            time.sleep(wait + 0.1)
            status, _ = self._observations(fake, traces[0])
            self.assertEqual(status, 200)

    def test_control_api_reads_and_changes_the_model(self) -> None:
        with FakeLangfuse(traces=2, seed=1) as fake:
            self.assertEqual(fake.control("GET", "load")["heap_limit_bytes"], 0)
            changed = fake.control("POST", "load", {"heap_limit_bytes": 1000, "crash_status": 502})
            self.assertEqual(changed["heap_limit_bytes"], 1000)
            with self.assertRaises(FakeLangfuseError):
                fake.control("POST", "load", {"no_such_option": 1})
            # 1000 bytes of heap cannot hold any real answer: the first one crashes it.
            truth = fake.truth()
            trace_id = next(iter(truth["traces"]))
            with self.assertRaises((OSError, http.client.HTTPException)):
                fake.api_get("/api/public/v2/observations", {"traceId": trace_id})
            status, _, body = fake.api_get("/api/public/projects")
            self.assertEqual(status, 502)
            self.assertIn(b"502 Bad Gateway", body)
