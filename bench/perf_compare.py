#!/usr/bin/env python3
"""lfharvest beside its anchors, in one run: export, harvest CPU, memory, start-up.

    python3 bench/perf_compare.py --bin build-release/lfharvest          # about 5 minutes
    python3 bench/perf_compare.py --bin build-release/lfharvest --quick  # a smoke run

Steps (everything on 127.0.0.1, servers started and stopped here):
 1. Builds a cache by syncing N annotated traces (default 20,000) from the fake Langfuse
    (tests/fake_langfuse) at a high budget: lfharvest's CPU per 1,000 harvested traces.
 2. The Python harvest client (bench/anchor_harvest.py, `requests` over one keep-alive session)
    does the same requests against the same server: its CPU per request and per 1,000 traces.
 3. Exports the `quality` scores as JSON lines three ways: `lfharvest export --format jsonl`,
    the hand-written Python exporter (bench/anchor_export.py) and `sqlite3 -json` with the same
    window-function query. Wall and CPU seconds of each process (wait4), MB/s of output.
 4. Peak RSS of a sync that meets one 40 MB generation input, against the goal
    2 x the largest response + 32 MiB.
 5. Start-up: the time from exec to the first request the server sees, on a cache with
    100,000 done traces (rows added to the cache of step 1).
Prints a table of lfharvest's figures, the anchors' and their ratios. Figures, not assertions:
docs/benchmarks.md ("Side by side") has the latest run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "tests" / "fake_langfuse"))
sys.path.insert(0, str(BENCH))

from harness import FakeLangfuse  # noqa: E402
from anchor_export import QUERY as ANCHOR_QUERY  # noqa: E402

MIB = 1024 * 1024


@dataclass
class Run:
    code: int
    wall: float
    cpu: float
    rss_mib: float
    stdout: bytes
    started: float  # time.monotonic() just before exec (the fake server uses the same clock)


def run(argv: list[str], env: dict[str, str] | None = None, stdout_path: Path | None = None,
        cwd: Path | None = None) -> Run:
    """Runs argv as a direct child; its own CPU time and peak RSS come from wait4()."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    started = time.monotonic()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.PIPE)
    stdout = b"" if stdout_path else process.stdout.read()  # type: ignore[union-attr]
    stderr = process.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    if stdout_path:
        out.close()  # type: ignore[union-attr]
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(f"{argv[0]} exited {code}:\n{stderr.decode(errors='replace')[-3000:]}\n")
    return Run(code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout,
               started)


