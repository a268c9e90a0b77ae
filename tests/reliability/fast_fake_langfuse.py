"""Runs tests/fake_langfuse/fake_langfuse.py with TCP_NODELAY on every accepted connection.

The fake server writes its headers and its body in two sends. With Nagle's algorithm on the
server and delayed ACKs on the client, the body then waits about 40 ms for the ACK of the
headers, which caps a keep-alive client at roughly 20 requests a second. The reliability tests
need thousands of requests, so they start the fake through this wrapper. Nothing else about the
fake changes: same arguments, same behaviour, same first line on stdout.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fake_langfuse"))

import fake_langfuse  # noqa: E402

_original_setup = fake_langfuse.FakeLangfuseHandler.setup


def _setup_without_nagle(self) -> None:  # type: ignore[no-untyped-def]
    _original_setup(self)
    try:
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # a TLS or already-closed socket: keep the default


fake_langfuse.FakeLangfuseHandler.setup = _setup_without_nagle

if __name__ == "__main__":
    sys.exit(fake_langfuse.main())
