"""The data plane: one aiohttp low-level server per listener.

aiohttp parses the client side (keep-alive, pipelining, chunked bodies,
limits); everything toward targets goes through proxy.upstream. The request
path does only what ALB does: match a rule, pick a group by weight (or by
the stickiness cookie), pick a target, forward with ALB's headers, count.

No client can make the proxy hold more than a bounded amount for it: every
write toward a client waits for the client to take the data (aiohttp stops
reading a pipelining client after a few queued requests, so an answer
waiting here holds up the rest), and a client that takes nothing for the
idle timeout loses its connection, as on ALB. Header values are bytes: what
aiohttp decoded with `surrogateescape` is encoded back the same way, so any
byte a client sends goes to the target as it came.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import re
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, HttpProcessingError
from aiohttp.http_parser import HttpRequestParser, HttpRequestParserPy, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server
from multidict import CIMultiDict

from shiftlab.proxy import desync
from shiftlab.proxy.state import Choice, Forward, ListenerState, LoadBalancerState, Rule, Target
from shiftlab.proxy.stats import Counters
from shiftlab.proxy.upstream import StaleConnection, TargetConnectError, UpstreamConnection, UpstreamError

# aiohttp decodes request heads as UTF-8 with this error handler; encoding
# back with it gives the client's bytes exactly.
RAW = "surrogateescape"

log = logging.getLogger("shiftlab.proxy")

MAX_LINE = 16 * 1024  # ALB: request line or one header above 16 KiB -> 400
MAX_HEADERS_TOTAL = 64 * 1024  # ALB: all headers above 64 KiB -> 400
MAX_XFF = 30  # ALB: more X-Forwarded-For addresses -> 463
MAX_HEADERS = 1024  # header lines per request (ALB bounds them by size: 64 KiB)
BUFFER_BODY = 64 * 1024  # request bodies up to this are sent in one write
CONNECT_TIMEOUT = 10.0  # ALB's connect timeout to a target
CLIENT_HIGH_WATER = 4 * 1024  # buffered toward a client before a write waits for it to read
PIPELINE_DEPTH = 4  # a client's parsed requests waiting for their turn before it is no longer read
# RFC 9110 9.2.2: a request with one of these methods may be sent again when
# the target closed a reused connection without answering; any other method
# may have been processed, so ALB (and nginx) answer 502 instead.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
UPGRADES = frozenset({"websocket", "tcp"})  # the upgrades aiohttp hands over as raw bytes
# Header names looked up per request, as aiohttp's istr constants: multidict
# looks an istr up without case-folding it each time (~3x cheaper than a str).
_TE, _CL, _XFF = hdrs.TRANSFER_ENCODING, hdrs.CONTENT_LENGTH, hdrs.X_FORWARDED_FOR
_UPGRADE, _COOKIE = hdrs.UPGRADE, hdrs.COOKIE

# Not forwarded as such: hop-by-hop headers, and those ALB rewrites itself.
_SKIP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
    b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"content-length", b"expect", b"x-forwarded-proto", b"x-forwarded-port",
    b"x-forwarded-for", b"x-amzn-trace-id",
})
_SKIP_RESPONSE = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
    b"te", b"trailer", b"transfer-encoding", b"upgrade", b"content-length",
})

_REASONS = {
    400: "Bad Request", 405: "Method Not Allowed", 408: "Request Time-out", 460: "", 463: "",
    500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
    504: "Gateway Time-out", 505: "HTTP Version Not Supported",
}


def error_page(status: int) -> bytes:
    """ALB's own error pages are this plain HTML, served by `awselb/2.0`."""
    title = f"{status} {_REASONS.get(status, '')}".strip()
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    ).encode()


_PAGES = {code: error_page(code) for code in _REASONS}


def elb_response(request: BaseRequest, status: int, close: bool = False) -> RawResponse:
    """An error of the load balancer's own, always as HTTP/1.1 (whatever
    version the client spoke, e.g. an HTTP/0.9 request line)."""
    page = _PAGES.get(status) or error_page(status)
    keep_alive = not close and request.keep_alive
    head = b"%sServer: awselb/2.0\r\n%sContent-Type: text/html\r\nContent-Length: %d\r\n%s\r\n" % (
        status_line(1, status), date_line(), len(page), b"" if keep_alive else b"Connection: close\r\n")
    return RawResponse(status, head + page, keep_alive)