def clean_env(fake: FakeLangfuse | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LANGFUSE_", "LFHARVEST_")) and "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    if fake:
        env.update(LANGFUSE_PUBLIC_KEY=fake.public_key, LANGFUSE_SECRET_KEY=fake.secret_key)
    return env


def sync(binary: str, fake: FakeLangfuse, db: Path, work: Path, rate: int, in_flight: int) -> Run:
    config = work / f"sync-{rate}-{in_flight}.toml"
    config.write_text(f"[limits]\nrequests_per_second = {rate}\nmax_in_flight = {in_flight}\n")
    result = run([binary, "sync", "--config", str(config), "--db", str(db), "--base-url",
                  fake.base_url, "--log-level", "warn"], env=clean_env(fake), cwd=work)
    if result.code != 0:
        raise SystemExit("sync failed")
    return result


def traces_fetched(fake: FakeLangfuse) -> int:
    return sum(1 for r in fake.stats()["requests"] if r["endpoint"].endswith("observations")
               and "cursor=" not in r["query"])


def harvest_step(binary: str, work: Path, traces: int, anchor_traces: int) -> tuple[dict, Path]:
    db = work / "cache.db"
    with FakeLangfuse(traces=traces, annotated_fraction=1.0, seed=12) as fake:
        lfh = sync(binary, fake, db, work, rate=1000, in_flight=2)
        lfh_traces = traces_fetched(fake)
        lfh_requests = fake.stats()["requests_total"]
    with FakeLangfuse(traces=anchor_traces, annotated_fraction=1.0, seed=12) as fake:
        small = sync(binary, fake, work / "small.db", work, rate=1000, in_flight=2)
        small_traces = traces_fetched(fake)
        fake.reset_stats()
        anchor = run([sys.executable, str(BENCH / "anchor_harvest.py"), fake.base_url,
                      fake.public_key, fake.secret_key], env=clean_env())
        if anchor.code != 0:
            raise SystemExit("anchor harvest failed")
        anchor_report = json.loads(anchor.stdout)
    figures = {
        "lfh_traces": lfh_traces, "lfh_requests": lfh_requests, "lfh_wall": lfh.wall,
        "lfh_cpu_per_1000": lfh.cpu / max(1, lfh_traces) * 1000,
        "lfh_small_cpu_per_1000": small.cpu / max(1, small_traces) * 1000,
        "anchor_requests": anchor_report["requests"], "anchor_traces": anchor_report["traces"],
        "anchor_cpu_per_request_ms": anchor.cpu / max(1, anchor_report["requests"]) * 1000,
        "anchor_cpu_per_1000": anchor.cpu / max(1, anchor_report["traces"]) * 1000,
    }
    return figures, db


def export_step(binary: str, work: Path, db: Path) -> dict:
    out = {}
    lfh_file = work / "lfh.jsonl"
    r = run([binary, "export", "--db", str(db), "--score-name", "quality", "--format", "jsonl",
             "--out", str(lfh_file), "--log-level", "warn"], env=clean_env(), cwd=work)
    if r.code != 0:
        raise SystemExit("export failed")
    out["lfharvest"] = (r, lfh_file.stat().st_size, sum(1 for _ in open(lfh_file, "rb")))
    anchor_file = work / "anchor.jsonl"
    r = run([sys.executable, str(BENCH / "anchor_export.py"), str(db), "quality",
             str(anchor_file)], env=clean_env())
    out["python script"] = (r, anchor_file.stat().st_size, sum(1 for _ in open(anchor_file, "rb")))
    if shutil.which("sqlite3"):
        shell_file = work / "shell.json"
        query = ANCHOR_QUERY.replace("?", "'quality'")
        r = run(["sqlite3", "-readonly", "-json", str(db), query], stdout_path=shell_file)
        rows = len(json.loads(shell_file.read_text() or "[]"))
        out["sqlite3 -json"] = (r, shell_file.stat().st_size, rows)
    return out


def memory_step(binary: str, work: Path, big_size: int) -> dict:
    db = work / "big.db"
    # One annotated trace whose generation input is big_size bytes: exactly one big response.
    with FakeLangfuse(traces=1, annotated_fraction=1.0, big_fraction=1.0, big_size=big_size,
                      seed=3) as fake:
        r = sync(binary, fake, db, work, rate=50, in_flight=2)
        largest = max((q.get("bytes") or 0) for q in fake.stats()["requests"])
    return {"rss": r.rss_mib, "largest_mib": largest / MIB,
            "goal": 2 * largest / MIB + 32}


def startup_step(binary: str, work: Path, db: Path, done_traces: int) -> dict:
    connection = sqlite3.connect(db)
    project = connection.execute("SELECT project_id FROM traces LIMIT 1").fetchone()[0]
    have = connection.execute("SELECT count(*) FROM traces").fetchone()[0]
    extra = max(0, done_traces - have)
    with connection:
        connection.executemany(
            "INSERT OR IGNORE INTO traces (project_id, trace_id, state, queued_at, fetched_at,"
            " pages_fetched, observation_count, fetch_count)"
            " VALUES (?, ?, 'done', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z',"
            " 1, 5, 1)", ((project, f"bench-startup-{i:07d}") for i in range(extra)))
    total = connection.execute("SELECT count(*) FROM traces WHERE state = 'done'").fetchone()[0]
    connection.close()
    with FakeLangfuse(traces=20, annotated_fraction=1.0, seed=12) as fake:
        fake.reset_stats()
        r = sync(binary, fake, db, work, rate=50, in_flight=2)
        first = min(q["t"] for q in fake.stats()["requests"])
    return {"done_traces": total, "first_request_ms": (first - r.started) * 1000,
            "wall": r.wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "build" / "lfharvest"))
    parser.add_argument("--traces", type=int, default=20000, help="annotated traces in the cache")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    binary = str(Path(args.bin).resolve())
    traces = 500 if args.quick else args.traces
    anchor_traces = 200 if args.quick else 2000
    big = 4_000_000 if args.quick else 40_000_000
    work = Path(tempfile.mkdtemp(prefix="lfh-perf-"))
    try:
        version = subprocess.run([binary, "--version"], capture_output=True,
                                 text=True).stdout.strip()
        print(f"{version}; {os.cpu_count()} cores; traces {traces}", flush=True)
        print("step 1-2: harvest ...", flush=True)
        harvest, db = harvest_step(binary, work, traces, anchor_traces)
        print(f"  cache: {db.stat().st_size / 1e6:.0f} MB", flush=True)
        print("step 3: export ...", flush=True)
        exports = export_step(binary, work, db)
        print("step 4: memory ...", flush=True)
        memory = memory_step(binary, work, big)
        print("step 5: start-up ...", flush=True)
        startup = startup_step(binary, work, db, 100_000 if not args.quick else 5000)

        print("\n| export of quality scores | records | output MB | wall s | CPU s | MB/s |")
        print("|---|---|---|---|---|---|")
        for name, (r, size, records) in exports.items():
            print(f"| {name} | {records} | {size / 1e6:.1f} | {r.wall:.2f} | {r.cpu:.2f} | "
                  f"{size / 1e6 / r.wall:.0f} |")
        lfh = exports["lfharvest"][0]
        script = exports["python script"][0]
        print(f"\nexport: lfharvest is {script.wall / lfh.wall:.2f}x faster than the Python "
              f"script (goal >= 5x); {exports['lfharvest'][1] / 1e6 / lfh.wall:.0f} MB/s "
              f"(goal >= 100)")
        if "sqlite3 -json" in exports:
            shell = exports["sqlite3 -json"][0]
            print(f"export: lfharvest CPU {lfh.cpu:.2f} s vs the sqlite3 shell's {shell.cpu:.2f} s "
                  f"(goal: below)")
        print(f"harvest: lfharvest {harvest['lfh_cpu_per_1000']:.2f} CPU-s per 1,000 traces "
              f"({harvest['lfh_traces']} traces, {harvest['lfh_requests']} requests, "
              f"{harvest['lfh_wall']:.1f} s; {harvest['lfh_small_cpu_per_1000']:.2f} on "
              f"{anchor_traces}) (goal <= 0.5)")
        print(f"harvest: Python requests client {harvest['anchor_cpu_per_1000']:.2f} CPU-s per "
              f"1,000 traces, {harvest['anchor_cpu_per_request_ms']:.1f} ms a request; ratio "
              f"{harvest['anchor_cpu_per_1000'] / max(1e-9, harvest['lfh_small_cpu_per_1000']):.1f}x"
              f" (goal >= 20x)")
        print(f"memory: peak RSS {memory['rss']:.0f} MiB with a {memory['largest_mib']:.0f} MiB "
              f"response (goal <= {memory['goal']:.0f} MiB)")
        print(f"start-up: first request {startup['first_request_ms']:.0f} ms after exec with "
              f"{startup['done_traces']} done traces (goal < 100 ms)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
