"""The data plane: one aiohttp low-level server per listener.

aiohttp parses the client side (keep-alive, pipelining, chunked bodies,
limits); everything toward targets goes through proxy.upstream. The request
path does only what ALB does: match a rule, pick a group by weight (or by
the stickiness cookie), pick a target, forward with ALB's headers, count.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server
from multidict import CIMultiDict

from proxy.state import Choice, Forward, ListenerState, LoadBalancerState, Rule, Target
from proxy.stats import Counters
from proxy.upstream import StaleConnection, TargetConnectError, UpstreamConnection, UpstreamError

log = logging.getLogger("shiftlab.proxy")

MAX_LINE = 16 * 1024  # ALB: request line or one header above 16 KiB -> 400
MAX_HEADERS_TOTAL = 64 * 1024  # ALB: all headers above 64 KiB -> 400
MAX_XFF = 30  # ALB: more X-Forwarded-For addresses -> 463
BUFFER_BODY = 64 * 1024  # request bodies up to this are sent in one write
CONNECT_TIMEOUT = 10.0  # ALB's connect timeout to a target

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
    504: "Gateway Time-out",
}


def error_page(status: int) -> bytes:
    """ALB's own error pages are this plain HTML, served by `awselb/2.0`."""
    title = f"{status} {_REASONS.get(status, '')}".strip()
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    ).encode()


_PAGES = {code: error_page(code) for code in _REASONS}


