"""Start and drive the fake Langfuse server from integration tests.

    from harness import FakeLangfuse

    with FakeLangfuse(traces=2000, big_fraction=0.02, seed=7) as fake:
        run_lfharvest(fake.base_url, fake.public_key, fake.secret_key)
        assert fake.stats()["trace_detail_calls"] == 0

Keyword arguments become command-line options of fake_langfuse.py
(``big_fraction=0.02`` -> ``--big-fraction 0.02``; ``demo=True`` -> ``--demo``).
The server runs as a child process on 127.0.0.1 with a free port; leaving the
``with`` block terminates it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import base64
import json
import queue
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

SERVER_SCRIPT = Path(__file__).resolve().with_name("fake_langfuse.py")


class FakeLangfuseError(RuntimeError):
    """The fake server did not start, or a control call failed."""


class FakeLangfuse:
    """A fake Langfuse server in a child process, with its control API as methods."""

    def __init__(self, *, start_timeout: float = 30.0, stderr: Any = None, **options: Any):
        self.options = options
        self.start_timeout = start_timeout
        self.stderr = stderr
        self.public_key = str(options.get("public_key", "pk-lf-demo"))
        self.secret_key = str(options.get("secret_key", "sk-lf-demo"))
        self.project_id = str(options.get("project_id", "proj-demo"))
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.port = 0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        if options.get("tls_cert"):
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the control plane trusts any test certificate
            self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                       urllib.request.HTTPSHandler(context=context))

    # -- lifecycle -------------------------------------------------------------

    def command(self) -> list[str]:
        args = [sys.executable, str(SERVER_SCRIPT)]
        options = {"port": 0, **self.options}
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is False or value is None:
                continue
            else:
                args += [flag, str(value)]
        return args

    def start(self) -> "FakeLangfuse":
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=self.stderr,
                                        stdin=subprocess.DEVNULL, text=True)
        lines: queue.Queue[str] = queue.Queue()

        def read_stdout() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:  # keeps draining after the first line
                lines.put(line)
            lines.put("")

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            first = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            self.stop()
            raise FakeLangfuseError("the fake server printed nothing in time") from None
        if not first.startswith("LISTENING "):
            self.stop()
            raise FakeLangfuseError(f"unexpected first line from the fake server: {first!r}")
        self.base_url = first.split(" ", 1)[1].strip()
        self.port = int(self.base_url.rsplit(":", 1)[1])
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> "FakeLangfuse":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- plain HTTP ----------------------------------------------------------------

    def auth_header(self, public_key: str | None = None, secret_key: str | None = None) -> str:
        pair = f"{public_key or self.public_key}:{secret_key or self.secret_key}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None,
                timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        """Any request; returns (status, headers, raw body) and never raises on 4xx/5xx."""
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def api_get(self, path: str, params: dict[str, Any] | None = None, auth: bool = True,
                timeout: float = 30.0) -> tuple[int, dict[str, str], Any]:
        """GET a public API path with Basic auth; the body is parsed as JSON when it can be."""
        headers = {"Authorization": self.auth_header()} if auth else {}
        status, response_headers, raw = self.request("GET", path, params, headers=headers, timeout=timeout)
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw
        return status, response_headers, parsed

    def control(self, method: str, path: str, body: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        status, _, raw = self.request(method, "/__fake/" + path.lstrip("/"), params, body)
        payload = json.loads(raw) if raw else None
        if status != 200:
            raise FakeLangfuseError(f"{method} /__fake/{path} -> {status}: {payload}")
        return payload

    # -- control API -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Request statistics; ``requests[i]["t"]`` is the server's time.monotonic()."""
        return self.control("GET", "stats")

    def reset_stats(self) -> None:
        self.control("POST", "reset-stats")

    def faults(self, rules: list[dict[str, Any]], seed: int = 1) -> list[dict[str, Any]]:
        """Replace the fault rules (see README.md for the rule format)."""
        return self.control("POST", "faults", {"seed": seed, "rules": rules})["rules"]

    def fault_state(self) -> list[dict[str, Any]]:
        return self.control("GET", "faults")["rules"]

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def outage(self, seconds: float, mode: str = "503") -> dict[str, Any]:
        """503 for every API request, or ``mode="refuse"``: the port is closed for a while
        (the control API is then unreachable too)."""
        return self.control("POST", "outage", {"seconds": seconds, "mode": mode})

    def set_options(self, **options: Any) -> dict[str, Any]:
        return self.control("POST", "options", options)

    def get_options(self) -> dict[str, Any]:
        return self.control("GET", "options")

    def edit_score(self, ids: str | list[str], value: Any = None, string_value: Any = None,
                   comment: Any = ..., touch_updated_at: bool = False) -> dict[str, Any]:
        """Change value / label / comment; id, timestamp and updatedAt stay the same."""
        body: dict[str, Any] = {"ids": [ids] if isinstance(ids, str) else list(ids)}
        if value is not None:
            body["value"] = value
        if string_value is not None:
            body["stringValue"] = string_value
        if comment is not ...:
            body["comment"] = comment
        if touch_updated_at:
            body["touch_updated_at"] = True
        return self.control("POST", "scores/edit", body)

    def delete_score(self, ids: str | list[str]) -> dict[str, Any]:
        """Hard-delete scores (no tombstone)."""
        return self.control("POST", "scores/delete", {"ids": [ids] if isinstance(ids, str) else list(ids)})

    def add_scores(self, count: int = 1, **fields: Any) -> dict[str, Any]:
        """Add scores: name, data_type, source, value, timestamp_offset_s, visible_after_s,
        new_traces, trace_ids, observations_visible_after_s. Returns score_ids and trace_ids."""
        return self.control("POST", "scores/add", {"count": count, **fields})

    def add_observation(self, trace_id: str, **fields: Any) -> dict[str, Any]:
        """Add a GENERATION to an existing trace (late data)."""
        return self.control("POST", f"traces/{urllib.parse.quote(trace_id)}/observations/add", fields)

    def scores(self) -> list[dict[str, Any]]:
        """Every score, including invisible and deleted ones (flags ``visible``, ``deleted``)."""
        return self.control("GET", "scores")["scores"]

    def truth(self, full: bool = False) -> dict[str, Any]:
        """Visible ANNOTATION scores and the observations of the traces they name."""
        return self.control("GET", "truth", params={"full": 1} if full else None)
