"""Log lines under systemd: with $JOURNAL_STREAM set, every line written to stderr starts with a
syslog priority prefix ("<3>" error ... "<7>" debug) so journald keeps the level, and carries no
time stamp of its own (the journal adds one). In a terminal, lines keep their time stamps.
"""

from __future__ import annotations

import re
import signal
import subprocess
import unittest

from service_testlib import (FakeLangfuse, ServiceProcess, TempDir, binary, clean_env, to_toml,
                             wait_until)

PREFIX = re.compile(r"^<([0-7])>")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")
JOURNAL_ENV = {"JOURNAL_STREAM": "8:4242"}  # what systemd sets: device:inode of the stream


class JournalLogTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp_cm = TempDir()
        self.tmp = self.tmp_cm.__enter__()
        self.addCleanup(self.tmp_cm.__exit__, None, None, None)

    def config(self, fake: FakeLangfuse, **extra: dict) -> str:
        path = self.tmp / "lfharvest.toml"
        sections = {"langfuse": {"base_url": fake.base_url, "public_key": fake.public_key},
                    "sync": {"poll_interval_seconds": 1}, **extra}
        path.write_text(to_toml(sections))
        return str(path)

    def assert_journal_lines(self, stderr: str) -> list[int]:
        lines = [line for line in stderr.splitlines() if line.strip()]
        self.assertTrue(lines, "nothing was logged")
        priorities = []
        for line in lines:
            match = PREFIX.match(line)
            self.assertIsNotNone(match, f"no priority prefix: {line!r}")
            self.assertIsNone(TIMESTAMP.search(line), f"own time stamp under journald: {line!r}")
            priorities.append(int(match.group(1)))  # type: ignore[union-attr]
        return priorities

    def test_service_lines_carry_priorities_and_no_timestamps(self) -> None:
        with FakeLangfuse(traces=10, seed=11) as fake:
            # One failed score page with a Retry-After that cannot be used: a warning (the retry)
            # and a debug line (the ignored header).
            fake.faults([{"path": "scores", "mode": "status", "status": 503,
                          "retry_after": "soon", "count": 1}])
            config = self.config(fake)
            env = clean_env({**JOURNAL_ENV, "LANGFUSE_SECRET_KEY": fake.secret_key},
                            home=self.tmp)
            service = ServiceProcess(["run", "--config", config, "--db",
                                      str(self.tmp / "l.db"), "--log-level", "debug"], env)
            self.addCleanup(service.stop)
            service.wait_for_line(r"pass: ", timeout=30)
            # A reload that fails is an error.
            (self.tmp / "lfharvest.toml").write_text("[limits]\nmax_in_flight = 0\n")
            service.process.send_signal(signal.SIGHUP)
            service.wait_for_line(r"reload: .*max_in_flight.*; keeping the running configuration",
                                  timeout=10)
            service.process.send_signal(signal.SIGTERM)
            wait_until(lambda: not service.alive(), timeout=10, what="exit")
            service.stop()
        output = service.output()
        print(output)
        priorities = self.assert_journal_lines(output)
        self.assertEqual(service.process.returncode, 0)
        self.assertIn(3, priorities)  # error
        self.assertIn(4, priorities)  # warning
        self.assertIn(6, priorities)  # info
        self.assertIn(7, priorities)  # debug
        lines = output.splitlines()
        self.assertIn("<6>lfharvest service stopped", lines)
        self.assertTrue(any(line.startswith("<4>scores request failed") for line in lines))
        self.assertTrue(any(line.startswith("<3>reload: ") for line in lines))

    def test_terminal_lines_keep_their_timestamps(self) -> None:
        with FakeLangfuse(demo=True) as fake:
            env = clean_env({"LANGFUSE_SECRET_KEY": fake.secret_key}, home=self.tmp)
            result = subprocess.run([binary(), "check", "--config", self.config(fake), "--db",
                                     str(self.tmp / "l.db")], env=env, capture_output=True,
                                    text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertTrue(lines)
        for line in lines:
            self.assertIsNone(PREFIX.match(line), line)
            self.assertRegex(line, TIMESTAMP)

    # A fatal error must reach the journal as priority "err", not as a plain info line.
    def test_fatal_errors_are_logged_as_errors(self) -> None:
        with FakeLangfuse(demo=True) as fake:
            env = clean_env({**JOURNAL_ENV, "LANGFUSE_SECRET_KEY": "sk-lf-wrong"}, home=self.tmp)
            result = subprocess.run([binary(), "run", "--config", self.config(fake), "--db",
                                     str(self.tmp / "l.db")], env=env, capture_output=True,
                                    text=True, timeout=60)
        self.assertEqual(result.returncode, 77, result.stderr)  # keys refused
        priorities = self.assert_journal_lines(result.stderr)
        self.assertIn(3, priorities)


if __name__ == "__main__":
    unittest.main()
