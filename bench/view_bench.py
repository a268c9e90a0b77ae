#!/usr/bin/env python3
"""View benchmark: every documented view and example query of the checkpoint database, timed
beside plain table scans, on a synthetic cache (default 100,000 traces).

    python3 bench/view_bench.py [--traces 100000] [--db PATH] [--repeat 3]

Each query runs to its last row (`fetchall`), `--repeat` times; the best time is printed, with
its ratio to `SELECT * FROM observations` (the biggest table, whose rows carry the inputs and
outputs), fetched the same way. The database is built with the migrations in schema/ and the same SQLite
library Python links (the system one on Debian, like lfharvest).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from view_cache import documented_queries, fill, migrate  # noqa: E402

# Plain table scans returning every row and column, the yardstick for the views (which return
# rows of the same width: inputs and outputs).
SCANS = [
    ("scan scores", "SELECT * FROM scores"),
    ("scan traces", "SELECT * FROM traces"),
    ("scan observations", "SELECT * FROM observations"),
]


def best_time(db: sqlite3.Connection, sql: str, repeat: int) -> tuple[float, int]:
    best, rows = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = len(db.execute(sql).fetchall())
        best = min(best, time.perf_counter() - start)
    return best, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", help="keep the database here (default: a temporary directory)")
    parser.add_argument("--reuse", action="store_true", help="use the --db file as it is")
    parser.add_argument("--schema-upto", type=int, default=None,
                        help="apply only migrations up to this number (compare older views)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lfh-view-bench-") as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "cache.db"
        reuse = args.reuse and path.exists()
        if not reuse:
            path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute("PRAGMA journal_mode = WAL")
        start = time.perf_counter()
        if reuse:
            sizes = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("traces", "observations", "scores")}
        else:
            migrate(db, args.schema_upto)
            sizes = fill(db, args.traces)
        built = time.perf_counter() - start
        print(f"cache: {sizes['traces']:,} traces, {sizes['observations']:,} observations, "
              f"{sizes['scores']:,} scores, {path.stat().st_size / 2**20:.0f} MiB "
              f"(built in {built:.1f} s); SQLite {sqlite3.sqlite_version}")
        scan_obs = 0.0
        print(f"{'query':60s} {'rows':>9s} {'seconds':>9s} {'x scan':>7s}")
        for title, sql in SCANS:
            seconds, _ = best_time(db, sql, args.repeat)
            scan_obs = seconds if title == "scan observations" else scan_obs
            print(f"{title:60s} {'':>9s} {seconds:9.3f} {'':>7s}")
        for title, sql in documented_queries(db):
            seconds, rows = best_time(db, sql, args.repeat)
            print(f"{title[:60]:60s} {rows:9,d} {seconds:9.3f} {seconds / scan_obs:7.2f}",
                  flush=True)
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
