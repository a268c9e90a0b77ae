"""Reliability 9: libFuzzer on every parser of server data and every export converter.

Builds tests/fuzz on its own with clang (-fsanitize=fuzzer,address,undefined; only the daemon/
sources the targets need are compiled) in a build folder of its own, then runs every target at
the same time for LFHARVEST_FUZZ_SECONDS (default 60) from its seed corpus in tests/fuzz/corpus/
(new inputs go to a temporary folder, the repository is never written). Fails on any crash,
sanitizer report or failed check; prints the executions of each target.

Environment: LFHARVEST_FUZZ_BUILD_DIR (default: `fuzz` beside LFHARVEST_BIN, else a temporary
folder), LFHARVEST_FUZZ_SECONDS.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from reliability_support import SOURCE_DIR, report

TARGETS = ["parsers", "langfuse_client", "http_headers", "export_formats", "chat_messages"]
SECONDS = int(os.environ.get("LFHARVEST_FUZZ_SECONDS", "60"))
FUZZ_DIR = SOURCE_DIR / "tests" / "fuzz"


def build_dir() -> Path:
    if os.environ.get("LFHARVEST_FUZZ_BUILD_DIR"):
        return Path(os.environ["LFHARVEST_FUZZ_BUILD_DIR"])
    if os.environ.get("LFHARVEST_BIN"):
        return Path(os.environ["LFHARVEST_BIN"]).resolve().parent / "fuzz"
    return Path(tempfile.gettempdir()) / f"lfharvest-fuzz-{os.getuid()}"


class FuzzTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("clang++") is None:
            raise unittest.SkipTest("clang++ is not installed (scripts/bootstrap.sh installs it)")

    def test_fuzz_targets(self) -> None:
        out = build_dir()
        started = time.monotonic()
        configure = subprocess.run(
            ["cmake", "-S", str(FUZZ_DIR), "-B", str(out), "-DCMAKE_CXX_COMPILER=clang++",
             "-DLFHARVEST_FUZZ=ON", "-DCMAKE_BUILD_TYPE="], capture_output=True, text=True)
        self.assertEqual(configure.returncode, 0,
                         configure.stdout[-3000:] + configure.stderr[-3000:])
        build = subprocess.run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2)],
                               capture_output=True, text=True)
        self.assertEqual(build.returncode, 0, build.stdout[-5000:] + build.stderr[-5000:])
        report("fuzz.build_seconds", round(time.monotonic() - started, 1))

        work = Path(tempfile.mkdtemp(prefix="lfh-rel-fuzz-"))
        self.addCleanup(shutil.rmtree, work, True)
        runs = {}
        for target in TARGETS:
            corpus = work / target
            corpus.mkdir()
            log = open(work / f"{target}.log", "wb")
            runs[target] = (subprocess.Popen(
                [str(out / f"fuzz_{target}"), f"-max_total_time={SECONDS}", "-timeout=10",
                 "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1",
                 f"-artifact_prefix={work}/{target}-", str(corpus),
                 str(FUZZ_DIR / "corpus" / target)],
                stdout=log, stderr=subprocess.STDOUT, cwd=work), log)
        results = {}
        failures = []
        for target, (process, log) in runs.items():
            rc = process.wait(timeout=SECONDS * 3 + 120)
            log.close()
            text = (work / f"{target}.log").read_text(errors="replace")
            executions = re.search(r"stat::number_of_executed_units: (\d+)", text)
            seeds = len(list((FUZZ_DIR / "corpus" / target).iterdir()))
            results[target] = {"executions": int(executions.group(1)) if executions else None,
                               "seeds": seeds, "exit": rc}
            crashed = rc != 0 or re.search(r"ERROR: |runtime error|deadly signal", text)
            if crashed:
                at = min([p for p in (text.find("==ERROR"), text.find("runtime error"))
                          if p >= 0], default=0)
                failures.append(f"fuzz_{target}: exit {rc}\n{text[max(0, at - 200):][:3000]}")
        for target, figures in results.items():
            report(f"fuzz.{target}", f"{figures['executions']} executions in {SECONDS} s from "
                                     f"{figures['seeds']} seeds, exit {figures['exit']}")
        report("fuzz.crashes", len(failures))
        report("fuzz.seconds", round(time.monotonic() - started, 1))
        self.assertEqual(failures, [], "\n\n".join(failures))
        for target, figures in results.items():
            self.assertGreater(figures["executions"] or 0, 0, target)


if __name__ == "__main__":
    unittest.main()
