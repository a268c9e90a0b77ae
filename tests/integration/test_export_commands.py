"""The export command line people script against: exports that match nothing say why, named
exports take command-line flags, incremental runs never clobber the full export, a closed
standard output is a normal end, --dry-run writes nothing, and `lfharvest scores` shows what the
cache holds. Every case checks the exit code and the message."""

from __future__ import annotations

import json
import shlex
import subprocess
import unittest
from pathlib import Path

from lfh_testlib import (EXIT_CONFIG, EXIT_OK, EXIT_USAGE, FAST_LIMITS, FakeLangfuse, Workspace,
                         binary, db_rows, sync_until_done)

EXIT_EMPTY = 65  # --fail-empty


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class ExportCommandsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = FakeLangfuse(traces=300, seed=14)
        cls.fake.__enter__()
        cls.ws = Workspace(cls.fake)
        cls.ws.write_config({"limits": FAST_LIMITS})
        runs = sync_until_done(cls.ws, 5)
        assert runs[-1].rc == EXIT_OK, runs[-1].describe()
        # The truth, read the way a user would.
        cls.good = db_rows(cls.ws.db, "SELECT count(DISTINCT s.trace_id) FROM scores s JOIN traces t"
                           " USING (project_id, trace_id) WHERE s.name = 'quality' AND"
                           " s.string_value = 'Good' AND s.deleted_at IS NULL AND t.state = 'done'"
                           " AND s.source = 'ANNOTATION'")[0][0]
        assert cls.good > 10

    @classmethod
    def tearDownClass(cls) -> None:
        cls.ws.__exit__(None, None, None)
        cls.fake.__exit__(None, None, None)

    def export(self, *args: str):
        return self.ws.run("export", *args, base_url=False)

    def out(self, name: str) -> Path:
        return self.ws.dir / name

    # -- exports that match nothing ----------------------------------------------------------

    def test_misspelled_score_name_says_which_names_exist(self) -> None:
        r = self.export("--format", "jsonl", "--out", str(self.out("x.jsonl")),
                        "--score-name", "qualty")
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertIn("exported 0 records", r.stderr)
        self.assertIn("nothing exported: no score named 'qualty'; names: ", r.stderr)
        self.assertIn("quality", r.stderr.split("names: ", 1)[1])

    def test_fail_empty_gives_its_own_exit_code(self) -> None:
        r = self.export("--format", "jsonl", "--out", str(self.out("x.jsonl")),
                        "--score-name", "qualty", "--fail-empty")
        self.assertEqual(r.rc, EXIT_EMPTY, r.describe())
        ok = self.export("--format", "jsonl", "--out", str(self.out("y.jsonl")),
                         "--score-name", "quality", "--fail-empty")
        self.assertEqual(ok.rc, EXIT_OK, ok.describe())

    def test_values_are_case_sensitive_and_one_per_flag(self) -> None:
        r = self.export("--format", "jsonl", "--out", str(self.out("x.jsonl")),
                        "--score-name", "quality", "--value", "good")
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertIn("no value 'good': values are case-sensitive; did you mean 'Good'?", r.stderr)
        r = self.export("--format", "jsonl", "--out", str(self.out("x.jsonl")),
                        "--score-name", "quality", "--value", "Good,Bad")
        self.assertIn("'Good,Bad' is one value; give --value once per value "
                      "(--value Good --value Bad)", r.stderr)

    def test_source_in_any_case(self) -> None:
        path = self.out("src.jsonl")
        r = self.export("--format", "jsonl", "--out", str(path), "--score-name", "quality",
                        "--value", "Good", "--source", "annotation")
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertEqual(len(lines(path)), self.good)
        bad = self.export("--format", "jsonl", "--out", str(path), "--source", "annotations")
        self.assertEqual(bad.rc, EXIT_CONFIG, bad.describe())
        self.assertIn("unknown score source 'annotations' (ANNOTATION, API, EVAL; any case)",
                      bad.stderr)
        self.assertNotIn("export: export:", bad.stderr)

    def test_kto_without_positive_says_so(self) -> None:
        r = self.export("--format", "kto", "--out", str(self.out("k.jsonl")),
                        "--score-name", "quality")
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertIn("kto_positive_not_set", r.stderr)
        self.assertIn("kto needs --positive VALUE to label CATEGORICAL scores (values: Bad, Good)",
                      r.stderr)

    # -- named exports -----------------------------------------------------------------------

    def named_config(self, name: str, out: Path, **extra) -> Path:
        table = {"name": name, "format": "jsonl", "out": str(out), "score_names": ["quality"],
                 "values": ["Bad"], **extra}
        path = self.ws.dir / f"{name}.toml"
        return self.ws.write_config({"limits": FAST_LIMITS, "export": [table]}, path)

    def test_named_export_takes_out_and_value_from_the_command_line(self) -> None:
        config_out = self.out("named-config.jsonl")
        config = self.named_config("goodset", config_out)
        cli_out = self.out("named-cli.jsonl")
        r = self.ws.run_raw(["export", "goodset", "--config", str(config), "--db",
                             str(self.ws.db), "--out", str(cli_out), "--value", "Good"])
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertFalse(config_out.exists())
        records = lines(cli_out)
        self.assertEqual(len(records), self.good)
        self.assertTrue(all(rec["string_value"] == "Good" for rec in records))
        # --all with --out would send every export to one file: refused.
        r = self.ws.run_raw(["export", "--all", "--config", str(config), "--db", str(self.ws.db),
                             "--out", str(cli_out)])
        self.assertEqual(r.rc, EXIT_USAGE, r.describe())
        self.assertIn("--out names one file", r.stderr)

    def test_named_export_source_in_any_case(self) -> None:
        out = self.out("named-lower.jsonl")
        config = self.named_config("lowersource", out, source="annotation", values=["Good"])
        r = self.ws.run_raw(["export", "lowersource", "--config", str(config), "--db",
                             str(self.ws.db)])
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertEqual(len(lines(out)), self.good)

    # -- --json ------------------------------------------------------------------------------

    def test_json_report_on_stdout(self) -> None:
        path = self.out("json-report.jsonl")
        r = self.export("--format", "jsonl", "--out", str(path), "--score-name", "quality",
                        "--value", "Good", "--json")
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        report = json.loads(r.stdout)
        self.assertEqual(report["exit_code"], EXIT_OK)
        [one] = report["exports"]
        self.assertEqual(one["records"], self.good)
        self.assertEqual(one["records"], len(lines(path)))
        self.assertEqual(one["out"], str(path))
        self.assertEqual(one["nothing_exported_because"], [])
        empty = self.export("--format", "jsonl", "--out", str(self.out("none.jsonl")),
                            "--score-name", "qualty", "--json", "--fail-empty")
        self.assertEqual(empty.rc, EXIT_EMPTY, empty.describe())
        report = json.loads(empty.stdout)
        self.assertEqual(report["exit_code"], EXIT_EMPTY)
        self.assertEqual(report["exports"][0]["records"], 0)
        self.assertTrue(any("no score named 'qualty'" in why
                            for why in report["exports"][0]["nothing_exported_because"]))
        # The dataset and the report cannot share standard output.
        clash = self.export("--format", "jsonl", "--out", "-", "--json")
        self.assertEqual(clash.rc, EXIT_USAGE, clash.describe())
        self.assertEqual(clash.stdout, "")

    def test_incremental_with_nothing_new_never_clobbers_the_full_export(self) -> None:
        full = self.out("inc.jsonl")
        config = self.named_config("inc", full)
        base = ["--config", str(config), "--db", str(self.ws.db)]
        first = self.ws.run_raw(["export", "--all", *base])
        self.assertEqual(first.rc, EXIT_OK, first.describe())
        full_bytes = full.read_bytes()
        self.assertTrue(full_bytes)
        second = self.ws.run_raw(["export", "--all", "--incremental", *base])
        self.assertEqual(second.rc, EXIT_OK, second.describe())
        self.assertIn("nothing new since the last run", second.stderr)
        self.assertEqual(full.read_bytes(), full_bytes)
        self.assertEqual(sorted(p.name for p in self.ws.dir.glob("inc.delta-*")), [])
        scripted = self.ws.run_raw(["export", "--all", "--incremental", "--fail-empty", *base])
        self.assertEqual(scripted.rc, EXIT_EMPTY, scripted.describe())
        self.assertEqual(full.read_bytes(), full_bytes)

    # -- standard output, dry runs -------------------------------------------------------------

    def test_closed_standard_output_is_a_normal_end(self) -> None:
        argv = [binary(), *self.ws.argv("export", "--format", "openai-chat", "--out", "-",
                                        base_url=False)]
        # As a user types it. Whether head is gone before the last write depends on timing
        # (a small export fits the pipe buffer): either way a normal end.
        script = f"set -o pipefail; {shlex.join(argv)} | head -c 100 >/dev/null"
        r = subprocess.run(["bash", "-c", script], env=self.ws.env(), capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertNotIn("Broken pipe", r.stderr)
        # A reader that is gone before the first byte: every write fails with EPIPE.
        process = subprocess.Popen(argv, env=self.ws.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        process.stdout.close()
        _, err = process.communicate(timeout=120)
        stderr = err.decode(errors="replace")
        self.assertEqual(process.returncode, EXIT_OK, stderr)
        self.assertNotIn("Broken pipe", stderr)
        self.assertIn("standard output was closed after", stderr)

    def test_dry_run_counts_and_writes_nothing(self) -> None:
        path = self.out("dry.jsonl")
        r = self.export("--format", "openai-dpo", "--out", str(path), "--dry-run")
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        self.assertRegex(r.stderr, r"dry run: would write \d+ records? \([^)]*\) to ")
        self.assertIn("would have skipped", r.stderr)
        self.assertIn("wrong_score_type", r.stderr)
        self.assertFalse(path.exists())
        self.assertEqual(list(self.ws.dir.glob("dry.jsonl*")), [])

    # -- lfharvest scores ----------------------------------------------------------------------

    def test_scores_lists_names_sources_types_values(self) -> None:
        r = self.ws.run("scores", "--json", base_url=False)
        self.assertEqual(r.rc, EXIT_OK, r.describe())
        catalog = json.loads(r.stdout)["scores"]
        truth = {(n, s, t): c for n, s, t, c in db_rows(
            self.ws.db, "SELECT name, source, data_type, count(*) FROM scores WHERE"
            " deleted_at IS NULL AND trace_id IS NOT NULL GROUP BY 1, 2, 3")}
        self.assertEqual({(e["name"], e["source"], e["data_type"]): e["scores"] for e in catalog},
                         truth)
        quality = next(e for e in catalog if e["name"] == "quality" and e["source"] == "ANNOTATION")
        self.assertEqual({v["value"] for v in quality["values"]}, {"Good", "Bad"})
        text = self.ws.run("scores", base_url=False)
        self.assertEqual(text.rc, EXIT_OK, text.describe())
        self.assertRegex(text.stdout, r"quality\s+ANNOTATION\s+CATEGORICAL\s+\d+")
        self.assertIn("Good (", text.stdout)


if __name__ == "__main__":
    unittest.main()
