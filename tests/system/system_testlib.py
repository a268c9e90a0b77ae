"""Helpers for the system tests: the package under a real systemd in a container.

What they need and where it is kept (all inside the build folder, BUILD/system/):
- `package()`: the .deb of this build (cpack), rebuilt on every run;
- `previous_package()`: the .deb of the previous release (tests/system/previous-release names
  its version and commit), built once from that commit's tree and kept;
- `tree()`: a Debian tree (debootstrap --variant=minbase) with systemd, dbus and the libraries
  the packages depend on; built when missing or when that list changes, then kept;
- `Container`: the tree booted by systemd-nspawn (systemd as PID 1, host network) on a private
  overlay, so every container starts from the same clean tree and several can run at once.
  `run()` drives it with nsenter; `path()` is a file of the container seen from the host.

The fake Langfuse servers run on the host's 127.0.0.1; the container shares the host's network,
so the service inside reaches them there. Nothing connects anywhere else, except debootstrap to
the Debian mirror that apt of this machine is configured with.

`require_container_support()` decides whether the machine can boot a container at all; where it
cannot, the tests are skipped with the reason (exit status SKIP, which CTest reports as skipped).
Under CI=true a machine that runs the suite as root must be able to: a skip there is a failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

SOURCE_DIR = Path(os.environ.get("LFHARVEST_SOURCE_DIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SOURCE_DIR / "tests" / "fake_langfuse"))
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))

from harness import FakeLangfuse  # noqa: E402  (re-exported)
from lfh_testlib import to_toml  # noqa: E402  (re-exported)

__all__ = ["FakeLangfuse", "to_toml", "SOURCE_DIR", "SKIP", "Container", "package",
           "previous_package", "tree", "require_container_support", "wait_until", "figure",
           "db_snapshot", "observation_requests", "deb_field"]

# The exit status of a test file that could not run here (CTest: SKIP_RETURN_CODE).
SKIP = 4

# The packages every container has besides the ones the .deb files depend on.
BASE_PACKAGES = ["systemd", "dbus"]


def figure(name: str, value: Any) -> None:
    """Prints one measured figure in a greppable form (CTest keeps the output)."""
    print(f"FIGURE {name} = {value}", flush=True)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def build_dir() -> Path:
    """The CMake build folder: the folder of $LFHARVEST_BIN."""
    binary = os.environ.get("LFHARVEST_BIN") or str(SOURCE_DIR / "build" / "lfharvest")
    return Path(binary).resolve().parent


def work_dir() -> Path:
    path = build_dir() / "system"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock shared by every test process of this build folder (ctest -j)."""
    with open(work_dir() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run(argv: list[str], timeout: float = 600, check: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


# --- Can this machine boot a container? ----------------------------------------------------------

def container_support_problem() -> str | None:
    """Why this machine cannot boot a container, or None when it can."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "not root: systemd-nspawn and debootstrap need root"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"),
                          ("nsenter", "util-linux"), ("dpkg-deb", "dpkg")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (package {package}; scripts/bootstrap.sh installs it)"
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"new mount and PID namespaces are not allowed here: {probe.stderr.strip()}"
    return None


def require_container_support() -> None:
    """Exits with SKIP (and the reason) where no container can boot. Under CI=true a root
    machine that cannot is an error: scripts/bootstrap.sh installs what is needed there."""
    problem = container_support_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true" and os.geteuid() == 0:
        print(f"SYSTEM TESTS CANNOT RUN on this CI machine: {problem}", flush=True)
        sys.exit(1)
    print(f"SKIPPED: this machine cannot boot a container: {problem}", flush=True)
    sys.exit(SKIP)


# --- The packages --------------------------------------------------------------------------------

def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


def _cpack(build: Path, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run(["cpack", "--config", str(build / "CPackConfig.cmake"), "-G", "DEB", "-B", str(out)],
        timeout=1800, cwd=build)
    debs = sorted(out.glob("lfharvest_*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"cpack made {debs} in {out}")
    return debs[0]


def package() -> Path:
    """The .deb of this build folder."""
    with locked("package"):
        deb = work_dir() / "package"
        found = sorted(deb.glob("lfharvest_*.deb"))
        binary = build_dir() / "lfharvest"
        # Rebuilt when the binary or the packaging sources are newer than the package.
        sources = [binary, *(SOURCE_DIR / "packaging").iterdir(),
                   *(SOURCE_DIR / "systemd").iterdir(), SOURCE_DIR / "config" / "lfharvest.toml",
                   SOURCE_DIR / "cmake" / "Install.cmake"]
        if found and all(s.stat().st_mtime < found[0].stat().st_mtime for s in sources):
            return found[0]
        return _cpack(build_dir(), deb)


def previous_release() -> tuple[str, str]:
    """(version, commit) of the previous release, from tests/system/previous-release."""
    text = (SOURCE_DIR / "tests" / "system" / "previous-release").read_text()
    fields = dict(re.findall(r"^(\w+)\s*=\s*(\S+)", text, re.M))
    return fields["version"], fields["commit"]


def previous_package() -> Path:
    """The .deb of the previous release, built from its commit's tree in BUILD/system/previous
    (kept between runs), without tests or benchmarks: the package is what matters here (its
    files, its scripts, its schema), not how fast it runs."""
    version, commit = previous_release()
    with locked("previous"):
        root = work_dir() / "previous"
        out = root / "package"
        stamp = root / "commit"
        found = sorted(out.glob(f"lfharvest_{version}_*.deb"))
        if found and stamp.is_file() and stamp.read_text().strip() == commit:
            return found[0]
        started = time.monotonic()
        shutil.rmtree(root, ignore_errors=True)
        source = root / "source"
        source.mkdir(parents=True)
        # The commit must be in this clone's history (CI clones the whole history).
        archive = subprocess.run(["git", "-C", str(SOURCE_DIR), "archive", "--format=tar", commit],
                                 capture_output=True)
        if archive.returncode != 0:
            raise RuntimeError(f"cannot read the previous release {version} (commit {commit}) "
                               f"from git: {archive.stderr.decode(errors='replace').strip()}")
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        build = root / "build"
        cache = _cmake_cache(build_dir())
        # Unoptimised and without debug information: it compiles in about half the time of a
        # release build, and the upgrade test needs the package, not speed.
        options = ["-DCMAKE_BUILD_TYPE=Debug", "-DCMAKE_CXX_FLAGS_DEBUG=-O0",
                   "-DLFHARVEST_BUILD_TESTS=OFF", "-DLFHARVEST_BUILD_BENCH=OFF"]
        if cache.get("CMAKE_CXX_COMPILER_LAUNCHER"):
            options.append(f"-DCMAKE_CXX_COMPILER_LAUNCHER={cache['CMAKE_CXX_COMPILER_LAUNCHER']}")
        run(["cmake", "-S", str(source), "-B", str(build), *options], timeout=600)
        run(["cmake", "--build", str(build), f"-j{os.cpu_count() or 2}"], timeout=3600)
        deb = _cpack(build, out)
        figure("previous_release_build_seconds", round(time.monotonic() - started, 1))
        got = deb_field(deb, "Version")
        if got != version:
            raise RuntimeError(f"the previous release's commit {commit} packages version {got}, "
                               f"not {version} (tests/system/previous-release)")
        stamp.write_text(commit + "\n")
        return deb


def _cmake_cache(build: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    cache = build / "CMakeCache.txt"
    if cache.is_file():
        for line in cache.read_text().splitlines():
            match = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line)
            if match:
                values[match.group(1)] = match.group(2)
    return values


# --- The Debian tree -----------------------------------------------------------------------------

def debian_mirror() -> str:
    """The Debian archive apt of this machine uses ($LFHARVEST_DEBIAN_MIRROR wins)."""
    if os.environ.get("LFHARVEST_DEBIAN_MIRROR"):
        return os.environ["LFHARVEST_DEBIAN_MIRROR"]
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":  # deb822: stanzas of Types/URIs/Suites/Components
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                suites = fields.get("Suites", "").split()
                if ("deb" in fields.get("Types", "").split() and "main" in fields.get(
                        "Components", "").split() and any(s == codename() for s in suites)):
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(words) >= 4 and words[0] == "deb" and words[2] == codename() and \
                        "main" in words[3:]:
                    return words[1]
    raise RuntimeError(f"no apt source for Debian {codename()} main found in /etc/apt: set "
                       "LFHARVEST_DEBIAN_MIRROR")


def codename() -> str:
    """The Debian release of this machine: the packages are built against its libraries."""
    text = Path("/etc/os-release").read_text()
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    if not match:
        raise RuntimeError("/etc/os-release names no VERSION_CODENAME")
    return match.group(1)


def dependencies(*debs: Path) -> list[str]:
    """The packages the .debs depend on (the first of each alternative). A virtual name (such as
    libspdlog1.10-fmt9, provided by libspdlog1.10) is replaced by the package of this machine
    that provides it: the packages were built against those, and debootstrap wants real names."""
    providers: dict[str, str] = {}
    listing = run(["dpkg-query", "-W", "-f=${Package}\t${Provides}\n"]).stdout
    for line in listing.splitlines():
        package_name, _, provides = line.partition("\t")
        for provided in provides.split(","):
            providers.setdefault(provided.strip().split(" ")[0], package_name)
    installed = {line.partition("\t")[0] for line in listing.splitlines()}
    names = set()
    for deb in debs:
        for item in deb_field(deb, "Depends").split(","):
            name = item.split("|")[0].strip().split(" ")[0].split(":")[0]
            if name:
                names.add(name if name in installed else providers.get(name, name))
    return sorted(names)


def tree(*debs: Path) -> Path:
    """The cached Debian tree, with systemd, dbus and every library the `debs` need. Built with
    debootstrap when missing or when that package list changed; kept in BUILD/system/tree."""
    packages = sorted(set(BASE_PACKAGES) | set(dependencies(*debs)))
    key = json.dumps({"suite": codename(), "packages": packages})
    with locked("tree"):
        path = work_dir() / "tree"
        stamp = path / ".lfharvest-tree"
        if stamp.is_file() and stamp.read_text() == key:
            return path
        started = time.monotonic()
        fresh = Path(tempfile.mkdtemp(prefix="tree.", dir=work_dir()))
        try:
            mirror = debian_mirror()
            print(f"debootstrap {codename()} from {mirror} with {','.join(packages)}", flush=True)
            run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
                 codename(), str(fresh), mirror], timeout=1800)
            # No downloads are needed any more: drop the package cache (half the size).
            shutil.rmtree(fresh / "var" / "cache" / "apt" / "archives", ignore_errors=True)
            (fresh / ".lfharvest-tree").write_text(key)
            shutil.rmtree(path, ignore_errors=True)
            fresh.rename(path)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        figure("debootstrap_seconds", round(time.monotonic() - started, 1))
        return path


# --- A booted container --------------------------------------------------------------------------

class Container:
    """The tree booted under systemd-nspawn on an overlay of its own (the tree stays clean).

    Use as a context manager: entering boots it and waits until systemd reports the system
    running; leaving powers it off and deletes the overlay."""

    _counter = 0

    def __init__(self, base: Path, name: str):
        Container._counter += 1
        self.base = base
        self.name = f"{name}-{os.getpid()}-{Container._counter}"[:60]
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=work_dir()))
        self.root = self.dir / "root"
        self.pid1 = 0
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.mounted = False

    def __enter__(self) -> "Container":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        reap_stale_containers()
        (self.dir / "owner").write_text(str(os.getpid()))
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir()
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.base},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
             str(self.root)])
        self.mounted = True
        started = time.monotonic()
        self.log = open(self.dir / "console.log", "wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--boot", "--directory", str(self.root),
             "--register=no", "--keep-unit", "--console=passive", f"--machine={self.name}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_terminate_with_parent)

        def container_init() -> int:
            if self.nspawn is not None and self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.nspawn.returncode}: "
                                   f"{self.console()}")
            # nspawn's child becomes the container's systemd once it has set the container up.
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            with contextlib.suppress(OSError, ValueError):
                for pid in children.read_text().split():
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                        return int(pid)
            return 0
        self.pid1 = wait_until(container_init, 30, what="the container's PID 1")

        def booted() -> str | None:
            # "offline" until systemd listens; --wait then blocks until the boot is over.
            state = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                             timeout=120).stdout.strip()
            return state if state not in ("", "offline") else None
        state = wait_until(booted, 60, interval=0.2, what="systemd in the container")
        if state not in ("running", "degraded"):
            raise RuntimeError(f"the container's systemd is {state}: {self.console()}")
        if state == "degraded":
            print("container degraded:", self.run(["systemctl", "--failed", "--no-legend"],
                                                   check=False).stdout, flush=True)
        figure("container_boot_seconds", round(time.monotonic() - started, 2))

    def console(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "console.log").read_text(errors="replace")[-3000:]
        return ""

    def run(self, argv: list[str], check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs argv inside the container (all its namespaces, a clean environment)."""
        command = ["nsenter", "--target", str(self.pid1), "--all", "--",
                   "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                   "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive", *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                input=input, stdin=None if input is not None else
                                subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"in the container: {' '.join(argv)}: exit {result.returncode}\n"
                               f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def systemctl(self, *args: str, check: bool = True,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """Journal entries as JSON objects (journalctl -o json ARGS)."""
        self.run(["journalctl", "--sync"], check=False)
        out = self.run(["journalctl", "--no-pager", "-o", "json", *args], check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def path(self, inside: str) -> Path:
        """A path of the container as seen from the host."""
        return self.root / inside.lstrip("/")

    def write(self, inside: str, text: str, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        os.chmod(target, mode)

    def install(self, deb: Path, *dpkg_options: str,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """dpkg -i inside the container, stdin closed (a prompt would fail, not hang)."""
        shutil.copy(deb, self.path(f"/root/{deb.name}"))
        return self.run(["dpkg", "-i", *dpkg_options, f"/root/{deb.name}"], check=check,
                        timeout=300)

    def close(self) -> None:
        if self.nspawn is not None and self.nspawn.poll() is None:
            # SIGTERM makes nspawn ask the container's systemd to power off.
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(30)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()
        if hasattr(self, "log"):
            self.log.close()
        if self.mounted:
            if run(["umount", str(self.root)], check=False).returncode != 0:
                run(["umount", "--lazy", str(self.root)], check=False)
            self.mounted = False
        shutil.rmtree(self.dir, ignore_errors=True)


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies (a CTest timeout kills it),
    so that no container outlives its test. prctl(PR_SET_PDEATHSIG = 1, SIGTERM)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def reap_stale_containers() -> None:
    """Unmounts and deletes what containers of test processes that died left behind."""
    mounts = Path("/proc/mounts").read_text().split("\n")
    for owner in work_dir().glob("*/owner"):
        with contextlib.suppress(OSError, ValueError):
            if Path(f"/proc/{int(owner.read_text())}").exists():
                continue
        root = owner.parent / "root"
        if any(line.split(" ")[1:2] == [str(root)] for line in mounts if line):
            run(["umount", "--lazy", str(root)], check=False)
        shutil.rmtree(owner.parent, ignore_errors=True)


# --- The service's state, read from the host -----------------------------------------------------

@contextlib.contextmanager
def db_snapshot(container: Container, inside: str) -> Iterator[sqlite3.Connection]:
    """A private copy of a database of the container (with its WAL), opened from the host and
    deleted afterwards. Taken while the writer is stopped or idle, it is what the writer
    committed."""
    source = container.path(inside)
    folder = Path(tempfile.mkdtemp(prefix="db.", dir=work_dir()))
    copy = folder / "copy.db"
    try:
        for suffix in ("", "-wal"):
            if Path(f"{source}{suffix}").exists():
                shutil.copy(f"{source}{suffix}", f"{copy}{suffix}")
        conn = sqlite3.connect(copy)
        try:
            yield conn
        finally:
            conn.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def observation_requests(fake: FakeLangfuse, since: float = 0.0) -> list[tuple[float, str]]:
    """(arrival time, trace id) of every observations request the fake served from `since` on
    (its monotonic clock, the same as time.monotonic() here)."""
    found = []
    for request in fake.stats()["requests"]:
        if "observations" not in request["path"] or request["t"] < since:
            continue
        match = re.search(r"(?:^|&)traceId=([^&]+)", request.get("query") or "")
        if match:
            found.append((request["t"], urllib.parse.unquote_plus(match.group(1))))
    return found
