"""`lfharvest run` under a supervisor: the sd_notify messages, the watchdog, signals, reload.

Each test binds its own notify socket (AF_UNIX datagrams at a temp path, as systemd does),
starts `lfharvest run` against the fake Langfuse with NOTIFY_SOCKET (and WATCHDOG_USEC) set, and
checks what arrives and in which order.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import time
import unittest
from pathlib import Path

from service_testlib import (FakeLangfuse, NotifyListener, ServiceProcess, TempDir, clean_env,
                             figure, integrity, schema_version, to_toml, wait_until)

STOP_LIMIT_S = 2.0
SCHEMA_FILES = len(list((Path(__file__).resolve().parents[2] / "schema").glob("[0-9]*_*.sql")))


def is_synced(text: str) -> bool:
    return text.startswith("STATUS=synced ")


class ServiceTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp_cm = TempDir()
        self.tmp = self.tmp_cm.__enter__()
        self.addCleanup(self.tmp_cm.__exit__, None, None, None)
        self.notify = NotifyListener(self.tmp)
        self.addCleanup(self.notify.close)
        self.db = self.tmp / "lfharvest.db"
        self.config = self.tmp / "lfharvest.toml"

    def write_config(self, fake: FakeLangfuse, **sections: dict) -> None:
        base = {"langfuse": {"base_url": fake.base_url, "public_key": fake.public_key},
                "sync": {"poll_interval_seconds": 1},
                "limits": {"requests_per_second": 200, "max_in_flight": 4}}
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        self.config.write_text(to_toml(base))

    def start(self, fake: FakeLangfuse, watchdog_usec: int | None = None,
              extra_env: dict[str, str] | None = None) -> ServiceProcess:
        env = clean_env({"NOTIFY_SOCKET": self.notify.path,
                         "LANGFUSE_SECRET_KEY": fake.secret_key}, home=self.tmp)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.update(extra_env or {})
        service = ServiceProcess(["run", "--config", str(self.config), "--db", str(self.db)], env)
        self.addCleanup(service.stop)
        return service

    def stop_and_time(self, service: ServiceProcess, what: str) -> tuple[int, float]:
        sent = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        try:
            code = service.process.wait(timeout=10)
        except Exception:
            self.fail(f"no exit within 10 s of SIGTERM\n{service.output()}")
        seconds = time.monotonic() - sent
        figure(f"{what}_stop_seconds", f"{seconds:.3f}")
        return code, seconds

    # -------------------------------------------------------------------------------------------

    def test_ready_status_watchdog_stopping_in_order(self) -> None:
        with FakeLangfuse(traces=40, seed=5) as fake:
            self.write_config(fake)
            service = self.start(fake, watchdog_usec=1_000_000)
            _, ready_at, _ = self.notify.wait_for(lambda m: m == "READY=1", timeout=20)
            # READY=1 means the database is open and migrated: it must be so the moment it
            # arrives (the schema only ever moves forward).
            self.assertTrue(self.db.exists())
            self.assertEqual(schema_version(self.db), SCHEMA_FILES)
            self.notify.wait_for(is_synced, timeout=30)
            # Watch the idle service (between passes) for a while.
            time.sleep(3)
            self.assertTrue(service.alive(), service.output())
            code, seconds = self.stop_and_time(service, "idle")

        texts = self.notify.texts()
        self.assertEqual(texts[0], "READY=1", texts[:5])
        self.assertEqual(texts.count("READY=1"), 1)
        self.assertIn("STOPPING=1", texts)
        stopping = texts.index("STOPPING=1")
        statuses = [i for i, t in enumerate(texts) if t.startswith("STATUS=")]
        self.assertTrue(statuses and statuses[0] < stopping)
        self.assertTrue(any(t.startswith("STATUS=fetching traces ") for t in texts), texts)
        synced = [t for t in texts if is_synced(t)]
        self.assertRegex(synced[0], r"^STATUS=synced (\d+)/\1 traces, 0 waiting to retry, 0 "
                                    r"failed; next poll \d\d:\d\d:\d\d$")
        self.assertFalse(any(t.startswith("STATUS=") for t in texts[stopping:]))

        pings = [t for t in self.notify.times("WATCHDOG=1") if t > ready_at]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertGreaterEqual(len(pings), 6, f"too few watchdog pings: {len(pings)}")
        mean_gap = sum(gaps) / len(gaps)
        figure("watchdog_ping_mean_gap_seconds", f"{mean_gap:.3f}")
        figure("watchdog_ping_max_gap_seconds", f"{max(gaps):.3f}")
        # Half of WATCHDOG_USEC (1 s), and never as late as the whole interval.
        self.assertAlmostEqual(mean_gap, 0.5, delta=0.15)
        self.assertLess(max(gaps), 0.9)

        self.assertEqual(code, 0, service.output())
        self.assertLessEqual(seconds, STOP_LIMIT_S)
        self.assertIn("lfharvest service stopped", service.output())

    def test_watchdog_keeps_pinging_through_a_slow_request(self) -> None:
        # The score poll reports no steps while it reads pages; one slow page (3 s here, up to
        # request_timeout_seconds in real life) is a healthy silence, not a hang.
        with FakeLangfuse(traces=10, seed=6) as fake:
            fake.faults([{"path": "scores", "mode": "latency", "ms": 3000, "count": 1}])
            self.write_config(fake)
            service = self.start(fake, watchdog_usec=1_000_000)
            self.notify.wait_for(is_synced, timeout=30)
            self.assertEqual(fake.fault_state()[0]["fired"], 1)
            stop_sent = time.monotonic()
            code, _ = self.stop_and_time(service, "after_slow_request")
        pings = self.notify.times("WATCHDOG=1")
        # From the start to the stop, no stretch of a whole watchdog interval without a ping.
        gaps = [b - a for a, b in zip(pings, [*pings[1:], stop_sent])]
        figure("watchdog_max_gap_during_slow_request_seconds", f"{max(gaps):.3f}")
        self.assertGreaterEqual(len(pings), 6)
        self.assertLess(max(gaps), 0.9, "the pinger went quiet during a slow request")
        self.assertEqual(code, 0)

    def test_no_watchdog_pings_unless_asked_for_this_process(self) -> None:
        with FakeLangfuse(traces=5, seed=7) as fake:
            self.write_config(fake)
            # WATCHDOG_PID names another process: the watchdog is not ours (sd_watchdog_enabled).
            service = self.start(fake, watchdog_usec=200_000,
                                 extra_env={"WATCHDOG_PID": str(os.getpid())})
            self.notify.wait_for(is_synced, timeout=30)
            time.sleep(0.5)
            code, _ = self.stop_and_time(service, "no_watchdog")
        self.assertNotIn("WATCHDOG=1", self.notify.texts())
        self.assertEqual(code, 0)

    def test_sighup_keeps_old_config_when_new_is_bad_and_applies_a_good_one(self) -> None:
        with FakeLangfuse(traces=10, seed=8) as fake:
            self.write_config(fake)
            service = self.start(fake)
            self.notify.wait_for(is_synced, timeout=30)

            # 1. A broken file: reported, the running configuration kept, the service goes on.
            self.write_config(fake, limits={"max_in_flight": 0})
            mark = len(self.notify.snapshot())
            service.process.send_signal(signal.SIGHUP)
            service.wait_for_line(r"max_in_flight", timeout=10)
            service.wait_for_line(r"reload: .*max_in_flight.*; keeping the running configuration",
                                  timeout=10)
            self.notify.wait_for(lambda m: m == "RELOADING=1", timeout=5, after=mark)
            self.notify.wait_for(lambda m: m == "READY=1", timeout=5, after=mark)
            after_bad = len(self.notify.snapshot())
            self.notify.wait_for(is_synced, timeout=10, after=after_bad)  # still polling
            self.assertTrue(service.alive())

            # 2. A good new file: applied. Turning the metrics textfile on is visible from here.
            metrics = self.tmp / "lfharvest.prom"
            self.write_config(fake, metrics={"textfile": str(metrics)})
            self.assertFalse(metrics.exists())
            mark = len(self.notify.snapshot())
            service.process.send_signal(signal.SIGHUP)
            service.wait_for_line(r"configuration reloaded", timeout=10)
            self.notify.wait_for(lambda m: m == "READY=1", timeout=5, after=mark)
            wait_until(metrics.exists, timeout=10, what="metrics file after reload")
            text = metrics.read_text()
            self.assertIn("lfharvest_passes_total", text)
            # node_exporter reads it as another user.
            self.assertEqual(stat.S_IMODE(metrics.stat().st_mode), 0o644)
            code, seconds = self.stop_and_time(service, "after_reload")
        self.assertEqual(code, 0, service.output())
        self.assertLessEqual(seconds, STOP_LIMIT_S)

    def test_bad_reload_keeps_the_running_log_level(self) -> None:
        with FakeLangfuse(traces=10, seed=12) as fake:
            self.write_config(fake, log={"level": "warn"})
            service = self.start(fake)
            self.notify.wait_for(is_synced, timeout=30)
            self.write_config(fake, log={"level": "warn"}, limits={"max_in_flight": 0})
            service.process.send_signal(signal.SIGHUP)
            service.wait_for_line(r"keeping the running configuration", timeout=10)
            mark = len(self.notify.snapshot())
            self.notify.wait_for(is_synced, timeout=10, after=mark)  # a pass after the reload
            self.notify.wait_for(is_synced, timeout=10, after=mark + 1)
            code, _ = self.stop_and_time(service, "bad_reload")
        self.assertEqual(code, 0)
        lines = service.output().splitlines()
        # Only the reload error; no info line (every pass logs one at info) before or after.
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("keeping the running configuration", lines[0])

    def test_sigterm_mid_sync_stops_fast_and_loses_nothing(self) -> None:
        with FakeLangfuse(traces=200, annotated_fraction=1.0, seed=9) as fake:
            # Slow observation pages: the stop lands in the middle of requests.
            fake.faults([{"path": "observations", "mode": "latency", "ms": 400}])
            self.write_config(fake, limits={"max_in_flight": 2})
            service = self.start(fake, watchdog_usec=2_000_000)
            _, _, status = self.notify.wait_for(
                lambda m: m.startswith("STATUS=fetching traces ") and
                int(m.split()[2].split("/")[0]) >= 8, timeout=60)
            reported_done = int(status.split()[2].split("/")[0])
            code, seconds = self.stop_and_time(service, "mid_sync")
        self.assertEqual(code, 0, service.output())
        self.assertLessEqual(seconds, STOP_LIMIT_S)
        self.assertIn("STOPPING=1", self.notify.texts())
        self.assertEqual(integrity(self.db), "ok")
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            done = conn.execute("SELECT count(*) FROM traces WHERE state = 'done'").fetchone()[0]
            total = conn.execute("SELECT count(*) FROM traces").fetchone()[0]
            orphans = conn.execute(
                "SELECT count(*) FROM observations o WHERE NOT EXISTS (SELECT 1 FROM traces t "
                "WHERE t.project_id = o.project_id AND t.trace_id = o.trace_id)").fetchone()[0]
        figure("mid_sync_traces_done_reported", reported_done)
        figure("mid_sync_traces_done_in_db", f"{done}/{total}")
        # Every trace the service had reported done is committed; the rest wait in the queue.
        self.assertGreaterEqual(done, reported_done)
        self.assertLess(done, total, "the sync finished before the stop: the test proved nothing")
        self.assertEqual(orphans, 0)

    def test_sigterm_during_a_stalled_request_stops_fast(self) -> None:
        with FakeLangfuse(traces=20, seed=10) as fake:
            # Observation requests are accepted and never answered.
            fake.faults([{"path": "observations", "mode": "stall", "seconds": 60}])
            self.write_config(fake)
            service = self.start(fake, watchdog_usec=2_000_000)
            self.notify.wait_for(lambda m: m.startswith("STATUS=fetching traces 0/"), timeout=30)
            wait_until(lambda: fake.stats()["in_flight"] >= 1, timeout=10, what="a stalled request")
            code, seconds = self.stop_and_time(service, "stalled_request")
        self.assertEqual(code, 0, service.output())
        self.assertLessEqual(seconds, STOP_LIMIT_S)
        self.assertEqual(integrity(self.db), "ok")


if __name__ == "__main__":
    unittest.main()
