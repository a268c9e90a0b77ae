"""The command line: errors give one clear line and the documented exit code; help, version,
check, status --json and retry do what they say."""

from __future__ import annotations

import json
import socket
import unittest
import urllib.parse

from lfh_testlib import (EXIT_CONFIG, EXIT_IO, EXIT_NOPERM, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE,
                         FAST_LIMITS, FakeLangfuse, RunResult, Workspace, db_rows,
                         db_scalar, observation_requests, report)

COMMANDS = ("sync", "run", "status", "check", "retry", "reconcile", "export")


def error_lines(result: RunResult) -> list[str]:
    return [line for line in result.stderr_lines() if line.startswith("lfharvest: ")]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConfigErrorsTest(unittest.TestCase):
    CASES = [
        ("unknown key", "[limits]\nrequests_per_secnd = 5\n", "limits.requests_per_secnd"),
        ("wrong type", '[limits]\nrequests_per_second = "fast"\n', "limits.requests_per_second"),
        ("out of range", "[limits]\nmax_in_flight = 0\n", "limits.max_in_flight"),
        ("unknown section", "[limitz]\nx = 1\n", "limitz"),
        ("secret in the file", '[langfuse]\nsecret_key = "sk-lf-in-the-file"\n', "secret_key"),
        ("syntax", "[limits\nx = 1\n", "line 1"),
    ]

    def test_bad_config_one_line_naming_file_and_key(self) -> None:
        with Workspace(public_key="pk-lf-x", secret_key="sk-lf-y") as ws:
            env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-x", "LANGFUSE_SECRET_KEY": "sk-lf-y"}
            for name, text, key in self.CASES:
                for command in ("sync", "check", "status"):
                    with self.subTest(case=name, command=command):
                        ws.config_path.write_text(text)
                        result = ws.run(command, env=env, base_url=False)
                        self.assertEqual(result.rc, EXIT_CONFIG, result.describe())
                        lines = result.stderr_lines()
                        self.assertEqual(len(lines), 1, result.describe())
                        self.assertIn(str(ws.config_path), lines[0])
                        self.assertIn(key, lines[0])
                        self.assertNotIn("sk-lf-in-the-file", result.stderr + result.stdout)
                        self.assertFalse(ws.db.exists(), "nothing is created on a config error")
                report(f"cli.config_error[{name}]", lines[0])

    def test_missing_config_file_and_missing_public_key(self) -> None:
        with Workspace() as ws:
            ws.config_path.unlink()
            result = ws.run("sync", env={"LANGFUSE_PUBLIC_KEY": "pk-lf-x",
                                         "LANGFUSE_SECRET_KEY": "sk-lf-y"}, base_url=False)
            self.assertEqual(result.rc, EXIT_CONFIG, result.describe())
            self.assertEqual(len(result.stderr_lines()), 1, result.describe())
            self.assertIn(str(ws.config_path), result.stderr)
            ws.config_path.write_text("")
            result = ws.run("sync", base_url=False)
            self.assertEqual(result.rc, EXIT_CONFIG, result.describe())
            self.assertEqual(len(result.stderr_lines()), 1, result.describe())
            self.assertIn("public key", result.stderr)


class CommandLineTest(unittest.TestCase):
    def test_help_for_every_command_and_version(self) -> None:
        with Workspace() as ws:
            top = ws.run_raw(["--help"])
            self.assertEqual(top.rc, EXIT_OK, top.describe())
            for command in COMMANDS:
                self.assertIn(command, top.stdout)
                result = ws.run_raw([command, "--help"])
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                self.assertIn(command, result.stdout)
                self.assertIn("--config", result.stdout)
                self.assertIn("--db", result.stdout)
            version = ws.run_raw(["--version"])
            self.assertEqual(version.rc, EXIT_OK)
            self.assertRegex(version.stdout.strip(), r"^lfharvest \d+\.\d+\.\d+")
            report("cli.version", version.stdout.strip())

    def test_usage_errors_exit_64(self) -> None:
        with Workspace() as ws:
            for argv in ([], ["bogus-command"], ["sync", "--bogus"], ["sync", "--max-wait", "x"],
                         ["status", "extra-argument"]):
                with self.subTest(argv=argv):
                    result = ws.run_raw(argv)
                    self.assertEqual(result.rc, EXIT_USAGE, result.describe())


