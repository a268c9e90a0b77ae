"""Helpers for the service tests: the binary, a clean environment, config files, a notify socket.

The tests run the real `lfharvest` binary ($LFHARVEST_BIN) and, where a server is needed, the
fake Langfuse (tests/fake_langfuse) on 127.0.0.1. Nothing connects anywhere else.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

SOURCE_DIR = Path(os.environ.get("LFHARVEST_SOURCE_DIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SOURCE_DIR / "tests" / "fake_langfuse"))
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))

from harness import FakeLangfuse  # noqa: E402  (re-exported)
from lfh_testlib import to_toml  # noqa: E402  (re-exported)

__all__ = ["FakeLangfuse", "SOURCE_DIR", "binary", "build_dir", "clean_env", "to_toml",
           "NotifyListener", "wait_until", "figure", "schema_version", "integrity", "EXIT_CONFIG",
           "ServiceProcess", "TempDir"]

EXIT_CONFIG = 78

# Variables of the outer environment that would change what lfharvest does.
_SCRUBBED_PREFIXES = ("LANGFUSE_", "LFHARVEST_")
_SCRUBBED_NAMES = {"STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                   "WATCHDOG_PID", "JOURNAL_STREAM", "http_proxy", "https_proxy", "all_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
                   "SSL_CERT_DIR"}


def binary() -> str:
    """The lfharvest executable: $LFHARVEST_BIN, else build/lfharvest in the source tree."""
    path = os.environ.get("LFHARVEST_BIN") or str(SOURCE_DIR / "build" / "lfharvest")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"lfharvest binary not found at {path}: set LFHARVEST_BIN")
    return path


def build_dir() -> Path:
    """The CMake build folder holding the binary."""
    return Path(binary()).resolve().parent


def figure(name: str, value: Any) -> None:
    """Prints one measured figure in a greppable form (CTest keeps the output)."""
    print(f"FIGURE {name} = {value}", flush=True)


def clean_env(extra: dict[str, str] | None = None, home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED_NAMES}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra or {})
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


def schema_version(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


class TempDir:
    """A temporary folder, removed on exit."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="lfh-svc-"))
        return self.path

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class NotifyListener:
    """The supervisor's side of the sd_notify protocol: an AF_UNIX datagram socket at a temp path.

    Every datagram is kept as (time.monotonic(), text) in `messages`, in arrival order; a
    datagram may hold several newline-separated assignments and is split into them."""

    def __init__(self, folder: Path):
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                for line in data.decode("utf-8", "replace").split("\n"):
                    if line:
                        self.messages.append((now, line))

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.messages)

    def texts(self) -> list[str]:
        return [text for _, text in self.snapshot()]

    def times(self, text: str) -> list[float]:
        return [t for t, m in self.snapshot() if m == text]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float,
                 after: int = 0) -> tuple[int, float, str]:
        """Waits for a message (from index `after` on) matching predicate; returns its index,
        arrival time and text."""
        def find() -> tuple[int, float, str] | None:
            for index, (t, text) in enumerate(self.snapshot()):
                if index >= after and predicate(text):
                    return index, t, text
            return None
        return wait_until(find, timeout, what="notify message")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class ServiceProcess:
    """`lfharvest run` in the background with its stderr collected line by line."""

    def __init__(self, argv: list[str], env: dict[str, str]):
        self.process = subprocess.Popen([binary(), *argv], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._drain, args=(stream,), daemon=True)
                         for stream in (self.process.stdout, self.process.stderr)]
        for thread in self._threads:
            thread.start()

    def _drain(self, stream: Any) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)

        def find() -> str | None:
            with self._lock:
                return next((line for line in self.lines if regex.search(line)), None)
        return wait_until(find, timeout, what=f"a log line matching {pattern!r}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for thread in self._threads:
            thread.join(timeout=2)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode
