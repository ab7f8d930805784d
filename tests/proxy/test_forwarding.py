"""What travels to and from the target: ALB's headers, streamed bodies in
both directions, chunked encoding, upstream keep-alive, WebSocket."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.helpers import eventually
from tests.proxy.conftest import (
    DOWNLOAD_CHUNK,
    Backend,
    StartProxy,
    group_conf,
    lb_conf,
    listener_conf,
    pattern_bytes,
    wait_stalled,
)

ROOT = r"1-[0-9a-f]{8}-[0-9a-f]{24}"


@pytest.fixture
async def blue(backends: Any) -> Backend:
    return await backends("blue-1")


@pytest.fixture
async def px(start_proxy: StartProxy, blue: Backend) -> Any:
    return await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [blue])]))


async def seen_by_target(client: aiohttp.ClientSession, url: str, **kw: Any) -> dict[str, Any]:
    async with client.get(url + "/headers", **kw) as resp:
        assert resp.status == 200
        data = await resp.json()
    data["by_name"] = {}
    for k, v in data["headers"]:
        data["by_name"].setdefault(k.lower(), []).append(v)
    return dict(data)


async def test_forwarded_headers(px: Any, client: aiohttp.ClientSession) -> None:
    url = px.listener_url()
    port = str(px.conf.Listeners[0].Port)
    got = (await seen_by_target(client, url))["by_name"]
    assert got["x-forwarded-for"] == ["127.0.0.1"]
    assert got["x-forwarded-proto"] == ["http"]
    assert got["x-forwarded-port"] == [port]
    assert re.fullmatch(f"Root={ROOT}", got["x-amzn-trace-id"][0])

    got = (await seen_by_target(client, url, headers={
        "X-Forwarded-For": "203.0.113.7, 198.51.100.2",
        "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
        "X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    }))["by_name"]
    assert got["x-forwarded-for"] == ["203.0.113.7, 198.51.100.2, 127.0.0.1"], "the client address is appended"
    assert got["x-forwarded-proto"] == ["http"], "ALB sets these itself"
    assert got["x-forwarded-port"] == [port]
    trace = got["x-amzn-trace-id"]
    assert len(trace) == 1
    fields = trace[0].split(";")
    assert "Root=1-5759e988-bd862e3fe1be46a994272793" in fields and "Sampled=1" in fields
    assert any(re.fullmatch(f"Self={ROOT}", f) for f in fields)


async def test_host_and_end_to_end_headers_preserved(px: Any, client: aiohttp.ClientSession) -> None:
    got = await seen_by_target(client, px.listener_url(), headers=[
        ("Host", "Shop.Example:8443"), ("X-Multi", "one"), ("X-Multi", "two"), ("Authorization", "Bearer t"),
        ("Cookie", "a=1; b=2"), ("Accept-Encoding", "gzip"),
    ])
    h = got["by_name"]
    assert h["host"] == ["Shop.Example:8443"]
    assert h["x-multi"] == ["one", "two"]
    assert h["authorization"] == ["Bearer t"]
    assert h["cookie"] == ["a=1; b=2"]
    assert h["accept-encoding"] == ["gzip"]
    assert got["method"] == "GET" and got["path"] == "/headers"


async def test_raw_path_and_query_are_forwarded_verbatim(px: Any, client: aiohttp.ClientSession) -> None:
    url = URL(px.listener_url() + "/headers?q=a%20b&x=%2F&empty=", encoded=True)
    async with client.get(url) as resp:
        data = await resp.json()
    assert data["path"] == "/headers?q=a%20b&x=%2F&empty="


async def test_hop_by_hop_headers_are_not_forwarded(px: Any, client: aiohttp.ClientSession) -> None:
    got = (await seen_by_target(client, px.listener_url(), headers={
        "Connection": "keep-alive, X-Custom-Hop", "Keep-Alive": "timeout=5", "X-Custom-Hop": "secret",
        "TE": "trailers", "Trailer": "X-Checksum", "Proxy-Authorization": "Basic abc", "Proxy-Connection": "keep-alive",
        "X-End-To-End": "kept",
    }))["by_name"]
    for name in ("keep-alive", "x-custom-hop", "te", "trailer", "proxy-authorization", "proxy-connection",
                 "transfer-encoding"):
        assert name not in got, name
    assert got["x-end-to-end"] == ["kept"]
    assert got.get("connection", ["keep-alive"]) == ["keep-alive"], "only the proxy's own Connection header"


async def raw_json(port: int, request: bytes) -> Any:
    """Send a raw request whose response ends with the connection; its JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    raw = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", raw
    return json.loads(body)


