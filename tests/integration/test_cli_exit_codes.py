"""Every row of the exit-code table (README.md, lfharvest(1)) has a test here that reaches it the
way a user would, and checks the code, the one-line message and what was (not) touched."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import unittest
from pathlib import Path

from lfh_testlib import (EXIT_CONFIG, EXIT_IO, EXIT_NOPERM, EXIT_OK, EXIT_TEMPFAIL,
                         EXIT_UNAVAILABLE, EXIT_USAGE, SOURCE_DIR, FakeLangfuse, RunResult,
                         Workspace, binary, db_scalar, report, wait_until)

EXIT_SIGINT = 130
EXIT_SIGTERM = 143
KEYS = {"LANGFUSE_PUBLIC_KEY": "pk-lf-x", "LANGFUSE_SECRET_KEY": "sk-lf-y"}


def error_lines(result: RunResult) -> list[str]:
    return [line for line in result.stderr_lines() if line.startswith("lfharvest: ")]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SilentServer:
    """A loopback socket that accepts connections, reads what it is sent and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.connections: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            self.connections.append(conn)  # held open, never written to

    def __enter__(self) -> "SilentServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


class UsageTest(unittest.TestCase):
    """64: a bad command line, named once, before anything is opened."""

    CASES = [
        (["export", "--format", "xml", "--out", "x.jsonl"], "--format", "xml"),
        (["export", "--format", "jsonl", "--pick", "first", "--out", "x.jsonl"], "--pick", "first"),
        (["export", "--format", "jsonl", "--since", "yesterday", "--out", "x.jsonl"], "--since",
         "yesterday"),
        (["export", "--format", "jsonl", "--until", "2026-13-45", "--out", "x.jsonl"], "--until",
         "2026-13-45"),
        (["reconcile", "--since", "last week"], "--since", "last week"),
        (["sync", "--max-wait", "-1"], "--max-wait", "-1"),
        (["completion", "tcsh"], "tcsh", "tcsh"),
        (["bogus-command"], "bogus-command", "bogus-command"),
    ]

    def test_bad_values_exit_64_with_one_prefix(self) -> None:
        secret = "sk-lf-usage-canary-0123456789"
        with Workspace() as ws:
            for argv, option, value in self.CASES:
                with self.subTest(argv=argv):
                    result = ws.run_raw(argv + ["--config", str(ws.config_path), "--db",
                                                str(ws.db)] if argv[0] != "bogus-command"
                                        else argv, env=ws.env({"LANGFUSE_SECRET_KEY": secret}))
                    self.assertEqual(result.rc, EXIT_USAGE, result.describe())
                    lines = result.stderr_lines()
                    self.assertEqual(len(lines), 1, result.describe())
                    self.assertTrue(lines[0].startswith("lfharvest: "), lines[0])
                    self.assertIn(option, lines[0])
                    self.assertIn(value, lines[0])
                    # One prefix: "lfharvest: export: --format ...", never "export: export:".
                    self.assertIsNone(re.search(r"\b(\w+): \1:", lines[0]), lines[0])
                    self.assertFalse(ws.db.exists(), "a usage error opens nothing")
                    report(f"cli.usage[{' '.join(argv[:2])}]", lines[0])
            # A secret pasted into an option is not echoed back.
            result = ws.run_raw(["export", "--format", secret, "--out", "x"],
                                env=ws.env({"LANGFUSE_SECRET_KEY": secret}))
            self.assertEqual(result.rc, EXIT_USAGE, result.describe())
            self.assertNotIn(secret, result.stderr)


