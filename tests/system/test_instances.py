"""Several Langfuse projects on one machine: the template unit lfharvest@.service under a real
systemd, two instances against two fake projects (two fake servers on two ports of 127.0.0.1).

- both units load and `systemd-analyze verify` says nothing about them;
- lfharvest@alpha reads /etc/lfharvest/alpha.toml, gets /etc/lfharvest/alpha.secret-key as its
  credential and keeps its database in /var/lib/lfharvest/alpha/; the same for beta;
- each instance harvests exactly its own project (no trace of the other in its database, no
  request to the other server), under a dynamic user of its own;
- one instance's wrong key fails that instance only (exit 77), the other keeps running;
- reload and stop act on one instance; purge removes every instance's key, configuration and
  database.
"""

from __future__ import annotations

import re
import unittest

from system_testlib import (Container, FakeLangfuse, db_snapshot, package,
                            require_container_support, to_toml, tree, wait_until)

PROJECTS = ("alpha", "beta")


def setUpModule() -> None:
    require_container_support()
    global DEB, CONTAINER
    DEB = package()
    CONTAINER = Container(tree(DEB), "lfh-instances")
    CONTAINER.__enter__()
    CONTAINER.install(DEB)


def tearDownModule() -> None:
    if "CONTAINER" in globals():
        CONTAINER.close()


class InstancesTest(unittest.TestCase):
    def setUp(self) -> None:
        self.c = CONTAINER
        self.fakes = {
            name: FakeLangfuse(demo=True, seed=index + 1, project_id=f"proj-{name}",
                               public_key=f"pk-lf-{name}", secret_key=f"sk-lf-{name}-0c1d").start()
            for index, name in enumerate(PROJECTS)}
        for name, fake in self.fakes.items():
            self.c.write(f"/etc/lfharvest/{name}.toml", to_toml({
                "langfuse": {"base_url": fake.base_url, "public_key": fake.public_key},
                "sync": {"poll_interval_seconds": 60},
                "limits": {"requests_per_second": 50}}))
            self.c.write(f"/etc/lfharvest/{name}.secret-key", fake.secret_key + "\n", mode=0o600)

    def tearDown(self) -> None:
        self.c.systemctl("stop", "lfharvest@*.service", check=False)
        for fake in self.fakes.values():
            fake.stop()

    def unit(self, name: str) -> str:
        return f"lfharvest@{name}.service"

    def traces(self, name: str) -> set[str]:
        return {s["traceId"] for s in self.fakes[name].truth()["scores"] if s.get("traceId")}

    def wait_synced(self, name: str) -> None:
        total = len(self.traces(name))
        wait_until(lambda: re.match(rf"synced {total}/{total} ",
                                    self.c.show(self.unit(name), "StatusText")["StatusText"]),
                   90, what=f"{name} synced")

    def test_two_instances_harvest_their_own_projects(self) -> None:
        # --man=no: the container has no man-db (tests/service checks the man: link).
        verify = self.c.run(["systemd-analyze", "verify", "--man=no", "lfharvest.service",
                             *(self.unit(n) for n in PROJECTS)], check=False)
        self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))

        self.c.systemctl("enable", "--now", *(self.unit(n) for n in PROJECTS))
        for name in PROJECTS:
            self.wait_synced(name)
        users = set()
        for name in PROJECTS:
            other = next(n for n in PROJECTS if n != name)
            shown = self.c.show(self.unit(name), "ExecStart", "StateDirectory", "LoadCredential",
                                "ActiveState")
            self.assertIn(f"/etc/lfharvest/{name}.toml", shown["ExecStart"])
            self.assertEqual(shown["StateDirectory"], f"lfharvest/{name}")
            self.assertEqual(shown["ActiveState"], "active")
            db = f"/var/lib/lfharvest/{name}/lfharvest.db"
            self.assertTrue(self.c.path(f"/var/lib/private/lfharvest/{name}/lfharvest.db")
                            .is_file())
            with db_snapshot(self.c, db) as conn:
                done = {r[0] for r in conn.execute("SELECT trace_id FROM traces WHERE "
                                                   "state='done'")}
                projects = {r[0] for r in conn.execute("SELECT DISTINCT project_id FROM traces")}
            self.assertEqual(done, self.traces(name))
            self.assertEqual(projects, {f"proj-{name}"})
            self.assertFalse(done & self.traces(other))
            # Each instance talked to its own server only: the other's keys are refused there.
            self.assertFalse(any(r["status"] == 401 for r in self.fakes[name].stats()["requests"]))
            users.add(self.c.run(["stat", "-c", "%u", f"/var/lib/private/lfharvest/{name}"])
                      .stdout.strip())
        self.assertEqual(len(users), 2, f"the instances share a user: {users}")
        self.assertNotIn("0", users)

        # Reload and stop one instance: the other is untouched.
        beta_pid = self.c.show(self.unit("beta"), "MainPID")["MainPID"]
        alpha_pid = self.c.show(self.unit("alpha"), "MainPID")["MainPID"]
        self.c.systemctl("reload", self.unit("alpha"))
        wait_until(lambda: self.c.journal("-u", self.unit("alpha"), f"_PID={alpha_pid}",
                                          "--grep", "configuration reloaded"), 20,
                   what="alpha reloaded")
        self.assertFalse(self.c.journal("-u", self.unit("beta"), f"_PID={beta_pid}", "--grep",
                                        "reloaded"))
        self.c.systemctl("stop", self.unit("alpha"))
        state = self.c.show(self.unit("beta"), "ActiveState", "MainPID")
        self.assertEqual((state["ActiveState"], state["MainPID"]), ("active", beta_pid))

    def test_a_wrong_key_fails_only_its_instance(self) -> None:
        self.c.write("/etc/lfharvest/alpha.secret-key", "sk-lf-not-alpha\n", mode=0o600)
        self.c.systemctl("start", self.unit("alpha"), self.unit("beta"), check=False)
        wait_until(lambda: self.c.show(self.unit("alpha"), "ActiveState")["ActiveState"]
                   == "failed", 30, what="alpha failed")
        self.assertEqual(self.c.show(self.unit("alpha"), "ExecMainStatus")["ExecMainStatus"],
                         "77")
        self.wait_synced("beta")
        self.assertEqual(self.c.show(self.unit("beta"), "ActiveState")["ActiveState"], "active")
        self.c.systemctl("reset-failed", self.unit("alpha"))

    def test_zz_purge_removes_every_instance(self) -> None:
        self.c.systemctl("enable", "--now", *(self.unit(n) for n in PROJECTS))
        for name in PROJECTS:
            self.wait_synced(name)
        self.c.run(["dpkg", "--purge", "lfharvest"], timeout=120)
        for name in PROJECTS:
            self.assertEqual(self.c.show(self.unit(name), "ActiveState")["ActiveState"],
                             "inactive")
        for path in ("/etc/lfharvest", "/var/lib/lfharvest", "/var/lib/private/lfharvest",
                     "/etc/systemd/system/multi-user.target.wants/lfharvest@alpha.service"):
            self.assertFalse(self.c.path(path).exists() or self.c.path(path).is_symlink(), path)
        self.c.install(package())


if __name__ == "__main__":
    unittest.main()
