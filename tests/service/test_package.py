"""The Debian package, end to end: packaging/smoke-test.sh on the build folder of the binary.

It builds lfharvest_<version>_<arch>.deb with cpack, checks its metadata and contents, runs
lintian (errors fail), installs it, runs the installed `lfharvest --version` and `lfharvest
check` against the fake Langfuse, upgrades it in place and purges it. Installing needs root, as
CI has on its throwaway machine; without root only the checks of the file run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unittest

from service_testlib import SOURCE_DIR, build_dir, clean_env, figure

SMOKE_TEST = SOURCE_DIR / "packaging" / "smoke-test.sh"


class PackageTest(unittest.TestCase):
    def test_smoke_test_passes(self) -> None:
        for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} is needed (scripts/bootstrap.sh installs it)")
        env = clean_env()
        if os.geteuid() != 0:
            env["LFHARVEST_SMOKE_NO_INSTALL"] = "1"
            print("not root: the package is checked but not installed")
        result = subprocess.run(["bash", str(SMOKE_TEST), str(build_dir())], env=env,
                                capture_output=True, text=True, timeout=1200)
        print(result.stdout[-6000:])
        print(result.stderr[-4000:])
        self.assertEqual(result.returncode, 0, "smoke test failed (output above)")
        self.assertIn("smoke-test: ", result.stdout)
        if shutil.which("lintian"):
            tags = re.findall(r"^([EWIP]): lfharvest[^:]*: (\S+)", result.stdout, re.M)
            figure("lintian_errors", sum(1 for level, _ in tags if level == "E"))
            figure("lintian_warnings", sum(1 for level, _ in tags if level == "W"))
            figure("lintian_tags", " ".join(f"{level}:{tag}" for level, tag in tags) or "none")


if __name__ == "__main__":
    unittest.main()
