"""The systemd unit: generated from systemd/lfharvest.service.in, verified by systemd itself.

- `systemd-analyze verify` prints nothing at all (any line is a failure);
- `systemd-analyze security --offline=true` rates the unit 2.0 or better (lower is better);
- the unit keeps the contract the program relies on (notify, watchdog, credential name, state
  directory, exit codes that must not restart it);
- `cmake --install` writes a unit that names the binary where it was installed.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import unittest
from pathlib import Path

from service_testlib import SOURCE_DIR, TempDir, binary, build_dir, figure

TEMPLATE = SOURCE_DIR / "systemd" / "lfharvest.service.in"
MAN_PAGE = SOURCE_DIR / "packaging" / "lfharvest.1"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        raise AssertionError("systemd-analyze not found: install the systemd package "
                             "(scripts/bootstrap.sh does)")
    return path


def configure_unit(folder: Path, bindir: str) -> Path:
    """The unit for a binary in `bindir`, written by the same CMake script the install uses."""
    output = folder / "lfharvest.service"
    subprocess.run(["cmake", f"-DLFHARVEST_UNIT_BINDIR={bindir}",
                    f"-DLFHARVEST_UNIT_TEMPLATE={TEMPLATE}", f"-DLFHARVEST_UNIT_OUTPUT={output}",
                    "-P", str(SOURCE_DIR / "cmake" / "ConfigureUnit.cmake")],
                   check=True, capture_output=True, text=True)
    return output


def man_path(folder: Path) -> str:
    """A MANPATH holding lfharvest(1), for the Documentation=man: check of verify."""
    (folder / "man" / "man1").mkdir(parents=True)
    shutil.copy(MAN_PAGE, folder / "man" / "man1" / "lfharvest.1")
    return str(folder / "man")


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value assigned (systemd keys may repeat)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False,
                                       dict_type=_MultiDict)
    parser.optionxform = str  # keep the case of the keys
    parser.read(path)
    return {section: {key: values.split("\n") for key, values in parser[section].items()}
            for section in parser.sections()}


class _MultiDict(dict):
    """Joins repeated keys with newlines instead of letting the last one win."""

    def __setitem__(self, key, value):  # type: ignore[no-untyped-def]
        if key in self and isinstance(value, list) and isinstance(self[key], list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


class UnitTest(unittest.TestCase):
    def setUp(self) -> None:
        self.analyze = systemd_analyze()
        self.tmp_cm = TempDir()
        self.tmp = self.tmp_cm.__enter__()
        self.addCleanup(self.tmp_cm.__exit__, None, None, None)
        self.unit = configure_unit(self.tmp, str(Path(binary()).resolve().parent))

    def test_verify_prints_nothing(self) -> None:
        env = dict(os.environ, MANPATH=man_path(self.tmp), SYSTEMD_LOG_LEVEL="info")
        result = subprocess.run([self.analyze, "verify", str(self.unit)], env=env,
                                capture_output=True, text=True, timeout=120)
        output = (result.stdout + result.stderr).strip()
        print(f"systemd-analyze verify: exit {result.returncode}, output: {output or '(none)'}")
        self.assertEqual(output, "", "systemd-analyze verify printed warnings")
        self.assertEqual(result.returncode, 0)

    def test_verify_catches_a_broken_unit(self) -> None:
        # The check above would be worthless if verify stayed silent on a bad unit here.
        broken = self.tmp / "broken" / "lfharvest.service"
        broken.parent.mkdir()
        broken.write_text(self.unit.read_text().replace("Type=notify", "Type=notifyy"))
        env = dict(os.environ, MANPATH=man_path(self.tmp / "broken"))
        result = subprocess.run([self.analyze, "verify", str(broken)], env=env,
                                capture_output=True, text=True, timeout=120)
        self.assertIn("notifyy", result.stdout + result.stderr)

    def test_security_exposure_at_most_2(self) -> None:
        result = subprocess.run([self.analyze, "security", "--offline=true", "--no-pager",
                                 str(self.unit)], capture_output=True, text=True, timeout=120)
        match = re.search(r"Overall exposure level for lfharvest\.service: (\d+\.\d+)",
                          result.stdout)
        self.assertIsNotNone(match, result.stdout + result.stderr)
        exposure = float(match.group(1))  # type: ignore[union-attr]
        figure("systemd_security_exposure", exposure)
        remaining = [line for line in result.stdout.splitlines() if line.startswith("✗")]
        print("not restricted:\n" + "\n".join(remaining))
        self.assertEqual(result.stderr.strip(), "", "systemd-analyze security warned")
        self.assertLessEqual(exposure, MAX_EXPOSURE)

    def test_unit_keeps_the_service_contract(self) -> None:
        unit = parse_unit(self.unit)
        service = {key: values[-1] for key, values in unit["Service"].items()}
        bindir = Path(binary()).resolve().parent
        self.assertEqual(service["ExecStart"],
                         f"{bindir}/lfharvest run --config /etc/lfharvest/lfharvest.toml")
        self.assertEqual(service["Type"], "notify")
        self.assertEqual(service["NotifyAccess"], "main")
        self.assertIn("HUP", service["ExecReload"])
        self.assertEqual(service["Restart"], "on-failure")
        # Keys refused (77) and a bad configuration or secret (78) do not fix themselves.
        self.assertTrue({"77", "78"} <= set(service["RestartPreventExitStatus"].split()))
        self.assertEqual(service["DynamicUser"], "yes")
        # The program finds its database through $STATE_DIRECTORY and its secret under this
        # credential name (config.cc); both must match.
        self.assertEqual(service["StateDirectory"], "lfharvest")
        self.assertTrue(service["LoadCredential"].startswith("langfuse-secret-key:/etc/lfharvest/"))
        watchdog = service["WatchdogSec"]
        self.assertRegex(watchdog, r"^\d+(min|s)$")
        seconds = int(watchdog[:-3]) * 60 if watchdog.endswith("min") else int(watchdog[:-1])
        # One request may take request_timeout_seconds (300 s by default).
        self.assertGreater(seconds, 300)
        self.assertIn("network-online.target", unit["Unit"]["After"][-1])
        self.assertIn("network-online.target", unit["Unit"]["Wants"][-1])

    def test_install_writes_the_unit_for_the_install_prefix(self) -> None:
        destdir = self.tmp / "destdir"
        env = dict(os.environ, DESTDIR=str(destdir))
        subprocess.run(["cmake", "--install", str(build_dir()), "--prefix", "/opt/lfh"], env=env,
                       check=True, capture_output=True, text=True, timeout=300)
        units = list(destdir.glob("**/lfharvest.service"))
        self.assertEqual(len(units), 1, units)
        self.assertIn("ExecStart=/opt/lfh/bin/lfharvest run --config /etc/lfharvest/lfharvest.toml",
                      units[0].read_text().splitlines())
        for path in ("opt/lfh/bin/lfharvest", "etc/lfharvest/lfharvest.toml",
                     "opt/lfh/share/man/man1/lfharvest.1.gz",
                     "opt/lfh/share/bash-completion/completions/lfharvest",
                     "opt/lfh/share/doc/lfharvest/copyright"):
            self.assertTrue((destdir / path).is_file(), path)


if __name__ == "__main__":
    unittest.main()
