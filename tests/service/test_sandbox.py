"""`lfharvest run` stays inside the sandbox its unit sets up.

The unit filters system calls (SystemCallFilter=), socket families (RestrictAddressFamilies=) and
forbids writable-executable memory (MemoryDenyWriteExecute=). A call outside the filter fails
with EPERM under systemd, which no test here would otherwise notice, since CI does not run the
service under systemd. So the service is run under strace through a whole life (start, passes,
a reload that writes the metrics file, stop) and every system call, socket family and memory
protection it used is checked against the rules read from the unit file itself.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import unittest
from pathlib import Path

from service_testlib import (SOURCE_DIR, FakeLangfuse, NotifyListener, TempDir, binary,
                             clean_env, to_toml, wait_until)

UNIT = SOURCE_DIR / "systemd" / "lfharvest.service.in"


def unit_values(key: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in UNIT.read_text().splitlines()
            if line.startswith(key + "=")]


def syscall_groups() -> dict[str, list[str]]:
    """systemd's named groups (@system-service, ...) with their members, from systemd-analyze."""
    output = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                            capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def allowed_syscalls() -> set[str]:
    """What the unit's SystemCallFilter= lines allow, applied in order as systemd does."""
    groups = syscall_groups()
    allowed: set[str] = set()
    first = True
    for value in unit_values("SystemCallFilter"):
        deny = value.startswith("~")
        names = expand(value.lstrip("~").split(), groups)
        if first and not deny:
            allowed = names | expand(["@default"], groups)  # always permitted
        elif deny:
            allowed -= names
        else:
            allowed |= names
        first = False
    return allowed


class SandboxTest(unittest.TestCase):
    def test_run_uses_only_what_the_unit_allows(self) -> None:
        strace = shutil.which("strace")
        if strace is None or shutil.which("systemd-analyze") is None:
            raise AssertionError("strace and systemd-analyze are needed (scripts/bootstrap.sh)")
        allowed = allowed_syscalls()
        self.assertIn("openat", allowed)
        self.assertNotIn("setuid", allowed)  # the filter was read

        with TempDir() as tmp, FakeLangfuse(traces=20, seed=13) as fake:
            notify = NotifyListener(tmp)
            self.addCleanup(notify.close)
            config = tmp / "lfharvest.toml"
            sections = {"langfuse": {"base_url": fake.base_url, "public_key": fake.public_key},
                        "sync": {"poll_interval_seconds": 1}}
            config.write_text(to_toml(sections))
            trace = tmp / "run.strace"
            run_as: list[str] = []
            if os.geteuid() == 0:
                # The unit never runs the program as root (DynamicUser=yes), and as root SQLite
                # makes calls (fchown of its journal files) that it never makes otherwise.
                nobody = pwd.getpwnam("nobody")
                os.chown(tmp, nobody.pw_uid, nobody.pw_gid)
                os.chmod(notify.path, 0o666)
                run_as = ["-u", "nobody"]
            env = clean_env({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000",
                             "LANGFUSE_SECRET_KEY": fake.secret_key, "JOURNAL_STREAM": "8:1"},
                            home=tmp)
            process = subprocess.Popen(
                [strace, "-f", "-qq", *run_as, "-o", str(trace), binary(), "run", "--config",
                 str(config), "--db", str(tmp / "l.db")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(process.kill)
            notify.wait_for(lambda m: m.startswith("STATUS=synced "), timeout=60)
            # A reload that turns the metrics file on: atomic write, chmod, rename.
            sections["metrics"] = {"textfile": str(tmp / "lfharvest.prom")}
            config.write_text(to_toml(sections))
            child = self.traced_child(process.pid)
            os.kill(child, signal.SIGHUP)
            wait_until((tmp / "lfharvest.prom").exists, timeout=30, what="metrics file")
            os.kill(child, signal.SIGTERM)
            self.assertEqual(process.wait(timeout=30), 0)
            text = trace.read_text()

        used = set(re.findall(r"^\d+ +([a-z0-9_]+)\(", text, re.M))
        used |= set(re.findall(r"<\.\.\. ([a-z0-9_]+) resumed>", text))
        print(f"{len(used)} distinct system calls: {' '.join(sorted(used))}")
        self.assertIn("sendto", used | {"sendmsg"})
        # execve of the program itself happens before systemd applies the filter.
        outside = sorted(used - allowed - {"execve"})
        self.assertEqual(outside, [], "system calls the unit's SystemCallFilter= would refuse")

        families = set(re.findall(r"socket\((AF_[A-Z0-9]+)", text))
        permitted = set(" ".join(unit_values("RestrictAddressFamilies")).split())
        print(f"socket families: {sorted(families)}; the unit permits {sorted(permitted)}")
        self.assertEqual(sorted(families - permitted), [])

        writable_exec = [line for line in text.splitlines()
                         if re.search(r"(mmap|mprotect)\(.*PROT_WRITE\|PROT_EXEC|"
                                      r"(mmap|mprotect)\(.*PROT_EXEC\|PROT_WRITE", line)]
        self.assertEqual(writable_exec, [], "MemoryDenyWriteExecute=yes would refuse these")

    @staticmethod
    def traced_child(strace_pid: int) -> int:
        """The pid of the program strace started (strace's only child)."""
        def find() -> int | None:
            children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children")
            pids = children.read_text().split() if children.exists() else []
            return int(pids[0]) if pids else None
        return wait_until(find, timeout=10, what="the traced process")


if __name__ == "__main__":
    unittest.main()
