"""Fixtures for the proxy tests: real aiohttp backends on 127.0.0.1 that say
who they are, raw asyncio servers that misbehave on purpose, and a factory
that starts a whole Proxy (listeners, health checks, admin API) on real
sockets. Nothing here sleeps to wait for a condition: `eventually` (tests.helpers) polls
with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shiftlab.proxy.app import Proxy
from shiftlab.proxy.config import load_balancer_from_dict
from tests.helpers import eventually, free_port

LOOPBACK = "127.0.0.1"
DOWNLOAD_CHUNK = 64 * 1024


@pytest.fixture(autouse=True)
def no_proxy_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test also checks that the proxy logged no internal error (a bug
    of ours turned into a 500), aiohttp no unhandled handler exception and
    asyncio no forgotten task or future exception."""
    caplog.set_level(logging.WARNING)
    yield
    bad = [f"{r.name}: {r.getMessage()}" for r in caplog.get_records("call")
           if r.levelno >= logging.ERROR and r.name.startswith(("shiftlab.proxy", "aiohttp", "asyncio"))]
    assert bad == [], bad


@dataclass
class Backend:
    """A real HTTP target. Answers with its name (body and X-Backend header)
    on any path, plus a few paths that let a test make it misbehave."""

    name: str
    group: str
    port: int = 0
    host: str = LOOPBACK
    health_status: int = 200
    health_checks: int = 0
    requests: int = 0
    peers: list[tuple[str, int]] = field(default_factory=list)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    upload_started: asyncio.Event = field(default_factory=asyncio.Event)
    upload_received: int = 0
    download_sent: int = 0
    download_aborted: asyncio.Event = field(default_factory=asyncio.Event)
    download_gate: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    @property
    def addr(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def hold(self, key: str) -> asyncio.Event:
        return self.holds.setdefault(key, asyncio.Event())

    def _headers(self) -> dict[str, str]:
        return {"X-Backend": self.name, "X-Group": self.group}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/health":
            self.health_checks += 1
            return web.Response(status=self.health_status, text="health")
        self.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.append((peer[0], peer[1]))
        if path == "/headers":
            return web.json_response({
                "backend": self.name, "method": request.method, "path": request.raw_path,
                "headers": [[k, v] for k, v in request.headers.items()],
            }, headers=self._headers())
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return web.Response(status=code, text=f"{self.name} says {code}", headers=self._headers())
        if path.startswith("/hold/"):
            key = path.rsplit("/", 1)[1]
            self.held[key] = self.held.get(key, 0) + 1
            await self.hold(key).wait()
            return web.Response(text=self.name, headers=self._headers())
        if path == "/echo":
            body = await request.read()
            return web.Response(body=body, headers={**self._headers(), "X-Body-Length": str(len(body))})
        if path == "/upload":
            digest, size = hashlib.sha256(), 0
            async for chunk in request.content.iter_any():
                if not self.upload_started.is_set():
                    self.upload_started.set()
                    if request.query.get("pause") == "1":
                        await self.hold("upload").wait()  # a slow target
                digest.update(chunk)
                size += len(chunk)
                self.upload_received = size
            return web.json_response({"bytes": size, "sha256": digest.hexdigest()}, headers=self._headers())
        if path == "/download":
            size = int(request.query["size"])
            resp = web.StreamResponse(headers=self._headers())
            if request.query.get("length") == "1":
                resp.content_length = size
            await resp.prepare(request)
            sent = 0
            try:
                while sent < size:
                    n = min(DOWNLOAD_CHUNK, size - sent)
                    await resp.write(pattern_bytes(sent, n))
                    sent += n
                    self.download_sent = sent
                    if sent == DOWNLOAD_CHUNK:
                        # The rest only once the client has seen the first bytes.
                        await self.download_gate.wait()
                await resp.write_eof()
            except ConnectionError:
                self.download_aborted.set()
                raise
            return resp
        if path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "headers?":
                    await ws.send_json({k.lower(): v for k, v in request.headers.items()})
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str(f"{self.name}:{msg.data}")
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws
        return web.Response(text=self.name, headers=self._headers())


def pattern_bytes(offset: int, n: int) -> bytes:
    """Deterministic content, so a download can be checked without keeping it."""
    block = bytes(range(256)) * (DOWNLOAD_CHUNK // 256 + 2)
    start = offset % 256
    out = bytearray()
    while len(out) < n:
        out += block[start:start + min(n - len(out), DOWNLOAD_CHUNK)]
        start = 0
    return bytes(out)


@pytest.fixture
async def backends() -> AsyncIterator[Callable[..., Awaitable[Backend]]]:
    """`await backends("blue-1", "blue")` starts a Backend on a free port."""
    started: list[Backend] = []

    async def start(name: str, group: str | None = None, host: str = LOOPBACK) -> Backend:
        b = Backend(name=name, group=group or name.split("-")[0], host=host)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", b.handle)
        # Backends log under their own name: a target that sees the proxy
        # hang up on purpose is not a proxy error.
        b.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1,
                                 logger=logging.getLogger("tests.backend"))
        await b.runner.setup()
        site = web.TCPSite(b.runner, host, 0)
        await site.start()
        b.port = int(b.runner.addresses[0][1])
        started.append(b)
        return b

    yield start
    for b in started:
        for ev in b.holds.values():
            ev.set()
        b.download_gate.set()
    for b in started:
        assert b.runner is not None
        await b.runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[RawHandler], Awaitable[int]]]:
    """`port = await raw_server(handler)`: a TCP server for targets that break HTTP."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[Any]] = []

    async def start(handler: RawHandler) -> int:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(reader, writer)

        srv = await asyncio.start_server(wrapped, LOOPBACK, 0)
        servers.append(srv)
        return int(srv.sockets[0].getsockname()[1])

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for w in writers:
        w.transport.abort()
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def wait_stalled(value: Callable[[], int], timeout: float = 10.0, quiet: float = 0.3) -> int:
    """Poll until `value()` stops changing for `quiet` seconds (a transfer
    held up by flow control); return where it stopped."""
    last, since = value(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return last
    raise AssertionError(f"still moving after {timeout} s (at {last})")


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def group_conf(name: str, targets: list[Backend] | list[str], **extra: Any) -> dict[str, Any]:
    """A target group whose health checks are off unless `extra` turns them on."""
    conf: dict[str, Any] = {
        "Name": name,
        "Targets": [t.addr if isinstance(t, Backend) else t for t in targets],
        "HealthCheckEnabled": False,
    }
    conf.update(extra)
    return conf


def forward(weights: dict[str, int], sticky: int | None = None) -> dict[str, Any]:
    fc: dict[str, Any] = {
        "TargetGroups": [{"TargetGroupArn": name, "Weight": w} for name, w in weights.items()],
    }
    if sticky is not None:
        fc["TargetGroupStickinessConfig"] = {"Enabled": True, "DurationSeconds": sticky}
    return {"Type": "forward", "ForwardConfig": fc}


def listener_conf(weights: dict[str, int], port: int | None = None, rules: list[Any] | None = None,
                  sticky: int | None = None, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "Port": port or free_port(),
        "DefaultActions": [forward(weights, sticky)],
        "Rules": rules or [],
    }
    conf.update(extra)
    return conf


def lb_conf(listeners: list[dict[str, Any]], groups: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"Listeners": listeners, "TargetGroups": groups, "Admin": {"Port": 0}}
    conf.update(extra)
    return conf


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """`await start_proxy(conf_dict)`: parse the loadBalancer dict, start it
    on real sockets (admin on a free port), stop it after the test."""
    started: list[Proxy] = []

    async def start(conf: dict[str, Any], time_scale: float = 1.0, rng: Any = None) -> Proxy:
        for attempt in range(3):
            px = Proxy(load_balancer_from_dict(conf), time_scale=time_scale, rng=rng, admin_port=0)
            try:
                await px.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == 2:
                    raise
                # Another process took a port between free_port() and the bind.
                conf = copy.deepcopy(conf)
                for listener in conf["Listeners"]:
                    listener["Port"] = free_port()
                continue
            started.append(px)
            return px
        raise AssertionError("unreachable")

    yield start
    for px in reversed(started):
        await px.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that never pools, so that each test sees fresh connections
    unless it opts into its own session."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=30),
    ) as s:
        yield s


async def get_text(session: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, Any]:
    async with session.get(url, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


async def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes to a listener and read until the server closes or the
    first response is complete enough to judge (its head and a small body)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out and b"</html>" in out:
                    break
        return out
    finally:
        writer.transport.abort()


def status_of(raw: bytes) -> int:
    line = raw.split(b"\r\n", 1)[0]
    # aiohttp answers requests it could not parse as HTTP/1.0.
    assert line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), raw[:200]
    return int(line.split()[1])


@dataclass
class Load:
    """A bounded load: `workers` clients on keep-alive connections, each
    request checked; stops at `max_requests`, `max_seconds` or `stop()`."""

    url: str
    workers: int = 4
    max_requests: int = 3000
    max_seconds: float = 20.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    by_body: dict[str, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.ok + len(self.failures)

    def start(self) -> Load:
        deadline = time.monotonic() + self.max_seconds
        self._tasks = [asyncio.ensure_future(self._worker(deadline)) for _ in range(self.workers)]
        return self

    async def _worker(self, deadline: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while not self._stop.is_set() and self.sent < self.max_requests and time.monotonic() < deadline:
                try:
                    async with session.get(self.url) as resp:
                        body = await resp.text()
                        if resp.status == 200:
                            self.ok += 1
                            self.by_body[body] = self.by_body.get(body, 0) + 1
                        else:
                            self.failures.append(f"{resp.status}: {body[:80]}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(repr(exc))

    async def advanced(self, n: int = 5, timeout: float = 10.0) -> None:
        """Wait until `n` more requests completed (so changes interleave with traffic)."""
        target = self.sent + n
        await eventually(lambda: self.sent >= target or all(t.done() for t in self._tasks), timeout=timeout,
                         what=f"{n} more requests")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
