"""The errors ALB makes itself (502, 503, 504, 400, 405, 463, 501), counted as
HTTPCode_ELB_*, versus a target's own errors, which pass through unchanged
and count as HTTPCode_Target_*."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from shiftlab.proxy import server as proxy_server
from tests.helpers import free_port
from tests.proxy.conftest import (
    LOOPBACK,
    StartProxy,
    group_conf,
    lb_conf,
    listener_conf,
    raw_exchange,
    read_request_head,
    status_of,
)


async def stats(client: aiohttp.ClientSession, px: Any) -> dict[str, Any]:
    async with client.get(f"{px.admin_url}/admin/stats") as resp:
        assert resp.status == 200
        return dict(await resp.json())


def assert_elb_page(status: int, body: str, headers: Any, expected: int) -> None:
    assert status == expected, body
    assert headers["Server"] == "awselb/2.0"
    assert headers["Content-Type"].startswith("text/html")
    assert f"<title>{expected}" in body and "</html>" in body
    assert "Traceback" not in body


async def one_target_proxy(start_proxy: StartProxy, target: str, **lb_extra: Any) -> Any:
    return await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [target])], **lb_extra))


async def fetch(client: aiohttp.ClientSession, url: str, method: str = "GET", **kw: Any) -> tuple[int, str, Any]:
    async with client.request(method, url, **kw) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_502_connection_refused(start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{free_port()}")
    assert_elb_page(*await fetch(client, px.listener_url()), 502)
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_ELB_502_Count"], m["HTTPCode_ELB_5XX_Count"], m["TargetConnectionErrorCount"]) == (1, 1, 1)
    assert m["HTTPCode_Target_5XX_Count"] == 0


async def reset_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    await reset_after_head_sent(writer)


async def close_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()
    await reader.read()  # keep the connection open: the proxy must not wait for more


async def huge_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
    for i in range(40):
        writer.write(b"X-Filler-%d: %s\r\n" % (i, b"x" * 1024))
    writer.write(b"\r\nok")
    await writer.drain()
    await reader.read()


async def partial_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize("handler", [reset_after_head, close_after_head, garbage, huge_headers],
                         ids=["reset", "closed", "garbage", "headers over 32 KiB"])
async def test_502_broken_target(start_proxy: StartProxy, raw_server: Any, client: aiohttp.ClientSession,
                                 handler: Any) -> None:
    port = await raw_server(handler)
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{port}")
    assert_elb_page(*await fetch(client, px.listener_url()), 502)
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["RequestCount"], m["HTTPCode_ELB_502_Count"], m["HTTPCode_Target_2XX_Count"]) == (1, 1, 0)


BIG_UPLOAD = b"u" * (20 * 1024 * 1024)


async def answer_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Refuse an upload after its head, then drain and close (a lingering
    close, as nginx does, so that the answer is not lost to a reset)."""
    await read_request_head(reader)
    writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
    await writer.drain()
    writer.write_eof()
    while await reader.read(65536):
        pass
    writer.close()


