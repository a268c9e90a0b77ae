"""The fake server's own limits: a Node heap that in-flight responses fill, and latency that
grows with load. Both are off unless configured.

Heap: a self-hosted Langfuse is one Node process with a heap of about 2 GB by default (less on
a small VM). Serialising a response costs several times its size, and the memory stays taken
until the response has been written out. So each in-flight 200 answer of an API endpoint
reserves ``heap_multiplier`` x its body from ``heap_limit_bytes`` while it is sent; a
reservation that does not fit is an out-of-memory crash: every API connection in flight is
dropped (TCP reset), and for ``crash_seconds`` every API request gets ``crash_status`` with
nginx's HTML page, as nginx answers in front of a Node process that is restarting.
``send_bytes_per_s`` paces the body (0: as fast as the socket takes it), which is how long a big
answer holds its reservation.

Latency: ``load_latency_ms`` x (requests in flight / ``load_capacity``) before each API answer,
so a client that sends more at once waits longer for each answer.

Settable from the command line (``add_arguments``) and the control API (``GET`` / ``POST
/__fake/load``); ``snapshot()`` also reports crashes, heap in use and its peak.
"""

from __future__ import annotations

import argparse
import socket
import struct
import threading
import time
from typing import Any

NGINX_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
}


def nginx_page(status: int) -> bytes:
    title = NGINX_PAGES.get(status, f"{status} Error")
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n").encode("ascii")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server load (heap and latency model; off by default)")
    group.add_argument("--heap-limit-mb", type=float, default=0,
                       help="Node heap in MB that in-flight answers fill; over it the server "
                            "crashes (default 0: no heap model)")
    group.add_argument("--heap-multiplier", type=float, default=5.0,
                       help="heap an answer takes while it is sent, as a multiple of its body "
                            "(default 5)")
    group.add_argument("--crash-seconds", type=float, default=5.0,
                       help="how long the server answers --crash-status after a crash (default 5)")
    group.add_argument("--crash-status", type=int, choices=sorted(NGINX_PAGES), default=503,
                       help="nginx's answer while the server restarts (default 503)")
    group.add_argument("--send-mb-per-s", type=float, default=0,
                       help="pace answers' bodies to this many MB/s (default 0: no pacing)")
    group.add_argument("--load-latency-ms", type=float, default=0,
                       help="latency per (requests in flight / --load-capacity) (default 0)")
    group.add_argument("--load-capacity", type=float, default=1.0,
                       help="requests in flight the server handles at --load-latency-ms "
                            "(default 1)")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "heap_limit_bytes": int(args.heap_limit_mb * 1_000_000),
        "heap_multiplier": float(args.heap_multiplier),
        "crash_seconds": float(args.crash_seconds),
        "crash_status": int(args.crash_status),
        "send_bytes_per_s": int(args.send_mb_per_s * 1_000_000),
        "load_latency_ms": float(args.load_latency_ms),
        "load_capacity": float(args.load_capacity),
    }


