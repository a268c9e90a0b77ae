#!/usr/bin/env python3
"""Every export format x pick through third-party consumers: 0 rejected records.

The checker (a folder `consumers/` kept beside the repository, in `shared/`) feeds each file to
the `openai` package's types, real chat templates rendered by @huggingface/jinja, DuckDB, and
TRL's, Axolotl's and LLaMA-Factory's loader rules. This test copies it into the build tree, runs
`npm ci` there once (again only when package-lock.json changes), then checks:

  1. the golden files (tests/unit/export/golden/: the exports of the hand-built fixture, and
     the two files of its options export);
  2. fresh exports of a sync from the fake Langfuse server, every format x pick x dialect.

The checker has no trl-dpo mode: each TRL preference row is checked as the two KTO rows it
stands for ({prompt, completion: chosen, label: true} and the rejected side, label false); TRL's
DPO trainer applies the same conversational rules (apply_chat_template, the generation prompt
being a prefix of prompt + answer) that the KTO consumer checks.

Without the checker folder the test fails when CI=true and is skipped (exit 77) otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))

from lfh_testlib import FAST_LIMITS, FakeLangfuse, Workspace, sync_until_done  # noqa: E402

SKIP = 77
GOLDEN = SOURCE_DIR / "tests" / "unit" / "export" / "golden"
PICKS = ("last-generation", "all-generations", "root")
# (file prefix, lfharvest format, extra export flags, checker format, checker flags)
VARIANTS = (
    ("json", "json", (), "json", ()),
    ("jsonl", "jsonl", (), "jsonl", ()),
    ("openai-chat", "openai-chat", (), "openai-chat", ()),
    ("openai-dpo", "openai-dpo", (), "openai-dpo", ()),
    ("kto", "kto", ("--positive", "Good"), "kto", ()),
    ("sharegpt", "sharegpt", ("--sharegpt-dialect", "llamafactory"), "sharegpt",
     ("--sharegpt-for", "llamafactory")),
    ("sharegpt-axolotl", "sharegpt", ("--sharegpt-dialect", "axolotl"), "sharegpt",
     ("--sharegpt-for", "axolotl")),
    ("trl-dpo", "trl-dpo", (), "kto", ()),
)


def log(message: str) -> None:
    print(message, flush=True)


def prepare_checker(shared: Path, work: Path) -> Path:
    """Copies the checker into the build tree and installs its packages once."""
    if not (shared / "check.mjs").is_file():
        message = f"consumer checker not found at {shared} (expected shared/consumers beside the repository)"
        if os.environ.get("CI", "").lower() == "true":
            log("FAIL: " + message)
            sys.exit(1)
        log("SKIP: " + message)
        sys.exit(SKIP)
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            log(f"FAIL: {tool} not found (scripts/bootstrap.sh installs Debian's nodejs and npm)")
            sys.exit(1)
    lock = (shared / "package-lock.json").read_bytes()
    stamp = work / ".npm-ci-done"
    digest = hashlib.sha256(lock).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (work / "node_modules").is_dir():
        return work
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(shared, work)
    for path in [work, *work.rglob("*")]:  # the source is read-only; the copy must not be
        path.chmod(path.stat().st_mode | 0o200)
    started = time.monotonic()
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, check=True)
    log(f"npm ci in {work}: {time.monotonic() - started:.1f} s")
    stamp.write_text(digest)
    return work


def trl_dpo_as_kto(path: Path, out: Path) -> None:
    """Each {prompt, chosen, rejected[, tools]} row as two KTO rows (see the module comment)."""
    with path.open(encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            for side, label in (("chosen", True), ("rejected", False)):
                kto = {"prompt": row["prompt"], "completion": row[side], "label": label}
                if "tools" in row:
                    kto["tools"] = row["tools"]
                dst.write(json.dumps(kto, ensure_ascii=False) + "\n")


def check(checker: Path, fmt: str, file: Path, flags: tuple[str, ...], scratch: Path) -> dict:
    target = file
    if file.name.startswith("trl-dpo."):
        target = scratch / (file.name + ".as-kto.jsonl")
        trl_dpo_as_kto(file, target)
    process = subprocess.run(["node", str(checker / "check.mjs"), "--format", fmt, str(target),
                              "--max-reasons", "3", *flags],
                             capture_output=True, text=True)
    try:
        summary = json.loads(process.stdout)
    except json.JSONDecodeError:
        summary = {"ok": False, "rejected": None, "records": None,
                   "file_errors": [process.stderr.strip()[-2000:]]}
    summary["exit"] = process.returncode
    summary["label"] = str(file)
    return summary


def failures_of(summary: dict) -> str:
    reasons = []
    for name, consumer in (summary.get("consumers") or {}).items():
        for reason in consumer.get("reject_reasons", []):
            reasons.append(f"  {name}: {reason['reason']} x{reason['findings']} "
                           f"{json.dumps(reason.get('examples', [])[:1], ensure_ascii=False)[:400]}")
    for error in summary.get("file_errors") or []:
        reasons.append(f"  file error: {error}")
    return "\n".join(reasons)


def export_fake_data(workspace: Workspace, out_dir: Path) -> list[tuple[str, Path, tuple[str, ...]]]:
    files = []
    for prefix, fmt, flags, checker_format, checker_flags in VARIANTS:
        for pick in PICKS:
            extension = "json" if fmt == "json" else "jsonl"
            path = out_dir / f"{prefix}.{pick}.{extension}"
            result = workspace.run("export", "--format", fmt, "--pick", pick, "--out", str(path),
                                   *flags, base_url=False)
            if result.rc != 0:
                raise SystemExit(f"FAIL: export failed\n{result.describe()}")
            log(f"  {path.name}: {result.stderr.strip().splitlines()[-1]}")
            files.append((checker_format, path, checker_flags))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", required=True, type=Path, help="the shared/consumers folder")
    parser.add_argument("--work", required=True, type=Path, help="its copy in the build tree")
    parser.add_argument("--traces", type=int, default=400)
    args = parser.parse_args()
    checker = prepare_checker(args.shared.resolve(), args.work.resolve())

    jobs: list[tuple[str, Path, tuple[str, ...]]] = []
    for prefix, fmt, _flags, checker_format, checker_flags in VARIANTS:
        for pick in PICKS:
            extension = "json" if fmt == "json" else "jsonl"
            golden = GOLDEN / f"{prefix}.{pick}.{extension}"
            if not golden.is_file():
                log(f"FAIL: golden file missing: {golden}")
                return 1
            jobs.append((checker_format, golden, checker_flags))
    # The options' golden files (a split, a size limit, merged turns): both files of the split.
    for name in ("options.jsonl", "options.validation.jsonl"):
        jobs.append(("openai-chat", GOLDEN / "options" / name, ()))

    with tempfile.TemporaryDirectory(prefix="lfh-consumers-") as scratch_name:
        scratch = Path(scratch_name)
        log(f"syncing {args.traces} traces from the fake Langfuse server")
        with FakeLangfuse(traces=args.traces, seed=13) as fake, Workspace(fake) as ws:
            ws.write_config({"limits": FAST_LIMITS})
            runs = sync_until_done(ws, 5)
            if runs[-1].rc != 0:
                log("FAIL: sync\n" + runs[-1].describe())
                return 1
            out_dir = scratch / "fake"
            out_dir.mkdir()
            jobs += export_fake_data(ws, out_dir)
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                summaries = list(pool.map(lambda job: check(checker, job[0], job[1], job[2], scratch),
                                          jobs))

    bad = 0
    for summary in summaries:
        ok = summary.get("ok") and summary.get("rejected") == 0 and summary["exit"] == 0
        log(f"{'ok  ' if ok else 'FAIL'} {summary['label']}: {summary.get('records')} records, "
            f"{summary.get('rejected')} rejected, {summary.get('warned')} warned")
        if not ok:
            bad += 1
            log(failures_of(summary))
        if summary.get("records") == 0 and "golden" not in summary["label"]:
            log(f"     (no records: this file proves nothing about its format)")
    log(f"{len(summaries) - bad}/{len(summaries)} files accepted by every consumer")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
