"""The path toward targets: keep-alive connections as asyncio Protocols, one
request at a time each, responses parsed by httptools.

aiohttp's ClientSession is correct but heavy per request (the benchmark in
tests/perf shows it); a proxy only needs "write these bytes, give me the
status, headers and body chunks", so that is all this does. Flow control
runs both ways: a slow client pauses reading from the target, a slow target
pauses the upload. After a `101 Switching Protocols` to an upgrade request
(WebSocket) the connection is a tunnel: what the target sends comes out of
`next_chunk` as raw bytes until it closes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import httptools

# What one connection holds of a target's response before it stops reading
# from the target (a slow client): reads are at most READ_SIZE, into one
# buffer shared by every connection (a read is copied out before the next
# one), so that a thousand stalled clients cost a thousand times this, not
# a thousand times the kernel's socket buffer. On loopback the kernel's own
# buffers keep a transfer flowing (a large download still goes at ~240 MB/s);
# more here would only be memory: 1000 stalled clients cost ~45 MiB.
READ_SIZE = 8 * 1024
HIGH_WATER = 8 * 1024
_read_buffer = memoryview(bytearray(READ_SIZE))
MAX_RESPONSE_HEADERS = 32 * 1024  # ALB: response headers above 32 KiB -> 502


class UpstreamError(Exception):
    """The target did something ALB answers with 502."""


class TargetConnectError(UpstreamError):
    """Connection refused or unreachable (counted as TargetConnectionErrorCount)."""


class StaleConnection(UpstreamError):
    """A reused keep-alive connection closed before any response byte: safe to retry."""


class UpstreamConnection(asyncio.BufferedProtocol):
    __slots__ = (
        "_body_waiter", "_drain_waiter", "_head_deadline", "_head_timer", "_head_waiter", "_header_bytes",
        "_loop", "_no_body", "_paused_reading", "_paused_writing", "_pool", "_reused", "_saw_length", "_upgrade",
        "buffered", "chunks", "closed", "complete", "error", "headers",
        "keep_alive", "on_writable", "parser", "status", "transport", "tunnel",
    )

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self._paused_writing = False
        self._drain_waiter: asyncio.Future[None] | None = None
        # Called when the target takes data again after pausing: a tunnel
        # resumes reading from the client then.
        self.on_writable: Callable[[], None] | None = None
        self._reused = False
        # One timer per connection, moved lazily, rather than one timer
        # made and cancelled per request: see expect_head.
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_deadline = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._head_waiter: asyncio.Future[None] | None = None
        self._body_waiter: asyncio.Future[None] | None = None
        self._header_bytes = 0
        self._saw_length = False
        self._no_body = False
        self._upgrade = False
        self.tunnel = False
        self._paused_reading = False

    # -- used by the request handler ------------------------------------

    def begin(self, no_body: bool = False, upgrade: bool = False) -> asyncio.Future[None]:
        """Prepare for one exchange; the future resolves when the response head
        is in. With `upgrade`, a 101 answer turns the connection into a tunnel."""
        self._reset()
        self._no_body = no_body
        self._upgrade = upgrade
        self._head_waiter = self._loop.create_future()
        return self._head_waiter

    def expect_head(self, timeout: float) -> None:
        """The response head must come within `timeout` seconds, else the
        head waiter gets TimeoutError. The timer is left armed between
        requests; when it fires early for a later deadline it re-arms itself."""
        loop = self._loop
        deadline = loop.time() + timeout
        self._head_deadline = deadline
        timer = self._head_timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._head_timer = loop.call_at(deadline, self._head_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        w = self._head_waiter
        if w is None or w.done() or self.closed:
            return
        if self._loop.time() < self._head_deadline:
            self._head_timer = self._loop.call_at(self._head_deadline, self._head_timeout)
        else:
            w.set_exception(TimeoutError())

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    @property
    def writable(self) -> bool:
        """False while the target is not taking what was written (flow control)."""
        return not self._paused_writing

    async def drain(self, timeout: float | None = None) -> None:
        """Wait while the target is not taking data; TimeoutError after `timeout`."""
        if self.closed:
            raise self.error or UpstreamError("target closed the connection")
        if self._paused_writing:
            self._drain_waiter = self._loop.create_future()
            await asyncio.wait_for(self._drain_waiter, timeout)

    async def next_chunk(self) -> bytes | None:
        """The next body chunk, or None at the end of the response."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self._paused_reading and self.buffered < HIGH_WATER // 2 and self.transport:
                    self._paused_reading = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self._body_waiter = self._loop.create_future()
            await self._body_waiter

    def take_body(self) -> bytes:
        """The whole body when it arrived with the head (the common, small case)."""
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        return body

    def release(self) -> None:
        """Return to the pool when the exchange finished cleanly, else close."""
        if self.complete and self.keep_alive and not self.closed and not self._paused_reading:
            self._reused = True
            self._pool.put(self)
        else:
            self.close()

    def close(self) -> None:
        self._abandon()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        self._abandon()
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    def _abandon(self) -> None:
        self._stop_timer()
        # Nobody will await a head that has not come: cancel it, so that the
        # close does not leave an exception that asyncio reports as unseen.
        w = self._head_waiter
        if w is not None and not w.done():
            w.cancel()

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # httptools reads the shared buffer in place and hands its callbacks
        # copies (on_body), so the read itself is not copied.
        data = _read_buffer[:nbytes]
        if self.tunnel:
            self.on_body(bytes(data))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if not (self._upgrade and self.status == 101):
                self._fail(UpstreamError("target switched protocols on a plain request"))
                return
            # What follows the 101's head is the new protocol's, as it comes.
            self.tunnel = True
            self.complete = False
            rest = bytes(data[exc.args[0]:]) if exc.args else b""
            if rest:
                self.on_body(rest)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed response from target: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close: a target's half-close ends its response

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        self._pool.forget(self)
        if self._head_waiter is not None and not self._head_waiter.done():
            # Nothing of the response arrived. On a reused connection this is
            # the keep-alive race (target closed an idle connection).
            cls = StaleConnection if self._reused and not self.status else UpstreamError
            self._fail(cls("target closed the connection before responding"))
        elif self.tunnel:
            self.complete = True  # the target ended the tunnel
            self._wake_body()
        elif not self.complete and self.status:
            if not self._saw_length:
                self.on_message_complete()  # body delimited by EOF
            else:
                self._fail(UpstreamError("target closed the connection mid-response"))
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(self.error or UpstreamError("target closed the connection"))

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self.on_writable is not None:
            self.on_writable()

    # -- httptools callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_RESPONSE_HEADERS:
            raise UpstreamError("response headers exceed 32 KiB")
        lname = name.lower()
        if lname == b"content-length" or (lname == b"transfer-encoding" and b"chunked" in value.lower()):
            self._saw_length = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and not (status == 101 and self._upgrade):
            # Interim response (100 Continue): the real one follows.
            self.headers = []
            self._header_bytes = 0
            return
        self.status = status
        if self._no_body or status in (204, 304):
            self._saw_length = True
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._no_body:
            # A HEAD response: httptools would wait for the advertised body.
            self.complete = True
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if self._no_body:
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake_body()

    def on_message_complete(self) -> None:
        if not self.status or self.tunnel:
            return  # end of an interim 1xx message, or a 101's head
        if not self.complete:
            self.complete = True
            self.keep_alive = bool(self.parser.should_keep_alive()) and not self._no_body
        self._wake_body()

    def _wake_body(self) -> None:
        w = self._body_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        for w in (self._head_waiter, self._body_waiter):
            if w is not None and not w.done():
                w.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        self.closed = True