class ServerErrorsTest(unittest.TestCase):
    def test_bad_keys_exit_77_with_one_line(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, \
                Workspace(fake, secret_key="sk-lf-wrong-one") as ws:
            for command in ("sync", "check", "reconcile"):
                with self.subTest(command=command):
                    result = ws.run(command, "--log-level", "error")
                    self.assertEqual(result.rc, EXIT_NOPERM, result.describe())
                    self.assertEqual(len(result.stderr_lines()), 1, result.describe())
                    self.assertEqual(len(error_lines(result)), 1, result.describe())
                    report(f"cli.bad_keys[{command}]", error_lines(result)[0])
            stats = fake.stats()
            # Not retried: one key check per command.
            self.assertEqual(stats["by_endpoint"]["/api/public/projects"], {"401": 3})
            self.assertEqual(stats["trace_detail_calls"], 0)

    def test_unreachable_server_exit_69_within_the_retry_policy(self) -> None:
        with Workspace(public_key="pk-lf-x", secret_key="sk-lf-y") as ws:
            ws.write_config({"retry": {"max_attempts": 3, "backoff_base_ms": 50,
                                       "backoff_cap_seconds": 1},
                             "limits": {"connect_timeout_seconds": 2}})
            url = f"http://127.0.0.1:{closed_port()}"
            env = {"LANGFUSE_PUBLIC_KEY": "pk-lf-x", "LANGFUSE_SECRET_KEY": "sk-lf-y"}
            for command in ("sync", "check"):
                with self.subTest(command=command):
                    result = ws.run(command, "--base-url", url, env=env, base_url=False, timeout=60)
                    self.assertEqual(result.rc, EXIT_UNAVAILABLE, result.describe())
                    lines = error_lines(result)
                    self.assertEqual(len(lines), 1, result.describe())
                    self.assertIn(url, lines[0])
                    # 3 attempts, backoff of at most 1 s each: well under 10 s.
                    self.assertLess(result.seconds, 10)
                    report(f"cli.unreachable[{command}]",
                           f"exit {result.rc} after {result.seconds:.2f} s: {lines[0][:140]}")
            # With --log-level error the whole output is that one line.
            result = ws.run("sync", "--base-url", url, "--log-level", "error", env=env,
                            base_url=False, timeout=60)
            self.assertEqual(result.rc, EXIT_UNAVAILABLE)
            self.assertEqual(len(result.stderr_lines()), 1, result.describe())

    def test_database_in_a_missing_directory_exit_74(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            missing = ws.dir / "no" / "such" / "dir" / "lfharvest.db"
            for command in ("sync", "status", "retry"):
                with self.subTest(command=command):
                    argv = [command, "--config", str(ws.config_path), "--db", str(missing),
                            "--base-url", fake.base_url, "--log-level", "error"]
                    result = ws.run_raw(argv, env=ws.env())
                    self.assertEqual(result.rc, EXIT_IO, result.describe())
                    self.assertEqual(len(result.stderr_lines()), 1, result.describe())
                    self.assertIn(str(missing), result.stderr)
                    report(f"cli.missing_db_dir[{command}]", result.stderr.strip())
            self.assertFalse((ws.dir / "no").exists())

    def test_check_against_the_fake(self) -> None:
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": {"requests_per_second": 3, "max_in_flight": 1}})
            result = ws.run("check")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            out = result.stdout
            report("cli.check_output", "\n" + out)
            self.assertIn(str(ws.config_path), out)
            self.assertIn("environment LANGFUSE_SECRET_KEY", out)
            self.assertIn("Langfuse 4.16.0", out)
            self.assertIn("current API", out)
            self.assertIn("project proj-demo", out)
            self.assertIn("3 requests/second", out)
            self.assertIn("at most 1 in flight", out)
            self.assertEqual(out.strip().splitlines()[-1], "ok")
            stats = fake.stats()
            # Health and the key check only: no data is read.
            self.assertEqual(set(stats["by_endpoint"]),
                             {"/api/public/health", "/api/public/projects"})

        with FakeLangfuse(traces=20, seed=2, generation="legacy") as fake, Workspace(fake) as ws:
            result = ws.run("check")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            self.assertIn("legacy API", result.stdout)

    def test_base_url_precedence_flag_env_file(self) -> None:
        # flag > LANGFUSE_BASE_URL > LANGFUSE_HOST > config file; a dead URL shows who lost.
        with FakeLangfuse(traces=20, seed=2) as fake, Workspace(fake) as ws:
            dead = f"http://127.0.0.1:{closed_port()}"
            ws.write_config({"langfuse": {"base_url": dead}, "retry": {"max_attempts": 1}})
            cases = [
                ("file only", {}, [], EXIT_UNAVAILABLE),
                ("LANGFUSE_HOST over the file", {"LANGFUSE_HOST": fake.base_url}, [], EXIT_OK),
                ("LANGFUSE_BASE_URL over LANGFUSE_HOST",
                 {"LANGFUSE_HOST": dead, "LANGFUSE_BASE_URL": fake.base_url}, [], EXIT_OK),
                ("LANGFUSE_BASE_URL wins",
                 {"LANGFUSE_HOST": fake.base_url, "LANGFUSE_BASE_URL": dead}, [], EXIT_UNAVAILABLE),
                ("flag over the environment",
                 {"LANGFUSE_BASE_URL": dead}, ["--base-url", fake.base_url], EXIT_OK),
            ]
            for name, env, flags, code in cases:
                with self.subTest(case=name):
                    result = ws.run("check", *flags, env=env, base_url=False, timeout=60)
                    self.assertEqual(result.rc, code, result.describe())


class StatusAndRetryTest(unittest.TestCase):
    def test_too_large_failures_then_retry_puts_them_back(self) -> None:
        with FakeLangfuse(traces=300, big_fraction=0.05, big_size=3_000_000, seed=3) as fake, \
                Workspace(fake) as ws:
            # A 1 MiB response cap: every trace with a 3 MB input fails as too_large.
            ws.write_config({"limits": {**FAST_LIMITS, "max_response_mib": 1}})
            truth = fake.truth()
            big_traces = {t for t, v in truth["traces"].items()
                          if any(o.get("big") for o in v["observations"])}
            self.assertGreater(len(big_traces), 0)

            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            failed = dict(db_rows(ws.db, "SELECT trace_id, failure_reason FROM traces "
                                         "WHERE state = 'failed'"))
            report("cli.too_large_failed",
                   f"{len(failed)} of {len(big_traces)} big annotated traces")
            self.assertEqual(set(failed), big_traces)
            self.assertEqual(set(failed.values()), {"too_large"})

            # No retry loop: the page shrinks 10 -> 5 -> 2 -> 1, then the trace fails.
            stats = fake.stats()
            per_trace: dict[str, int] = {}
            for r in observation_requests(stats):
                trace_id = urllib.parse.parse_qs(r["query"])["traceId"][0]
                per_trace[trace_id] = per_trace.get(trace_id, 0) + 1
            worst = max(per_trace[t] for t in big_traces)
            report("cli.requests_per_too_large_trace", worst)
            self.assertLessEqual(worst, 5)

            status = ws.run("status", "--json", base_url=False)
            self.assertEqual(status.rc, EXIT_OK, status.describe())
            doc = json.loads(status.stdout)
            counts = doc["traces"][fake.project_id]
            self.assertEqual(counts["failed"], len(big_traces))
            self.assertEqual(counts["done"], len(truth["traces"]) - len(big_traces))
            self.assertEqual(counts["pending"] + counts["retry"], 0)
            self.assertEqual(doc["failures_by_reason"].get("too_large"), len(big_traces),
                             doc["failures_by_reason"])
            listed = {f.get("trace_id") or f.get("trace") for f in doc["failures"]}
            self.assertTrue(listed <= big_traces and listed, doc["failures"][:3])
            text = ws.run("status", base_url=False)
            self.assertIn(f"failed {len(big_traces)}", text.stdout)

            retry = ws.run("retry", base_url=False)
            self.assertEqual(retry.rc, EXIT_OK, retry.describe())
            self.assertIn(f"{len(big_traces)} traces queued again", retry.stdout)
            states = dict(db_rows(ws.db, "SELECT state, count(*) FROM traces GROUP BY state"))
            self.assertEqual(states.get("failed", 0), 0)
            self.assertEqual(states.get("pending", 0), len(big_traces))

            # With the default cap the next sync fetches them.
            ws.write_config({"limits": FAST_LIMITS})
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            self.assertEqual(
                db_scalar(ws.db, "SELECT count(*) FROM traces WHERE state != 'done'"), 0)


if __name__ == "__main__":
    unittest.main()
