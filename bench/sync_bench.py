#!/usr/bin/env python3
"""Sync benchmark: lfharvest against the fake Langfuse server on 127.0.0.1.

    python3 bench/sync_bench.py --bin build/lfharvest

Prints, each measured by the server or by the kernel (not by lfharvest itself):
  - requests/s achieved against the request budget, and the peak in flight (server-measured);
  - requests per annotated trace;
  - CPU seconds (user + sys) per 1,000 traces;
  - peak RSS of the lfharvest process with no big input, a 6 MB and a 60 MB generation input.

Each scenario runs `lfharvest sync` once, on a fresh database, as a direct child whose resource
usage is read with wait4(), so the figures are that process's own.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fake_langfuse"))

from harness import FakeLangfuse  # noqa: E402

MIB = 1024 * 1024


@dataclass
class Scenario:
    name: str
    traces: int
    rate: float  # requests per second
    in_flight: int
    annotated_fraction: float = 0.5
    big_fraction: float = 0.0
    big_size: int = 6_000_000
    seed: int = 7


@dataclass
class Measurement:
    scenario: Scenario
    exit_code: int
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    requests: int
    traces_fetched: int
    achieved_rate: float
    max_per_second: int
    peak_in_flight: int
    bytes_received: int
    biggest_response_mib: float


def toml(scenario: Scenario) -> str:
    return (f"[limits]\nrequests_per_second = {scenario.rate:g}\n"
            f"max_in_flight = {scenario.in_flight}\n")


def clean_env(fake: FakeLangfuse) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LANGFUSE_", "LFHARVEST_")) and "proxy" not in k.lower()}
    env.update(LANGFUSE_PUBLIC_KEY=fake.public_key, LANGFUSE_SECRET_KEY=fake.secret_key,
               NO_PROXY="127.0.0.1,localhost")
    return env


def run_sync(binary: str, fake: FakeLangfuse, workdir: Path,
             scenario: Scenario) -> tuple[int, float, float, float]:
    """Runs one sync; returns (exit code, wall seconds, CPU seconds, max RSS in MiB)."""
    config = workdir / "bench.toml"
    config.write_text(toml(scenario))
    db = workdir / "bench.db"
    argv = [binary, "sync", "--config", str(config), "--db", str(db), "--base-url", fake.base_url,
            "--log-level", "warn"]
    start = time.monotonic()
    process = subprocess.Popen(argv, env=clean_env(fake), cwd=workdir, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    if process.returncode != 0:
        sys.stderr.write(stderr.decode(errors="replace")[-2000:])
    cpu = usage.ru_utime + usage.ru_stime
    return process.returncode, wall, cpu, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def measure(binary: str, scenario: Scenario) -> Measurement:
    workdir = Path(tempfile.mkdtemp(prefix="lfh-bench-"))
    try:
        with FakeLangfuse(traces=scenario.traces, annotated_fraction=scenario.annotated_fraction,
                          big_fraction=scenario.big_fraction, big_size=scenario.big_size,
                          seed=scenario.seed) as fake:
            code, wall, cpu, rss = run_sync(binary, fake, workdir, scenario)
            stats = fake.stats()
        arrivals = sorted(r["t"] for r in stats["requests"])
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        obs = [r for r in stats["requests"]
               if r["endpoint"] in ("/api/public/v2/observations", "/api/public/observations")]
        traces = len({urllib.parse.parse_qs(r["query"]).get("traceId", [""])[0] for r in obs})
        return Measurement(
            scenario=scenario, exit_code=code, wall_s=wall, cpu_s=cpu, max_rss_mib=rss,
            requests=stats["requests_total"], traces_fetched=traces,
            achieved_rate=(len(arrivals) - 1) / span if span > 0 else 0.0,
            max_per_second=stats["max_per_second"], peak_in_flight=stats["peak_in_flight"],
            bytes_received=stats["bytes_sent"],
            biggest_response_mib=max((r.get("bytes") or 0) for r in stats["requests"]) / MIB)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(ROOT / "build" / "lfharvest"),
                        help="the lfharvest binary")
    parser.add_argument("--traces", type=int, default=2000,
                        help="traces in the throughput scenario")
    parser.add_argument("--quick", action="store_true", help="smaller scenarios (a smoke test)")
    args = parser.parse_args()
    binary = str(Path(args.bin).resolve())
    if not os.access(binary, os.X_OK):
        parser.error(f"{binary} is not an executable")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()

    quick = args.quick
    scenarios = [
        # The default budget, as the server sees it.
        Scenario("default budget (5/s, 2 in flight)", traces=40 if quick else 200, rate=5,
                 in_flight=2),
        # Throughput and CPU: a high budget, so the client (and the fake) are the limit.
        Scenario("high budget (200/s, 4 in flight)", traces=200 if quick else args.traces,
                 rate=200, in_flight=4),
        # Memory: every trace annotated, a share with one big generation input.
        Scenario("memory, no big input", traces=40, rate=50, in_flight=2, annotated_fraction=1.0),
        Scenario("memory, 6 MB input", traces=40, rate=50, in_flight=2, annotated_fraction=1.0,
                 big_fraction=0.1, big_size=6_000_000),
        Scenario("memory, 60 MB input", traces=10 if quick else 20, rate=50, in_flight=2,
                 annotated_fraction=1.0, big_fraction=0.1, big_size=60_000_000),
        # The same with one response at a time: the cost of a single big response.
        Scenario("memory, 60 MB input, 1 in flight", traces=10 if quick else 20, rate=50,
                 in_flight=1, annotated_fraction=1.0, big_fraction=0.1, big_size=60_000_000),
    ]
    print(f"lfharvest sync benchmark: {version} ({binary})")
    print(f"machine: {machine()}")
    print("server: tests/fake_langfuse (Python, same machine); "
          "figures measured by the server and wait4()\n")
    results = []
    for scenario in scenarios:
        print(f"running: {scenario.name}, {scenario.traces} traces ...", flush=True)
        m = measure(binary, scenario)
        results.append(m)
        if m.exit_code != 0:
            print(f"  sync exited {m.exit_code}", file=sys.stderr)
            return 1

    header = ("| scenario | traces fetched | requests | req/trace | achieved req/s (budget) | "
              "max in any 1 s | peak in flight | wall s | CPU s / 1,000 traces | peak RSS MiB | "
              "largest response MiB |")
    print("\n" + header)
    print("|" + "---|" * (header.count("|") - 1))
    for m in results:
        s = m.scenario
        per_1000 = m.cpu_s / m.traces_fetched * 1000 if m.traces_fetched else 0.0
        print(f"| {s.name} | {m.traces_fetched} | {m.requests} | "
              f"{m.requests / max(1, m.traces_fetched):.3f} | {m.achieved_rate:.2f} ({s.rate:g}) | "
              f"{m.max_per_second} | {m.peak_in_flight} (cap {s.in_flight}) | {m.wall_s:.1f} | "
              f"{per_1000:.2f} | {m.max_rss_mib:.1f} | {m.biggest_response_mib:.1f} |")
    base = results[2].max_rss_mib
    print(f"\npeak RSS growth over no big input: "
          f"6 MB input +{results[3].max_rss_mib - base:.1f} MiB, "
          f"60 MB input +{results[4].max_rss_mib - base:.1f} MiB "
          f"(with up to {results[4].scenario.in_flight} responses in flight), "
          f"+{results[5].max_rss_mib - base:.1f} MiB with 1 in flight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
