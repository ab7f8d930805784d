"""What keeps the admin and controller APIs to the people meant to use them.

The bind rule: loopback by default; any other address only with a token, so
that nobody on the network can move production traffic of a rehearsal by
accident or on purpose. The controller applies the same rule to a proxy it
calls in another process. Every token must be strong (`strong_token`).

The browser guard: a web page the user visits must not reach these APIs
either, by a cross-site request or by DNS rebinding (`browser_guard`).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from shiftlab.common.configfile import ConfigError

TOKEN_ENV = "SHIFTLAB_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


TOKEN_MIN_LENGTH = 16
TOKEN_MIN_DISTINCT = 8
TOKEN_RULE = (f"at least {TOKEN_MIN_LENGTH} characters, no whitespace, at least {TOKEN_MIN_DISTINCT} different "
              'characters; make one with: python3 -c "import secrets; print(secrets.token_urlsafe(24))"')


def resolve_token(configured: str | None) -> str | None:
    return configured or os.environ.get(TOKEN_ENV) or None


def token_problem(token: str) -> str | None:
    """Why a token is too weak to protect anything, or None."""
    if any(c.isspace() for c in token):
        return "contains whitespace"
    if len(token) < TOKEN_MIN_LENGTH:
        return f"is {_characters(len(token))} long"
    if len(set(token)) < TOKEN_MIN_DISTINCT:
        return f"has {_characters(len(set(token)), 'different ')} only"
    return None


def _characters(n: int, kind: str = "") -> str:
    return f"{n} {kind}character{'' if n == 1 else 's'}"


def strong_token(configured: str | None, field: str) -> str | None:
    """The token in force (the configured one, else SHIFTLAB_TOKEN), refused
    when weak: a token of one character guards nothing, and it is what lets
    an API bind beyond loopback. The error names where the token came from."""
    token = resolve_token(configured)
    if token is None:
        return None
    problem = token_problem(token)
    if problem is not None:
        source = field if configured else f"the {TOKEN_ENV} environment variable"
        raise ConfigError([f"{source}: the token {problem}; a token needs {TOKEN_RULE}"])
    return token


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


STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a page may send cross-site without a CORS preflight.
SIMPLE_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})


def _host_name(host: str) -> str | None:
    """`localhost:9091` -> localhost, `[::1]:9091` -> ::1; None when unparsable."""
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return None
    return parts.hostname


def browser_guard(bind_host: str, other_types: Mapping[str, frozenset[str]] | None = None) -> Any:
    """aiohttp middleware that refuses what a web page could send these APIs.

    A page the user visits can POST cross-site without asking (a form, or a
    `fetch` with a "simple" content type), and by DNS rebinding it can even
    be the same origin: a name of its own that resolves to 127.0.0.1. So:

    - Host: an API bound to loopback answers only requests addressed to a
      loopback name or address; a rebound name is refused (reads too). Bound
      beyond loopback, a token is mandatory and authenticates every call, so
      the name the user reaches it by does not matter.
    - Origin and Sec-Fetch-Site, on state-changing calls: another origin
      (or `null`) is refused. The CLI and the controller send neither.
    - Content-Type: a state-changing call must say `application/json`, even
      with no body. A browser sends that cross-origin only after a CORS
      preflight (OPTIONS), which these APIs never approve (OPTIONS is not
      routed), so no page can change anything without the API's consent,
      whatever a browser does with Origin. `other_types` lets the paths
      under a prefix take other types that need a preflight too (the
      CloudWatch endpoint's application/cbor); never a form's.
    """
    check_host = is_loopback(bind_host)
    extra = dict(other_types or {})
    assert not any(SIMPLE_TYPES & types for types in extra.values()), "a form's content type needs no preflight"

    def refuse(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        # A request without Host is not a browser's (HTTP/1.1 browsers always send it).
        host = request.headers.get("Host")
        if check_host and host is not None and not is_loopback(_host_name(host) or ""):
            return refuse(403, f"Host {host!r} is not this API's: bound to {bind_host}, it answers only "
                               "requests to a loopback name or address (localhost, 127.0.0.1, [::1])")
        if request.method in STATE_CHANGING:
            origin = request.headers.get("Origin")
            # https too: behind a TLS front end, the API's own page has an https origin.
            own = {f"{scheme}://{host}".lower() for scheme in ("http", "https")} if host else set()
            if origin is not None and origin.lower() not in own:
                return refuse(403, f"Origin {origin!r} is not this API's own (http://{host}): "
                                   "a state-changing call from another origin is refused")
            site = request.headers.get("Sec-Fetch-Site")
            if site is not None and site.lower() not in SAME_SITE_FETCHES:
                return refuse(403, f"Sec-Fetch-Site: {site}: a state-changing call from another site is refused")
            allowed = next((types for prefix, types in extra.items() if request.path.startswith(prefix)), frozenset())
            if "Content-Type" not in request.headers or (request.content_type != "application/json"
                                                         and request.content_type not in allowed):
                sent = request.headers.get("Content-Type", "none")
                return refuse(415, f"{request.method} {request.path}: Content-Type must be application/json "
                                   f"(got {sent}); send the body as JSON with that header, {{}} when there is "
                                   "nothing to send")
        response: web.StreamResponse = await handler(request)
        return response

    return guard


def bearer_middleware(token: str | None, open_paths: tuple[str, ...] = (), open_prefixes: tuple[str, ...] = ()) -> Any:
    """aiohttp middleware: every request needs `Authorization: Bearer <token>`
    when a token is set (paths in `open_paths`, and under `open_prefixes`,
    which check the token themselves, excepted)."""
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if expected is not None and request.path not in open_paths and not request.path.startswith(open_prefixes):
            got = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(got, expected):
                return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    return check


async def serve_app(app: web.Application, host: str, port: int, **options: Any) -> tuple[web.AppRunner, int]:
    """Serve a control-plane app (admin or controller API, no access log);
    returns the runner and the port it got (port 0 picks a free one).
    `options` go to aiohttp's request handler (auto_decompress=False, ...)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **options)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner, (int(runner.addresses[0][1]) if port == 0 and runner.addresses else port)
