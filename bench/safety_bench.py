#!/usr/bin/env python3
"""Server-safety benchmark: lfharvest against the fake Langfuse server with a Node heap.

    python3 bench/safety_bench.py --bin build/lfharvest [--quick]

Scenarios (each one `lfharvest sync` on a fresh database, every figure measured by the server):
  - degraded: a server with a 600 MB heap (answers reserve 5x their body while sent), 40
    annotated traces, 9 of them with one 60 MB generation input; lfharvest at its defaults, and
    the same with size learning switched off (big_response_mib far above every answer), which is
    what lfharvest did before: crashes, whether the sync completed, traces stored;
  - the same server with a 2 GB heap, defaults: crashes;
  - healthy: a server without limits, the default budget of 5 requests/s: the share of the
    budget used, as the server counts arrivals.
--quick divides every size by 10 (60 MB heap, 6 MB inputs) for a fast smoke run; the shape of
the results is the same because the threshold (4 MiB) still falls between small and big.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fake_langfuse"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import fake_langfuse as fl  # noqa: E402
from harness import FakeLangfuse  # noqa: E402
from lfh_testlib import compare_with_truth, to_toml  # noqa: E402


@dataclass
class Scenario:
    name: str
    traces: int = 40
    big_traces: int = 9
    big_size: int = 60_000_000
    heap_mb: float = 0
    crash_seconds: float = 10
    send_mb_per_s: float = 50
    limits: dict[str, Any] = field(default_factory=dict)
    max_runs: int = 1  # sync runs (exit 75 means "run again")
    timeout_s: float = 900


@dataclass
class Result:
    scenario: Scenario
    exit_codes: list[int]
    wall_s: float
    crashes: int
    requests: int
    traces_done: int
    traces_expected: int
    problems: int
    budget_share: float
    max_per_second: int
    status: dict[str, Any]


def seed_with_big(traces: int, big: int, fraction: float) -> int:
    """A data seed whose generated set has exactly `big` traces with a big input."""
    for seed in range(1, 5000):
        config = fl.DataConfig(traces=traces, annotated_fraction=1.0, big_fraction=fraction,
                               big_size=10, seed=seed, start_time_ms=fl.wall_ms())
        rng = random.Random(config.seed)
        generated, _ = fl.DatasetGenerator(config, rng, fl.IdFactory(rng)).generate()
        if sum(1 for t in generated if any(o.is_big for o in t.observations)) == big:
            return seed
    raise RuntimeError("no seed gives that many big traces")


def env_for(fake: FakeLangfuse) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LANGFUSE_", "LFHARVEST_")) and "proxy" not in k.lower()}
    env.update(LANGFUSE_PUBLIC_KEY=fake.public_key, LANGFUSE_SECRET_KEY=fake.secret_key,
               NO_PROXY="127.0.0.1,localhost")
    return env


def run(binary: str, s: Scenario) -> Result:
    fraction = s.big_traces / s.traces if s.traces else 0
    seed = seed_with_big(s.traces, s.big_traces, fraction) if s.big_traces else 3
    options: dict[str, Any] = dict(traces=s.traces, annotated_fraction=1.0, big_fraction=fraction,
                                   big_size=s.big_size, seed=seed)
    if s.heap_mb:
        options.update(heap_limit_mb=s.heap_mb, heap_multiplier=5, crash_seconds=s.crash_seconds,
                       send_mb_per_s=s.send_mb_per_s)
    work = Path(tempfile.mkdtemp(prefix="lfh-safety-"))
    try:
        with FakeLangfuse(**options) as fake:
            config = work / "bench.toml"
            config.write_text(to_toml({"limits": s.limits} if s.limits else {}))
            db = work / "bench.db"
            argv = [binary, "sync", "--config", str(config), "--db", str(db), "--base-url",
                    fake.base_url, "--log-level", "warn"]
            codes = []
            start = time.monotonic()
            for _ in range(s.max_runs):
                done = subprocess.run(argv, env=env_for(fake), cwd=work, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      timeout=s.timeout_s)
                codes.append(done.returncode)
                if done.returncode != 75:
                    break
            wall = time.monotonic() - start
            stats = fake.stats()
            load = fake.control("GET", "load")
            # The truth hashes every big input: slow with 60 MB ones.
            truth_status, _, truth_raw = fake.request("GET", "/__fake/truth", timeout=900)
            assert truth_status == 200, truth_status
            import json
            truth = json.loads(truth_raw)
            problems, figures = compare_with_truth(db, truth)
            status = subprocess.run([binary, "status", "--json", "--db", str(db), "--config",
                                     str(config)], env=env_for(fake), capture_output=True,
                                    text=True)
            import json
            status_json = json.loads(status.stdout) if status.returncode == 0 else {}
        arrivals = sorted(r["t"] for r in stats["requests"])
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        rate = float(s.limits.get("requests_per_second", 5))
        share = ((len(arrivals) - 1) / span / rate) if span > 0 else 0.0
        return Result(s, codes, wall, load["crashes"], stats["requests_total"],
                      figures["db_done"], figures["truth_traces"], len(problems), share,
                      stats["max_per_second"], status_json.get("server_safety", {}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "build" / "lfharvest"))
    parser.add_argument("--quick", action="store_true", help="every size / 10")
    parser.add_argument("--only", default="", help="comma list of scenario numbers (1-based)")
    args = parser.parse_args()
    binary = str(Path(args.bin).resolve())
    scale = 10 if args.quick else 1
    big = 60_000_000 // scale
    off = {"big_response_mib": 4096}  # size learning off (4 GiB): what lfharvest did before
    scenarios = [
        Scenario("degraded 600 MB heap, defaults", big_size=big, heap_mb=600 / scale,
                 send_mb_per_s=50 / scale, max_runs=3),
        Scenario("degraded 600 MB heap, size learning off", big_size=big, heap_mb=600 / scale,
                 send_mb_per_s=50 / scale, limits=off, max_runs=3, timeout_s=600),
        Scenario("2 GB heap, defaults", big_size=big, heap_mb=2000 / scale,
                 send_mb_per_s=50 / scale, max_runs=3),
        Scenario("healthy server, default budget", traces=120, big_traces=0, max_runs=1),
    ]
    if args.only:
        chosen = {int(x) for x in args.only.split(",")}
        scenarios = [s for i, s in enumerate(scenarios, 1) if i in chosen]
    print(f"lfharvest server-safety benchmark ({binary}); sizes / {scale}")
    header = ("| scenario | sync exits | wall s | server crashes | traces done / annotated | "
              "problems | requests | budget used | max in any 1 s | status: concurrency, rate, "
              "largest response, big traces, outages, crashes |")
    rows = []
    for s in scenarios:
        print(f"running: {s.name} ...", flush=True)
        r = run(binary, s)
        z = r.status
        rows.append(f"| {s.name} | {','.join(map(str, r.exit_codes))} | {r.wall_s:.0f} | "
                    f"{r.crashes} | {r.traces_done}/{r.traces_expected} | {r.problems} | "
                    f"{r.requests} | {r.budget_share * 100:.1f}% | {r.max_per_second} | "
                    f"{z.get('effective_concurrency')}, {z.get('effective_rate_per_second')}, "
                    f"{z.get('largest_response_bytes')}, {z.get('big_traces')}, "
                    f"{z.get('outages_seen')}, {z.get('crashes_seen')} |")
        print(rows[-1], flush=True)
    print("\n" + header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
