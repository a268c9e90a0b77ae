"""The secret key file, end to end: refused like ssh refuses a private key, before it is read.

`lfharvest check` with a secret key file that is readable by others, a symbolic link, or owned by
another user must stop with exit status 78 and a message that says how to fix it, without ever
opening the file (checked with strace where available). The systemd credential, which the unit
hands over with LoadCredential=langfuse-secret-key, is read from $CREDENTIALS_DIRECTORY and wins.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unittest
from pathlib import Path

from service_testlib import EXIT_CONFIG, FakeLangfuse, TempDir, binary, clean_env, to_toml

SECRET = "sk-lf-demo"


class SecretFileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = FakeLangfuse(demo=True, secret_key=SECRET).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fake.stop()

    def setUp(self) -> None:
        self.tmp_cm = TempDir()
        self.tmp = self.tmp_cm.__enter__()
        self.addCleanup(self.tmp_cm.__exit__, None, None, None)
        self.secret = self.tmp / "secret-key"

    def write_secret(self, path: Path, mode: int) -> Path:
        path.write_text(SECRET + "\n")
        os.chmod(path, mode)
        return path

    def check(self, secret_file: Path | None, env: dict[str, str] | None = None,
              trace_opens: bool = False) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        langfuse = {"base_url": self.fake.base_url, "public_key": self.fake.public_key}
        if secret_file is not None:
            langfuse["secret_key_file"] = str(secret_file)
        config = self.tmp / "lfharvest.toml"
        config.write_text(to_toml({"langfuse": langfuse}))
        argv = [binary(), "check", "--config", str(config), "--db", str(self.tmp / "l.db")]
        trace = self.tmp / "opens.strace"
        strace = shutil.which("strace") if trace_opens else None
        if strace:
            argv = [strace, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(trace),
                    *argv]
        result = subprocess.run(argv, env=clean_env(env, home=self.tmp), capture_output=True,
                                text=True, timeout=60)
        opened = []
        if strace and secret_file is not None:
            opened = [line for line in trace.read_text().splitlines()
                      if f'"{secret_file}"' in line and "= -1" not in line]
        print(f"exit {result.returncode}: {result.stderr.strip()}")
        self.assertNotIn(SECRET, result.stdout + result.stderr)
        return result, opened

    def assert_refused(self, result: subprocess.CompletedProcess[str], opened: list[str],
                       *fragments: str) -> None:
        self.assertEqual(result.returncode, EXIT_CONFIG, result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)
        self.assertEqual(opened, [], "the refused secret file was opened")
        self.assertNotIn("valid for project", result.stdout)

    def test_file_readable_by_others_is_refused_with_the_fix(self) -> None:
        path = self.write_secret(self.secret, 0o644)
        result, opened = self.check(path, trace_opens=True)
        self.assert_refused(result, opened, str(path), "permissions 0644 are too open",
                            f"chmod 600 {path}")

    def test_file_readable_by_group_is_refused(self) -> None:
        path = self.write_secret(self.secret, 0o640)
        result, opened = self.check(path, trace_opens=True)
        self.assert_refused(result, opened, "permissions 0640 are too open", "chmod 600")

    def test_symlink_is_refused_even_to_a_good_file(self) -> None:
        target = self.write_secret(self.tmp / "real-secret-key", 0o600)
        self.secret.symlink_to(target)
        result, opened = self.check(self.secret, trace_opens=True)
        self.assert_refused(result, opened, str(self.secret), "is a symbolic link",
                            "point the setting at the real file")

    def test_file_of_another_user_is_refused(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("needs root to give the file to another user")
        path = self.write_secret(self.secret, 0o600)
        os.chown(path, 65534, 65534)
        result, opened = self.check(path, trace_opens=True)
        self.assert_refused(result, opened, "owned by uid 65534", "chown")

    def test_the_environment_variable_follows_the_same_rules(self) -> None:
        path = self.write_secret(self.secret, 0o644)
        result, _ = self.check(None, env={"LFHARVEST_SECRET_KEY_FILE": str(path)})
        self.assert_refused(result, [], "LFHARVEST_SECRET_KEY_FILE", "chmod 600")

    def test_the_fixed_file_is_accepted(self) -> None:
        path = self.write_secret(self.secret, 0o600)
        result, opened = self.check(path, trace_opens=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"secret key    from file {path}", result.stdout)
        if shutil.which("strace"):
            self.assertTrue(opened, "the open-detection of these tests sees nothing")

    def test_the_systemd_credential_is_read_and_wins(self) -> None:
        # systemd puts the credential in a private read-only folder, mode 0400 (or 0440).
        credentials = self.tmp / "credentials"
        credentials.mkdir()
        self.write_secret(credentials / "langfuse-secret-key", 0o400)
        wrong = self.write_secret(self.secret, 0o644)  # would be refused if it were used
        result, _ = self.check(wrong, env={"CREDENTIALS_DIRECTORY": str(credentials)})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("secret key    from systemd credential langfuse-secret-key", result.stdout)


if __name__ == "__main__":
    unittest.main()
