"""Shared helpers for lfharvest's integration tests.

The tests run the real `lfharvest` binary (LFHARVEST_BIN) against the fake Langfuse server
(tests/fake_langfuse), each in its own temporary directory with its own database, config file
and environment. Everything listens on and connects to 127.0.0.1 only.

    with FakeLangfuse(traces=300, seed=3) as fake, Workspace(fake) as ws:
        ws.write_config({"limits": FAST_LIMITS})
        result = ws.run("sync")
        assert result.rc == 0, result.describe()
        problems, figures = compare_with_truth(ws.db, fake.truth())
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

SOURCE_DIR = Path(os.environ.get("LFHARVEST_SOURCE_DIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SOURCE_DIR / "tests" / "fake_langfuse"))

from harness import FakeLangfuse, FakeLangfuseError  # noqa: E402  (re-exported for the tests)

__all__ = ["FakeLangfuse", "FakeLangfuseError", "Workspace", "RunResult", "FAST_LIMITS",
           "binary", "canary_secret", "db_rows", "db_scalar", "integrity_check",
           "compare_with_truth", "observation_requests", "score_requests", "repeated_requests",
           "endpoint_count", "fault_mix", "sync_until_done", "wait_until", "report", "sigkill",
           "page_key", "EXIT_OK", "EXIT_USAGE", "EXIT_UNAVAILABLE", "EXIT_IO", "EXIT_TEMPFAIL",
           "EXIT_NOPERM", "EXIT_CONFIG"]

# Exit codes of lfharvest (see `lfharvest --help`).
EXIT_OK = 0
EXIT_USAGE = 64
EXIT_UNAVAILABLE = 69
EXIT_IO = 74
EXIT_TEMPFAIL = 75
EXIT_NOPERM = 77
EXIT_CONFIG = 78

# A budget high enough for big syncs to finish quickly, still enforced by the client.
FAST_LIMITS = {"requests_per_second": 200, "max_in_flight": 4}

OBSERVATION_ENDPOINTS = ("/api/public/v2/observations", "/api/public/observations")
SCORE_ENDPOINTS = ("/api/public/v3/scores", "/api/public/scores", "/api/public/v2/scores")

# Variables of the outer environment that would change what lfharvest does.
_SCRUBBED_PREFIXES = ("LANGFUSE_", "LFHARVEST_")
_SCRUBBED_NAMES = {"STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                   "WATCHDOG_PID", "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY",
                   "HTTPS_PROXY", "ALL_PROXY", "CURL_CA_BUNDLE"}


def report(name: str, value: Any) -> None:
    """Prints one measured figure in a greppable form (CTest keeps the output)."""
    print(f"FIGURE {name} = {value}", flush=True)


def binary() -> str:
    """The lfharvest executable: $LFHARVEST_BIN, else build/lfharvest in the source tree."""
    path = os.environ.get("LFHARVEST_BIN") or str(SOURCE_DIR / "build" / "lfharvest")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"lfharvest binary not found at {path}: set LFHARVEST_BIN")
    return path


def canary_secret() -> str:
    """A secret key that must never show up anywhere: unique per call."""
    return "sk-lf-CANARY-" + secrets.token_hex(12)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Polls `predicate` until it returns something truthy or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for section, values in sections.items():
        if isinstance(values, list):  # array of tables, e.g. [[export]]
            for table in values:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
                lines.append("")
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass
class RunResult:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (f"lfharvest {' '.join(self.args)} -> exit {self.rc} in {self.seconds:.1f} s\n"
                f"--- stdout (tail)\n{self.stdout[-3000:]}\n"
                f"--- stderr (tail)\n{self.stderr[-3000:]}")

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@dataclass
class Workspace:
    """A temporary directory with a database and config for one lfharvest 'installation'.

    Every command's output is kept in `runs`, so a test can scan all of it for secrets."""

    fake: FakeLangfuse | None = None
    secret_key: str | None = None  # default: the fake's secret key
    public_key: str | None = None
    keep: bool = False
    dir: Path = field(init=False)
    runs: list[RunResult] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lfh-it-"))
        self.db = self.dir / "lfharvest.db"
        self.config_path = self.dir / "lfharvest.toml"
        self.config_path.write_text("")

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_config(self, sections: dict[str, Any], path: Path | None = None) -> Path:
        target = path or self.config_path
        target.write_text(to_toml(sections))
        return target

    def env(self, extra: dict[str, str] | None = None, keys: bool = True) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED_NAMES}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["HOME"] = str(self.dir)  # nothing from the real home directory
        if keys and self.fake is not None:
            env["LANGFUSE_PUBLIC_KEY"] = self.public_key or self.fake.public_key
            env["LANGFUSE_SECRET_KEY"] = self.secret_key or self.fake.secret_key
        env.update(extra or {})
        return env

    def argv(self, command: str, *args: str, config: bool = True, db: bool = True,
             base_url: bool = True) -> list[str]:
        argv = [command, *args]
        if config:
            argv += ["--config", str(self.config_path)]
        if db:
            argv += ["--db", str(self.db)]
        if base_url and self.fake is not None:
            argv += ["--base-url", self.fake.base_url]
        return argv

    def run(self, command: str, *args: str, env: dict[str, str] | None = None, keys: bool = True,
            config: bool = True, db: bool = True, base_url: bool = True,
            timeout: float = 300) -> RunResult:
        argv = self.argv(command, *args, config=config, db=db, base_url=base_url)
        return self.run_raw(argv, env=self.env(env, keys=keys), timeout=timeout)

    def run_raw(self, argv: list[str], env: dict[str, str] | None = None,
                timeout: float = 300) -> RunResult:
        start = time.monotonic()
        process = subprocess.run([binary(), *argv], env=env if env is not None else self.env(),
                                 cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, errors="replace", timeout=timeout)
        result = RunResult(argv, process.returncode, process.stdout, process.stderr,
                           time.monotonic() - start)
        self.runs.append(result)
        return result

    def popen(self, command: str, *args: str, env: dict[str, str] | None = None,
              keys: bool = True) -> subprocess.Popen[bytes]:
        """Starts a command with its output in files of the workspace (no pipe to fill up)."""
        argv = self.argv(command, *args)
        n = len(self.runs) + len(list(self.dir.glob("popen-*.out")))
        out = open(self.dir / f"popen-{n}.out", "wb")
        err = open(self.dir / f"popen-{n}.err", "wb")
        try:
            return subprocess.Popen([binary(), *argv], env=self.env(env, keys=keys), cwd=self.dir,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        finally:
            out.close()
            err.close()


# -- the database ------------------------------------------------------------------------------

def db_rows(db: Path | str, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
    connection = sqlite3.connect(str(db), timeout=10)
    try:
        return connection.execute(sql, tuple(params)).fetchall()
    finally:
        connection.close()


def db_scalar(db: Path | str, sql: str, params: Iterable[Any] = ()) -> Any:
    rows = db_rows(db, sql, params)
    return rows[0][0] if rows else None


def integrity_check(db: Path | str) -> str:
    return "; ".join(str(r[0]) for r in db_rows(db, "PRAGMA integrity_check"))


def _parse_stored(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def compare_with_truth(db: Path | str, truth: dict[str, Any],
                       check_big: bool = True) -> tuple[list[str], dict[str, int]]:
    """Compares the database with the fake's /__fake/truth.

    Returns (problems, figures). A correct harvest has: every trace named by a visible
    ANNOTATION score `done`, no other trace, and exactly the truth's observations for each
    (ids, types, names, parents, input/output as parsed values; big inputs by size and sha256).
    """
    problems: list[str] = []
    states = dict(db_rows(db, "SELECT trace_id, state FROM traces"))
    stored: dict[str, dict[str, tuple]] = {}
    for row in db_rows(db, "SELECT trace_id, observation_id, type, name, parent_observation_id, "
                           "input_json, output_json FROM observations"):
        stored.setdefault(row[0], {})[row[1]] = row
    expected = truth["traces"]
    figures = {"truth_traces": len(expected), "truth_scores": len(truth["scores"]),
               "db_traces": len(states), "db_done": sum(1 for s in states.values() if s == "done"),
               "db_observations": sum(len(v) for v in stored.values()),
               "truth_observations": sum(len(t["observations"]) for t in expected.values()),
               "big_inputs_checked": 0, "observations_compared": 0}

    missing = sorted(set(expected) - set(states))
    extra = sorted(set(states) - set(expected))
    if missing:
        problems.append(f"{len(missing)} annotated traces not in the database, e.g. {missing[:3]}")
    if extra:
        problems.append(f"{len(extra)} traces in the database that no annotation names: "
                        f"{extra[:3]}")
    not_done = {t: s for t, s in states.items() if t in expected and s != "done"}
    if not_done:
        problems.append(f"{len(not_done)} annotated traces not done: {list(not_done.items())[:5]}")
    orphans = sorted(set(stored) - set(expected))
    if orphans:
        problems.append(f"observations stored for traces not in the truth: {orphans[:3]}")

    for trace_id, trace in expected.items():
        have = stored.get(trace_id, {})
        want = {o["id"]: o for o in trace["observations"]}
        if set(have) != set(want):
            problems.append(f"trace {trace_id}: observation ids differ: missing "
                            f"{sorted(set(want) - set(have))[:3]}, "
                            f"extra {sorted(set(have) - set(want))[:3]}")
            continue
        for obs_id, o in want.items():
            _, _, obs_type, name, parent, input_json, output_json = have[obs_id]
            where = f"trace {trace_id} observation {obs_id}"
            if obs_type != o["type"]:
                problems.append(f"{where}: type {obs_type!r} != {o['type']!r}")
            if name != o.get("name"):
                problems.append(f"{where}: name {name!r} != {o.get('name')!r}")
            if parent != o.get("parentObservationId"):
                problems.append(f"{where}: parent {parent!r} != {o.get('parentObservationId')!r}")
            if o.get("big") and o.get("input") is None and "inputSha256" in o:
                if check_big:
                    raw = (input_json or "").encode("utf-8")
                    digest = hashlib.sha256(raw).hexdigest()
                    if len(raw) != o["inputBytes"] or digest != o["inputSha256"]:
                        problems.append(f"{where}: big input differs: {len(raw)} bytes stored, "
                                        f"{o['inputBytes']} expected (or different sha256)")
                    figures["big_inputs_checked"] += 1
            elif _parse_stored(input_json) != o.get("input"):
                problems.append(f"{where}: input differs: {str(input_json)[:120]!r} vs "
                                f"{json.dumps(o.get('input'))[:120]}")
            if _parse_stored(output_json) != o.get("output"):
                problems.append(f"{where}: output differs: {str(output_json)[:120]!r} vs "
                                f"{json.dumps(o.get('output'))[:120]}")
            figures["observations_compared"] += 1
    return problems, figures


# -- the fake's request log --------------------------------------------------------------------

def endpoint_count(stats: dict[str, Any], endpoints: Iterable[str],
                   status: str | None = None) -> int:
    total = 0
    for endpoint in endpoints:
        for code, n in stats["by_endpoint"].get(endpoint, {}).items():
            if status is None or code == status:
                total += n
    return total


def observation_requests(stats: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in stats["requests"] if r["endpoint"] in OBSERVATION_ENDPOINTS]


def score_requests(stats: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in stats["requests"] if r["endpoint"] in SCORE_ENDPOINTS]


def page_key(request: dict[str, Any]) -> tuple:
    """What identifies one page of a stream: endpoint and query without the page size."""
    query = urllib.parse.parse_qs(request["query"], keep_blank_values=True)
    key = tuple(sorted((k, tuple(v)) for k, v in query.items() if k != "limit"))
    return (request["endpoint"], key)


def repeated_requests(requests: Iterable[dict[str, Any]]) -> int:
    """How many requests asked again for a page already asked for (same endpoint and query)."""
    seen: set[tuple] = set()
    repeats = 0
    for request in requests:
        key = page_key(request)
        if key in seen:
            repeats += 1
        seen.add(key)
    return repeats


def fault_mix(total_probability: float, path: str = r"^/api/public/",
              retry_after: str = "1") -> list[dict[str, Any]]:
    """Fault rules that fail `total_probability` of the matching requests, split evenly over
    500, 502, 503, 524, reset, truncated body, malformed body and 429 with Retry-After.

    Rules are tried in order and the first that fires wins, so rule k gets the conditional
    probability share / (1 - k * share)."""
    modes: list[dict[str, Any]] = [
        {"mode": "status", "status": 500},
        {"mode": "status", "status": 502},
        {"mode": "status", "status": 503},
        {"mode": "status", "status": 524},
        {"mode": "reset"},
        {"mode": "truncate", "fraction": 0.5},
        {"mode": "malformed"},
        {"mode": "status", "status": 429, "retry_after": retry_after},
    ]
    share = total_probability / len(modes)
    rules = []
    for k, mode in enumerate(modes):
        rules.append({"path": path, "probability": share / (1 - k * share), **mode})
    return rules


def sync_until_done(ws: Workspace, max_runs: int, *args: str,
                    timeout: float = 300) -> list[RunResult]:
    """Runs `sync` until it exits 0 (exit 75 means "call again"); any other code stops."""
    results = []
    for _ in range(max_runs):
        result = ws.run("sync", *args, timeout=timeout)
        results.append(result)
        if result.rc != EXIT_TEMPFAIL:
            break
    return results


def sigkill(process: subprocess.Popen) -> None:
    try:
        os.kill(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
