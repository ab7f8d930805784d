"""The data plane under clients that misbehave: they pipeline and never read,
stop reading mid-response, send bytes that are not UTF-8, name the headers
the proxy needs in `Connection`. None of them may grow the proxy's memory,
hold its connections past the idle timeout, make it send a request twice or
answer with a 500 of its own.

ALB's behaviour is from "Troubleshoot your Application Load Balancers", HTTP
errors the load balancer generates:
https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html#load-balancer-http-error-codes
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from typing import Any

import aiohttp

from tests.helpers import eventually
from tests.proxy.conftest import (
    LOOPBACK,
    Backend,
    StartProxy,
    group_conf,
    lb_conf,
    listener_conf,
    read_request_head,
    status_of,
)

IDLE_1S = [{"Key": "idle_timeout.timeout_seconds", "Value": "1"}]


def client_write_buffers(px: Any) -> int:
    """Bytes the proxy holds in userspace toward its clients, all listeners."""
    return sum(h.transport.get_write_buffer_size() for _, server in px._servers for h in server.connections
               if h.transport is not None)


async def stats(px: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{px.admin_url}/admin/stats") as resp:
        return dict(await resp.json())


def small_receive_buffer_socket() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return s


async def test_pipelining_client_that_never_reads_is_bounded(start_proxy: StartProxy, raw_server: Any) -> None:
    # A target that answers every request at once with 60 KiB: without
    # backpressure the proxy forwards all 1000 requests and keeps the 60 MB
    # of answers the client never reads.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 61440\r\n\r\n" + b"x" * 61440
    seen = 0

    async def fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        while True:
            await read_request_head(reader)
            seen += 1
            writer.write(answer)
            await writer.drain()

    port = await raw_server(fast)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])],
                                   LoadBalancerAttributes=IDLE_1S))
    sock = small_receive_buffer_socket()
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (LOOPBACK, px.conf.Listeners[0].Port))
    flood = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
    sender = asyncio.ensure_future(loop.sock_sendall(sock, flood))
    try:
        await eventually(lambda: seen > 0, what="the first request forwarded")
        # The proxy stops taking requests once its answers back up, and gives
        # up on the client after the idle timeout: the connection is closed.
        await eventually(lambda: px.lb.stats.active_connections == 0, timeout=20,
                         what="the proxy to close the connection of a client that reads nothing")
        assert seen < 300, f"the target got {seen} of 1000 requests from a client that read none"
        assert client_write_buffers(px) == 0
    finally:
        sender.cancel()
        sock.close()


async def test_backpressure_bounds_what_is_buffered_per_client(start_proxy: StartProxy, raw_server: Any) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 61440\r\n\r\n" + b"x" * 61440

    async def fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request_head(reader)
            writer.write(answer)
            await writer.drain()

    port = await raw_server(fast)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    sock = small_receive_buffer_socket()
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (LOOPBACK, px.conf.Listeners[0].Port))
    sender = asyncio.ensure_future(loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 1000))
    try:
        peak = 0

        def settled() -> bool:
            nonlocal peak
            peak = max(peak, client_write_buffers(px))
            return px.lb.stats.active_connections == 1 and peak > 0

        await eventually(settled, timeout=10, what="the proxy to answer")
        for _ in range(50):  # a second of the client reading nothing
            await asyncio.sleep(0.02)
            peak = max(peak, client_write_buffers(px))
        assert peak <= 256 * 1024, f"{peak} bytes buffered for one client that reads nothing"
    finally:
        sender.cancel()
        sock.close()


async def test_client_that_stops_reading_a_download_is_timed_out(start_proxy: StartProxy, backends: Any) -> None:
    b: Backend = await backends("blue-1")
    b.download_gate.set()
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [b])],
                                   LoadBalancerAttributes=IDLE_1S))
    sock = small_receive_buffer_socket()
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (LOOPBACK, px.conf.Listeners[0].Port))
    try:
        await loop.sock_sendall(sock, b"GET /download?size=50000000&length=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        # ALB applies the idle timeout to a response the client does not
        # take: the client's connection closes and the target's is released.
        await eventually(b.download_aborted.is_set, timeout=20, what="the target connection to be released")
        await eventually(lambda: px.lb.stats.active_connections == 0, timeout=10, what="the client connection closed")
        assert b.download_sent < 50_000_000
        group = px.lb.groups["blue"]
        assert all(not t.pool.in_use for t in group.targets.values())
    finally:
        sock.close()


async def test_post_is_never_sent_twice(start_proxy: StartProxy, raw_server: Any) -> None:
    # A target that answers the first request of a connection, then reads the
    # next one and closes without answering. The proxy reused the keep-alive
    # connection; the target may have processed the POST: ALB answers 502 ("the
    # target closed the connection ... while the load balancer had an
    # outstanding request"), and so does nginx for a non-idempotent method.
    posts: list[bytes] = []

    async def reads_then_hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        head = await read_request_head(reader)
        if head.startswith(b"POST"):
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            posts.append(await reader.readexactly(length))
        writer.transport.abort()

    port = await raw_server(reads_then_hangs_up)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    async with aiohttp.ClientSession() as s:
        async with s.get(px.listener_url()) as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
        async with s.post(px.listener_url() + "/pay", data=b"once") as resp:
            assert resp.status == 502
            assert resp.headers["Server"] == "awselb/2.0"
    assert posts == [b"once"], "the target got the POST exactly once"
    assert (await stats(px))["targetGroups"]["blue"]["HTTPCode_ELB_502_Count"] == 1


async def test_get_is_retried_on_a_reused_connection_that_closed(start_proxy: StartProxy, raw_server: Any) -> None:
    # The same target, for an idempotent method: one retry on a new connection.
    gets = 0

    async def reads_then_hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal gets
        await read_request_head(reader)
        gets += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request_head(reader)
        gets += 1
        writer.transport.abort()

    port = await raw_server(reads_then_hangs_up)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            async with s.get(px.listener_url()) as resp:
                assert (resp.status, await resp.text()) == (200, "ok")
    assert gets == 3


async def raw_target_recording_heads(raw_server: Any, heads: list[bytes]) -> int:
    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            heads.append(await read_request_head(reader))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    return int(await raw_server(record))


async def raw_request(port: int, data: bytes) -> bytes:
    """One exchange on a raw socket: the response's head and its
    Content-Length body (aiohttp takes a half-close for a close, so the
    client cannot signal the end by shutting down its side)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(data)
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            return head + await reader.readexactly(length)
    finally:
        writer.transport.abort()