class UnreachableTest(unittest.TestCase):
    """69: nothing listens, https against plain http, a server that accepts and never answers.
    The default retry policy applies (no retry settings in the config)."""

    def test_refused_connection_gives_up_in_seconds(self) -> None:
        with Workspace() as ws:
            url = f"http://127.0.0.1:{closed_port()}"
            for command in ("sync", "check", "reconcile"):
                with self.subTest(command=command):
                    result = ws.run(command, "--base-url", url, env=KEYS, base_url=False,
                                    timeout=60)
                    self.assertEqual(result.rc, EXIT_UNAVAILABLE, result.describe())
                    lines = error_lines(result)
                    self.assertEqual(len(lines), 1, result.describe())
                    self.assertIn(url, lines[0])
                    self.assertIn("connection refused", lines[0])
                    # check diagnoses: one attempt; the others try 3 times.
                    self.assertIn("1 attempt " if command == "check" else "3 attempts",
                                  lines[0])
                    # 3 quick attempts 0.5 s and 1 s apart, not 45 s of backoff.
                    self.assertLess(result.seconds, 6, result.describe())
                    report(f"cli.refused[{command}]", f"exit {result.rc} in "
                           f"{result.seconds:.2f} s: {lines[0][:160]}")

    def test_https_to_a_plain_http_server_is_not_retried(self) -> None:
        with FakeLangfuse(traces=5, seed=2) as fake, Workspace(fake) as ws:
            url = fake.base_url.replace("http://", "https://")
            result = ws.run("sync", "--base-url", url, base_url=False, timeout=60)
            self.assertEqual(result.rc, EXIT_UNAVAILABLE, result.describe())
            lines = error_lines(result)
            self.assertEqual(len(lines), 1, result.describe())
            self.assertIn("TLS handshake", lines[0])
            self.assertIn("1 attempt ", lines[0])
            self.assertLess(result.seconds, 5, result.describe())
            self.assertEqual(fake.stats()["requests_total"], 0)
            report("cli.tls_mismatch", f"exit {result.rc} in {result.seconds:.2f} s: "
                   f"{lines[0][:160]}")

    def test_silent_server_is_bounded_by_max_wait(self) -> None:
        with SilentServer() as silent, Workspace() as ws:
            # The curl timeouts alone (low-speed 30 s per attempt, 10 attempts) would take minutes.
            ws.write_config({"limits": {"connect_timeout_seconds": 2}})
            url = f"http://127.0.0.1:{silent.port}"
            result = ws.run("sync", "--base-url", url, "--max-wait", "3", env=KEYS,
                            base_url=False, timeout=120)
            self.assertEqual(result.rc, EXIT_UNAVAILABLE, result.describe())
            lines = error_lines(result)
            self.assertEqual(len(lines), 1, result.describe())
            self.assertIn("stopped answering", lines[0])
            self.assertIn(url, lines[0])
            self.assertGreaterEqual(silent.accepted, 1)
            self.assertGreater(result.seconds, 2.5, result.describe())
            self.assertLess(result.seconds, 6, result.describe())
            report("cli.silent_server", f"--max-wait 3: exit {result.rc} after "
                   f"{result.seconds:.2f} s ({silent.accepted} connections accepted)")


class DatabaseTest(unittest.TestCase):
    """74: a database lfharvest must not use: newer schema, another program's, not SQLite."""

    def test_newer_schema_exit_74_with_both_versions(self) -> None:
        with FakeLangfuse(traces=5, seed=2) as fake, Workspace(fake) as ws:
            self.assertEqual(ws.run("retry", base_url=False).rc, EXIT_OK)
            connection = sqlite3.connect(ws.db)
            connection.execute("PRAGMA user_version = 999")
            connection.close()
            for command in ("sync", "retry"):
                with self.subTest(command=command):
                    result = ws.run(command)
                    self.assertEqual(result.rc, EXIT_IO, result.describe())
                    lines = error_lines(result)
                    self.assertEqual(len(lines), 1, result.describe())
                    self.assertIn("newer than this lfharvest", lines[0])
                    self.assertIn("999", lines[0])
                    report(f"cli.newer_schema[{command}]", lines[0])
            self.assertEqual(db_scalar(ws.db, "PRAGMA user_version"), 999)

    def test_foreign_database_is_refused_and_left_byte_identical(self) -> None:
        with FakeLangfuse(traces=5, seed=2) as fake, Workspace(fake) as ws:
            cases = {}
            other = ws.dir / "other-app.db"
            connection = sqlite3.connect(other)
            connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            connection.executemany("INSERT INTO notes (text) VALUES (?)",
                                   [(f"note {i}",) for i in range(100)])
            connection.commit()
            connection.close()
            cases["tables, no application id"] = other
            stamped = ws.dir / "stamped.db"
            connection = sqlite3.connect(stamped)
            connection.execute("PRAGMA application_id = 1234")
            connection.execute("CREATE TABLE t (x)")
            connection.commit()
            connection.close()
            cases["another application id"] = stamped
            text = ws.dir / "notes.txt"
            text.write_text("not a database at all\n" * 50)
            cases["not SQLite"] = text

            for name, path in cases.items():
                before = sha256(path)
                for command in ("sync", "retry"):
                    with self.subTest(case=name, command=command):
                        argv = [command, "--config", str(ws.config_path), "--db", str(path),
                                "--base-url", fake.base_url]
                        result = ws.run_raw(argv, env=ws.env())
                        self.assertEqual(result.rc, EXIT_IO, result.describe())
                        lines = error_lines(result)
                        self.assertEqual(len(lines), 1, result.describe())
                        self.assertIn(str(path), lines[0])
                        self.assertRegex(lines[0], "not an lfharvest database|not a SQLite")
                        self.assertEqual(sha256(path), before, "the file must not change")
                        self.assertFalse(Path(str(path) + "-wal").exists())
                        report(f"cli.foreign_db[{name}, {command}]", lines[0])
            self.assertEqual(fake.stats()["requests_total"], 0, "refused before connecting")

    def test_empty_file_becomes_a_database(self) -> None:
        with FakeLangfuse(traces=5, seed=2) as fake, Workspace(fake) as ws:
            ws.db.write_bytes(b"")
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            self.assertEqual(db_scalar(ws.db, "PRAGMA application_id"), 0x4C464856)


class OtherRowsTest(unittest.TestCase):
    def test_ok_then_waiting_75(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_second": 100, "max_in_flight": 2}})
            result = ws.run("sync", "--json")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            doc = json.loads(result.stdout)
            self.assertEqual((doc["outcome"], doc["exit_code"]), ("complete", EXIT_OK))

        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_second": 100, "max_in_flight": 2},
                             "retry": {"backoff_base_ms": 100, "backoff_cap_seconds": 1}})
            # Every observation page: 503 with a Retry-After far beyond --max-wait.
            fake.faults([{"path": "observations", "mode": "status", "status": 503,
                          "retry_after": 600}])
            result = ws.run("sync", "--max-wait", "1", "--json", timeout=120)
            self.assertEqual(result.rc, EXIT_TEMPFAIL, result.describe())
            doc = json.loads(result.stdout)
            self.assertEqual(doc["outcome"], "waiting")
            self.assertGreater(doc["traces"]["retry"] + doc["traces"]["pending"], 0)
            self.assertLess(result.seconds, 30, result.describe())
            report("cli.waiting", f"exit {result.rc} in {result.seconds:.2f} s")

    def test_keys_refused_77_and_config_78(self) -> None:
        with FakeLangfuse(traces=5, seed=2) as fake, Workspace(fake, secret_key="sk-lf-no") as ws:
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_NOPERM, result.describe())
            self.assertEqual(len(error_lines(result)), 1, result.describe())
            ws.config_path.write_text("[limits]\nmax_in_flight = 0\n")
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_CONFIG, result.describe())
            self.assertIn("limits.max_in_flight", error_lines(result)[0])


class SignalTest(unittest.TestCase):
    """130 / 143: a sync stopped by Ctrl-C or SIGTERM is not a success (`sync && export` must
    not export a partial cache); the service stops on SIGTERM with 0, as systemd expects."""

    def _interrupted(self, sig: int) -> tuple[int, str, int, int]:
        with FakeLangfuse(traces=400, seed=4) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_second": 20, "max_in_flight": 2}})
            process = ws.popen("sync")
            try:
                wait_until(lambda: any("observations" in r["path"]
                                       for r in fake.stats()["requests"]), timeout=60)
                process.send_signal(sig)
                rc = process.wait(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            stderr = sorted(ws.dir.glob("popen-*.err"))[-1].read_text(errors="replace")
            done = db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state = 'done'")
            total = db_scalar(ws.db, "SELECT count(*) FROM traces")
            return rc, stderr, done, total

    def test_sigint_130_and_sigterm_143(self) -> None:
        for sig, expected in ((signal.SIGINT, EXIT_SIGINT), (signal.SIGTERM, EXIT_SIGTERM)):
            with self.subTest(signal=sig.name):
                rc, stderr, done, total = self._interrupted(sig)
                self.assertEqual(rc, expected, stderr[-2000:])
                self.assertIn(f"stopped by {sig.name}", stderr)
                self.assertLess(done, total, "the sync was really cut short")
                report(f"cli.signal[{sig.name}]", f"exit {rc}; {done}/{total} traces saved")

    def test_run_stops_on_sigterm_with_0(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            process = ws.popen("run")
            try:
                wait_until(lambda: fake.stats()["requests_total"] > 0, timeout=30)
                process.send_signal(signal.SIGTERM)
                rc = process.wait(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            self.assertEqual(rc, EXIT_OK)


class DocumentedTablesTest(unittest.TestCase):
    """The README, the man page and --help list the same codes, and the codes tested above."""

    # 65 (export --fail-empty) is tested in test_export_commands.py.
    TESTED = {0, 64, 65, 69, 74, 75, 77, 78, 130, 143}

    def test_tables_agree(self) -> None:
        readme = (SOURCE_DIR / "README.md").read_text()
        section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
        readme_codes = {int(m) for m in re.findall(r"^\| `?(\d+)`? ", section, re.M)}
        man = (SOURCE_DIR / "packaging" / "lfharvest.1").read_text()
        man_section = man.split(".SH EXIT STATUS", 1)[1].split("\n.SH ", 1)[0]
        # "1" (a bug) is listed but cannot be reached on purpose.
        man_codes = {int(m) for m in re.findall(r"^\.TP\n\.B (\d+)$", man_section, re.M)} - {1}
        help_text = subprocess.run([binary(), "--help"], capture_output=True,
                                   text=True).stdout
        help_section = help_text.split("Exit codes:", 1)[1]
        self.assertEqual(readme_codes, self.TESTED)
        self.assertEqual(man_codes, self.TESTED)
        for code in self.TESTED:
            self.assertRegex(help_section, rf"\b{code}\b")
        report("cli.exit_codes_documented", sorted(readme_codes))


if __name__ == "__main__":
    unittest.main()
