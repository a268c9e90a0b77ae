"""A canary secret key used for a whole session of commands never appears in any output, log,
database byte, export or other file: not as itself, not base64-encoded in an Authorization
header, not URL-encoded."""

from __future__ import annotations

import base64
import os
import signal
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path

from lfh_testlib import (EXIT_CONFIG, EXIT_NOPERM, EXIT_OK, EXIT_TEMPFAIL, FAST_LIMITS,
                         FakeLangfuse, Workspace, canary_secret, db_scalar, fault_mix, report,
                         wait_until)


def needles(public_key: str, secret: str) -> dict[str, bytes]:
    """The forms in which a leaked secret would show up."""
    basic = base64.b64encode(f"{public_key}:{secret}".encode()).decode()
    return {
        "plain": secret.encode(),
        "url-encoded": urllib.parse.quote(secret, safe="").encode(),
        "basic-auth": basic.encode(),
        "basic-auth-b64url": base64.urlsafe_b64encode(f"{public_key}:{secret}".encode()),
        # Most of the random part is enough to spot a partial leak (e.g. a truncated key).
        "random-part": secret.rsplit("-", 1)[1][:16].encode(),
    }


class SecretsTest(unittest.TestCase):
    def test_canary_secret_never_appears(self) -> None:
        secret = canary_secret()
        public = "pk-lf-canary-public"
        with FakeLangfuse(traces=200, big_fraction=0.01, seed=19, public_key=public,
                          secret_key=secret) as fake, Workspace(fake) as ws, \
                tempfile.TemporaryDirectory(prefix="lfh-secret-") as secret_dir:
            exports = ws.dir / "exports"
            exports.mkdir()
            metrics = ws.dir / "lfharvest.prom"
            config = {
                "limits": FAST_LIMITS,
                "retry": {"backoff_base_ms": 100, "backoff_cap_seconds": 2,
                          "breaker_probe_base_seconds": 1, "breaker_probe_cap_seconds": 2},
                "sync": {"poll_interval_seconds": 1, "max_wait_seconds": 20},
                "metrics": {"textfile": str(metrics)},
                "export": [{"name": "good-chat", "format": "openai-chat",
                            "out": str(exports / "good-chat.jsonl"), "score_names": ["quality"],
                            "values": ["Good"]},
                           {"name": "kto", "format": "kto", "out": str(exports / "kto.jsonl"),
                            "score_names": ["quality"], "positive": "Good"}],
            }
            ws.write_config(config)
            steps: list[str] = []

            def step(name: str, result, *codes: int) -> None:
                steps.append(f"{name}:{result.rc}")
                self.assertIn(result.rc, codes or (EXIT_OK,), result.describe())

            step("check", ws.run("check", "--log-level", "trace"))

            # A sync under faults, with the most verbose logging.
            fake.faults(fault_mix(0.3), seed=7)
            for _ in range(6):
                result = ws.run("sync", "--log-level", "trace")
                step("sync-with-faults", result, EXIT_OK, EXIT_TEMPFAIL)
                if result.rc == EXIT_OK:
                    break
            self.assertEqual(result.rc, EXIT_OK)
            self.assertGreater(sum(r["fired"] for r in fake.fault_state()), 0)
            fake.clear_faults()

            for args in ((), ("--json",), ("--prometheus",)):
                step("status" + "".join(args), ws.run("status", *args, "--log-level", "trace"))
            step("export-all", ws.run("export", "--all"))
            step("export-adhoc", ws.run("export", "--format", "jsonl", "--out",
                                        str(exports / "all.jsonl")))
            step("export-stdout", ws.run("export", "--format", "sharegpt", "--out", "-"))
            step("retry", ws.run("retry"))
            step("reconcile", ws.run("reconcile", "--log-level", "debug"))
            self.assertTrue(any(exports.iterdir()))

            # The secret from a file instead of the environment.
            secret_file = Path(secret_dir) / "secret"
            secret_file.write_text(secret + "\n")
            os.chmod(secret_file, 0o600)
            step("sync-secret-file", ws.run("sync", "--log-level", "trace", keys=False,
                                            env={"LANGFUSE_PUBLIC_KEY": public,
                                                 "LFHARVEST_SECRET_KEY_FILE": str(secret_file)}))

            # The service: a pass or two, then SIGTERM.
            def passes_finished() -> int:
                return db_scalar(ws.db, "SELECT count(*) FROM sync_runs "
                                        "WHERE finished_at IS NOT NULL") or 0

            process = ws.popen("run", "--log-level", "debug")
            try:
                wait_until(lambda: metrics.exists() and passes_finished() >= 2, timeout=60)
            finally:
                start = time.monotonic()
                process.send_signal(signal.SIGTERM)
                rc = process.wait(timeout=30)
            stop_seconds = time.monotonic() - start
            steps.append(f"run:{rc}")
            report("secrets.run_stop_seconds", f"{stop_seconds:.2f}")
            self.assertEqual(rc, EXIT_OK)
            self.assertLess(stop_seconds, 2.5)

            # Error paths: bad config values that could echo the secret back, a refused key.
            bad = ws.dir / "bad.toml"
            for name, text in (("api", f'[langfuse]\napi = "{secret}"\n'),
                               ("unknown-key", f'[langfuse]\n"{secret}" = 1\n'),
                               ("public-key", f'[langfuse]\npublic_key = "{secret}"\n'),
                               ("secret-in-file", f'[langfuse]\nsecret_key = "{secret}"\n')):
                bad.write_text(text)
                result = ws.run_raw(["sync", "--config", str(bad), "--db", str(ws.db),
                                     "--base-url", fake.base_url], env=ws.env())
                step(f"bad-config-{name}", result, EXIT_CONFIG)
            bad.unlink()  # it holds the canary on purpose
            result = ws.run("sync", "--log-level", "banana" + secret)
            step("bad-log-level", result, EXIT_CONFIG)
            result = ws.run("check", "--log-level", "trace", keys=False,
                            env={"LANGFUSE_PUBLIC_KEY": "pk-lf-somebody-else",
                                 "LANGFUSE_SECRET_KEY": secret})
            step("check-401", result, EXIT_NOPERM)
            result = ws.run("sync", "--log-level", "trace", keys=False,
                            env={"LANGFUSE_PUBLIC_KEY": "pk-lf-somebody-else",
                                 "LANGFUSE_SECRET_KEY": secret})
            step("sync-401", result, EXIT_NOPERM)
            self.assertGreater(fake.stats()["by_endpoint"]["/api/public/projects"].get("401", 0), 0)
            report("secrets.steps", steps)

            # Scan everything.
            forms = needles(public, secret)
            hits: list[str] = []
            scanned_bytes = 0
            for run in ws.runs:
                for stream_name, text in (("stdout", run.stdout), ("stderr", run.stderr)):
                    data = text.encode()
                    scanned_bytes += len(data)
                    for form, needle in forms.items():
                        if needle in data:
                            hits.append(f"{' '.join(run.args[:1])} {stream_name}: {form}")
            files = [p for p in ws.dir.rglob("*") if p.is_file()]
            for path in files:
                data = path.read_bytes()
                scanned_bytes += len(data)
                for form, needle in forms.items():
                    count = data.count(needle)
                    if count:
                        hits.append(f"{path.relative_to(ws.dir)}: {form} x{count}")
            names = sorted(str(p.relative_to(ws.dir)) for p in files)
            report("secrets.commands_run", len(ws.runs) + 1)
            report("secrets.files_scanned", names)
            report("secrets.bytes_scanned", scanned_bytes)
            report("secrets.canary_occurrences", len(hits))
            self.assertTrue(any(n.endswith(".db") for n in names))
            self.assertTrue(any(n.endswith(".prom") for n in names))
            self.assertGreater(len([n for n in names if n.startswith("exports/")]), 1)
            self.assertEqual(hits, [])


if __name__ == "__main__":
    unittest.main()
