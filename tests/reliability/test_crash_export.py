"""Reliability 2: SIGKILL during `lfharvest export` at 50+ random moments.

A database of about a thousand records, 24 of them about 1 MB, is exported over and over
to the same file while the content to write alternates between two variants (one score comment
differs). Each run is killed after a random delay: half of them anywhere in the export, half
around its end (the fsync, the rename, the manifest). After every kill the target file is whole:
byte for byte the previous content or the new one (SHA-256), never absent once written, never
a prefix; its manifest is valid JSON naming one of the two hashes. Temp files left by killed
runs are removed by the next run that gets going, and none is left at the end.

Figures: kills, torn files (0), target states seen after kills (old/new), most temp files seen at
once, stale temp files left at the end (0).
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
import time
import unittest
from pathlib import Path

from reliability_support import (EXIT_OK, Workspace, assert_no_secret, report, settings,
                                 start_fake)

SEED = 7331
KILLS = 50
BIG_RECORDS = 24
BIG_BYTES = 1_000_000


def sha256(path: Path) -> str | None:
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class CrashExportTest(unittest.TestCase):
    def test_sigkill_during_export(self) -> None:
        rng = random.Random(SEED)
        with start_fake(traces=700, annotated_fraction=0.9, seed=31) as fake, \
                Workspace(fake) as ws:
            ws.write_config(settings(limits={"requests_per_second": 1000}))
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            score_id = self.prepare_database(ws.db)

            out = ws.dir / "exports" / "dataset.json"
            out.parent.mkdir()
            args = ["--format", "json", "--out", str(out), "--pick", "last-generation"]

            # The two contents, written once without interruption.
            expected: dict[str, str] = {}
            durations = []
            for variant in ("A", "B"):
                self.set_variant(ws.db, score_id, variant)
                started = time.monotonic()
                result = ws.run("export", *args)
                durations.append(time.monotonic() - started)
                self.assertEqual(result.rc, EXIT_OK, result.describe())
                expected[variant] = sha256(out)
            self.assertNotEqual(expected["A"], expected["B"])
            size = out.stat().st_size
            report("crash_export.file", f"{size / 1048576:.1f} MiB, export takes "
                                        f"{min(durations):.2f}-{max(durations):.2f} s")

            known = set(expected.values())
            current = expected["B"]
            kills = completed = torn = 0
            seen = {"old": 0, "new": 0}
            most_temp = 0
            shortest, longest = min(durations), max(durations)
            variant = "A"
            while kills < KILLS:
                variant = "B" if variant == "A" else "A"
                self.set_variant(ws.db, score_id, variant)
                process = ws.popen("export", *args)
                try:
                    # Most kills land inside the export or near its end; one run in five
                    # is given time to finish, so both outcomes happen however loaded the
                    # machine is (the durations above were measured once, under its load).
                    pick = rng.random()
                    delay = (rng.uniform(0.02, shortest) if pick < 0.4 else
                             rng.uniform(0.8 * shortest, 1.2 * longest) if pick < 0.8 else
                             3 * longest)
                    rc = process.wait(timeout=delay)
                    completed += 1
                    self.assertEqual(rc, EXIT_OK, f"export exit {rc}")
                    self.assertEqual(sha256(out), expected[variant])
                    self.assertEqual(self.temp_files(out), [], "temp files after a clean run")
                    current = expected[variant]
                    continue
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    kills += 1
                now = sha256(out)
                if now not in known:
                    torn += 1
                self.assertIn(now, {current, expected[variant]}, f"torn file after kill {kills}")
                seen["old" if now == current else "new"] += 1
                current = now
                manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
                self.assertIn(manifest.get("sha256"), known, "manifest of another content")
                most_temp = max(most_temp, len(self.temp_files(out)))

            left_after_kills = len(self.temp_files(out))
            result = ws.run("export", *args)
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            left = self.temp_files(out)
            report("crash_export.kills", kills)
            report("crash_export.completed_between_kills", completed)
            report("crash_export.torn_files", torn)
            report("crash_export.target_after_kill", seen)
            report("crash_export.temp_files_most_at_once", most_temp)
            report("crash_export.stale_temp_files", f"{left_after_kills} after the last kill, "
                                                    f"{len(left)} after the next run")
            self.assertEqual(torn, 0)
            self.assertEqual(left, [])
            self.assertGreater(seen["old"], 0)
            self.assertGreater(seen["new"] + completed, 0)
            assert_no_secret(self, "crash_export", fake, [ws])

    @staticmethod
    def temp_files(out: Path) -> list[str]:
        return sorted(p.name for p in out.parent.iterdir() if ".tmp." in p.name)

    @staticmethod
    def prepare_database(db: Path) -> str:
        """Makes BIG_RECORDS exported records about 1 MB each; returns the score whose comment
        tells the two variants apart."""
        connection = sqlite3.connect(str(db))
        with connection:
            rows = connection.execute(
                "SELECT o.observation_id FROM observations o JOIN traces t USING (project_id, "
                "trace_id) WHERE o.type = 'GENERATION' AND t.state = 'done' AND o.start_time = ("
                " SELECT max(start_time) FROM observations o2 WHERE o2.trace_id = o.trace_id"
                " AND o2.type = 'GENERATION') ORDER BY o.observation_id LIMIT ?",
                (BIG_RECORDS,)).fetchall()
            for (observation_id,) in rows:
                connection.execute(
                    "UPDATE observations SET input_json = json_array(json_object('role', 'user', "
                    "'content', substr(replace(hex(zeroblob(?)), '00', 'long text '), 1, ?))) "
                    "WHERE observation_id = ?", (BIG_BYTES // 10, BIG_BYTES, observation_id))
            score_id = connection.execute(
                "SELECT score_id FROM scores s JOIN traces t USING (project_id, trace_id) "
                "WHERE t.state = 'done' AND s.source = 'ANNOTATION' ORDER BY s.trace_id "
                "LIMIT 1").fetchone()[0]
        connection.close()
        return score_id

    @staticmethod
    def set_variant(db: Path, score_id: str, variant: str) -> None:
        connection = sqlite3.connect(str(db), timeout=10)
        with connection:
            connection.execute("UPDATE scores SET comment = ? WHERE score_id = ?",
                               (f"variant {variant}", score_id))
        connection.close()


if __name__ == "__main__":
    unittest.main()