async def test_connection_listed_headers_dropped_wherever_they_appear(px: Any) -> None:
    data = await raw_json(px.conf.Listeners[0].Port, b"GET /headers HTTP/1.1\r\nHost: x\r\nX-Early-Hop: 1\r\n"
                          b"Connection: x-early-hop, close\r\nX-Kept: 1\r\n\r\n")
    names = {k.lower() for k, _ in data["headers"]}
    assert "x-early-hop" not in names and "x-kept" in names


async def test_http_1_0_without_host_gets_one(px: Any) -> None:
    port = px.conf.Listeners[0].Port
    data = await raw_json(port, b"GET /headers HTTP/1.0\r\n\r\n")
    hosts = [v for k, v in data["headers"] if k.lower() == "host"]
    assert hosts == [f"127.0.0.1:{port}"]
    data = await raw_json(port, b"GET /headers HTTP/1.0\r\nHost: given.example\r\n\r\n")
    assert [v for k, v in data["headers"] if k.lower() == "host"] == ["given.example"]


async def test_hop_by_hop_response_headers_are_not_returned(start_proxy: StartProxy, raw_server: Any,
                                                            client: aiohttp.ClientSession) -> None:
    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=99\r\n"
                     b"Proxy-Authenticate: Basic\r\nX-App: yes\r\n\r\nok")
        await writer.drain()
        await reader.read()

    port = await raw_server(target)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"127.0.0.1:{port}"])]))
    async with client.get(px.listener_url()) as resp:
        assert (resp.status, await resp.text()) == (200, "ok")
        assert resp.headers["X-App"] == "yes"
        assert "Keep-Alive" not in resp.headers and "Proxy-Authenticate" not in resp.headers



