"""lfharvest.service from the .deb, under a real systemd (a booted container), against the fake
Langfuse on the host's 127.0.0.1.

One container for the file; each test starts from a stopped service and an empty database:
- start returns only after READY=1: a start that fails before READY fails `systemctl start`,
  and a started unit has its migrated database and its STATUS= line at once;
- `systemctl status` shows the STATUS= line, which follows the sync to "synced N/N";
- `systemctl reload` (no /bin/kill in the container) re-reads the configuration: the service
  moves to another server; a broken file is logged as an error and the running one kept;
- `systemctl stop` mid-sync ends the process on SIGTERM within 2 s (a drop-in TimeoutStopSec=2s
  makes systemd hold it to that), loses nothing, and the next start fetches no trace again;
- SIGKILL mid-sync: systemd restarts it, and it resumes without fetching a done trace again;
- a wrong secret: exit 77 and no restart;
- the watchdog (drop-in WatchdogSec=3s): a stopped process (SIGSTOP) is aborted and restarted;
- the journal keeps priorities; the secret key is in no journal line;
- purge removes the configuration, the secret key and the state.
The units get a drop-in with RestartSec=1s so that restarts happen within the test's time.
"""

from __future__ import annotations

import re
import time
import unittest

from system_testlib import (Container, FakeLangfuse, db_snapshot, figure, observation_requests,
                            package, require_container_support, to_toml, tree, wait_until)

UNIT = "lfharvest.service"
DB = "/var/lib/lfharvest/lfharvest.db"
SECRET = "sk-lf-system-test-3f9c2e71"  # distinctive, so the journal can be searched for it
RESTART_DROP_IN = "[Service]\nRestartSec=1s\n"


def setUpModule() -> None:
    require_container_support()
    global DEB, CONTAINER
    DEB = package()
    CONTAINER = Container(tree(DEB), "lfh-service")
    CONTAINER.__enter__()
    CONTAINER.install(DEB)
    CONTAINER.write("/etc/systemd/system/lfharvest.service.d/10-test.conf", RESTART_DROP_IN)
    CONTAINER.systemctl("daemon-reload")


def tearDownModule() -> None:
    if "CONTAINER" in globals():
        CONTAINER.close()


