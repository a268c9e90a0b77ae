"""Upgrading the package under a real systemd: from the previous release to this build.

The previous release (tests/system/previous-release: version and commit) is built from its
commit's tree. It is installed in a fresh container, configured by editing its conffile as an
administrator would, and synced against the fake Langfuse. Then this build's package is
installed over it, as `apt-get upgrade` does under the noninteractive frontend
(dpkg --force-confdef --force-confold, stdin closed):
- the running service is restarted on the new binary and migrates the database to the new
  schema version before it reports ready;
- nothing is fetched again: no observation request at all after the upgrade;
- the administrator's configuration is kept; where the package's own file changed between the
  two releases, the new one is put beside it as lfharvest.toml.dpkg-dist.

Then the conffile rules of Debian policy (10.7.3), with this build's package repacked with a
changed lfharvest.toml as next versions:
- modified by the administrator and changed by the package, --force-confold: kept, the new one
  as .dpkg-dist; --force-confnew: replaced, the administrator's kept as .dpkg-old;
- modified and changed, no option and no terminal: dpkg asks, cannot get an answer, and stops
  without touching the file;
- never modified and changed: replaced silently, without a question.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from system_testlib import (SOURCE_DIR, Container, FakeLangfuse, db_snapshot, deb_field, figure,
                            observation_requests, package, previous_package, previous_release,
                            require_container_support, tree, wait_until, work_dir)

UNIT = "lfharvest.service"
CONFIG = "/etc/lfharvest/lfharvest.toml"
DB = "/var/lib/lfharvest/lfharvest.db"
CONFOLD = ("--force-confdef", "--force-confold")


def schema_count(source: Path) -> int:
    """The schema version a tree's binary migrates to: its highest schema/NNNN_*.sql."""
    return max(int(p.name[:4]) for p in (source / "schema").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def repack(deb: Path, version: str, note: str, out_dir: Path) -> Path:
    """`deb` as version `version`, its lfharvest.toml with one more line: a next release whose
    default configuration changed."""
    root = out_dir / version
    subprocess.run(["dpkg-deb", "-R", str(deb), str(root)], check=True)
    control = root / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(),
                              flags=re.M))
    conffile = root / CONFIG.lstrip("/")
    conffile.write_text(conffile.read_text() + f"# {note}\n")
    md5sums = root / "DEBIAN" / "md5sums"
    if md5sums.exists():
        digest = subprocess.run(["md5sum", CONFIG.lstrip("/")], cwd=root, check=True,
                                capture_output=True, text=True).stdout
        lines = [line for line in md5sums.read_text().splitlines()
                 if not line.endswith(CONFIG.lstrip("/"))]
        md5sums.write_text("\n".join([*lines, digest.strip()]) + "\n")
    out = out_dir / f"lfharvest_{version}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)], check=True,
                   capture_output=True)
    return out


def setUpModule() -> None:
    require_container_support()