async def test_response_headers_are_the_targets_own(start_proxy: StartProxy, raw_server: Any) -> None:
    """ALB adds no Server or Content-Type of its own to a target's response;
    it adds Date when the target sent none, and passes header bytes as sent."""
    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /dated "):
                writer.write(b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    port = await raw_server(target)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"127.0.0.1:{port}"])]))
    reader, writer = await asyncio.open_connection("127.0.0.1", px.conf.Listeners[0].Port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert await reader.readexactly(2) == b"ok"
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        names = [line.split(b":")[0].lower() for line in lines[1:] if line]
        assert sorted(names) == [b"content-length", b"date", b"x-name"], head
        assert b"X-Name: caf\xe9" in lines
        writer.write(b"GET /dated HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert [line for line in head.split(b"\r\n") if line.lower().startswith(b"date:")] == [
            b"Date: Mon, 01 Jan 2024 00:00:00 GMT"]
    finally:
        writer.close()

async def test_head_and_bodiless_responses(px: Any, client: aiohttp.ClientSession) -> None:
    url = px.listener_url()
    async with client.head(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len("blue-1"))
        assert await resp.read() == b""
    for code in (204, 304):
        async with client.get(f"{url}/status/{code}") as resp:
            assert resp.status == code
            assert await resp.read() == b""
    async with client.get(url) as resp:  # the connection pool is still sane
        assert await resp.text() == "blue-1"


# -- streaming --------------------------------------------------------------

BIG = 50 * 1024 * 1024


async def upload_body(backend: Backend, size: int, digest: Any) -> AsyncIterator[bytes]:
    """The first chunk, then the rest only once the target has started
    receiving: a proxy that buffered the whole body would never get there."""
    first = pattern_bytes(0, DOWNLOAD_CHUNK)
    digest.update(first)
    yield first
    await eventually(lambda: backend.upload_started.is_set(), timeout=10,
                     what="the target to receive the first chunk before the upload finished")
    sent = DOWNLOAD_CHUNK
    while sent < size:
        n = min(1024 * 1024, size - sent)
        chunk = pattern_bytes(sent, n)
        digest.update(chunk)
        yield chunk
        sent += n


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
async def test_large_upload_is_streamed(px: Any, blue: Backend, client: aiohttp.ClientSession,
                                        with_length: bool) -> None:
    digest = hashlib.sha256()
    headers = {"Content-Length": str(BIG)} if with_length else {}
    async with client.post(px.listener_url() + "/upload", data=upload_body(blue, BIG, digest),
                           headers=headers) as resp:
        assert resp.status == 200
        got = await resp.json()
    assert got == {"bytes": BIG, "sha256": digest.hexdigest()}


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "chunked"])
async def test_large_download_is_streamed(px: Any, blue: Backend, client: aiohttp.ClientSession,
                                          with_length: bool) -> None:
    url = f"{px.listener_url()}/download?size={BIG}&length={int(with_length)}"
    expected, got = hashlib.sha256(), hashlib.sha256()
    received = 0
    async with client.get(url) as resp:
        assert resp.status == 200
        if with_length:
            assert resp.headers["Content-Length"] == str(BIG)
        else:
            assert resp.headers["Transfer-Encoding"] == "chunked"
        # The target holds back everything after its first chunk until we
        # have read some bytes: a proxy that buffered it whole would hang here.
        first = await asyncio.wait_for(resp.content.readany(), timeout=10)
        assert first and not blue.download_gate.is_set()
        blue.download_gate.set()
        got.update(first)
        received += len(first)
        async for chunk in resp.content.iter_any():
            got.update(chunk)
            received += len(chunk)
    for offset in range(0, BIG, DOWNLOAD_CHUNK):
        expected.update(pattern_bytes(offset, min(DOWNLOAD_CHUNK, BIG - offset)))
    assert received == BIG
    assert got.hexdigest() == expected.hexdigest()


async def test_slow_client_holds_up_the_target(px: Any, blue: Backend, client: aiohttp.ClientSession) -> None:
    # Flow control instead of buffering: a client that stops reading stops
    # the target's writes after a bounded amount (socket buffers + 256 KiB).
    url = f"{px.listener_url()}/download?size={BIG}&length=1"
    async with client.get(url) as resp:
        first = await asyncio.wait_for(resp.content.readany(), timeout=10)
        blue.download_gate.set()
        stalled_at = await wait_stalled(lambda: blue.download_sent)
        assert stalled_at < BIG // 2
        received = len(first)
        async for chunk in resp.content.iter_any():
            received += len(chunk)
    assert received == BIG


async def test_slow_target_holds_up_the_upload(px: Any, blue: Backend, client: aiohttp.ClientSession) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < BIG:
            n = min(256 * 1024, BIG - sent)
            yield pattern_bytes(sent, n)
            sent += n

    task = asyncio.ensure_future(client.post(f"{px.listener_url()}/upload?pause=1", data=body(),
                                             headers={"Content-Length": str(BIG)}))
    await eventually(lambda: blue.upload_started.is_set(), timeout=10, what="the upload to start")
    stalled_at = await wait_stalled(lambda: sent)
    assert stalled_at < BIG // 2
    blue.hold("upload").set()
    resp = await task
    assert resp.status == 200
    assert (await resp.json())["bytes"] == BIG
    resp.release()