class ServiceTest(unittest.TestCase):
    def setUp(self) -> None:
        self.c = CONTAINER
        self.c.systemctl("stop", UNIT, check=False)
        self.c.systemctl("reset-failed", UNIT, check=False)
        self.c.run(["rm", "-rf", "/var/lib/private/lfharvest", "/var/lib/lfharvest"])
        self.c.write("/etc/lfharvest/secret-key", SECRET + "\n", mode=0o600)
        self.fakes: list[FakeLangfuse] = []

    def tearDown(self) -> None:
        self.c.systemctl("stop", UNIT, check=False)
        for fake in self.fakes:
            fake.stop()

    def fake(self, **options: object) -> FakeLangfuse:
        fake = FakeLangfuse(secret_key=SECRET, **options).start()
        self.fakes.append(fake)
        return fake

    def configure(self, fake: FakeLangfuse, poll: int = 60, rps: float = 50,
                  level: str = "info") -> None:
        """The administrator's /etc/lfharvest/lfharvest.toml (the package's conffile)."""
        self.c.write("/etc/lfharvest/lfharvest.toml", to_toml({
            "langfuse": {"base_url": fake.base_url, "public_key": fake.public_key},
            "sync": {"poll_interval_seconds": poll},
            "limits": {"requests_per_second": rps},
            "log": {"level": level}}))

    def status_text(self) -> str:
        return self.c.show(UNIT, "StatusText")["StatusText"]

    def wait_synced(self, total: int, timeout: float = 90) -> str:
        return wait_until(lambda: re.match(rf"synced {total}/{total} traces", self.status_text())
                          and self.status_text(), timeout, what=f"synced {total}/{total}")

    def main_pid(self) -> int:
        return int(self.c.show(UNIT, "MainPID")["MainPID"])

    def done_traces(self) -> set[str]:
        with db_snapshot(self.c, DB) as conn:
            return {row[0] for row in conn.execute("SELECT trace_id FROM traces WHERE state='done'")}

    def annotated_traces(self, fake: FakeLangfuse) -> set[str]:
        return {s["traceId"] for s in fake.truth()["scores"] if s.get("traceId")}

    # --- start, READY=1, STATUS= ---------------------------------------------------------------

    def test_start_waits_for_ready_and_status_follows_the_sync(self) -> None:
        fake = self.fake(demo=True)
        traces = self.annotated_traces(fake)
        # A start that fails before READY=1 (no public key: exit 78) fails `systemctl start`:
        # systemd waits for READY=1 and does not take the exec for readiness.
        self.c.write("/etc/lfharvest/lfharvest.toml", "[langfuse]\nbase_url = \"%s\"\n"
                     % fake.base_url)
        failed = self.c.systemctl("start", UNIT, check=False)
        self.assertNotEqual(failed.returncode, 0, "start succeeded without READY=1")
        state = self.c.show(UNIT, "ActiveState", "ExecMainStatus", "NRestarts")
        self.assertEqual(state["ActiveState"], "failed")
        self.assertEqual(state["ExecMainStatus"], "78")
        self.assertEqual(state["NRestarts"], "0", "78 must not be restarted")
        self.c.systemctl("reset-failed", UNIT)

        self.configure(fake)
        started = time.monotonic()
        self.c.systemctl("start", UNIT)
        figure("systemctl_start_seconds", round(time.monotonic() - started, 2))
        # When start returns the service has sent READY=1: the database is open and migrated,
        # and the first STATUS= line is there.
        state = self.c.show(UNIT, "ActiveState", "SubState", "Type", "StatusText")
        self.assertEqual((state["ActiveState"], state["SubState"]), ("active", "running"))
        self.assertEqual(state["Type"], "notify")
        self.assertNotEqual(state["StatusText"], "")
        with db_snapshot(self.c, DB) as conn:
            self.assertGreater(conn.execute("PRAGMA user_version").fetchone()[0], 0)
        status = self.wait_synced(len(traces))
        self.assertRegex(status, r"^synced \d+/\d+ traces, 0 waiting to retry, 0 failed; "
                                 r"next poll \d\d:\d\d:\d\d$")
        # `systemctl status` shows it.
        shown = self.c.systemctl("status", UNIT, check=False).stdout
        self.assertIn(f'Status: "{status}"', shown)
        self.assertEqual(self.done_traces(), traces)
        # DynamicUser, StateDirectory: the database belongs to the service's own user, in
        # /var/lib/private/lfharvest (mode 0700), linked from /var/lib/lfharvest.
        self.assertTrue(self.c.path("/var/lib/lfharvest").is_symlink())
        listing = self.c.run(["stat", "-c", "%a %u", "/var/lib/private/lfharvest"]).stdout.split()
        self.assertEqual(listing[0], "700")
        self.assertNotEqual(listing[1], "0")

    # --- reload -------------------------------------------------------------------------------

    def test_reload_rereads_the_configuration(self) -> None:
        first = self.fake(demo=True)
        second = self.fake(traces=30, seed=2, project_id="proj-second")
        self.configure(first)
        self.c.systemctl("start", UNIT)
        self.wait_synced(len(self.annotated_traces(first)))
        pid = self.main_pid()
        second.reset_stats()

        # The configuration now names the second server: reload moves the service there.
        self.configure(second)
        reload = self.c.systemctl("reload", UNIT, check=False)
        self.assertEqual(reload.returncode, 0, reload.stderr)
        # This process's lines only (_PID=): the journal keeps the other tests' lines.
        wait_until(lambda: self.c.journal("-u", UNIT, f"_PID={pid}", "--grep",
                                          "configuration reloaded"), 20,
                   what="'configuration reloaded' in the journal")
        wait_until(lambda: second.stats()["requests_total"] > 0, 20,
                   what="a request to the server of the reloaded configuration")
        self.assertEqual(self.main_pid(), pid, "reload restarted the process")
        # It harvests the second project now: every annotated trace of it is fetched there.
        wait_until(lambda: {t for _, t in observation_requests(second)}
                   >= self.annotated_traces(second), 60,
                   what="the traces of the second server fetched")

        # A broken file: logged as an error, the running configuration kept.
        self.c.write("/etc/lfharvest/lfharvest.toml", "[sync]\npoll_interval_seconds = -5\n")
        self.assertEqual(self.c.systemctl("reload", UNIT, check=False).returncode, 0)
        entries = wait_until(lambda: self.c.journal("-u", UNIT, f"_PID={pid}", "-p", "err",
                                                    "--grep", "keeping the running configuration"),
                             20, what="the rejected reload in the journal")
        self.assertIn("poll_interval_seconds", entries[-1]["MESSAGE"])
        state = self.c.show(UNIT, "ActiveState", "MainPID")
        self.assertEqual((state["ActiveState"], int(state["MainPID"])), ("active", pid))

    # --- stop and kill mid-sync ---------------------------------------------------------------

    def fetched(self) -> int:
        """Traces fetched so far, from the STATUS= line "fetching traces K/N ..." (0 before)."""
        match = re.match(r"fetching traces (\d+)/", self.status_text())
        return int(match.group(1)) if match else 0

    def start_slow_sync(self) -> FakeLangfuse:
        """A sync of about 60 traces at 4 requests per second (some 15 s), interrupted once five
        traces are done."""
        fake = self.fake(traces=120, annotated_fraction=0.5, seed=5)
        self.configure(fake, rps=4)
        self.c.systemctl("start", UNIT)
        wait_until(lambda: self.fetched() >= 5, 60, what="five traces fetched")
        return fake

    def assert_resumes_without_refetching(self, fake: FakeLangfuse, done: set[str],
                                          since: float) -> None:
        traces = self.annotated_traces(fake)
        self.assertTrue(done and done < traces, f"{len(done)} of {len(traces)} traces done")
        self.wait_synced(len(traces), timeout=120)
        refetched = {t for _, t in observation_requests(fake, since)} & done
        self.assertEqual(refetched, set(), "traces fetched again after the interruption")
        self.assertEqual(self.done_traces(), traces)
        figure("traces_done_before_interruption", f"{len(done)}/{len(traces)}")

    def test_stop_mid_sync_is_prompt_and_loses_nothing(self) -> None:
        # The promise is "stops within 2 s": systemd itself holds the service to it here (past
        # TimeoutStopSec it kills the process and the unit's result is "timeout").
        drop_in = "/etc/systemd/system/lfharvest.service.d/20-stop.conf"
        self.c.write(drop_in, "[Service]\nTimeoutStopSec=2s\n")
        self.addCleanup(self.c.systemctl, "daemon-reload")
        self.addCleanup(self.c.path(drop_in).unlink)
        self.c.systemctl("daemon-reload")
        fake = self.start_slow_sync()
        started = time.monotonic()
        self.c.systemctl("stop", UNIT)
        figure("systemctl_stop_seconds", round(time.monotonic() - started, 2))
        state = self.c.show(UNIT, "ActiveState", "Result", "ExecMainStatus")
        # It ended on SIGTERM by itself with status 0, within TimeoutStopSec.
        self.assertEqual(state, {"ActiveState": "inactive", "Result": "success",
                                 "ExecMainStatus": "0"})
        with db_snapshot(self.c, DB) as conn:
            self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        done = self.done_traces()
        restart_at = time.monotonic()
        self.c.systemctl("start", UNIT)
        self.assert_resumes_without_refetching(fake, done, restart_at)

    def test_sigkill_mid_sync_restarts_and_resumes(self) -> None:
        fake = self.start_slow_sync()
        pid = self.main_pid()
        self.c.systemctl("kill", "--signal=SIGKILL", "--kill-who=main", UNIT)
        killed_at = time.monotonic()
        # systemd waits RestartSec=1s before the restart: take what the killed process had
        # committed meanwhile.
        wait_until(lambda: self.c.show(UNIT, "SubState")["SubState"] == "auto-restart", 5,
                   interval=0.02, what="the unit waiting to restart")
        done = self.done_traces()
        new_pid = wait_until(lambda: self.main_pid() not in (0, pid) and self.main_pid(), 30,
                             what="the restart")
        self.assertNotEqual(new_pid, pid)
        self.assertEqual(self.c.show(UNIT, "NRestarts")["NRestarts"], "1")
        self.assert_resumes_without_refetching(fake, done, killed_at)

    # --- wrong secret, watchdog ---------------------------------------------------------------

    def test_wrong_secret_exits_77_without_a_restart_loop(self) -> None:
        fake = self.fake(demo=True)
        self.configure(fake)
        self.c.write("/etc/lfharvest/secret-key", "sk-lf-wrong-4d8a1f\n", mode=0o600)
        self.c.systemctl("start", UNIT, check=False)
        wait_until(lambda: self.c.show(UNIT, "ActiveState")["ActiveState"] == "failed", 30,
                   what="the unit failed")
        time.sleep(3)  # three times RestartSec: a restart would have happened by now
        state = self.c.show(UNIT, "ActiveState", "ExecMainStatus", "NRestarts")
        self.assertEqual(state, {"ActiveState": "failed", "ExecMainStatus": "77",
                                 "NRestarts": "0"})
        self.assertEqual(fake.stats()["by_endpoint"].get("/api/public/v3/scores"), None)
        self.assertFalse(self.c.journal("--grep", "sk-lf-wrong-4d8a1f"),
                         "the wrong secret is in the journal")

    def test_watchdog_aborts_a_hung_process_and_restarts_it(self) -> None:
        fake = self.fake(demo=True)
        self.configure(fake, poll=1)
        self.c.write("/etc/systemd/system/lfharvest.service.d/20-watchdog.conf",
                     "[Service]\nWatchdogSec=3s\n")
        self.addCleanup(self.c.systemctl, "daemon-reload")
        self.addCleanup(self.c.path("/etc/systemd/system/lfharvest.service.d/20-watchdog.conf")
                        .unlink)
        self.c.systemctl("daemon-reload")
        self.c.systemctl("start", UNIT)
        self.wait_synced(len(self.annotated_traces(fake)))
        # Alive and pinging: after three watchdog intervals it still runs.
        pid = self.main_pid()
        time.sleep(9)
        self.assertEqual((self.main_pid(), self.c.show(UNIT, "NRestarts")["NRestarts"]),
                         (pid, "0"), "a live service was killed by the watchdog")
        # Hung: no more pings; systemd aborts it (SIGABRT) and restarts it.
        self.c.systemctl("kill", "--signal=SIGSTOP", "--kill-who=main", UNIT)
        new_pid = wait_until(lambda: self.main_pid() not in (0, pid) and self.main_pid(), 30,
                             what="the watchdog restart")
        self.assertNotEqual(new_pid, pid)
        self.assertTrue(self.c.journal("-u", UNIT, "--grep", "[Ww]atchdog timeout"),
                        "no watchdog timeout in the journal")
        self.assertTrue(self.c.journal("-u", UNIT, "--grep", "status=6/ABRT"),
                        "the hung process was not aborted")
        self.wait_synced(len(self.annotated_traces(fake)))

    # --- journal ------------------------------------------------------------------------------

    def test_journal_keeps_priorities_and_never_the_secret(self) -> None:
        fake = self.fake(demo=True)
        self.configure(fake, poll=1)
        # Something to warn about: the first connection finds the server failing.
        fake.faults([{"path": "health|projects", "mode": "status", "status": 503, "count": 3}])
        self.c.systemctl("start", UNIT)
        self.wait_synced(len(self.annotated_traces(fake)), timeout=120)
        self.c.write("/etc/lfharvest/lfharvest.toml", "[log]\nlevel = \"loud\"\n")
        self.c.systemctl("reload", UNIT)  # an error: the file does not load
        wait_until(lambda: self.c.journal("-u", UNIT, "-p", "err"), 20, what="an error logged")

        service = [e for e in self.c.journal("-u", UNIT)
                   if e.get("SYSLOG_IDENTIFIER") == "lfharvest"]
        priorities = {int(e["PRIORITY"]) for e in service}
        self.assertIn(6, priorities, "no info line")
        self.assertTrue(priorities & {0, 1, 2, 3, 4}, "no warning or error line")
        warnings = [e for e in self.c.journal("-u", UNIT, "-p", "warning")
                    if e.get("SYSLOG_IDENTIFIER") == "lfharvest"]
        self.assertTrue(warnings)
        self.assertTrue(all(int(e["PRIORITY"]) <= 4 for e in warnings), warnings)
        figure("journal_lines_by_priority", {p: sum(1 for e in service if int(e["PRIORITY"]) == p)
                                             for p in sorted(priorities)})
        # The whole journal of the machine (every unit, every field): no trace of the secret.
        export = self.c.run(["journalctl", "--no-pager", "-o", "export"]).stdout
        self.assertNotIn(SECRET, export)
        self.assertNotIn(SECRET[6:], export)
        self.assertGreater(len(export), 1000)

    # --- purge (last: it removes the package) -------------------------------------------------

    def test_zz_purge_removes_configuration_secret_and_state(self) -> None:
        fake = self.fake(demo=True)
        self.configure(fake)
        self.c.systemctl("enable", "--now", UNIT)
        self.wait_synced(len(self.annotated_traces(fake)))
        self.assertTrue(self.c.path("/var/lib/private/lfharvest/lfharvest.db").exists())
        self.c.run(["dpkg", "--purge", "lfharvest"], timeout=120)
        for path in ("/etc/lfharvest", "/var/lib/lfharvest", "/var/lib/private/lfharvest",
                     "/usr/bin/lfharvest", "/lib/systemd/system/lfharvest.service",
                     "/lib/systemd/system/lfharvest@.service",
                     "/etc/systemd/system/multi-user.target.wants/lfharvest.service"):
            self.assertFalse(self.c.path(path).exists() or self.c.path(path).is_symlink(), path)
        self.assertEqual(self.c.show(UNIT, "ActiveState")["ActiveState"], "inactive")
        # Put it back for any test that runs after this one.
        self.c.install(package())


if __name__ == "__main__":
    unittest.main()
