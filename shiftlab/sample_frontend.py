"""The sample frontend: a tiny client of a Service Connect namespace. Each
request it gets, it passes on to the catalog by its alias, as a frontend on
ECS calls `http://catalog:8080` through its Service Connect proxy, and
answers with what the catalog said.

Standard library only (copied alone into a bare container image, as the
sample service is); run it as `python -m shiftlab.sample_frontend`.

Environment:
  HOST (127.0.0.1), PORT (8080): where it listens
  CATALOG_URL (http://catalog:8080): the endpoint it calls, by its alias
  SHIFTLAB_SC_ENDPOINTS: the namespace's endpoints, `dnsName:port=address:port`
    comma-separated, which shiftlab gives every task of the namespace with the
    process backend (where no alias is a host name); without it, or for a
    name it does not list, the URL's host is resolved as usual (the docker
    backend makes the alias a host name of the container)
  PROPAGATE_HEADERS: request headers passed on to the catalog, comma-separated
    (default: both spellings of ECS's test header, x-amzn-ecs-blue-green-test
    and x-amazon-ecs-blue-green-test): a test request stays a test request
    across the call, as it must for Service Connect to route it to green

GET /health answers 200 without calling the catalog. Any other request
answers 200 with {"frontend": ..., "catalogStatus": n, "catalog": <the
catalog's JSON or text>} when the catalog answered 2xx-4xx, 502 otherwise,
with the catalog's X-Shiftlab-Target-Group header.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

ENDPOINTS_ENV = "SHIFTLAB_SC_ENDPOINTS"
DEFAULT_PROPAGATE = ("x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test")
CALL_TIMEOUT = 10.0
# The catalog's target group (the sample service's header), passed back so that
# `shiftlab load` and the demo count answers by group through the frontend.
GROUP_HEADER = "X-Shiftlab-Target-Group"


def resolve(host: str, port: int | None, env: Mapping[str, str]) -> tuple[str, int] | None:
    """Where a client inside the namespace sends a request for `host:port`
    (from SHIFTLAB_SC_ENDPOINTS): the alias of that name and port, else the
    one alias of that name (a rehearsal may have moved the alias's port).
    None: not an endpoint it lists."""
    table: list[tuple[str, int, str, int]] = []
    for item in (env.get(ENDPOINTS_ENV) or "").split(","):
        alias, _, target = item.strip().partition("=")
        a_host, _, a_port = alias.rpartition(":")
        t_host, _, t_port = target.rpartition(":")
        if a_host and a_port.isdigit() and t_host and t_port.isdigit():
            table.append((a_host.lower(), int(a_port), t_host, int(t_port)))
    name = host.lower()
    exact = [(h, p) for a, ap, h, p in table if a == name and ap == port]
    if exact:
        return exact[0]
    by_name = [(h, p) for a, _, h, p in table if a == name]
    return by_name[0] if len(by_name) == 1 else None


class Frontend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], catalog: str, env: Mapping[str, str],
                 propagate: tuple[str, ...]) -> None:
        parts = urlsplit(catalog)
        self.catalog_host = parts.hostname or "catalog"
        self.catalog_port = parts.port or 80
        self.catalog_path = parts.path or "/"
        self.target = resolve(self.catalog_host, self.catalog_port, env) or (self.catalog_host, self.catalog_port)
        self.propagate = propagate
        self.who = {"task": env.get("SHIFTLAB_TASK_ID", ""), "service": env.get("SHIFTLAB_SERVICE", "")}
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server: Frontend
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the proxy counts requests
        pass

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/health":
            self._send(200, {"frontend": self.server.who, "status": "ok"})
            return
        srv = self.server
        headers = {"Host": f"{srv.catalog_host}:{srv.catalog_port}"}
        for name in srv.propagate:
            value = self.headers.get(name)
            if value is not None:
                headers[name] = value
        conn = http.client.HTTPConnection(*srv.target, timeout=CALL_TIMEOUT)
        try:
            conn.request("GET", srv.catalog_path, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
            group = resp.getheader(GROUP_HEADER)
        except OSError as exc:
            self._send(502, {"frontend": srv.who, "error": f"catalog unreachable: {exc}"})
            return
        finally:
            conn.close()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._send(200 if status < 500 else 502, {"frontend": srv.who, "catalogStatus": status, "catalog": body},
                   {GROUP_HEADER: group} if group else {})

    def _send(self, status: int, doc: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    host, port = env.get("HOST", "127.0.0.1"), int(env.get("PORT", "8080"))
    catalog = env.get("CATALOG_URL", "http://catalog:8080")
    propagate = tuple(h.strip().lower() for h in env["PROPAGATE_HEADERS"].split(",") if h.strip()) \
        if env.get("PROPAGATE_HEADERS") else DEFAULT_PROPAGATE
    try:
        server = Frontend((host, port), catalog, env, propagate)
    except OSError as exc:
        print(f"sample frontend: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1

    def on_sigterm(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    print(f"sample frontend listening on {host}:{port}; catalog {catalog} via "
          f"{server.target[0]}:{server.target[1]}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