class UpgradeTest(unittest.TestCase):
    def setUp(self) -> None:
        # The previous release's build (CPU) first: it runs while another test file makes the
        # tree (network). The tree has what this build's package depends on; the previous one
        # was built on the same system and needs no more (dpkg -i would say so).
        self.previous = previous_package()
        self.current = package()
        self.container = Container(tree(self.current), "lfh-upgrade")
        self.container.__enter__()
        self.addCleanup(self.container.close)
        self.c = self.container
        self.fake = FakeLangfuse(demo=True, secret_key="sk-lf-upgrade-77c1").start()
        self.addCleanup(self.fake.stop)
        self.tmp = Path(tempfile.mkdtemp(prefix="upgrade.", dir=work_dir()))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def traces(self) -> set[str]:
        return {s["traceId"] for s in self.fake.truth()["scores"] if s.get("traceId")}

    def wait_synced(self) -> None:
        total = len(self.traces())
        wait_until(lambda: re.match(rf"synced {total}/{total} ",
                                    self.c.show(UNIT, "StatusText")["StatusText"]),
                   90, what="synced")

    def config_text(self) -> str:
        return self.c.path(CONFIG).read_text()

    def packaged_config(self, deb: Path) -> str:
        folder = self.tmp / f"x-{deb.name}"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], check=True)
        return (folder / CONFIG.lstrip("/")).read_text()

    def test_upgrade_from_the_previous_release(self) -> None:
        previous_version, commit = previous_release()
        current_version = deb_field(self.current, "Version")
        self.assertNotEqual(previous_version, current_version)
        subprocess.run(["dpkg", "--compare-versions", current_version, "gt", previous_version],
                       check=True)
        figure("upgrade", f"{previous_version} ({commit[:12]}) -> {current_version}")

        # The previous release, configured by editing its conffile, synced by the service.
        self.c.install(self.previous)
        admin_config = self.config_text()
        for key, value in (("base_url", f'"{self.fake.base_url}"'),
                           ("public_key", f'"{self.fake.public_key}"'),
                           ("requests_per_second", "50")):
            admin_config, count = re.subn(rf"^# {key} = .*$", f"{key} = {value}", admin_config,
                                          count=1, flags=re.M)
            self.assertEqual(count, 1, f"no '# {key} = ' line in the packaged configuration")
        self.c.write(CONFIG, admin_config)
        self.c.write("/etc/lfharvest/secret-key", self.fake.secret_key + "\n", mode=0o600)
        self.c.systemctl("enable", "--now", UNIT)
        self.wait_synced()
        old_pid = self.c.show(UNIT, "MainPID")["MainPID"]
        with db_snapshot(self.c, DB) as conn:
            old_schema = conn.execute("PRAGMA user_version").fetchone()[0]
            done = {r[0] for r in conn.execute("SELECT trace_id FROM traces WHERE state='done'")}
        self.assertEqual(old_schema, schema_count(work_dir() / "previous" / "source"))
        self.assertEqual(done, self.traces())
        self.fake.reset_stats()

        # The upgrade, as apt does it unattended.
        result = self.c.install(self.current, *CONFOLD)
        print(result.stdout[-2000:], result.stderr[-2000:])
        self.assertEqual(self.c.run(["dpkg-query", "-W", "-f=${Version}", "lfharvest"]).stdout,
                         current_version)
        state = wait_until(lambda: (s := self.c.show(UNIT, "ActiveState", "MainPID"))
                           ["ActiveState"] == "active" and s["MainPID"] != old_pid and s, 30,
                           what="the service restarted on the new binary")
        self.assertNotEqual(state["MainPID"], old_pid)
        self.wait_synced()

        # The migration ran (before READY=1), nothing was fetched again.
        with db_snapshot(self.c, DB) as conn:
            new_schema = conn.execute("PRAGMA user_version").fetchone()[0]
            done_after = {r[0] for r in conn.execute("SELECT trace_id FROM traces "
                                                     "WHERE state='done'")}
        self.assertEqual(new_schema, schema_count(SOURCE_DIR))
        figure("schema_version", f"{old_schema} -> {new_schema}")
        self.assertEqual(done_after, done)
        self.assertEqual(observation_requests(self.fake), [], "observations fetched again")
        self.assertEqual(self.fake.stats()["trace_detail_calls"], 0)

        # The administrator's configuration is kept; a changed packaged one goes beside it.
        self.assertEqual(self.config_text(), admin_config)
        dist = self.c.path(CONFIG + ".dpkg-dist")
        if self.packaged_config(self.previous) != self.packaged_config(self.current):
            self.assertEqual(dist.read_text(), self.packaged_config(self.current))
            figure("packaged_config_changed", True)
        else:
            self.assertFalse(dist.exists(), "a .dpkg-dist for an unchanged packaged file")
            figure("packaged_config_changed", False)

    def test_conffile_changes_follow_debian_policy(self) -> None:
        version = deb_field(self.current, "Version")
        self.c.install(self.current)
        admin = self.config_text() + "# changed by the administrator\n"
        self.c.write(CONFIG, admin)

        def clear_side_files() -> None:
            for suffix in (".dpkg-dist", ".dpkg-old", ".dpkg-new"):
                self.c.path(CONFIG + suffix).unlink(missing_ok=True)

        # Modified and changed, --force-confold: kept; the new one as .dpkg-dist.
        next1 = repack(self.current, f"{version}+conf1", "new in conf1", self.tmp)
        self.c.install(next1, *CONFOLD)
        self.assertEqual(self.config_text(), admin)
        self.assertEqual(self.c.path(CONFIG + ".dpkg-dist").read_text(),
                         self.packaged_config(next1))
        clear_side_files()

        # Modified and changed, --force-confnew: replaced; the administrator's as .dpkg-old.
        next2 = repack(self.current, f"{version}+conf2", "new in conf2", self.tmp)
        self.c.install(next2, "--force-confnew")
        self.assertEqual(self.config_text(), self.packaged_config(next2))
        self.assertEqual(self.c.path(CONFIG + ".dpkg-old").read_text(), admin)
        clear_side_files()

        # Never modified since (it is conf2's file) and changed: replaced without a question,
        # with no option and no terminal.
        next3 = repack(self.current, f"{version}+conf3", "new in conf3", self.tmp)
        result = self.c.install(next3)
        self.assertEqual(self.config_text(), self.packaged_config(next3))
        self.assertNotIn("Configuration file", result.stdout + result.stderr)
        self.assertFalse(any(self.c.path(CONFIG + s).exists()
                             for s in (".dpkg-dist", ".dpkg-old")))

        # Modified and changed, no option, no terminal: dpkg asks, gets no answer, stops, and
        # the administrator's file is untouched.
        self.c.write(CONFIG, admin)
        next4 = repack(self.current, f"{version}+conf4", "new in conf4", self.tmp)
        result = self.c.install(next4, check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"Configuration file '{CONFIG}'", result.stdout + result.stderr)
        self.assertIn("end of file on stdin at conffile prompt", result.stderr)
        self.assertEqual(self.config_text(), admin)
        self.c.run(["dpkg", "--configure", "--force-confold", "-a"])
        self.assertEqual(self.config_text(), admin)


if __name__ == "__main__":
    unittest.main()