NOT_UTF8 = [
    ("X-Forwarded-For", b"X-Forwarded-For: \xff\xfe"),
    ("Connection", b"Connection: \xff"),
    ("X-Amzn-Trace-Id", b"X-Amzn-Trace-Id: Root=1-\xff"),
    ("Cookie", b"Cookie: AWSALBTG=\xff\xfe"),
    ("Host", b"Host: h\xffst"),
    ("any header", b"X-Name: caf\xe9"),
]


async def test_header_bytes_that_are_not_utf8_are_forwarded(start_proxy: StartProxy, raw_server: Any) -> None:
    heads: list[bytes] = []
    port = await raw_target_recording_heads(raw_server, heads)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, sticky=60)],
                                   [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    listener = px.conf.Listeners[0].Port
    for name, line in NOT_UTF8:
        host = b"" if name == "Host" else b"Host: x\r\n"
        raw = await raw_request(listener, b"GET /caf%C3%A9 HTTP/1.1\r\n" + host + line + b"\r\n\r\n")
        assert status_of(raw) == 200, (name, raw[:200])
        if name == "X-Forwarded-For":
            assert b"\r\nX-Forwarded-For: \xff\xfe, 127.0.0.1\r\n" in heads[-1]
        elif name == "X-Amzn-Trace-Id":
            assert b";Root=1-\xff\r\n" in heads[-1]  # the client's Root kept, a Self added
        elif name != "Connection":
            assert line in heads[-1], (name, heads[-1])
        assert heads[-1].startswith(b"GET /caf%C3%A9 HTTP/1.1\r\n")
    total = (await stats(px))["total"]
    assert total["HTTPCode_ELB_5XX_Count"] == 0


async def test_connection_cannot_strip_the_host(start_proxy: StartProxy, raw_server: Any) -> None:
    # Headers named in Connection are hop-by-hop, but the proxy matched its
    # rules on Host: the target must see the same Host.
    heads: list[bytes] = []
    port = await raw_target_recording_heads(raw_server, heads)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    raw = await raw_request(px.conf.Listeners[0].Port,
                            b"GET / HTTP/1.1\r\nHost: myhost\r\nConnection: close, host, x-drop\r\nX-Drop: 1\r\n\r\n")
    assert status_of(raw) == 200
    assert b"\r\nHost: myhost\r\n" in heads[-1]
    assert b"X-Drop" not in heads[-1]


async def test_websocket_upgrade_refused_by_the_target_passes_through(start_proxy: StartProxy,
                                                                      raw_server: Any) -> None:
    heads: list[bytes] = []

    async def no_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_request_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\nX-App: plain\r\n\r\nno websocket here :)")
        await writer.drain()
        await reader.read()

    port = await raw_server(no_upgrade)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    raw = await raw_request(px.conf.Listeners[0].Port, (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
    assert status_of(raw) == 200
    assert b"\r\nX-App: plain\r\n" in raw and raw.endswith(b"no websocket here :)")
    assert len(heads) == 1, "the target got the handshake once"
    assert b"\r\nUpgrade: websocket\r\n" in heads[0] and b"\r\nSec-WebSocket-Key: " in heads[0]
    m = (await stats(px))["targetGroups"]["blue"]
    assert (m["HTTPCode_Target_2XX_Count"], m["HTTPCode_ELB_5XX_Count"]) == (1, 0)


async def test_compressed_request_body_reaches_the_target_as_sent(start_proxy: StartProxy, raw_server: Any) -> None:
    # The proxy never decodes a body: Content-Encoding is the target's business.
    bodies: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request_head(reader)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        bodies.append(await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    port = await raw_server(record)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"{LOOPBACK}:{port}"])]))
    body = gzip.compress(b"hello world " * 50)
    raw = await raw_request(px.conf.Listeners[0].Port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status_of(raw) == 200
    assert bodies == [body]