def trace_id(client_value: str | None, now: float | None = None) -> str:
    """X-Amzn-Trace-Id: a new Root, or the client's Root kept and a Self added.
    The 96 random bits need to be unique, not secret: getrandbits is several
    times cheaper than os.urandom per request."""
    new = f"1-{int(now if now is not None else time.time()):08x}-{random.getrandbits(96):024x}"
    if client_value and "Root=" in client_value:
        fields = [f for f in client_value.split(";") if f and not f.startswith("Self=")]
        return ";".join([f"Self={new}", *fields])
    return f"Root={new}"


def sticky_cookie_value(group: str, expires: int) -> str:
    return base64.urlsafe_b64encode(f"{group}|{expires}".encode()).decode().rstrip("=")


def read_sticky_cookie(value: str, now: float) -> str | None:
    """The group a stickiness cookie names, if it is well formed and not expired."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        group, _, exp = raw.rpartition("|")
        if group and int(exp) > now:
            return group
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    return None


class StickyCookies:
    """The two Set-Cookie headers of a stickiness cookie, kept per group for
    the current expiry second: formatting a date per request is costly."""

    __slots__ = ("expires", "raw", "values")

    def __init__(self, group: str, expires: int) -> None:
        v = sticky_cookie_value(group, expires)
        when = formatdate(expires, usegmt=True)
        self.expires = expires
        self.values = (
            f"AWSALBTG={v}; Expires={when}; Path=/",
            f"AWSALBTGCORS={v}; Expires={when}; Path=/; SameSite=None; Secure",
        )
        self.raw = b"".join(b"Set-Cookie: " + value.encode("latin-1") + b"\r\n" for value in self.values)


_sticky_cache: dict[str, StickyCookies] = {}


def sticky_cookies(group: str, expires: int) -> StickyCookies:
    c = _sticky_cache.get(group)
    if c is None or c.expires != expires:
        c = _sticky_cache[group] = StickyCookies(group, expires)
    return c


_date_second = -1
_date_line = b""


def date_line() -> bytes:
    """The `Date:` header line, formatted once per second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second, _date_line = now, b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_line


# Status lines by HTTP minor version and status, as aiohttp wrote them
# (standard reason phrases, empty for unknown codes).
_STATUS_LINES = {
    (minor, s.value): f"HTTP/1.{minor} {s.value} {s.phrase}\r\n".encode() for minor in (0, 1) for s in HTTPStatus
}


def status_line(minor: int, status: int) -> bytes:
    line = _STATUS_LINES.get((minor, status))
    return line if line is not None else f"HTTP/1.{minor} {status} \r\n".encode()


class RawResponse(web.StreamResponse):
    """A complete response already serialised, for aiohttp's connection
    handler to send as such: one transport write, and no headers of
    aiohttp's own (ALB passes the target's headers through, adding none of
    Server or Content-Type). The write waits for the client to take it
    (see drain_client), so that a pipelining client that reads nothing
    holds up its next requests instead of growing the proxy."""

    def __init__(self, status: int, data: bytes, keep_alive: bool, idle_timeout: float = 60.0) -> None:
        super().__init__(status=status)
        self._data = data
        self._keep_alive = keep_alive
        self._idle_timeout = idle_timeout

    async def prepare(self, request: BaseRequest) -> None:
        if self._eof_sent:
            return
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        transport.write(self._data)
        self._eof_sent = True
        if transport.get_write_buffer_size() > CLIENT_HIGH_WATER:
            await drain_client(request, self._idle_timeout)

    async def write_eof(self, data: bytes = b"") -> None:
        pass


async def drain_client(request: BaseRequest, idle_timeout: float) -> None:
    """Wait until the client takes what is buffered for it. ALB's idle
    timeout applies to writes too: a client that takes nothing for that
    long loses its connection (ConnectionResetError)."""
    try:
        async with asyncio.timeout(idle_timeout):
            await request.writer.drain()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client took nothing for the idle timeout") from None


def _sticky_cookie(header: str | None) -> str | None:
    """The value of `AWSALBTG`, else of `AWSALBTGCORS`: a cross-site request
    carries only the SameSite=None one, and ALB honours either."""
    if not header or "AWSALBTG" not in header:
        return None
    cors = None
    for part in header.split(";"):
        k, _, v = part.strip().partition("=")
        if k == "AWSALBTG":
            return v
        if k == "AWSALBTGCORS" and cors is None:
            cors = v
    return cors


