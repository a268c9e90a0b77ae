"""The command line as people script against it: the progress line in a real terminal (tmux),
-q / -v / --log-level trace, one time convention, config discovery, shell completion, --json."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import unittest
import uuid
from pathlib import Path

from lfh_testlib import (EXIT_CONFIG, EXIT_OK, EXIT_USAGE, SOURCE_DIR, FakeLangfuse, Workspace,
                         binary, report)

FAST = {"requests_per_second": 100, "max_in_flight": 2}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|warning|error) ")
PROGRESS = re.compile(r"traces (\d+)/(\d+) \((\d+\.\d)/s\)")


def log_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if LOG_LINE.match(line)]


class ProgressLineTest(unittest.TestCase):
    """A long sync in a tmux pane: done/queued from the first line, an ETA from the budget, the
    reason during a rate-limit wait, and log lines on lines of their own."""

    @unittest.skipUnless(shutil.which("tmux"), "tmux is not installed")
    def test_progress_in_a_terminal(self) -> None:
        # 60 requests per 6 s window on the server, 12/s in our budget: 429s with Retry-After.
        with FakeLangfuse(traces=240, seed=7, rate_limit_per_minute=60,
                          rate_limit_window_s=6) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_second": 12, "max_in_flight": 2}})
            annotated = len(fake.truth()["traces"])
            script = ws.dir / "session.sh"
            env = ws.env()
            exports = "".join(f"export {k}={shlex_quote(v)}\n" for k, v in env.items())
            argv = " ".join(shlex_quote(a) for a in [binary(), *ws.argv("sync")])
            script.write_text(f"{exports}cd {shlex_quote(str(ws.dir))}\n{argv}\n"
                              f"echo \"EXIT=$?\"\nsleep 60\n")
            socket_name = f"lfh-test-{uuid.uuid4().hex[:8]}"
            tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
            subprocess.run(tmux + ["new-session", "-d", "-s", "sync", "-x", "150", "-y", "40",
                                   f"bash {script}"], check=True)
            captures: list[str] = []
            try:
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline:
                    pane = subprocess.run(tmux + ["capture-pane", "-p", "-t", "sync"],
                                          capture_output=True, text=True).stdout
                    captures.append(pane)
                    if "EXIT=" in pane:
                        break
                    time.sleep(0.5)
            finally:
                subprocess.run(tmux + ["kill-server"], capture_output=True)
            final = captures[-1]
            self.assertIn("EXIT=0", final, final)
            progress = [m for pane in captures for m in PROGRESS.finditer(pane)]
            self.assertTrue(progress, "no progress line was ever shown")
            queued = {int(m.group(2)) for m in progress}
            # The total is the queue, from the first line on: not the traces started so far.
            self.assertEqual(max(queued), annotated, queued)
            first_total = int(progress[0].group(2))
            self.assertGreaterEqual(first_total, annotated * 0.9, progress[0].group(0))
            self.assertTrue(any("ETA" in pane for pane in captures))
            waits = [line for pane in captures for line in pane.splitlines()
                     if "waiting for the server (Retry-After" in line]
            self.assertTrue(waits, "a rate-limit wait was never explained")
            for pane in captures:
                for line in pane.splitlines():
                    # A log line never shares its line with the progress text.
                    if LOG_LINE.match(line):
                        self.assertNotIn("/s), ", line, line)
                    self.assertIsNone(re.search(r"/s\).*\d{4}-\d\d-\d\dT\d\d:", line), line)
            # The progress line is gone at the end: the summary stands alone.
            summary = [line for line in final.splitlines() if "sync: " in line]
            self.assertEqual(len(summary), 1, final)
            self.assertTrue(LOG_LINE.match(summary[0]), summary[0])
            mid = next(pane for pane in captures if PROGRESS.search(pane))
            report("cli.progress_first", progress[0].group(0))
            report("cli.progress_wait", waits[0].strip())
            report("cli.progress_capture", "\n" + mid.rstrip())

    def test_no_progress_line_without_a_terminal_unless_asked(self) -> None:
        with FakeLangfuse(traces=40, seed=3) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST})
            plain = ws.run("sync")
            self.assertEqual(plain.rc, EXIT_OK, plain.describe())
            self.assertNotIn("\r", plain.stderr)
            self.assertNotIn("\033[K", plain.stderr)
            for line in plain.stderr_lines():
                self.assertRegex(line, LOG_LINE)


class VerbosityTest(unittest.TestCase):
    def test_quiet_verbose_and_trace(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST})
            counts = {}
            for name, flags in (("quiet", ["-q"]), ("info", []), ("verbose", ["-v"]),
                                ("trace", ["--log-level", "trace"]), ("vv", ["-vv"])):
                db = ws.dir / f"{name}.db"
                result = ws.run("sync", *flags, "--db", str(db), db=False)
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                counts[name] = len(result.stderr_lines())
                if name == "quiet":
                    self.assertEqual(result.stderr, "", result.describe())
                if name in ("trace", "vv"):
                    requests = [line for line in log_lines(result.stderr)
                                if " trace GET /api/public/" in line]
                    self.assertGreater(len(requests), 10, result.describe())
                    self.assertNotIn(fake.secret_key, result.stderr)
            report("cli.log_lines_by_level", counts)
            self.assertEqual(counts["quiet"], 0)
            self.assertLess(counts["info"], counts["verbose"] + 1)
            self.assertGreater(counts["trace"], counts["info"])
            self.assertEqual(counts["trace"] > counts["verbose"], True)

    def test_logs_and_status_use_utc_with_z(self) -> None:
        with FakeLangfuse(traces=10, seed=2) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST})
            # A zone far from UTC: the stamps must not follow it.
            result = ws.run("sync", env={"TZ": "Asia/Kathmandu"})
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            lines = log_lines(result.stderr)
            self.assertTrue(lines, result.describe())
            stamp = lines[-1].split(" ", 1)[0]
            logged = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            self.assertLess(abs(logged - time.time()), 120, stamp)
            status = ws.run("status", "--json", base_url=False, env={"TZ": "Asia/Kathmandu"})
            times = re.findall(r'"(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d))"', status.stdout)
            self.assertTrue(times, status.stdout[:500])
            self.assertTrue(all(t.endswith("Z") for t in times), times[:5])
            report("cli.time_convention", f"log {stamp}, status {times[0]}")


class ConfigDiscoveryTest(unittest.TestCase):
    """$LFHARVEST_CONFIG, ./lfharvest.toml, $XDG_CONFIG_HOME/lfharvest/lfharvest.toml, then
    /etc: the first that exists is read, and `check` says which."""

    def test_order_and_check_names_the_file(self) -> None:
        with FakeLangfuse(traces=5, seed=2) as fake, Workspace(fake) as ws:
            xdg = ws.dir / "xdg"
            (xdg / "lfharvest").mkdir(parents=True)
            xdg_file = xdg / "lfharvest" / "lfharvest.toml"
            named = ws.dir / "named.toml"
            cwd_file = ws.dir / "lfharvest.toml"  # the working directory of ws.run
            for path, rps in ((xdg_file, 3), (named, 4), (cwd_file, 6)):
                ws.write_config({"limits": {"requests_per_second": rps}}, path=path)

            def check(env: dict[str, str]) -> str:
                result = ws.run("check", env=env, config=False)
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                return result.stdout

            out = check({"LFHARVEST_CONFIG": str(named), "XDG_CONFIG_HOME": str(xdg)})
            self.assertIn(f"config        {named} ($LFHARVEST_CONFIG)", out)
            self.assertIn("4 requests/second", out)
            out = check({"XDG_CONFIG_HOME": str(xdg)})
            self.assertIn(f"config        {cwd_file} (working directory)", out)
            self.assertIn("6 requests/second", out)
            cwd_file.unlink()
            out = check({"XDG_CONFIG_HOME": str(xdg)})
            self.assertIn(f"config        {xdg_file} ($XDG_CONFIG_HOME)", out)
            self.assertIn("3 requests/second", out)
            # Without XDG_CONFIG_HOME: ~/.config (HOME is the workspace).
            home_file = ws.dir / ".config" / "lfharvest" / "lfharvest.toml"
            home_file.parent.mkdir(parents=True)
            ws.write_config({"limits": {"requests_per_second": 7}}, path=home_file)
            out = check({})
            self.assertIn(f"config        {home_file} (~/.config)", out)
            # --config wins over everything.
            ws.write_config({"limits": {"requests_per_second": 8}})
            result = ws.run("check", "--json", env={"LFHARVEST_CONFIG": str(named)})
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            doc = json.loads(result.stdout)
            self.assertEqual((doc["config"], doc["config_origin"]),
                             (str(ws.config_path), "--config"))
            self.assertEqual(doc["budget"]["requests_per_second"], 8)
            report("cli.config_discovery", out.splitlines()[0])

            # A named file that does not exist is an error, not a silent fallback.
            result = ws.run("check", env={"LFHARVEST_CONFIG": str(ws.dir / "missing.toml")},
                            config=False)
            self.assertEqual(result.rc, EXIT_CONFIG, result.describe())
            self.assertIn("LFHARVEST_CONFIG", result.stderr)


class CompletionTest(unittest.TestCase):
    def test_scripts_for_three_shells_and_the_packaged_file(self) -> None:
        with Workspace() as ws:
            scripts = {}
            for shell in ("bash", "zsh", "fish"):
                result = ws.run_raw(["completion", shell])
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                scripts[shell] = result.stdout
                for command in ("sync", "run", "status", "check", "retry", "reconcile", "export",
                                "completion"):
                    self.assertIn(command, result.stdout)
                for option in ("max-wait", "log-level", "json", "format", "quiet"):
                    self.assertIn(option, result.stdout)
            packaged = (SOURCE_DIR / "packaging" / "lfharvest.bash-completion").read_text()
            self.assertEqual(packaged, scripts["bash"],
                             "regenerate: lfharvest completion bash > "
                             "packaging/lfharvest.bash-completion")
            for shell in ("bash", "zsh", "fish"):
                if not shutil.which(shell):
                    continue
                path = ws.dir / f"completion.{shell}"
                path.write_text(scripts[shell])
                argv = [shell, "--no-execute", str(path)] if shell == "fish" else \
                    [shell, "-n", str(path)]
                syntax = subprocess.run(argv, capture_output=True, text=True)
                self.assertEqual(syntax.returncode, 0, syntax.stderr)
            # The bash function really completes: words after `export --format `.
            if shutil.which("bash"):
                probe = (f"source {ws.dir / 'completion.bash'}\n"
                         "COMP_WORDS=(lfharvest export --format ''); COMP_CWORD=3\n"
                         "_lfharvest; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
                         "COMP_WORDS=(lfharvest sy); COMP_CWORD=1\n"
                         "_lfharvest; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
                out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
                words = out.stdout.split()
                self.assertIn("openai-chat", words, out.stderr)
                self.assertIn("sync", words, out.stderr)
            bad = ws.run_raw(["completion", "tcsh"])
            self.assertEqual(bad.rc, EXIT_USAGE)


class JsonTest(unittest.TestCase):
    def test_every_reporting_command_has_json(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST})
            docs = {}
            for command in ("check", "sync", "status", "retry", "reconcile"):
                result = ws.run(command, "--json", base_url=command not in ("status", "retry"))
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                docs[command] = json.loads(result.stdout)
            self.assertTrue(docs["check"]["ok"])
            self.assertEqual(docs["check"]["project"], fake.project_id)
            self.assertEqual(docs["sync"]["outcome"], "complete")
            self.assertEqual(docs["sync"]["traces"]["fetched"], len(fake.truth()["traces"]))
            self.assertEqual(docs["retry"]["queued_again"], 0)
            self.assertEqual(docs["reconcile"]["exit_code"], 0)
            self.assertIn("traces", docs["status"])
            for command, doc in docs.items():
                self.assertNotIn(fake.secret_key, json.dumps(doc), command)
            report("cli.json_keys", {c: sorted(d)[:8] for c, d in docs.items()})


def shlex_quote(text: str) -> str:
    import shlex
    return shlex.quote(text)


if __name__ == "__main__":
    unittest.main()