class Pool:
    """Idle keep-alive connections to one target, plus those in use (so that
    an expired deregistration delay can cut them)."""

    __slots__ = ("_idle", "host", "in_use", "max_idle", "port")

    def __init__(self, host: str, port: int, max_idle: int = 256) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self._idle: list[UpstreamConnection] = []
        self.in_use: set[UpstreamConnection] = set()

    def take_idle(self) -> UpstreamConnection | None:
        """An open idle connection, without awaiting: the usual case, which
        then costs no coroutine."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                self.in_use.add(conn)
                return conn
        return None

    async def acquire(self, connect_timeout: float) -> UpstreamConnection:
        conn = self.take_idle()
        if conn is not None:
            return conn
        return await self.connect(connect_timeout)

    async def connect(self, connect_timeout: float) -> UpstreamConnection:
        """A new connection, never an idle one (an upgrade request gets its own)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, proto = await loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port)
        except TimeoutError:
            raise
        except OSError as exc:
            raise TargetConnectError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.in_use.add(proto)
        return proto

    def put(self, conn: UpstreamConnection) -> None:
        self.in_use.discard(conn)
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        self.in_use.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)

    def close(self) -> None:
        for conn in [*self._idle, *self.in_use]:
            conn.close()
        self._idle.clear()

    def abort_in_use(self) -> None:
        for conn in list(self.in_use):
            conn._fail(UpstreamError("deregistration delay expired"))