class ServerLoad:
    """Thread-safe. ``enter``/``leave`` bracket every API request; ``send`` writes a 200 answer
    under the heap model; ``crashed_status`` tells whether the server is down right now."""

    FIELDS: dict[str, tuple[type, ...]] = {
        "heap_limit_bytes": (int,), "heap_multiplier": (int, float),
        "crash_seconds": (int, float), "crash_status": (int,), "send_bytes_per_s": (int,),
        "load_latency_ms": (int, float), "load_capacity": (int, float),
    }

    def __init__(self, **options: Any) -> None:
        self._lock = threading.Lock()
        self.heap_limit_bytes = 0
        self.heap_multiplier = 5.0
        self.crash_seconds = 5.0
        self.crash_status = 503
        self.send_bytes_per_s = 0
        self.load_latency_ms = 0.0
        self.load_capacity = 1.0
        self._in_flight: dict[int, Any] = {}  # id(handler) -> handler
        self._reserved: dict[int, int] = {}  # id(handler) -> heap bytes reserved
        self._heap_in_use = 0
        self._heap_peak = 0
        self._crashes = 0
        self._crash_times: list[float] = []
        self._down_until = 0.0
        self._biggest_answer = 0
        self.configure(options)

    # -- settings -------------------------------------------------------------------

    def configure(self, values: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            for name, value in values.items():
                expected = self.FIELDS.get(name)
                if expected is None:
                    raise ValueError(f"unknown load option {name!r}; known: {', '.join(self.FIELDS)}")
                if isinstance(value, bool) or not isinstance(value, expected):
                    raise ValueError(f"load option {name!r} has the wrong type")
                if value < 0:
                    raise ValueError(f"load option {name!r} must be >= 0")
                if name == "crash_status" and value not in NGINX_PAGES:
                    raise ValueError(f"crash_status must be one of {sorted(NGINX_PAGES)}")
                if name == "load_capacity" and value <= 0:
                    raise ValueError("load_capacity must be > 0")
                setattr(self, name, value)
        return self.snapshot()

    def reset_counters(self) -> None:
        with self._lock:
            self._crashes = 0
            self._crash_times = []
            self._heap_peak = self._heap_in_use
            self._biggest_answer = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            return {
                **{name: getattr(self, name) for name in self.FIELDS},
                "crashes": self._crashes,
                "crash_times": list(self._crash_times),
                "down_for_s": max(self._down_until - now, 0.0),
                "heap_in_use": self._heap_in_use,
                "heap_peak": self._heap_peak,
                "in_flight": len(self._in_flight),
                "biggest_answer": self._biggest_answer,
            }

    # -- per request ------------------------------------------------------------------

    def enter(self, handler: Any) -> None:
        with self._lock:
            self._in_flight[id(handler)] = handler

    def leave(self, handler: Any) -> None:
        with self._lock:
            self._in_flight.pop(id(handler), None)
            self._release_locked(handler)

    def crashed_status(self) -> int | None:
        """The status nginx answers while the server restarts, or None when it is up."""
        with self._lock:
            return self.crash_status if time.monotonic() < self._down_until else None

    def latency_s(self) -> float:
        with self._lock:
            if self.load_latency_ms <= 0:
                return 0.0
            return self.load_latency_ms / 1000 * len(self._in_flight) / self.load_capacity

    def send(self, handler: Any, status: int, body: bytes, header_list: list[tuple[str, str]],
             stop: threading.Event) -> bool:
        """Sends an answer under the heap model. False: the server crashed instead (every API
        connection in flight, this one included, has been reset)."""
        if not self._reserve(handler, len(body)):
            return False
        try:
            handler._start(status, header_list)
            rate = self.send_bytes_per_s
            if rate <= 0:
                handler._write(body)
                return True
            step = 256 * 1024
            started = time.monotonic()
            for offset in range(0, len(body), step):
                # Wait before a piece, never after the last: the answer is done once it is out.
                ahead = offset / rate - (time.monotonic() - started)
                if ahead > 0 and stop.wait(ahead):
                    break
                handler._write(body[offset:offset + step])
            return True
        finally:
            with self._lock:
                self._release_locked(handler)

    # -- the heap -----------------------------------------------------------------------

    def _reserve(self, handler: Any, body_bytes: int) -> bool:
        victims: list[Any] = []
        with self._lock:
            self._biggest_answer = max(self._biggest_answer, body_bytes)
            if self.heap_limit_bytes <= 0:
                return True
            need = int(body_bytes * self.heap_multiplier)
            if self._heap_in_use + need <= self.heap_limit_bytes:
                self._reserved[id(handler)] = self._reserved.get(id(handler), 0) + need
                self._heap_in_use += need
                self._heap_peak = max(self._heap_peak, self._heap_in_use)
                return True
            # Out of memory: the process dies with everything it was doing.
            self._crashes += 1
            now = time.monotonic()
            self._crash_times.append(now)
            self._down_until = now + self.crash_seconds
            victims = list(self._in_flight.values())
            self._reserved.clear()
            self._heap_in_use = 0
        for victim in victims:
            _reset(victim.connection)
        handler.close_connection = True
        return False

    def _release_locked(self, handler: Any) -> None:
        held = self._reserved.pop(id(handler), 0)
        self._heap_in_use = max(self._heap_in_use - held, 0)


def _reset(connection: socket.socket) -> None:
    """Drop a connection with a TCP RST from any thread (its owner's next write fails)."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
