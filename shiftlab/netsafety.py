"""The bind rule shared by the admin and controller APIs: loopback by
default; any other address only with a token, so that nobody on the network
can move production traffic of a rehearsal by accident or on purpose. The
controller applies the same rule to a proxy it calls in another process."""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from shiftlab.configfile import ConfigError

TOKEN_ENV = "SHIFTLAB_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(configured: str | None) -> str | None:
    return configured or os.environ.get(TOKEN_ENV) or None


def check_bind(host: str, token: str | None, field: str, token_field: str = "a token") -> None:
    if not is_loopback(host) and not token:
        raise ConfigError([
            f"{field}: {host} is not a loopback address; binding there needs a token "
            f"(set {token_field} or the {TOKEN_ENV} environment variable)"
        ])


def check_peer(url: str, token: str | None, field: str) -> None:
    """The same rule for an admin API the controller calls: one beyond
    loopback is reached only with a token (a proxy listening there has one)."""
    host = urlsplit(url).hostname or ""
    if not is_loopback(host) and not token:
        raise ConfigError([
            f"{field}: {host} is not a loopback address; a load balancer there is reached only with a "
            f"token (set loadBalancer.Admin.Token or the {TOKEN_ENV} environment variable, as for the proxy)"
        ])


def bearer_middleware(token: str | None, open_paths: tuple[str, ...] = ()) -> Any:
    """aiohttp middleware: every request needs `Authorization: Bearer <token>`
    when a token is set (paths in `open_paths` excepted)."""
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if expected is not None and request.path not in open_paths:
            got = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(got, expected):
                return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    return check


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve a control-plane app (admin or controller API, no access log);
    returns the runner and the port it got (port 0 picks a free one)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    sockets = site._server.sockets if site._server is not None else ()  # type: ignore[attr-defined]
    return runner, (sockets[0].getsockname()[1] if port == 0 and sockets else port)