async def reset_mid_upload(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    await reader.read(65536)
    await reset_after_head_sent(writer)


async def reset_after_head_sent(writer: asyncio.StreamWriter) -> None:
    """Close with linger 0: the peer sees RST, not FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    await asyncio.Event().wait()  # takes nothing more, answers nothing


async def test_early_answer_to_an_upload_passes_through(start_proxy: StartProxy, raw_server: Any,
                                                        client: aiohttp.ClientSession) -> None:
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{await raw_server(answer_early)}")
    async with client.post(px.listener_url(), data=BIG_UPLOAD) as resp:
        assert (resp.status, await resp.text()) == (413, "too big!")
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_Target_4XX_Count"], m["HTTPCode_ELB_5XX_Count"]) == (1, 0)


async def test_502_reset_mid_upload(start_proxy: StartProxy, raw_server: Any, client: aiohttp.ClientSession) -> None:
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{await raw_server(reset_mid_upload)}")
    async with client.post(px.listener_url(), data=BIG_UPLOAD) as resp:
        assert resp.status == 502
    assert (await stats(client, px))["targetGroups"]["blue"]["HTTPCode_ELB_502_Count"] == 1


async def test_504_target_taking_no_upload(start_proxy: StartProxy, raw_server: Any,
                                           client: aiohttp.ClientSession) -> None:
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{await raw_server(never_reads)}",
                                LoadBalancerAttributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    async with client.post(px.listener_url(), data=BIG_UPLOAD, timeout=aiohttp.ClientTimeout(total=20)) as resp:
        assert resp.status == 504
    assert (await stats(client, px))["targetGroups"]["blue"]["HTTPCode_ELB_504_Count"] == 1


@pytest.mark.parametrize("length", [10_000, 1_000_000], ids=["small body", "streamed body"])
async def test_408_client_stalling_mid_body(start_proxy: StartProxy, backends: Any, client: aiohttp.ClientSession,
                                            length: int) -> None:
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr,
                                LoadBalancerAttributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    # Half the body, then nothing: ALB gives up after the idle timeout.
    half = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (length, b"a" * (length // 2))
    raw = await raw_exchange(px.conf.Listeners[0].Port, half, timeout=10)
    assert status_of(raw) == 408, raw[:300]
    assert b"Connection: close" in raw
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_ELB_4XX_Count"], m["HTTPCode_Target_2XX_Count"]) == (1, 0)


async def test_target_failing_mid_body_cuts_the_response(start_proxy: StartProxy, raw_server: Any,
                                                         client: aiohttp.ClientSession) -> None:
    port = await raw_server(partial_body)
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{port}")
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(client, px.listener_url())
    # The listener survives and keeps serving.
    assert (await fetch(client, f"{px.admin_url}/admin/healthz"))[0] == 200


async def test_503_group_without_targets(start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [])]))
    assert_elb_page(*await fetch(client, px.listener_url()), 503)
    m = (await stats(client, px))["targetGroups"]["blue"]
    # "RequestCount ... is only incremented for requests where the load balancer
    # node was able to choose a target" (ALB's CloudWatch metrics page).
    assert (m["RequestCount"], m["HTTPCode_ELB_503_Count"], m["TargetConnectionErrorCount"]) == (0, 1, 0)


async def test_504_slow_target_beyond_idle_timeout(start_proxy: StartProxy, backends: Any,
                                                   client: aiohttp.ClientSession) -> None:
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr,
                                LoadBalancerAttributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    assert_elb_page(*await fetch(client, px.listener_url() + "/hold/forever"), 504)
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_ELB_504_Count"], m["HTTPCode_Target_2XX_Count"]) == (1, 0)
    # A fast request on the same target still works.
    assert (await fetch(client, px.listener_url()))[0] == 200


async def test_504_on_a_reused_target_connection(start_proxy: StartProxy, backends: Any,
                                                 client: aiohttp.ClientSession) -> None:
    """The response timer of a keep-alive target connection outlives each
    request: the one armed by a fast request must still time out a slow one."""
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr,
                                LoadBalancerAttributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    assert (await fetch(client, px.listener_url()))[0] == 200
    assert_elb_page(*await fetch(client, px.listener_url() + "/hold/forever"), 504)
    assert len(b.peers) == 2 and b.peers[0] == b.peers[1], "both requests on one target connection"
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_ELB_504_Count"], m["HTTPCode_Target_2XX_Count"]) == (1, 1)


async def test_504_websocket_handshake_unanswered(start_proxy: StartProxy, raw_server: Any,
                                                  client: aiohttp.ClientSession) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    port = await raw_server(silent)
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{port}",
                                LoadBalancerAttributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "1"}])
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await asyncio.wait_for(client.ws_connect(px.listener_url() + "/ws"), timeout=10)
    assert info.value.status == 504
    assert (await stats(client, px))["targetGroups"]["blue"]["HTTPCode_ELB_504_Count"] == 1


async def test_502_websocket_target_refused(start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{free_port()}")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(px.listener_url() + "/ws")
    assert info.value.status == 502
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_ELB_502_Count"], m["TargetConnectionErrorCount"]) == (1, 1)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: SYNs are dropped, connects hang."""
    srv = socket.socket()
    srv.bind((LOOPBACK, 0))
    srv.listen(0)
    filler = socket.create_connection(srv.getsockname())
    yield int(srv.getsockname()[1])
    filler.close()
    srv.close()


async def test_504_connect_timeout(start_proxy: StartProxy, client: aiohttp.ClientSession, full_backlog: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # ALB waits 10 s to connect; the same code path with a shorter wait.
    monkeypatch.setattr(proxy_server, "CONNECT_TIMEOUT", 0.3)
    px = await one_target_proxy(start_proxy, f"{LOOPBACK}:{full_backlog}")
    assert_elb_page(*await fetch(client, px.listener_url()), 504)
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_ELB_504_Count"], m["TargetConnectionErrorCount"]) == (1, 1)


async def test_target_errors_pass_through_unchanged(start_proxy: StartProxy, backends: Any,
                                                    client: aiohttp.ClientSession) -> None:
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr)
    for code in (500, 502, 503, 504, 404, 302):
        status, body, headers = await fetch(client, f"{px.listener_url()}/status/{code}", allow_redirects=False)
        assert (status, body) == (code, f"blue-1 says {code}")
        assert headers.get("Server") != "awselb/2.0"
    m = (await stats(client, px))["targetGroups"]["blue"]
    assert (m["HTTPCode_Target_5XX_Count"], m["HTTPCode_Target_4XX_Count"], m["HTTPCode_Target_3XX_Count"]) == (4, 1, 1)
    assert m["HTTPCode_ELB_5XX_Count"] == 0 and m["RequestCount"] == 6


# -- refused requests, sent with a raw socket -------------------------------


def request(head_lines: list[bytes], body: bytes = b"") -> bytes:
    return b"\r\n".join(head_lines) + b"\r\n\r\n" + body


BIG = b"a" * (16 * 1024 + 10)
RAW_CASES: list[tuple[str, bytes, int]] = [
    ("malformed request line", b"NOT A REQUEST\r\n\r\n", 400),
    ("binary junk", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("request line over 16 KiB", request([b"GET /" + BIG + b" HTTP/1.1", b"Host: x"]), 400),
    ("one header over 16 KiB", request([b"GET / HTTP/1.1", b"Host: x", b"X-Big: " + BIG]), 400),
    ("headers over 64 KiB", request([b"GET / HTTP/1.1", b"Host: x",
                                     *[b"X-H%d: %s" % (i, b"h" * 9000) for i in range(8)]]), 400),
    ("TRACE", request([b"TRACE / HTTP/1.1", b"Host: x"]), 405),
    ("31 X-Forwarded-For addresses", request([b"GET / HTTP/1.1", b"Host: x", b"X-Forwarded-For: " + b", ".join(
        b"10.0.0.%d" % i for i in range(31))]), 463),
    ("31 addresses over two headers", request([b"GET / HTTP/1.1", b"Host: x",
                                               b"X-Forwarded-For: " + b", ".join(b"10.0.0.%d" % i for i in range(20)),
                                               b"X-Forwarded-For: " + b", ".join(b"10.0.1.%d" % i for i in range(11))]),
     463),
    # 501: "a Transfer-Encoding header with an unsupported value. The
    # supported values are chunked and identity" (ALB troubleshooting page,
    # HTTP errors). Broken framing with supported codings is malformed: 400.
    ("Transfer-Encoding gzip", request([b"POST / HTTP/1.1", b"Host: x", b"Transfer-Encoding: gzip"]), 501),
    ("Transfer-Encoding gzip, chunked", request([b"POST / HTTP/1.1", b"Host: x",
                                                 b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"), 501),
    ("Transfer-Encoding chunked, gzip", request([b"POST / HTTP/1.1", b"Host: x",
                                                 b"Transfer-Encoding: chunked, gzip"], b"0\r\n\r\n"), 501),
    # Transfer-Encoding with Content-Length is forwarded in the default
    # (defensive) desync mitigation mode: tests/proxy/test_desync.py.
    ("Transfer-Encoding chunked, chunked", request([b"POST / HTTP/1.1", b"Host: x",
                                                    b"Transfer-Encoding: chunked, chunked"], b"0\r\n\r\n"), 400),
    ("two Transfer-Encoding headers", request([b"POST / HTTP/1.1", b"Host: x", b"Transfer-Encoding: chunked",
                                               b"Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400),
    # HTTP/0.9 is a malformed request; 505: "an unexpected HTTP version
    # request, e.g. an HTTP/2 request on an HTTP/1 connection".
    ("HTTP/0.9 request line", b"GET /\r\n\r\n", 400),
    ("HTTP/0.9 named", request([b"GET / HTTP/0.9", b"Host: x"]), 400),
    ("HTTP/2.0 request line", request([b"GET / HTTP/2.0", b"Host: x"]), 505),
    # "The client used the HTTP CONNECT method, which is not supported by
    # Elastic Load Balancing" (Classic Load Balancer troubleshooting, 400).
    ("CONNECT", request([b"CONNECT example.com:443 HTTP/1.1", b"Host: example.com:443"]), 400),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
async def test_refused_requests(start_proxy: StartProxy, backends: Any, client: aiohttp.ClientSession,
                                data: bytes, expected: int) -> None:
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr)
    raw = await raw_exchange(px.conf.Listeners[0].Port, data)
    assert status_of(raw) == expected, raw[:300]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\nServer: awselb/2.0\r\n" in head
    assert body.startswith(b"<html>") and b"Traceback" not in body
    assert b.requests == 0, "nothing reaches the target"
    total = (await stats(client, px))["total"]
    assert total[f"HTTPCode_ELB_{expected // 100}XX_Count"] == 1
    assert total["HTTPCode_Target_2XX_Count"] == 0


async def test_thirty_forwarded_addresses_are_fine(start_proxy: StartProxy, backends: Any,
                                                   client: aiohttp.ClientSession) -> None:
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr)
    xff = ", ".join(f"10.0.0.{i}" for i in range(30))
    status, body, _ = await fetch(client, px.listener_url(), headers={"X-Forwarded-For": xff})
    assert (status, body) == (200, "blue-1")


async def test_listener_keeps_serving_after_every_error(start_proxy: StartProxy, backends: Any,
                                                        client: aiohttp.ClientSession) -> None:
    b = await backends("blue-1")
    px = await one_target_proxy(start_proxy, b.addr)
    port = px.conf.Listeners[0].Port
    for _, data, _ in RAW_CASES:
        await raw_exchange(port, data)
    status, body, _ = await fetch(client, px.listener_url())
    assert (status, body) == (200, "blue-1")
