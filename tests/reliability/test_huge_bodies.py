"""Reliability 7: 1 GB response bodies, with Content-Length and chunked.

max_response_mib = 16. One trace's observation requests all answer a valid 1 GB JSON body
(streamed by the fake server), once with Content-Length and once chunked (libcurl's own file-size
limit does not stop a chunked body: lfharvest counts the bytes itself).
  - the body is aborted at the cap: the error names the cap; with Content-Length before any body
    byte is kept, chunked within one write callback (16 KiB) past the cap;
  - the trace is held as big and asked again for 1 observation per page, then marked failed
    with reason `too_large` (page sizes asked for: 10, 1);
  - lfharvest's peak RSS (getrusage of the child) grows by less than the cap + 20 MiB compared
    with the same sync without the huge body;
  - every other trace is fetched as usual.
"""

from __future__ import annotations

import contextlib
import re
import unittest

from reliability_support import (EXIT_OK, OBSERVATIONS_PATH, Workspace, assert_no_secret,
                                 compare_with_truth, db_rows, query_of, report, run_measured,
                                 settings, start_fake, trace_of)

CAP_MIB = 16
HUGE = 1_000_000_000
LIMITS = {"requests_per_second": 200, "max_in_flight": 2, "observation_page_size": 10,
          "max_response_mib": CAP_MIB}


class HugeBodyTest(unittest.TestCase):
    def test_one_gigabyte_bodies(self) -> None:
        with start_fake(traces=80, annotated_fraction=0.8, seed=71) as fake, \
                contextlib.ExitStack() as stack:
            workspaces = []

            def workspace() -> Workspace:
                ws = stack.enter_context(Workspace(fake))
                ws.write_config(settings(limits=LIMITS))
                workspaces.append(ws)
                return ws

            truth = fake.truth()
            traces = sorted(t for t, v in truth["traces"].items() if len(v["observations"]) >= 3)

            growths: dict[str, list[float]] = {}
            ws = workspace()
            baseline = run_measured(ws, "sync")
            self.assertEqual(baseline.rc, EXIT_OK, baseline.describe())
            report("huge.baseline_peak_rss_mib", round(baseline.max_rss_kib / 1024, 1))

            # The chunked case runs three times: how much of the growth stays resident depends on
            # the allocator's state, and the figure is the worst of the runs.
            for n, chunked in enumerate((False, True, True, True)):
                name = "chunked" if chunked else "content_length"
                target = traces[min(n, 1) * 7]
                ws = workspace()
                fake.reset_stats()
                fake.faults([{"path": "v2/observations", "query": f"traceId={target}(&|$)",
                              "mode": "huge", "bytes": HUGE, "chunked": chunked}])
                run = run_measured(ws, "sync", timeout=300)
                self.assertEqual(run.rc, EXIT_OK, run.describe())
                growth_mib = (run.max_rss_kib - baseline.max_rss_kib) / 1024
                growths.setdefault(name, []).append(round(growth_mib, 1))
                if n > 1:
                    continue  # the repeats only add a memory figure
                requests = [r for r in fake.stats()["requests"]
                            if r["path"] == OBSERVATIONS_PATH and trace_of(r) == target]
                limits = [int(query_of(r)["limit"][0]) for r in requests]
                sent_mib = max(r.get("bytes") or 0 for r in requests) / 1048576
                row = db_rows(ws.db, "SELECT state, failure_reason, page_size, last_error "
                                     "FROM traces WHERE trace_id = ?", (target,))
                self.assertEqual(len(row), 1)
                state, reason, page_size, error = row[0]
                received = re.search(r"\((\d+) bytes received", error or "")
                report(f"huge.{name}.page_sizes_asked", limits)
                report(f"huge.{name}.trace", f"{state} ({reason}), stored page_size {page_size}")
                report(f"huge.{name}.error", error)
                report(f"huge.{name}.server_sent_mib_at_most", round(sent_mib, 1))
                self.assertEqual((state, reason), ("failed", "too_large"))
                # A page over the cap is over big_response_mib too: the trace is held as big
                # at once and asked again for one observation per page (no halving walk).
                self.assertEqual(limits, [10, 1])
                self.assertIsNotNone(received, error)
                if chunked:
                    self.assertGreater(int(received.group(1)), CAP_MIB << 20)
                    self.assertLessEqual(int(received.group(1)), (CAP_MIB << 20) + 65536)
                else:
                    self.assertGreaterEqual(int(received.group(1)), HUGE)  # the announced size
                self.assertLess(sent_mib, 200, "the server kept sending: the body was not aborted")
                # Every other trace: as on the server.
                problems, figures = compare_with_truth(ws.db, truth)
                others = [p for p in problems
                          if target not in p and not p.startswith("1 annotated")]
                self.assertEqual(others, [], "\n".join(others[:5]))
                done = db_rows(ws.db, "SELECT count(*) FROM traces WHERE state = 'done'")[0][0]
                self.assertEqual(done, len(truth["traces"]) - 1)
                report(f"huge.{name}.other_traces_done", f"{done} of {len(truth['traces']) - 1}")
            for name, values in growths.items():
                report(f"huge.{name}.peak_rss_growth_mib", f"{max(values)} (runs: {values}; "
                                                           f"limit {CAP_MIB + 20})")
            assert_no_secret(self, "huge", fake, workspaces)
            for name, values in growths.items():
                self.assertLess(max(values), CAP_MIB + 20, f"{name}: peak RSS growth")


if __name__ == "__main__":
    unittest.main()
