"""lfharvest(1) and the bash completion cover every command, option and setting.

The lists come from the program (`lfharvest COMMAND --help`) and from the example configuration
(config/lfharvest.toml, which documents every key), so a new option or setting without a line in
the manual or the completion fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unittest

from service_testlib import SOURCE_DIR, TempDir, binary, clean_env

MAN_PAGE = SOURCE_DIR / "packaging" / "lfharvest.1"
COMPLETION = SOURCE_DIR / "packaging" / "lfharvest.bash-completion"
CONFIG = SOURCE_DIR / "config" / "lfharvest.toml"
COMMANDS = ["sync", "run", "status", "check", "retry", "reconcile", "export", "completion", "scores"]


def options_of(command: str | None) -> list[str]:
    argv = [binary(), *([command] if command else []), "--help"]
    text = subprocess.run(argv, capture_output=True, text=True, check=True,
                          env=clean_env()).stdout
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text.split("Options:")[1]
                                 .split("\n\n")[0])))


def config_keys() -> dict[str, list[str]]:
    """Section -> keys, from the example configuration (every key is shown, commented out)."""
    keys: dict[str, list[str]] = {}
    section = ""
    for line in CONFIG.read_text().splitlines():
        if match := re.match(r"^\[(\w+)\]$", line):
            section = match.group(1)
        elif line.strip() == "# [[export]]":  # the examples of named exports
            section = "export"
        elif match := re.match(r"^# ([a-z_]+) = ", line):
            if section:
                keys.setdefault(section, []).append(match.group(1))
        elif match := re.match(r"^#   ([a-z_]+)(?:, ([a-z_]+))? {2,}", line):
            keys.setdefault("export", []).extend(k for k in match.groups() if k)
    return keys


def man_text() -> str:
    """The manual as a reader sees it (roff escapes resolved)."""
    result = subprocess.run(["groff", "-man", "-Tutf8", "-P", "-cbou", "-rLL=200n",
                             str(MAN_PAGE)], capture_output=True, text=True, check=True)
    return result.stdout.replace("\u2010", "-").replace("\u2212", "-")


class ManPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if shutil.which("groff") is None:
            raise AssertionError("groff is needed to read the manual (Debian package groff-base)")
        cls.text = man_text()

    def test_renders_without_warnings(self) -> None:
        result = subprocess.run(["groff", "-man", "-ww", "-z", str(MAN_PAGE)],
                                capture_output=True, text=True)
        self.assertEqual(result.stderr.strip(), "")
        self.assertEqual(result.returncode, 0)

    def test_every_command_and_option(self) -> None:
        missing = []
        for command in COMMANDS:
            if not re.search(rf"lfharvest {command}\b", self.text):
                missing.append(command)
            missing += [f"{command} {o}" for o in options_of(command) if o not in self.text]
        missing += [o for o in options_of(None) if o not in self.text]
        self.assertEqual(missing, [])

    def test_every_setting(self) -> None:
        keys = config_keys()
        self.assertGreater(sum(len(v) for v in keys.values()), 40, keys)
        missing = [f"[{section}] {key}" for section, names in keys.items() for key in names
                   if not re.search(rf"(?m)^ +(?:\w+, )?{key}\b", self.text)]
        missing += [f"[{section}]" for section in keys if f"[{section}]" not in self.text]
        self.assertEqual(missing, [])

    def test_every_exit_status_and_environment_variable(self) -> None:
        help_text = subprocess.run([binary(), "--help"], capture_output=True, text=True,
                                   env=clean_env()).stdout
        for code in re.findall(r"\b(\d\d) [a-z]", help_text.split("Exit codes:")[1]):
            self.assertRegex(self.text, rf"(?m)^ +{code}\b")
        for variable in ("LANGFUSE_BASE_URL", "LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY",
                         "LANGFUSE_SECRET_KEY", "LFHARVEST_SECRET_KEY_FILE", "LFHARVEST_DB",
                         "LFHARVEST_LOG_LEVEL", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY",
                         "JOURNAL_STREAM", "NOTIFY_SOCKET"):
            self.assertIn(variable, self.text)


class CompletionTest(unittest.TestCase):
    def complete(self, line: str) -> list[str]:
        """Candidates bash would offer for the last word of `line`."""
        words = line.split(" ")
        script = (f"source {COMPLETION}\n"
                  f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
                  f"COMP_CWORD={len(words) - 1}\nCOMP_LINE={line!r}\nCOMP_POINT={len(line)}\n"
                  "_lfharvest\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
        result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script],
                                capture_output=True, text=True, check=True)
        return [w for w in result.stdout.splitlines() if w]

    def test_commands(self) -> None:
        self.assertEqual(sorted(self.complete("lfharvest ")),
                         sorted([*COMMANDS, "--help", "--version"]))

    def test_every_option_of_every_command(self) -> None:
        for command in COMMANDS:
            offered = set(self.complete(f"lfharvest {command} --"))
            missing = set(options_of(command)) - offered
            self.assertEqual(missing, set(), command)

    def test_values(self) -> None:
        self.assertEqual(self.complete("lfharvest export --format openai-"),
                         ["openai-chat", "openai-dpo"])
        self.assertIn("debug", self.complete("lfharvest sync --log-level d"))

    def test_named_exports_from_the_config(self) -> None:
        tmp = TempDir()
        config = tmp.__enter__() / "lfharvest.toml"
        self.addCleanup(tmp.__exit__, None, None, None)
        config.write_text('[[export]]\nname = "good-chat"\nformat = "jsonl"\nout = "-"\n'
                          '[[export]]\nname = "good-kto"\nformat = "kto"\nout = "-"\n')
        self.assertEqual(sorted(self.complete(f"lfharvest export --config {config} good")),
                         ["good-chat", "good-kto"])


if __name__ == "__main__":
    unittest.main()