class ListenerHandler:
    """Handles every request of one listener."""

    def __init__(self, lb: LoadBalancerState, listener: ListenerState, idle_timeout: float) -> None:
        self.lb = lb
        self.listener = listener
        self.idle_timeout = idle_timeout
        self.port_header = f"X-Forwarded-Port: {listener.port}\r\nX-Forwarded-Proto: http\r\n".encode()
        self.desync_mode = lb.conf.desync_mitigation_mode
        address = listener.conf.Address
        self.host_header = f"Host: {'[' + address + ']' if ':' in address else address}:{listener.port}\r\n".encode()

    async def __call__(self, request: BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            # A bug of ours must not become a traceback on the wire.
            log.exception("internal error handling %r %r", request.method, request.raw_path)
            self.listener.counters.elb_error(500)
            return elb_response(request, 500, close=True)

    def _refuse(self, request: BaseRequest, status: int, close: bool = False) -> RawResponse:
        self.listener.counters.elb_error(status)
        return elb_response(request, status, close)

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        listener = self.listener
        method = request.method
        if request.version.major != 1:
            # HTTP/0.9 is a malformed request to ALB; an HTTP/2 request line on
            # an HTTP/1 connection is "an unexpected HTTP version" (505).
            return self._refuse(request, 505 if request.version.major >= 2 else 400, close=True)
        if method == "TRACE":
            return self._refuse(request, 405)
        if method == "CONNECT":
            # Not supported by Elastic Load Balancing: 400, never forwarded.
            return self._refuse(request, 400, close=True)
        headers = request.headers
        te = headers.get(_TE)
        if te is not None and unsupported_coding(te):
            return self._refuse(request, 501, close=True)
        xff = ", ".join(headers.getall(_XFF, ())) or None
        if xff is not None and xff.count(",") + 1 > MAX_XFF:
            return self._refuse(request, 463)
        close = False
        if type(request._message) is ClassifiedMessage or (
                (method == "GET" or method == "HEAD") and (te is not None or _CL in headers)):
            act = self._desync_action(request, te)
            if act == desync.REFUSE:
                return self._refuse(request, 400, close=True)
            close = act == desync.CLOSE

        rule = listener.match(request)
        if rule.kind != "forward":
            resp = self._non_forward(request, rule)
            if close:
                resp.force_close()
            return resp
        fwd = rule.forward
        assert fwd is not None
        choice, set_cookie = self._choose_group(request, fwd)
        if choice is None:
            return self._refuse(request, 503)
        counters = choice.counters
        target = choice.group.choose()
        if target is None:
            counters.elb_error(503)
            return elb_response(request, 503)
        # ALB: RequestCount "is only incremented for requests where the load
        # balancer node was able to choose a target".
        counters.requests += 1
        upgrade = headers.get(_UPGRADE)
        if upgrade is not None:
            # aiohttp hands over the rest of the connection as raw bytes
            # after these upgrades (WebSocket), as it parsed them: forwarded,
            # and tunnelled if the target switches protocols.
            upgrade = upgrade.lower()
            if upgrade not in UPGRADES or "upgrade" not in {
                    t.strip().lower() for v in headers.getall("Connection", ()) for t in v.split(",")}:
                upgrade = None
        return await self._forward(request, target, choice, xff, set_cookie, upgrade, close)

    def _desync_action(self, request: BaseRequest, te: str | None) -> str:
        """What desync mitigation does with a request the fallback parser
        classified, or a GET/HEAD with framing headers."""
        message = request._message
        if type(message) is ClassifiedMessage:
            verdict = message.verdict
        else:
            verdict = desync.classify_bodyless(te, request.headers.get(_CL))
        if verdict is desync.COMPLIANT:
            return desync.FORWARD
        # DesyncMitigationMode_NonCompliant_Request_Count: every request that
        # does not comply with RFC 7230, whatever the mode does with it.
        self.lb.stats.desync_non_compliant += 1
        log.debug("desync mitigation: %s %s (%s)", verdict.tier.name, verdict.reason, self.desync_mode)
        return desync.action(self.desync_mode, verdict)

    def _choose_group(self, request: BaseRequest, fwd: Forward) -> tuple[Choice | None, StickyCookies | None]:
        if fwd.sticky_seconds is None:
            return (fwd.picker.pick() if fwd.picker else None), None
        now = time.time()
        choice = None
        value = _sticky_cookie(request.headers.get(_COOKIE))
        if value:
            name = read_sticky_cookie(value, now)
            c = fwd.by_name.get(name) if name else None
            if c is not None and c.weight > 0:  # a group now at weight 0 is not honoured
                choice = c
        if choice is None:
            if not fwd.picker:
                return None, None
            choice = fwd.picker.pick()
        return choice, sticky_cookies(choice.group.name, int(now) + fwd.sticky_seconds)

    def _non_forward(self, request: BaseRequest, rule: Rule) -> web.StreamResponse:
        # No target is chosen: not a RequestCount (ALB counts these as
        # HTTP_Fixed_Response_Count / HTTP_Redirect_Count, which shiftlab does not compute).
        if rule.fixed is not None:
            f = rule.fixed
            return web.Response(status=int(f.StatusCode), text=f.MessageBody, content_type=f.ContentType,
                                headers={"Server": "awselb/2.0"})
        r = rule.redirect
        assert r is not None
        host = request.host.partition(":")[0] if not request.host.startswith("[") else request.host
        values = {
            "#{protocol}": "http", "#{host}": host, "#{port}": str(self.listener.port),
            "#{path}": request.path.lstrip("/"), "#{query}": request.query_string,
        }

        def sub(s: str) -> str:
            for k, v in values.items():
                s = s.replace(k, v)
            return s

        proto, port, path, query = sub(r.Protocol).lower(), sub(r.Port), sub(r.Path), sub(r.Query)
        default_port = {"http": "80", "https": "443"}.get(proto)
        netloc = sub(r.Host) + ("" if port == default_port else f":{port}")
        location = f"{proto}://{netloc}{path}" + (f"?{query}" if query else "")
        return web.Response(status=301 if r.StatusCode == "HTTP_301" else 302,
                            headers={"Location": location, "Server": "awselb/2.0"})

    def _head(self, request: BaseRequest, xff: str | None, body_len: int | None,
              upgrade: str | None = None) -> bytes | None:
        """The request head toward the target, or None when headers are too large."""
        parts = [f"{request.method} {request.raw_path} HTTP/1.1\r\n".encode("utf-8", RAW)]
        size = 0
        trace = None
        has_host = False
        # Headers named by Connection are hop-by-hop too, wherever they
        # appear; but not Host, on which the rules matched.
        drop = {t.strip().lower().encode("utf-8", RAW) for v in request.headers.getall("Connection", ())
                for t in v.split(",")}
        drop.discard(b"host")
        for name, value in request.raw_headers:
            size += len(name) + len(value)
            lname = name.lower()
            if lname in _SKIP:
                if lname == b"x-amzn-trace-id":
                    trace = value.decode("utf-8", RAW)
                continue
            if drop and lname in drop:
                continue
            has_host = has_host or lname == b"host"
            parts.append(name + b": " + value + b"\r\n")
        if size > MAX_HEADERS_TOTAL:
            return None
        if not has_host:
            # ALB gives HTTP/1.0 requests without Host its own name; ours is the listener's address.
            parts.append(self.host_header)
        peer = request.remote or ""
        parts.append(f"X-Forwarded-For: {xff + ', ' if xff else ''}{peer}\r\n".encode("utf-8", RAW))
        parts.append(self.port_header)
        parts.append(f"X-Amzn-Trace-Id: {trace_id(trace)}\r\n".encode("utf-8", RAW))
        if upgrade is not None:
            parts.append(b"Connection: Upgrade\r\nUpgrade: " + upgrade.encode() + b"\r\n")
        if body_len is None:
            parts.append(b"Transfer-Encoding: chunked\r\n\r\n")
        elif body_len or request.method in ("POST", "PUT", "PATCH"):
            parts.append(f"Content-Length: {body_len}\r\n\r\n".encode())
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    async def _forward(self, request: BaseRequest, target: Target, choice: Choice, xff: str | None,
                       set_cookie: StickyCookies | None, upgrade: str | None = None,
                       close: bool = False) -> web.StreamResponse:
        """Forward the request and answer with the target's response; with
        `close` (an Ambiguous request in defensive mode), both the client's
        and the target's connection are closed after it."""
        counters = choice.counters
        body = b""
        length: int | None = 0
        streamed = False
        if request.body_exists:
            length = request.content_length
            streamed = length is None or length > BUFFER_BODY
            if request.headers.get("Expect", "").lower() == "100-continue":
                # Expect is not forwarded, so the answer is ours: without it the
                # client would wait before sending the body we are about to read.
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if not streamed:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        body = await request.read()
                except TimeoutError:
                    counters.elb_error(408)
                    return elb_response(request, 408, close=True)
                length = len(body)
        head = self._head(request, xff, length, upgrade)
        if head is None:
            counters.elb_error(400)
            return elb_response(request, 400, close=True)

        loop = asyncio.get_running_loop()
        group = choice.group
        method = request.method
        target.outstanding += 1
        conn: UpstreamConnection | None = None
        try:
            for attempt in (0, 1):
                try:
                    if upgrade is not None:
                        # Its own connection: it may become a tunnel.
                        conn = await target.pool.connect(CONNECT_TIMEOUT)
                    else:
                        conn = target.pool.take_idle() or await target.pool.acquire(CONNECT_TIMEOUT)
                except TimeoutError:
                    counters.conn_errors += 1
                    counters.elb_error(504)
                    return elb_response(request, 504)
                except TargetConnectError:
                    counters.conn_errors += 1
                    counters.elb_error(502)
                    return elb_response(request, 502)
                waiter = conn.begin(no_body=method == "HEAD", upgrade=upgrade is not None)
                started = loop.time()
                try:
                    if streamed:
                        await self._upload(request, conn, head, length is None, counters)
                    else:
                        conn.write(head + body if body else head)
                    conn.expect_head(self.idle_timeout)
                    await waiter
                    break
                except StaleConnection:
                    _settle(waiter)
                    conn.close()
                    if streamed or attempt or method not in IDEMPOTENT:
                        # The target closed a reused connection without
                        # answering; it may have processed the request.
                        counters.elb_error(502)
                        return elb_response(request, 502)
                    # An idempotent request on a connection the target closed
                    # as we reused it: one retry on a new one is safe.
                    continue
                except ClientStalled:
                    _settle(waiter)
                    conn.abort()
                    counters.elb_error(408)
                    return elb_response(request, 408, close=True)
                except TimeoutError:
                    _settle(waiter)
                    conn.abort()
                    counters.elb_error(504)
                    return elb_response(request, 504)
                except UpstreamError:
                    if streamed and conn.status:
                        # The target answered before taking the whole body
                        # (413, 401, ...) and closed: its answer goes through.
                        break
                    _settle(waiter)
                    conn.abort()
                    counters.elb_error(502)
                    return elb_response(request, 502)
            assert conn is not None
            counters.response_time(loop.time() - started)
            counters.target[conn.status // 100] += 1
            counters.bytes += len(head) + len(body)
            if conn.tunnel:
                return await self._tunnel(request, conn, counters)
            if conn.complete and method != "HEAD":
                # The common case: the whole response is in; one write.
                resp_body = conn.take_body()
                counters.bytes += len(resp_body)
                return self._complete(request, conn.status, conn.headers, resp_body, set_cookie, close)
            return await self._respond(request, conn, counters, set_cookie, close)
        finally:
            target.outstanding -= 1
            if conn is not None:
                if close:
                    conn.close()
                else:
                    conn.release()
            if target.outstanding == 0:
                group.request_done(target)

    async def _upload(self, request: BaseRequest, conn: UpstreamConnection, head: bytes, chunked: bool,
                      counters: Counters) -> None:
        """Send the head, then the body as it arrives, paced by the target.
        Nothing for the idle timeout ends it: TimeoutError when the target
        takes nothing, ClientStalled when the client sends nothing."""
        conn.write(head)
        content = request.content
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    chunk = await content.readany()
            except TimeoutError:
                raise ClientStalled from None
            if not chunk:
                break
            conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            counters.bytes += len(chunk)
            await conn.drain(self.idle_timeout)
        if chunked:
            conn.write(b"0\r\n\r\n")

    async def _respond(self, request: BaseRequest, conn: UpstreamConnection, counters: Counters,
                       set_cookie: StickyCookies | None, close: bool = False) -> web.StreamResponse:
        """A response that is still arriving (or a HEAD's): streamed, each
        write paced by the client within the idle timeout."""
        headers, length = self._response_headers(conn, set_cookie)
        resp_s = web.StreamResponse(status=conn.status, headers=headers)
        if length is not None:
            resp_s.content_length = length
        if close:
            resp_s.force_close()
        await resp_s.prepare(request)
        if request.method == "HEAD":
            return resp_s
        loop = asyncio.get_running_loop()
        idle = self.idle_timeout
        transport = request.transport
        assert transport is not None
        try:
            while True:
                fut = loop.create_task(conn.next_chunk())
                timer = loop.call_later(idle, fut.cancel)
                try:
                    chunk = await fut
                except (UpstreamError, asyncio.CancelledError):
                    timer.cancel()
                    conn.abort()
                    if request.transport is not None:
                        request.transport.abort()  # the client sees a cut response, as from ALB
                    raise ConnectionResetError("target failed mid-response") from None
                timer.cancel()
                if chunk is None:
                    break
                counters.bytes += len(chunk)
                async with asyncio.timeout(idle):
                    await resp_s.write(chunk)
                if transport.get_write_buffer_size() > CLIENT_HIGH_WATER:
                    await drain_client(request, idle)
            async with asyncio.timeout(idle):
                await resp_s.write_eof()
        except TimeoutError:
            # The client took nothing for the idle timeout: both connections go.
            conn.abort()
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("the client took nothing for the idle timeout") from None
        return resp_s

    @staticmethod
    def _response_headers(conn: UpstreamConnection,
                          set_cookie: StickyCookies | None) -> tuple[CIMultiDict[str], int | None]:
        """The target's headers for aiohttp's StreamResponse, and its Content-Length."""
        headers: CIMultiDict[str] = CIMultiDict()
        if set_cookie is not None:
            headers.extend(("Set-Cookie", v) for v in set_cookie.values)
        length = None
        for name, value in conn.headers:
            lname = name.lower()
            if lname in _SKIP_RESPONSE:
                if lname == b"content-length":
                    length = int(value)
                continue
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        return headers, length

    def _complete(self, request: BaseRequest, status: int, target_headers: list[tuple[bytes, bytes]], body: bytes,
                  set_cookie: StickyCookies | None, close: bool = False) -> RawResponse:
        """A complete target response as bytes: the target's headers verbatim
        (less hop-by-hop ones), then what aiohttp's Response added and ALB
        sends too: Content-Length, Date when the target sent none, and the
        Connection header keep-alive needs."""
        version = request.version
        keep_alive = request.keep_alive and not close
        parts = [status_line(version.minor, status)]
        if set_cookie is not None:
            parts.append(set_cookie.raw)
        has_date = False
        for name, value in target_headers:
            lname = name.lower()
            if lname in _SKIP_RESPONSE:
                continue
            if lname == b"date":
                has_date = True
            parts.append(name + b": " + value + b"\r\n")
        # No Content-Length on a 204, nor on an empty 304 (RFC 9110 8.6).
        if status != 204 and (body or status != 304):
            parts.append(b"Content-Length: %d\r\n" % len(body))
        if not has_date:
            parts.append(date_line())
        if keep_alive:
            if version.minor == 0:
                parts.append(b"Connection: keep-alive\r\n")
        elif version.minor == 1:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if body and status != 204 and status != 304:
            parts.append(body)
        return RawResponse(status, b"".join(parts), keep_alive, self.idle_timeout)

    async def _tunnel(self, request: BaseRequest, conn: UpstreamConnection, counters: Counters) -> RawResponse:
        """The target switched protocols (101, a WebSocket): its answer goes
        to the client as it came, then bytes flow both ways, each direction
        paced by the other side, until either side closes or nothing moves
        for the idle timeout (as ALB closes idle WebSocket connections)."""
        transport = request.transport
        assert transport is not None
        parts = [status_line(1, 101)]
        parts.extend(name + b": " + value + b"\r\n" for name, value in conn.headers)
        parts.append(b"\r\n")
        transport.write(b"".join(parts))
        loop = asyncio.get_running_loop()
        to_target = ClientToTarget(conn, transport, counters, loop.time())
        request.protocol.set_parser(to_target)  # type: ignore[arg-type]
        idle = self.idle_timeout
        last_from_target = loop.time()
        try:
            while True:
                quiet_until = max(to_target.last, last_from_target) + idle
                try:
                    async with asyncio.timeout(max(0.0, quiet_until - loop.time())):
                        chunk = await conn.next_chunk()
                except TimeoutError:
                    if max(to_target.last, last_from_target) + idle > loop.time():
                        continue  # the client spoke meanwhile
                    break
                if chunk is None:
                    break
                last_from_target = loop.time()
                counters.bytes += len(chunk)
                transport.write(chunk)
                if transport.get_write_buffer_size() > CLIENT_HIGH_WATER:
                    await drain_client(request, idle)
        except (UpstreamError, ConnectionError):
            pass
        conn.abort()
        transport.close()
        # Nothing more to send: the connection is closed as it ends.
        return RawResponse(101, b"", keep_alive=False)


class ClientToTarget:
    """What aiohttp feeds with the client's bytes after a switch of
    protocols (in place of a WebSocket reader): they go to the target as
    they come, and the client is not read while the target takes nothing."""

    __slots__ = ("conn", "counters", "last", "loop", "transport")

    def __init__(self, conn: UpstreamConnection, transport: asyncio.BaseTransport, counters: Counters,
                 now: float) -> None:
        self.conn = conn
        self.transport = transport
        self.counters = counters
        self.loop = asyncio.get_running_loop()
        self.last = now
        conn.on_writable = self._resume

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        conn = self.conn
        if conn.closed or not data:
            return False, b""
        self.last = self.loop.time()
        self.counters.bytes += len(data)
        conn.write(data)
        if not conn.writable:
            self.transport.pause_reading()  # type: ignore[attr-defined]
        return False, b""

    def feed_eof(self) -> None:
        self.conn.close()  # the client left: so does the tunnel

    def _resume(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()  # type: ignore[attr-defined]


class ClientStalled(Exception):
    """The client sent no body bytes for the idle timeout (ALB: 408)."""


def _settle(waiter: asyncio.Future[None]) -> None:
    """A head waiter we stop waiting for: cancel it, or mark its exception
    seen, so that asyncio does not report it as never retrieved."""
    if not waiter.done():
        waiter.cancel()
    elif not waiter.cancelled():
        waiter.exception()


class ClassifiedMessage(RawRequestMessage):
    """A request head the fallback parser read, with its desync verdict.
    (aiohttp's message type is its C one, also for its Python parser.)"""

    verdict: desync.Verdict


class DesyncRefused(BadHttpMessage):
    """A request desync mitigation refuses whatever the mode: Severe framing."""


class FallbackParser(HttpRequestParserPy):
    """aiohttp's pure-Python parser, for a connection llhttp refused a
    request of that ALB accepts: any token as the method, kept as sent
    (aiohttp upper-cases it), and each head classified and framed as
    desync mitigation says (proxy/desync.py)."""

    def parse_message(self, lines: list[bytes]) -> RawRequestMessage:
        verdict, lines = desync.classify_head(lines)
        if verdict.tier == desync.Tier.SEVERE:
            # Framing the load balancer cannot establish: refused in every
            # mode (a 501 for a coding ALB does not support, as before).
            if verdict.reason == "BadTransferEncoding":
                raise DesyncRefused("Request has invalid `Transfer-Encoding`")
            raise DesyncRefused(f"desync mitigation: {verdict.reason}")
        msg = super().parse_message(lines)
        method = lines[0].split(b" ", 1)[0].decode("ascii")
        out = ClassifiedMessage(method, msg.path, msg.version, msg.headers, msg.raw_headers, msg.should_close,
                                msg.compression, msg.upgrade, msg.chunked, msg.url)
        out.verdict = verdict
        return out


# llhttp's refusals that a fallback parse may answer otherwise: a method it
# does not know, and the framing headers desync mitigation classifies.
_FALLBACK_ERRORS = ("Content-Length can't be present with Transfer-Encoding",
                    "Transfer-Encoding can't be present with Content-Length", "Duplicate Content-Length")
_WINDOW_MAX = MAX_HEADERS_TOTAL + MAX_LINE  # bytes of one unfinished head kept for a fallback
_HEAD_END = b"\r\n\r\n"


class RequestParser(HttpRequestParser):
    """aiohttp's C parser (llhttp), keeping the bytes of the request head it
    is in the middle of, for the rare request it refuses but ALB accepts:
    then those bytes, and the rest of the connection, go to FallbackParser
    (it becomes the handler's parser).

    The bytes kept (`window`) start at a known boundary between requests:
    a chunk that ends a request (nothing of it left to read, and ending with
    CRLF CRLF, which no unfinished head can) is one; after anything else
    (a body still arriving, a pipelined tail, the parser paused with a full
    queue), the boundary is unknown and llhttp's refusal stands. A subclass
    rather than a wrapper: the fast path costs one Python call per chunk."""

    __slots__ = ("handler", "py_args", "window")

    def __init__(self, handler: RequestHandler, *args: Any, **kwargs: Any) -> None:
        super().__init__(handler, *args, **kwargs)
        self.handler = handler
        self.py_args = ((handler, *args), kwargs)
        self.window: bytes | bytearray | None = b""

    def feed_data(  # type: ignore[override]  # defaults as locals: the fast path
            self, data: bytes, _feed: Any = HttpRequestParser.feed_data, _end: bytes = b"\r\n\r\n",
            _empty: Any = EMPTY_PAYLOAD, _depth: int = PIPELINE_DEPTH) -> Any:
        window = self.window
        try:
            result = _feed(self, data)
        except HttpProcessingError as exc:
            if window is None or not (isinstance(exc, BadHttpMethod) or any(
                    e in exc.message for e in _FALLBACK_ERRORS)):
                raise
            buf = bytes(window) + data if window else data
            if not desync.METHOD_START.match(buf):
                raise
            return self._fall_back(buf)
        messages = result[0]
        if messages:
            payload = messages[-1][1]
            at_boundary = (data.endswith(_end) and (payload is _empty or payload.is_eof())
                           and len(self.handler._messages) + len(messages) < _depth)
            self.window = b"" if at_boundary else None
        elif window is not None and data:
            # A head arriving in pieces: kept in a bytearray, so that a client
            # sending a byte at a time does not make each piece a copy of all.
            if len(window) >= _WINDOW_MAX:
                self.window = None
            elif window:
                window += data  # in place: a bytearray
            else:
                self.window = bytearray(data)
        return result

    def _fall_back(self, buf: bytes) -> Any:
        args, kwargs = self.py_args
        py = FallbackParser(*args, **kwargs)
        self.handler._parser = py
        self.window = None
        return py.feed_data(buf)


class AlbRequestHandler(RequestHandler):
    """aiohttp's connection handler with ALB's answer to unparsable requests
    and connection counting."""

    stats_counters: Counters
    lb_stats: Any
    listener_conns: list[int]  # [new, active] of this listener (Service Connect's per-endpoint counts)

    def __init__(self, manager: Server, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        # aiohttp queues up to 32 parsed pipelined requests per connection
        # before it stops reading; a proxy answers them one at a time, so a
        # few suffice, and each queued one is memory a client made us spend.
        # The bound lives in the parser (and the handler's copy of it).
        self._max_msg_queue_size = PIPELINE_DEPTH
        self._msg_queue_resume_size = PIPELINE_DEPTH // 2
        self._parser = RequestParser(
            self, loop, kwargs.get("read_bufsize", 2**16), max_line_size=MAX_LINE, max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS, payload_exception=RequestPayloadError, auto_decompress=False,
            max_msg_queue_size=PIPELINE_DEPTH,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A write waits (drain) once this much is buffered for the client.
        transport.set_write_buffer_limits(high=CLIENT_HIGH_WATER)  # type: ignore[attr-defined]
        self.lb_stats.new_connections += 1
        self.lb_stats.active_connections += 1
        conns = self.listener_conns
        conns[0] += 1
        conns[1] += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lb_stats.active_connections -= 1
        self.listener_conns[1] -= 1
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0 or isinstance(exc, ConnectionError):
            # A response already started, or the client's connection is gone
            # (our handler aborted it): nothing more to say on it.
            raise ConnectionError("response already started or connection lost")
        status = 400 if status < 500 else status
        if isinstance(exc, DesyncRefused):
            self.lb_stats.desync_non_compliant += 1
        if status == 400 and exc is not None and unsupported_coding_refused(str(exc)):
            status = 501
        self.stats_counters.elb_error(status)
        log.debug("refused request: %s %s", status, exc)
        return elb_response(request, status, close=True)


def unsupported_coding(value: str) -> bool:
    """A Transfer-Encoding with a coding other than chunked and identity,
    which ALB answers with 501 ("an unsupported value")."""
    return any(t.strip().lower() not in ("chunked", "identity") for t in value.split(","))


def unsupported_coding_refused(parser_error: str) -> bool:
    """Whether aiohttp's parser refused a request for a Transfer-Encoding
    coding ALB does not support (501), rather than for broken framing (400:
    chunked twice, or with Content-Length). The parser says which only in
    its message: "Request has invalid `Transfer-Encoding`" when the last
    coding is not chunked, and quotes the header when its value is invalid."""
    if "Request has invalid `Transfer-Encoding`" in parser_error:
        return True
    quoted = re.search(r"b'Transfer-Encoding:([^']*)'", parser_error, re.IGNORECASE)
    return quoted is not None and unsupported_coding(quoted.group(1))


class AlbServer(Server):
    def __init__(self, handler: ListenerHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._lb_handler = handler
        self._listener_conns = handler.lb.stats.connections(handler.listener.name)

    def __call__(self) -> RequestHandler:
        h = AlbRequestHandler(self, loop=self._loop, **self._kwargs)
        h.stats_counters = self._lb_handler.listener.counters
        h.lb_stats = self._lb_handler.lb.stats
        h.listener_conns = self._listener_conns
        return h


async def serve_listener(lb: LoadBalancerState, listener: ListenerState,
                         idle_timeout: float) -> tuple[asyncio.AbstractServer, AlbServer]:
    handler = ListenerHandler(lb, listener, idle_timeout)
    server = AlbServer(
        handler, access_log=None, max_line_size=MAX_LINE, max_field_size=MAX_LINE,
        max_headers=MAX_HEADERS, keepalive_timeout=idle_timeout,
        auto_decompress=False,  # a body goes to the target as the client sent it
    )
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(server, listener.conf.Address, listener.port, reuse_address=True, backlog=1024)
    return srv, server
