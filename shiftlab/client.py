"""The CLI's side of the controller API: plain blocking HTTP (a CLI call
needs no event loop), and an iterator over the SSE stream."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


class ApiError(Exception):
    def __init__(self, message: str, status: int = 0, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
                ctype = resp.headers.get("Content-Type", "")
                return json.loads(raw) if "json" in ctype else raw.decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read())
            except ValueError:
                payload = {}
            raise ApiError(payload.get("error") or f"HTTP {exc.code}", exc.code, payload.get("problems")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(f"cannot reach the controller at {self.base} ({reason}); is `shiftlab up` running?") \
                from None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self._request("POST", path, body if body is not None else {})

    def stream(self) -> Iterator[dict[str, Any]]:
        """Messages of /api/stream until the server closes it."""
        req = urllib.request.Request(self.base + "/api/stream")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            resp = urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as exc:
            raise ApiError(f"HTTP {exc.code}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(f"cannot reach the controller at {self.base} ({getattr(exc, 'reason', exc)})") from None
        with resp:
            data: list[str] = []
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []
