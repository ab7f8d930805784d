"""Starting and stopping a whole load balancer: listeners, health checks,
admin API. Used by `shiftlab proxy` (which `shiftlab up` runs as a process
of its own), in-process beside the controller by `rehearse`, the demo and
the pytest plugin, and by tests (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
from typing import Any

import aiohttp
from aiohttp import web

from shiftlab.common.netsafety import check_bind, serve_app, strong_token
from shiftlab.proxy.admin import make_admin_app
from shiftlab.proxy.config import LoadBalancer
from shiftlab.proxy.health import HealthChecker
from shiftlab.proxy.server import serve_listener
from shiftlab.proxy.state import LoadBalancerState
from shiftlab.proxy.stats import make_registry
from shiftlab.proxy.tcp import serve_tcp_listener

log = logging.getLogger("shiftlab.proxy")


class Proxy:
    def __init__(self, conf: LoadBalancer, time_scale: float = 1.0, rng: random.Random | None = None,
                 admin_port: int | None = None) -> None:
        self.conf = conf
        self.token = strong_token(conf.Admin.Token, "loadBalancer.Admin.Token")
        check_bind(conf.Admin.Address, self.token, "loadBalancer.Admin.Address", "loadBalancer.Admin.Token")
        self.lb = LoadBalancerState(conf, time_scale, rng)
        self.registry = make_registry(self.lb.stats, self.lb.health_counts, self.lb.forward_weights)
        self.admin_port = conf.Admin.Port if admin_port is None else admin_port
        self._servers: list[tuple[asyncio.AbstractServer, Any]] = []  # AlbServer, or tcp.TcpListener
        self._admin_runner: web.AppRunner | None = None
        self.session: aiohttp.ClientSession | None = None
        self.health: HealthChecker | None = None

    @property
    def admin_url(self) -> str:
        return _url(self.conf.Admin.Address, self.admin_port)

    def listener_url(self, name: str | None = None) -> str:
        ls = self.lb.listeners[name] if name else next(iter(self.lb.listeners.values()))
        return _url(ls.conf.Address, ls.port)

    async def start(self, listeners: bool = True) -> None:
        """Health checks and the admin API, then the listeners unless told to
        wait: a controller that comes back after a crash opens them once it has
        registered its tasks and set the weights (`open_listeners`), so that
        no request meets a load balancer without targets (503)."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True), auto_decompress=False,
        )
        self.health = HealthChecker(self.session)
        for group in self.lb.groups.values():
            group.on_change = self.health.sync
            self.health.sync(group)
        try:
            app = make_admin_app(self.lb, self.registry, self.token, self.conf.Admin.Address)
            self._admin_runner, self.admin_port = await serve_app(app, self.conf.Admin.Address, self.admin_port)
        except OSError:
            await self.stop()
            raise
        if listeners:
            await self.open_listeners()

    async def open_listeners(self) -> None:
        assert self.session is not None, "start() first"
        idle = float(self.lb.conf.idle_timeout)
        try:
            for ls in self.lb.listeners.values():
                if self.conf.network:
                    self._servers.append(await serve_tcp_listener(self.lb, ls, float(ls.conf.tcp_idle_timeout)))
                else:
                    self._servers.append(await serve_listener(self.lb, ls, idle))
        except OSError:
            await self.stop()
            raise
        log.info("load balancer %s: %s; admin API %s", self.conf.Name,
                 ", ".join(f"{ls.name} on {ls.conf.Address}:{ls.port}" for ls in self.lb.listeners.values()),
                 self.admin_url)

    async def stop(self) -> None:
        for srv, server in self._servers:
            srv.close()
            server.pre_shutdown()
        for srv, server in self._servers:
            with contextlib.suppress(Exception):
                await server.shutdown(1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        self._servers.clear()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        if self.health is not None:
            await self.health.close()
        for group in self.lb.groups.values():
            group.on_change = None
            for t in group.targets.values():
                t.pool.close()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def run_until_signalled(*services: Any) -> None:
    """Start services, wait for SIGINT/SIGTERM, stop them in reverse order."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = []
    try:
        for s in services:
            await s.start()
            started.append(s)
        # What exists now (config, state, listeners, modules) lives as long
        # as the process: out of the collector's way, so that the collections
        # that request garbage triggers do not walk it again and again.
        gc.freeze()
        await stop.wait()
    finally:
        for s in reversed(started):
            await s.stop()