def elb_response(status: int, close: bool = False) -> web.Response:
    resp = web.Response(
        status=status, body=_PAGES.get(status) or error_page(status),
        headers={"Server": "awselb/2.0", "Content-Type": "text/html"},
    )
    if close:
        resp.force_close()
    return resp


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
    Server or Content-Type)."""

    def __init__(self, status: int, data: bytes, keep_alive: bool) -> None:
        super().__init__(status=status)
        self._data = data
        self._keep_alive = keep_alive

    async def prepare(self, request: BaseRequest) -> None:
        if self._eof_sent:
            return
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        transport.write(self._data)
        self._eof_sent = True

    async def write_eof(self, data: bytes = b"") -> None:
        pass


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

    def __init__(self, lb: LoadBalancerState, listener: ListenerState, session: aiohttp.ClientSession,
                 idle_timeout: float) -> None:
        self.lb = lb
        self.listener = listener
        self.session = session
        self.idle_timeout = idle_timeout
        self.port_header = f"X-Forwarded-Port: {listener.port}\r\nX-Forwarded-Proto: http\r\n".encode()
        address = listener.conf.Address
        self.host_header = f"Host: {'[' + address + ']' if ':' in address else address}:{listener.port}\r\n".encode()

    async def __call__(self, request: BaseRequest) -> web.StreamResponse:
        try:
            return await self._handle(request)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            # A bug of ours must not become a traceback on the wire.
            log.exception("internal error handling %s %s", request.method, request.raw_path)
            self.listener.counters.elb_error(500)
            return elb_response(500, close=True)

    async def _handle(self, request: BaseRequest) -> web.StreamResponse:
        listener = self.listener
        if request.method == "TRACE":
            listener.counters.elb_error(405)
            return elb_response(405)
        headers = request.headers
        te = headers.get("Transfer-Encoding")
        if te is not None and any(t.strip().lower() not in ("chunked", "identity") for t in te.split(",")):
            listener.counters.elb_error(501)
            return elb_response(501, close=True)
        xff = ", ".join(headers.getall("X-Forwarded-For", ())) or None
        if xff is not None and xff.count(",") + 1 > MAX_XFF:
            listener.counters.elb_error(463)
            return elb_response(463)

        rule = listener.match(request)
        if rule.kind != "forward":
            return self._non_forward(request, rule)
        fwd = rule.forward
        assert fwd is not None
        choice, set_cookie = self._choose_group(request, fwd)
        if choice is None:
            listener.counters.elb_error(503)
            return elb_response(503)
        counters = choice.counters
        counters.requests += 1
        target = choice.group.choose()
        if target is None:
            counters.elb_error(503)
            return elb_response(503)
        if "websocket" in headers.get("Upgrade", "").lower():
            return await self._websocket(request, target, choice, xff)
        return await self._forward(request, target, choice, xff, set_cookie)

    def _choose_group(self, request: BaseRequest, fwd: Forward) -> tuple[Choice | None, StickyCookies | None]:
        if fwd.sticky_seconds is None:
            return (fwd.picker.pick() if fwd.picker else None), None
        now = time.time()
        choice = None
        value = _sticky_cookie(request.headers.get("Cookie"))
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
        self.listener.counters.requests += 1
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

    def _head(self, request: BaseRequest, xff: str | None, body_len: int | None) -> bytes | None:
        """The request head toward the target, or None when headers are too large."""
        parts = [f"{request.method} {request.raw_path} HTTP/1.1\r\n".encode()]
        size = 0
        trace = None
        has_host = False
        # Headers named by Connection are hop-by-hop too, wherever they appear.
        drop = {t.strip().lower().encode("latin-1") for v in request.headers.getall("Connection", ())
                for t in v.split(",")}
        for name, value in request.raw_headers:
            size += len(name) + len(value)
            lname = name.lower()
            if lname in _SKIP:
                if lname == b"x-amzn-trace-id":
                    trace = value.decode("latin-1")
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
        parts.append(f"X-Forwarded-For: {xff + ', ' if xff else ''}{peer}\r\n".encode())
        parts.append(self.port_header)
        parts.append(f"X-Amzn-Trace-Id: {trace_id(trace)}\r\n".encode())
        if body_len is None:
            parts.append(b"Transfer-Encoding: chunked\r\n\r\n")
        elif body_len or request.method in ("POST", "PUT", "PATCH"):
            parts.append(f"Content-Length: {body_len}\r\n\r\n".encode())
        else:
            parts.append(b"\r\n")
        return b"".join(parts)

    async def _forward(self, request: BaseRequest, target: Target, choice: Choice, xff: str | None,
                       set_cookie: StickyCookies | None) -> web.StreamResponse:
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
                    return elb_response(408, close=True)
                length = len(body)
        head = self._head(request, xff, length)
        if head is None:
            counters.elb_error(400)
            return elb_response(400, close=True)

        loop = asyncio.get_running_loop()
        group = choice.group
        target.outstanding += 1
        conn: UpstreamConnection | None = None
        try:
            for attempt in (0, 1):
                try:
                    conn = target.pool.take_idle() or await target.pool.acquire(CONNECT_TIMEOUT)
                except TimeoutError:
                    counters.conn_errors += 1
                    counters.elb_error(504)
                    return elb_response(504)
                except TargetConnectError:
                    counters.conn_errors += 1
                    counters.elb_error(502)
                    return elb_response(502)
                waiter = conn.begin(no_body=request.method == "HEAD")
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
                    if streamed or attempt:
                        counters.elb_error(502)
                        return elb_response(502)
                    # The target closed an idle keep-alive connection as we
                    # reused it; nothing reached it, so one retry is safe.
                    continue
                except ClientStalled:
                    _settle(waiter)
                    conn.abort()
                    counters.elb_error(408)
                    return elb_response(408, close=True)
                except TimeoutError:
                    _settle(waiter)
                    conn.abort()
                    counters.elb_error(504)
                    return elb_response(504)
                except UpstreamError:
                    if streamed and conn.status:
                        # The target answered before taking the whole body
                        # (413, 401, ...) and closed: its answer goes through.
                        break
                    _settle(waiter)
                    conn.abort()
                    counters.elb_error(502)
                    return elb_response(502)
            assert conn is not None
            counters.response_time(loop.time() - started)
            counters.target[conn.status // 100] += 1
            counters.bytes += len(head) + len(body)
            method = request.method
            if conn.complete and method != "HEAD" and method != "CONNECT":
                # The common case: the whole response is in; one write.
                resp_body = conn.take_body()
                counters.bytes += len(resp_body)
                return self._complete(request, conn.status, conn.headers, resp_body, set_cookie)
            return await self._respond(request, conn, counters, set_cookie)
        finally:
            target.outstanding -= 1
            if conn is not None:
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
                       set_cookie: StickyCookies | None) -> web.StreamResponse:
        if conn.complete and request.method != "HEAD":
            # A CONNECT's complete response; _forward writes the others itself.
            body = conn.take_body()
            counters.bytes += len(body)
            return web.Response(status=conn.status, body=body, headers=self._response_headers(conn, set_cookie)[0])
        headers, length = self._response_headers(conn, set_cookie)
        resp_s = web.StreamResponse(status=conn.status, headers=headers)
        if length is not None:
            resp_s.content_length = length
        await resp_s.prepare(request)
        if request.method == "HEAD":
            return resp_s
        loop = asyncio.get_running_loop()
        while True:
            fut = loop.create_task(conn.next_chunk())
            timer = loop.call_later(self.idle_timeout, fut.cancel)
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
            await resp_s.write(chunk)
        await resp_s.write_eof()
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

    @staticmethod
    def _complete(request: BaseRequest, status: int, target_headers: list[tuple[bytes, bytes]], body: bytes,
                  set_cookie: StickyCookies | None) -> RawResponse:
        """A complete target response as bytes: the target's headers verbatim
        (less hop-by-hop ones), then what aiohttp's Response added and ALB
        sends too: Content-Length, Date when the target sent none, and the
        Connection header keep-alive needs."""
        version = request.version
        keep_alive = request.keep_alive
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
        return RawResponse(status, b"".join(parts), keep_alive)

    async def _websocket(self, request: BaseRequest, target: Target, choice: Choice,
                         xff: str | None) -> web.StreamResponse:
        counters = choice.counters
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        # Host and repeated headers kept, hop-by-hop and ALB's own dropped,
        # as for plain requests; the handshake headers are the client's own.
        fwd_headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items()
            if k.lower().encode() not in _SKIP and k.lower() not in (
                "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol")
        )
        fwd_headers["X-Forwarded-For"] = f"{xff + ', ' if xff else ''}{request.remote or ''}"
        fwd_headers["X-Forwarded-Proto"] = "http"
        fwd_headers["X-Forwarded-Port"] = str(self.listener.port)
        fwd_headers["X-Amzn-Trace-Id"] = trace_id(request.headers.get("X-Amzn-Trace-Id"))
        host = f"[{target.host}]" if ":" in target.host else target.host
        url = f"ws://{host}:{target.port}{request.raw_path}"
        target.outstanding += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            try:
                # The handshake is a request like any other: no answer within
                # the idle timeout is a 504 (the session's own limit is minutes).
                async with asyncio.timeout(self.idle_timeout):
                    upstream = await self.session.ws_connect(
                        url, headers=fwd_headers, protocols=protocols, autoping=False,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
                    )
            except aiohttp.WSServerHandshakeError as exc:
                counters.target[exc.status // 100] += 1
                return web.Response(status=exc.status)
            except TimeoutError:
                counters.elb_error(504)
                return elb_response(504)
            except (aiohttp.ClientError, OSError):
                counters.conn_errors += 1
                counters.elb_error(502)
                return elb_response(502)
            counters.response_time(loop.time() - started)
            counters.target[1] += 1
            client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (), autoping=False)
            await client.prepare(request)

            async def pump(src: Any, dst: Any) -> None:
                async for msg in src:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                    elif msg.type == aiohttp.WSMsgType.PING:
                        await dst.ping(msg.data)
                    elif msg.type == aiohttp.WSMsgType.PONG:
                        await dst.pong(msg.data)
                    else:
                        break
                await dst.close()

            async with upstream:
                tasks = [asyncio.ensure_future(pump(client, upstream)), asyncio.ensure_future(pump(upstream, client))]
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
            return client
        finally:
            target.outstanding -= 1
            if target.outstanding == 0:
                choice.group.request_done(target)


class ClientStalled(Exception):
    """The client sent no body bytes for the idle timeout (ALB: 408)."""


def _settle(waiter: asyncio.Future[None]) -> None:
    """A head waiter we stop waiting for: cancel it, or mark its exception
    seen, so that asyncio does not report it as never retrieved."""
    if not waiter.done():
        waiter.cancel()
    elif not waiter.cancelled():
        waiter.exception()


class AlbRequestHandler(RequestHandler):
    """aiohttp's connection handler with ALB's answer to unparsable requests
    and connection counting."""

    stats_counters: Counters
    lb_stats: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.lb_stats.new_connections += 1
        self.lb_stats.active_connections += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lb_stats.active_connections -= 1
        super().connection_lost(exc)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        status = 400 if status < 500 else status
        if status == 400 and "Transfer-Encoding" in str(exc):
            # aiohttp's parser refuses a request whose only coding is not
            # chunked (gzip, compress, ...); ALB answers that with 501.
            status = 501
        self.stats_counters.elb_error(status)
        log.debug("refused request: %s %s", status, exc)
        return elb_response(status, close=True)


class AlbServer(Server):
    def __init__(self, handler: ListenerHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._lb_handler = handler

    def __call__(self) -> RequestHandler:
        h = AlbRequestHandler(self, loop=self._loop, **self._kwargs)
        h.stats_counters = self._lb_handler.listener.counters
        h.lb_stats = self._lb_handler.lb.stats
        return h


async def serve_listener(lb: LoadBalancerState, listener: ListenerState, session: aiohttp.ClientSession,
                         idle_timeout: float) -> tuple[asyncio.AbstractServer, AlbServer]:
    handler = ListenerHandler(lb, listener, session, idle_timeout)
    server = AlbServer(
        handler, access_log=None, max_line_size=MAX_LINE, max_field_size=MAX_LINE,
        max_headers=1024, keepalive_timeout=idle_timeout,
    )
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(server, listener.conf.Address, listener.port, reuse_address=True, backlog=1024)
    return srv, server