async def test_client_hanging_up_mid_download(px: Any, blue: Backend, client: aiohttp.ClientSession) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", px.conf.Listeners[0].Port)
    writer.write(f"GET /download?size={BIG} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.read(1000)).startswith(b"HTTP/1.1 200")
    blue.download_gate.set()
    writer.transport.abort()
    # The proxy hangs up on the target too (no 50 MB pulled for nobody)...
    await eventually(blue.download_aborted.is_set, timeout=10, what="the target to see the connection close")
    assert blue.download_sent < BIG
    # ...and keeps serving.
    async with client.get(px.listener_url()) as resp:
        assert (resp.status, await resp.text()) == (200, "blue-1")


async def test_idle_timeout_cuts_a_stalled_response(start_proxy: StartProxy, blue: Backend,
                                                    client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [blue])],
                                   LoadBalancerAttributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "1"}]))
    async with client.get(f"{px.listener_url()}/download?size={4 * DOWNLOAD_CHUNK}") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), timeout=10)
    async with client.get(px.listener_url()) as resp:
        assert (resp.status, await resp.text()) == (200, "blue-1")


async def test_small_chunked_request_body(px: Any, client: aiohttp.ClientSession) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for p in (b"hello ", b"chunked ", b"world"):
            yield p

    async with client.post(px.listener_url() + "/echo", data=parts()) as resp:
        assert resp.status == 200
        assert await resp.read() == b"hello chunked world"
        assert resp.headers["X-Body-Length"] == "19"


@pytest.mark.parametrize("size", [5, 200 * 1024], ids=["small", "streamed"])
async def test_expect_100_continue(px: Any, client: aiohttp.ClientSession, size: int) -> None:
    # The client sends the body only after "100 Continue"; the proxy must say it.
    body = b"x" * size
    async with client.post(px.listener_url() + "/echo", data=body, expect100=True,
                           timeout=aiohttp.ClientTimeout(total=5)) as resp:
        assert resp.status == 200
        assert await resp.read() == body


async def test_processed_bytes_count_both_directions(px: Any, client: aiohttp.ClientSession) -> None:
    size = 3 * 1024 * 1024
    async with client.post(px.listener_url() + "/echo", data=b"u" * size) as resp:
        assert len(await resp.read()) == size
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    processed = stats["targetGroups"]["blue"]["ProcessedBytes"]
    assert 2 * size < processed < 2 * size + 4096, "request and response bodies plus their heads"


async def test_upstream_keep_alive_is_reused(px: Any, blue: Backend, client: aiohttp.ClientSession) -> None:
    for _ in range(20):
        async with client.get(px.listener_url()) as resp:
            assert await resp.text() == "blue-1"
    assert len(blue.peers) == 20
    assert len(set(blue.peers)) == 1, "20 sequential requests share one upstream connection"


async def test_target_closing_idle_keep_alive_is_retried(start_proxy: StartProxy, raw_server: Any,
                                                         client: aiohttp.ClientSession) -> None:
    # A target that closes every connection right after its (keep-alive)
    # response: the proxy's reuse races with the close and must retry, not 502.
    async def one_shot(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    port = await raw_server(one_shot)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [f"127.0.0.1:{port}"])]))
    for _ in range(10):
        async with client.get(px.listener_url()) as resp:
            assert (resp.status, await resp.text()) == (200, "ok")


async def test_websocket_echo(px: Any, client: aiohttp.ClientSession) -> None:
    async with client.ws_connect(px.listener_url() + "/ws") as ws:
        for i in range(5):
            await ws.send_str(f"hello {i}")
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, f"blue-1:hello {i}")
        await ws.send_bytes(b"\x00\x01binary")
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.BINARY, b"\x00\x01binary")
    async with client.ws_connect(px.listener_url() + "/ws", headers={
            "Host": "chat.example", "X-Forwarded-For": "203.0.113.9", "X-App": "a"}) as ws:
        await ws.send_str("headers?")
        seen = await asyncio.wait_for(ws.receive_json(), 5)
    assert seen["host"] == "chat.example"
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["x-forwarded-port"] == str(px.conf.Listeners[0].Port)
    assert seen["x-app"] == "a"
    assert re.fullmatch(f"Root={ROOT}", seen["x-amzn-trace-id"])
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    assert stats["targetGroups"]["blue"]["RequestCount"] == 2
