"""Shared pieces of the reliability suite (tests/reliability/test_*.py).

Builds on tests/integration/lfh_testlib.py (Workspace, truth comparison, database helpers,
`report`) and adds what only this suite needs: the fake server started without Nagle delays,
a canary secret key in every run with a scan of everything the runs left behind, child
processes measured with wait4(), and helpers over the fake's request log.

Every test prints its figures as `FIGURE name = value` lines; docs/reliability.md quotes them.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("LFHARVEST_SOURCE_DIR") or HERE.parents[1])
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))
sys.path.insert(0, str(SOURCE_DIR / "tests" / "fake_langfuse"))

from harness import FakeLangfuse  # noqa: E402
from lfh_testlib import (EXIT_IO, EXIT_OK, EXIT_TEMPFAIL, RunResult, Workspace,  # noqa: E402,F401
                         binary, canary_secret, compare_with_truth, db_rows, db_scalar,
                         integrity_check, report)

PUBLIC_KEY = "pk-lf-reliability"

OBSERVATIONS_PATH = "/api/public/v2/observations"
SCORES_PATH = "/api/public/v3/scores"
HEALTH_PATH = "/api/public/health"


def start_fake(**options: Any) -> FakeLangfuse:
    """A fake server whose secret key is a fresh canary (never to be seen in any output)."""
    options.setdefault("secret_key", canary_secret())
    options.setdefault("public_key", PUBLIC_KEY)
    return FakeLangfuse(**options)


def settings(limits: dict[str, Any] | None = None, retry: dict[str, Any] | None = None,
             maintenance: dict[str, Any] | None = None, sync: dict[str, Any] | None = None,
             **sections: Any) -> dict[str, Any]:
    """A config for Workspace.write_config: a fast budget, no settle re-fetch, quick retries."""
    config: dict[str, Any] = {
        "limits": {"requests_per_second": 500, "max_in_flight": 2,
                   "observation_page_size": 10, **(limits or {})},
        "retry": {"backoff_base_ms": 200, "backoff_cap_seconds": 2, **(retry or {})},
        "maintenance": {"settle_minutes": 0, **(maintenance or {})},
    }
    if sync:
        config["sync"] = dict(sync)
    config.update(sections)
    return config


# -- secrets -------------------------------------------------------------------------------------

class SecretScan:
    """Counts the canary secret key, raw or inside a Basic Authorization value, in texts and
    files."""

    def __init__(self, public_key: str, secret_key: str):
        basic = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.needles = [secret_key.encode(), basic.encode(),
                        base64.b64encode(secret_key.encode()).decode().rstrip("=").encode()]
        self.hits: list[str] = []
        self.files_scanned = 0
        self.texts_scanned = 0
        self.bytes_scanned = 0

    def text(self, label: str, data: str | bytes) -> None:
        self.texts_scanned += 1
        self._count(label, data.encode("utf-8", "replace") if isinstance(data, str) else data)

    def _count(self, label: str, raw: bytes) -> None:
        self.bytes_scanned += len(raw)
        for needle in self.needles:
            count = raw.count(needle)
            if count:
                self.hits.append(f"{label}: {count}x {needle[:8]!r}...")

    def tree(self, root: Path | str, skip: Iterable[Path] = ()) -> None:
        skipped = {Path(p).resolve() for p in skip}
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = Path(dirpath) / name
                if path.resolve() in skipped or path.is_symlink():
                    continue
                try:
                    raw = path.read_bytes()
                except OSError:
                    continue
                self.files_scanned += 1
                self._count(str(path), raw)

    def workspace(self, ws: Workspace, skip: Iterable[Path] = ()) -> None:
        for i, run in enumerate(ws.runs):
            self.text(f"run {i} ({' '.join(run.args[:1])}) stdout", run.stdout)
            self.text(f"run {i} ({' '.join(run.args[:1])}) stderr", run.stderr)
        self.tree(ws.dir, skip)

    @property
    def occurrences(self) -> int:
        return len(self.hits)


def assert_no_secret(test: Any, prefix: str, fake: FakeLangfuse, workspaces: Iterable[Workspace],
                     texts: Iterable[tuple[str, str | bytes]] = ()) -> None:
    """Scans every run's output and every file the workspaces hold (database, WAL, exports,
    logs) for the canary secret; prints the figure; fails on any occurrence."""
    scan = SecretScan(fake.public_key, fake.secret_key)
    for ws in workspaces:
        scan.workspace(ws)
    for label, data in texts:
        scan.text(label, data)
    report(f"{prefix}.secret_occurrences", scan.occurrences)
    report(f"{prefix}.secret_scan", f"{scan.files_scanned} files + {scan.texts_scanned} outputs, "
                                    f"{scan.bytes_scanned / 1048576:.1f} MiB")
    test.assertEqual(scan.hits, [], "the secret key leaked")
    test.assertGreater(scan.files_scanned, 0)


# -- child processes -----------------------------------------------------------------------------

@dataclass
class Measured:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_kib: int  # peak resident set size of the child (getrusage via wait4)

    def describe(self) -> str:
        return (f"exit {self.rc} in {self.seconds:.1f} s, peak RSS {self.max_rss_kib} KiB\n"
                f"--- stderr (tail)\n{self.stderr[-3000:]}")


def run_measured(ws: Workspace, command: str, *args: str, timeout: float = 120,
                 prefix: list[str] | None = None) -> Measured:
    """Runs an lfharvest command of the workspace and reaps it with wait4() for its peak RSS.
    The output is also recorded in ws.runs (for the secret scan)."""
    argv = ws.argv(command, *args)
    out_path = ws.dir / f"measured-{len(ws.runs)}.out"
    err_path = ws.dir / f"measured-{len(ws.runs)}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        process = subprocess.Popen([*(prefix or []), binary(), *argv], env=ws.env(), cwd=ws.dir,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    timer = threading.Timer(timeout, lambda: _kill_quietly(process.pid))
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    out_path.unlink()
    err_path.unlink()
    ws.runs.append(RunResult(argv, process.returncode, stdout, stderr, seconds))
    return Measured(process.returncode, stdout, stderr, seconds, usage.ru_maxrss)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exit_is_signal(rc: int) -> bool:
    """subprocess reports death by signal N as -N."""
    return rc < 0


# -- the fake's request log ----------------------------------------------------------------------

def query_of(request: dict[str, Any]) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request["query"], keep_blank_values=True)


def trace_of(request: dict[str, Any]) -> str | None:
    values = query_of(request).get("traceId")
    return values[0] if values else None


def page_key(request: dict[str, Any]) -> tuple:
    """What identifies a page: the endpoint and the query without the page size."""
    query = query_of(request)
    return (request["path"], tuple(sorted((k, tuple(v)) for k, v in query.items() if k != "limit")))


def is_page_request(request: dict[str, Any]) -> bool:
    return request["path"] in (OBSERVATIONS_PATH, SCORES_PATH)


def wall_to_monotonic(epoch_seconds: float) -> float:
    """The time.monotonic() value of a wall-clock time (the fake's log uses monotonic times)."""
    return epoch_seconds - (time.time() - time.monotonic())
