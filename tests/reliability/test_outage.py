"""Reliability 5: the server goes away in the middle of a sync, then comes back.

A short real outage (5 s) in the middle of `lfharvest sync --max-wait 30`, once answering 503 to
everything (health included) and once refusing connections (the port is closed). Settings:
breaker_failures = 5, breaker_probe_base_seconds = 1, cap 2 s.
  - the breaker opens after the configured failures: data requests that failed during the
    outage <= breaker_failures + the requests already in flight;
  - at most one probe per interval: health probes during the outage at least 1 s apart (503: on
    the server's log; refused connections: connect() calls of lfharvest, traced with strace);
  - total requests <= 1.1 x the same sync without an outage;
  - it resumes by itself: exit 0 and the database equals the server's truth.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from reliability_support import (EXIT_OK, HEALTH_PATH, Workspace, assert_no_secret, binary,
                                 compare_with_truth, report, settings, start_fake,
                                 wall_to_monotonic)

OUTAGE_S = 5.0
FAILURES = 5
PROBE_BASE_S = 1
IN_FLIGHT = 2
LIMITS = {"requests_per_second": 100, "max_in_flight": IN_FLIGHT, "observation_page_size": 5}
RETRY = {"breaker_failures": FAILURES, "breaker_probe_base_seconds": PROBE_BASE_S,
         "breaker_probe_cap_seconds": 2, "backoff_base_ms": 200, "backoff_cap_seconds": 2}
CONNECT = re.compile(r"^(\d+) +(\d+\.\d+) connect\(.*sin_port=htons\((\d+)\).*= (-?\d+)")


class OutageTest(unittest.TestCase):
    def test_outage_503_and_refused(self) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="lfh-rel-outage-"))
        self.addCleanup(shutil.rmtree, scratch, True)
        with start_fake(traces=300, annotated_fraction=0.8, seed=53) as fake, \
                contextlib.ExitStack() as stack:
            workspaces = []

            def workspace() -> Workspace:
                ws = stack.enter_context(Workspace(fake))
                ws.write_config(settings(limits=LIMITS, retry=RETRY))
                workspaces.append(ws)
                return ws

            # The same sync without an outage.
            ws = workspace()
            fake.reset_stats()
            result = ws.run("sync")
            self.assertEqual(result.rc, EXIT_OK, result.describe())
            baseline = fake.stats()["requests_total"]
            report("outage.requests_without_outage", baseline)

            for mode in ("503", "refuse"):
                ws = workspace()
                fake.reset_stats()
                trace_log = scratch / f"connect-{mode}.strace"
                prefix = (["strace", "-f", "-qq", "-ttt", "-e", "trace=connect", "-e",
                           "signal=none", "-o", str(trace_log)] if mode == "refuse" and
                          shutil.which("strace") else [])
                err = open(ws.dir / f"outage-{mode}.err", "wb")
                process = subprocess.Popen(
                    [*prefix, binary(), *ws.argv("sync", "--max-wait", "30")], env=ws.env(),
                    cwd=ws.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
                # Wait until the trace phase is well under way, then take the server away.
                deadline = time.monotonic() + 60
                while fake.stats()["requests_total"] < baseline // 3:
                    self.assertIsNone(process.poll(), "the sync ended before the outage")
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
                outage_wall = time.time()
                outage_start = time.monotonic()
                fake.outage(OUTAGE_S, mode)
                outage_end = outage_start + OUTAGE_S
                rc = process.wait(timeout=120)
                err.close()
                stderr = (ws.dir / f"outage-{mode}.err").read_text(errors="replace")
                self.assertEqual(rc, EXIT_OK, stderr[-3000:])
                stats = fake.stats()
                total = stats["requests_total"]
                during = [r for r in stats["requests"] if outage_start <= r["t"] <= outage_end]
                data_failed = [r for r in during
                               if r["path"] != HEALTH_PATH and r["status"] == 503]
                if mode == "503":
                    probes = [r["t"] for r in during if r["path"] == HEALTH_PATH]
                else:
                    # The connects that fail at once open the breaker; the later ones are probes.
                    attempts = self.connects(trace_log, fake.port, outage_wall, OUTAGE_S)
                    burst = [t for t in attempts if attempts and t - attempts[0] < 0.5]
                    probes = attempts[len(burst):]
                    report(f"outage.{mode}.connects_failed_before_breaker_opened", len(burst))
                    self.assertGreater(len(attempts), 0, "no connect traced during the outage")
                    self.assertLessEqual(len(burst), FAILURES + IN_FLIGHT - 1)
                gaps = [round(b - a, 2) for a, b in zip(probes, probes[1:])]
                resumed = [r["t"] for r in stats["requests"] if r["t"] > outage_end]
                report(f"outage.{mode}.requests", f"{total} ({total / baseline:.2f}x the run "
                                                  f"without outage)")
                if mode == "503":
                    report(f"outage.{mode}.data_requests_failed_before_breaker_opened",
                           len(data_failed))
                report(f"outage.{mode}.probes_during_outage", len(probes))
                report(f"outage.{mode}.probe_gaps_s", gaps)
                report(f"outage.{mode}.resumed_after_outage_end_s",
                       round(min(resumed) - outage_end, 2) if resumed else None)
                self.assertLessEqual(total, 1.1 * baseline)
                if mode == "503":
                    self.assertLessEqual(len(data_failed), FAILURES + IN_FLIGHT - 1)
                    self.assertGreater(len(probes), 0)
                self.assertLessEqual(len(probes), OUTAGE_S / PROBE_BASE_S + 1)
                for gap in gaps:
                    self.assertGreaterEqual(gap, PROBE_BASE_S * 0.95, f"probes too close: {gaps}")
                self.assertIn("circuit breaker open", stderr)
                problems, _ = compare_with_truth(ws.db, fake.truth())
                self.assertEqual(problems, [], "\n".join(problems[:5]))
            assert_no_secret(self, "outage", fake, workspaces)

    @staticmethod
    def connects(log: Path, port: int, start_wall: float, seconds: float) -> list[float]:
        """Times (monotonic) of lfharvest's connect() calls to the server while it was closed."""
        if not log.exists():
            return []
        times = []
        for line in log.read_text(errors="replace").splitlines():
            match = CONNECT.match(line)
            if match and int(match.group(3)) == port:
                at = float(match.group(2))
                if start_wall <= at <= start_wall + seconds:
                    times.append(wall_to_monotonic(at))
        return times


if __name__ == "__main__":
    unittest.main()
