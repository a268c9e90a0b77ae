#!/usr/bin/env python3
"""The anchor harvest client: the script a user writes before lfharvest exists.

    python3 bench/anchor_harvest.py BASE_URL PUBLIC_KEY SECRET_KEY

Reads every ANNOTATION score of the current API (cursor pages of 100), then each scored trace's
observations with their input and output (cursor pages of 10, as lfharvest asks), over one
keep-alive session (`requests` when it is installed, else `http.client`). It keeps nothing: it is
the CPU yardstick for bench/perf_compare.py. Prints one JSON line: requests and traces.
"""

import base64
import http.client
import json
import sys
import urllib.parse

try:
    import requests  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    requests = None


class Session:
    def __init__(self, base_url: str, public_key: str, secret_key: str):
        self.base = base_url.rstrip("/")
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.requests = 0
        if requests is not None:
            self.session = requests.Session()
            self.session.trust_env = False
        else:
            parts = urllib.parse.urlsplit(self.base)
            self.connection = http.client.HTTPConnection(parts.hostname, parts.port)

    def get(self, path: str, params: dict) -> dict:
        self.requests += 1
        if requests is not None:
            response = self.session.get(self.base + path, params=params, headers=self.headers)
            response.raise_for_status()
            return response.json()
        self.connection.request("GET", path + "?" + urllib.parse.urlencode(params),
                                headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        return json.loads(body)


def pages(session: Session, path: str, params: dict):
    cursor = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        page = session.get(path, query)
        yield page["data"]
        cursor = page.get("meta", {}).get("cursor")
        if not cursor:
            return


def main() -> int:
    session = Session(*sys.argv[1:4])
    traces = set()
    for data in pages(session, "/api/public/v3/scores",
                      {"limit": 100, "source": "ANNOTATION", "fields": "details,subject,annotation",
                       "fromTimestamp": "1970-01-01T00:00:00.000Z"}):
        for score in data:
            trace_id = (score.get("subject") or {}).get("traceId") or (
                (score.get("subject") or {}).get("id")
                if (score.get("subject") or {}).get("kind") == "trace" else None)
            if trace_id:
                traces.add(trace_id)
    for trace_id in sorted(traces):
        for _ in pages(session, "/api/public/v2/observations",
                       {"traceId": trace_id, "limit": 10,
                        "fields": "core,basic,io,model,usage,metadata"}):
            pass
    print(json.dumps({"requests": session.requests, "traces": len(traces)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
