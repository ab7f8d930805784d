"""The network load balancer's data plane on real sockets: flows, not requests.

AWS pages these tests follow:
- NLB target groups, "Routing configuration" / weighted target groups and
  "Deregistration delay" (connection termination):
  https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html
- TargetGroupAttribute: "deregistration_delay.connection_termination.enabled -
  Indicates whether the load balancer terminates connections at the end of
  the deregistration timeout ... [for TCP] the default is false":
  https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupAttribute.html
- NLB health checks: https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-health-checks.html
- NLB's idle timeout for TCP flows (350 s): https://docs.aws.amazon.com/elasticloadbalancing/latest/network/network-load-balancers.html
- AWS/NetworkELB metrics: https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-cloudwatch-metrics.html
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shiftlab.line_service import LineServer
from shiftlab.proxy.app import Proxy
from shiftlab.proxy.tcp import HIGH_WATER, Flow, TcpListener
from tests.helpers import eventually, free_port
from tests.proxy.conftest import LOOPBACK, StartProxy

BLUE, GREEN = "blue", "green"


class LineTarget:
    """A line server (shiftlab.line_service) of one revision on a free port."""

    def __init__(self, revision: str) -> None:
        self.revision = revision
        self.port = free_port()
        self.server: asyncio.AbstractServer | None = None
        self.handler = LineServer({"SHIFTLAB_REVISION": revision, "SHIFTLAB_COLOUR": revision})

    async def start(self) -> LineTarget:
        self.server = await asyncio.start_server(self.handler.handle, LOOPBACK, self.port)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    @property
    def addr(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@pytest.fixture
async def line_targets() -> AsyncIterator[Callable[..., Any]]:
    made: list[LineTarget] = []

    async def make(revision: str) -> LineTarget:
        t = await LineTarget(revision).start()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.stop()


def nlb_conf(port: int, weights: dict[str, int], targets: dict[str, list[str]],
             attrs: list[dict[str, str]] | None = None, **tg: Any) -> dict[str, Any]:
    return {
        "Type": "network",
        "Listeners": [{"Name": "prod", "Port": port, "DefaultActions": [{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": n, "Weight": w} for n, w in weights.items()]}}]}],
        "TargetGroups": [{"Name": n, "Targets": ts, "HealthCheckIntervalSeconds": 5, "HealthyThresholdCount": 2,
                          "HealthCheckTimeoutSeconds": 2, "TargetGroupAttributes": attrs or [], **tg}
                         for n, ts in targets.items()],
        "Admin": {"Port": 0},
    }


async def healthy(px: Proxy, *groups: str) -> None:
    await eventually(lambda: all(px.lb.groups[g].counts()[0] == len(px.lb.groups[g].targets) for g in groups),
                     what="every target healthy")


class LineClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> LineClient:
        return cls(*await asyncio.open_connection(LOOPBACK, port))

    async def ask(self, line: str) -> str:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        answer = await asyncio.wait_for(self.reader.readline(), 5)
        return answer.decode()

    async def revision(self, line: str = "hi") -> str:
        return (await self.ask(line)).split()[1]

    def close(self) -> None:
        self.writer.close()


async def test_weights_apply_per_new_connection(start_proxy: StartProxy, line_targets: Any) -> None:
    """Weights split new connections (flows): 40 connections at 3:1 go 30 to
    blue and 10 to green (smooth weighted round robin is exact), however
    many lines each connection then sends."""
    blue, green = await line_targets("1"), await line_targets("2")
    port = free_port()
    px = await start_proxy(nlb_conf(port, {BLUE: 3, GREEN: 1}, {BLUE: [blue.addr], GREEN: [green.addr]}),
                           time_scale=50)
    await healthy(px, BLUE, GREEN)
    seen: Counter[str] = Counter()
    for i in range(40):
        c = await LineClient.open(port)
        revs = {await c.revision(f"{i}-{k}") for k in range(3)}
        assert len(revs) == 1  # every line of one connection on one target
        seen[revs.pop()] += 1
        c.close()
    assert seen == {"1": 30, "2": 10}


async def test_open_connection_stays_on_blue_after_shift(start_proxy: StartProxy, line_targets: Any) -> None:
    """An open connection stays on its target until it closes; only new
    connections follow the new weights."""
    blue, green = await line_targets("1"), await line_targets("2")
    port = free_port()
    px = await start_proxy(nlb_conf(port, {BLUE: 100, GREEN: 0}, {BLUE: [blue.addr], GREEN: [green.addr]}),
                           time_scale=50)
    await healthy(px, BLUE, GREEN)
    old = await LineClient.open(port)
    assert await old.revision() == "1"
    px.lb.set_forward("prod/default", {"TargetGroups": [{"TargetGroupArn": BLUE, "Weight": 0},
                                                        {"TargetGroupArn": GREEN, "Weight": 100}]})
    new = await LineClient.open(port)
    assert await new.revision() == "2"
    assert [await old.revision(str(i)) for i in range(5)] == ["1"] * 5
    old.close()
    new.close()


@pytest.mark.parametrize(("termination", "survives"), [("false", True), ("true", False)])
async def test_draining_and_connection_termination(start_proxy: StartProxy, line_targets: Any,
                                                   termination: str, survives: bool) -> None:
    """Deregistered: no new flows, existing ones go on. When the delay ends,
    connection_termination false leaves them open (they end when a side
    closes them); true closes them (a reset, TCP_ELB_Reset_Count)."""
    blue, blue2 = await line_targets("1"), await line_targets("1b")
    port = free_port()
    attrs = [{"Key": "deregistration_delay.timeout_seconds", "Value": "1"},
             {"Key": "deregistration_delay.connection_termination.enabled", "Value": termination}]
    px = await start_proxy(nlb_conf(port, {BLUE: 1}, {BLUE: [blue.addr, blue2.addr]}, attrs), time_scale=50)
    await healthy(px, BLUE)
    clients = [await LineClient.open(port) for _ in range(2)]
    on_first = [c for c in clients if await c.revision() == "1"]
    assert len(on_first) == 1
    old = on_first[0]
    group = px.lb.groups[BLUE]
    group.deregister(f"{LOOPBACK}:{blue.port}")
    for _ in range(4):  # new connections only reach the other target
        c = await LineClient.open(port)
        assert await c.revision() == "1b"
        c.close()
    assert await old.revision() == "1"  # still served while draining
    await eventually(lambda: f"{LOOPBACK}:{blue.port}" not in group.targets, what="the delay's end")
    if survives:
        assert await old.revision("after") == "1"
        assert px.lb.stats.snapshot(px.lb.health_counts())["total"]["TCP_ELB_Reset_Count"] == 0
    else:
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError, IndexError)):
            await old.revision("after")  # reset: no answer (or an empty one)
        assert px.lb.stats.snapshot(px.lb.health_counts())["total"]["TCP_ELB_Reset_Count"] == 1
    for c in clients:
        c.close()


async def test_tcp_health_check(start_proxy: StartProxy, line_targets: Any) -> None:
    """TCP (NLB's default): healthy when a connection opens, unhealthy when refused."""
    up = await line_targets("1")
    down_port = free_port()  # nothing listens
    px = await start_proxy(nlb_conf(free_port(), {BLUE: 1}, {BLUE: [up.addr, f"{LOOPBACK}:{down_port}"]},
                                    UnhealthyThresholdCount=2), time_scale=50)
    group = px.lb.groups[BLUE]
    await eventually(lambda: {t.port: t.state for t in group.targets.values()}
                     == {up.port: "healthy", down_port: "unhealthy"}, what="one healthy, one unhealthy")
    assert group.describe()["HealthCheck"]["Protocol"] == "TCP"


@pytest.mark.parametrize(("status", "state"), [(200, "healthy"), (302, "healthy"), (399, "healthy"),
                                               (404, "unhealthy"), (503, "unhealthy")])
async def test_http_health_check_default_matcher(start_proxy: StartProxy, status: int, state: str) -> None:
    """An HTTP health check on an NLB target group: matcher 200-399 by default."""
    async def health(request: web.Request) -> web.Response:
        return web.Response(status=status)

    app = web.Application()
    app.router.add_get("/", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        px = await start_proxy(nlb_conf(free_port(), {BLUE: 1}, {BLUE: [f"{LOOPBACK}:{port}"]},
                                        HealthCheckProtocol="HTTP"), time_scale=50)
        group = px.lb.groups[BLUE]
        await eventually(lambda: [t.state for t in group.targets.values()] == [state], what=state)
    finally:
        await runner.cleanup()


async def test_client_that_never_reads_does_not_grow_the_proxy(start_proxy: StartProxy) -> None:
    """A target that sends without end to a client that reads nothing: the
    proxy buffers at most about HIGH_WATER per side, then stops reading the
    target, whose own writes then wait (backpressure reaches the target)."""
    sent = [0]
    limit = 256 * 1024 * 1024

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while sent[0] < limit:
                writer.write(chunk)
                await writer.drain()
                sent[0] += len(chunk)
        writer.close()

    tport = free_port()
    server = await asyncio.start_server(firehose, LOOPBACK, tport)
    try:
        port = free_port()
        # Without health checks: their connections would drink from the firehose too.
        px = await start_proxy(nlb_conf(port, {BLUE: 1}, {BLUE: [f"{LOOPBACK}:{tport}"]},
                                        HealthCheckEnabled=False), time_scale=50)
        sock = socket.create_connection((LOOPBACK, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        history: list[int] = []

        def stalled() -> bool:
            history.append(sent[0])
            return len(history) > 10 and history[-1] == history[-10] > 0

        await eventually(stalled, timeout=30, interval=0.05, what="the target's writes to stall")
        listener: TcpListener = px._servers[0][1]
        flows: list[Flow] = list(listener.flows)
        assert len(flows) == 1
        f = flows[0]
        assert f.client is not None and f.target_transport is not None
        buffered = f.client.get_write_buffer_size() + f.target_transport.get_write_buffer_size()
        assert buffered <= HIGH_WATER + 256 * 1024  # the high-water mark plus at most one read
        assert sent[0] < 64 * 1024 * 1024  # a few socket buffers, not the firehose
        sock.close()
    finally:
        server.close()


async def test_half_close_is_passed_on(start_proxy: StartProxy, line_targets: Any) -> None:
    """A client that half-closes (FIN) after its line still gets the answer,
    then the end of the stream; the proxy keeps serving others."""
    blue = await line_targets("1")
    port = free_port()
    px = await start_proxy(nlb_conf(port, {BLUE: 1}, {BLUE: [blue.addr]}), time_scale=50)
    await healthy(px, BLUE)
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(b"last words\n")
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)  # until EOF
    assert data == b"OK 1 1 -: last words\n"
    writer.close()
    c = await LineClient.open(port)
    assert await c.revision() == "1"
    c.close()
    await eventually(lambda: px.lb.stats.total().flows_active == 1, what="the half-closed flow's end")


async def test_half_open_flow_reset_at_idle_timeout(start_proxy: StartProxy, line_targets: Any) -> None:
    """A flow with nothing sent either way for the idle timeout (NLB: 350 s,
    here shortened on the running listener) is forgotten: both sides are
    reset, counted as TCP_ELB_Reset_Count; the target sees its connection go."""
    blue = await line_targets("1")
    port = free_port()
    conf = nlb_conf(port, {BLUE: 1}, {BLUE: [blue.addr]})
    conf["Listeners"][0]["ListenerAttributes"] = [{"Key": "tcp.idle_timeout.seconds", "Value": "60"}]
    px = await start_proxy(conf, time_scale=50)
    assert px._servers[0][1].idle_timeout == 60  # not scaled, as ALB's idle timeout is not
    px._servers[0][1].idle_timeout = 0.3
    await healthy(px, BLUE)
    c = await LineClient.open(port)
    assert await c.revision() == "1"
    # The client goes silent (as a peer that vanished without a FIN would).
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(c.reader.read(), 5)
    snap = px.lb.stats.snapshot(px.lb.health_counts())
    assert snap["total"]["TCP_ELB_Reset_Count"] == 1
    assert snap["total"]["ActiveFlowCount"] == 0
    c.close()


async def test_no_target_resets_the_connection(start_proxy: StartProxy) -> None:
    """No registered target: NLB resets new connections (TCP_ELB_Reset_Count)."""
    port = free_port()
    px = await start_proxy(nlb_conf(port, {BLUE: 1}, {BLUE: []}), time_scale=50)
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    with pytest.raises(ConnectionError):
        writer.write(b"x\n")
        await writer.drain()
        if not await asyncio.wait_for(reader.read(), 5):
            raise ConnectionResetError("closed")
    assert px.lb.stats.snapshot(px.lb.health_counts())["targetGroups"][BLUE]["TCP_ELB_Reset_Count"] == 1


async def test_resets_from_each_side_are_counted(start_proxy: StartProxy) -> None:
    """A target that resets its connection: TCP_Target_Reset_Count, and the
    client gets the reset. A client that resets: TCP_Client_Reset_Count."""
    from shiftlab.proxy.tcp import reset

    async def resetter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            line = await reader.readline()
            if line == b"reset\n":
                reset(writer.transport)
            else:
                await reader.read()  # the client's reset reaches here as one
        writer.close()

    tport = free_port()
    server = await asyncio.start_server(resetter, LOOPBACK, tport)
    try:
        port = free_port()
        px = await start_proxy(nlb_conf(port, {BLUE: 1}, {BLUE: [f"{LOOPBACK}:{tport}"]}), time_scale=50)
        await healthy(px, BLUE)
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        writer.write(b"reset\n")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 5)
        writer.close()
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        writer.write(b"stay\n")
        await writer.drain()
        await eventually(lambda: px.lb.stats.total().flows_active == 1, what="the second flow")
        reset(writer.transport)
        stats = px.lb.stats
        await eventually(lambda: stats.total().resets_client == 1, what="the client's reset")
        snap = stats.snapshot(px.lb.health_counts())["total"]
        assert (snap["TCP_Target_Reset_Count"], snap["TCP_Client_Reset_Count"]) == (1, 1)
    finally:
        server.close()


async def test_network_metrics(start_proxy: StartProxy, line_targets: Any) -> None:
    """The stats endpoint and /metrics speak AWS/NetworkELB: flows, bytes,
    resets, host counts; no HTTP request metric."""
    blue, green = await line_targets("1"), await line_targets("2")
    port = free_port()
    px = await start_proxy(nlb_conf(port, {BLUE: 1, GREEN: 1}, {BLUE: [blue.addr], GREEN: [green.addr]}),
                           time_scale=50)
    await healthy(px, BLUE, GREEN)
    clients = [await LineClient.open(port) for _ in range(4)]
    for c in clients:
        await c.ask("abc")
    headers = {"Authorization": f"Bearer {px.token}"} if px.token else {}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(px.admin_url + "/admin/stats") as r:
            snap = await r.json()
        async with s.get(px.admin_url + "/metrics") as r:
            prom = await r.text()
    assert snap["namespace"] == "AWS/NetworkELB"
    assert snap["total"]["NewFlowCount"] == 4
    assert snap["total"]["ActiveFlowCount"] == 4
    assert snap["targetGroups"][BLUE]["NewFlowCount"] == 2
    assert snap["targetGroups"][GREEN]["HealthyHostCount"] == 1
    assert snap["total"]["ProcessedBytes"] == 4 * (4 + len("OK 1 1 -: abc\n"))
    assert "RequestCount" not in snap["total"]
    assert 'shiftlab_new_flow_count_total{listener="prod",load_balancer="shiftlab",target_group="blue"} 2.0' in prom
    assert "shiftlab_active_flow_count" in prom and "shiftlab_tcp_elb_reset_count" in prom
    for c in clients:
        c.close()


async def test_the_tcp_path_in_shiftlab_proxy_on_uvloop(tmp_path: Any, line_targets: Any) -> None:
    """`shiftlab proxy` runs on uvloop, whose transports differ from asyncio's
    (a client's first bytes may come before the target's connection opens):
    the same split and answers from the real process, each client writing
    its line at once."""
    import subprocess
    import sys

    import yaml

    blue, green = await line_targets("1"), await line_targets("2")
    port = free_port()
    conf = nlb_conf(port, {BLUE: 1, GREEN: 1}, {BLUE: [blue.addr], GREEN: [green.addr]})
    conf["Admin"] = {"Port": free_port()}
    path = tmp_path / "nlb.yaml"
    path.write_text(yaml.safe_dump({"timeScale": 50, "loadBalancer": conf}))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shiftlab", "proxy", "-c", str(path),
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def answer() -> str | None:
            try:
                reader, writer = await asyncio.open_connection(LOOPBACK, port)
            except OSError:
                return None
            writer.write(b"early\n")  # before the proxy can have connected to the target
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            return line.decode().split()[1] if line else None

        await eventually(answer, timeout=20, what="shiftlab proxy answering")
        seen = Counter([await answer() for _ in range(20)])
        assert seen == {"1": 10, "2": 10}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def test_admin_api_refuses_rules_on_a_network_listener(start_proxy: StartProxy) -> None:
    """ELBv2 has no rules on an NLB listener: PUT .../rules is refused; the
    default action's weights (ModifyListener's role) are what moves."""
    px = await start_proxy(nlb_conf(free_port(), {BLUE: 1}, {BLUE: []}))
    headers = {"Authorization": f"Bearer {px.token}"} if px.token else {}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.put(px.admin_url + "/admin/listeners/prod/rules", json=[]) as r:
            assert r.status == 400
            assert "has no rules" in (await r.json())["error"]
        async with s.get(px.admin_url + "/admin/state") as r:
            state = await r.json()
    assert state["Type"] == "network" and state["Listeners"][0]["Protocol"] == "TCP"
    assert [rule["Id"] for rule in state["Listeners"][0]["Rules"]] == ["prod/default"]


async def test_target_half_close_is_passed_on(start_proxy: StartProxy) -> None:
    """A target that half-closes after its greeting: the client reads the
    greeting and then the end of the stream, and may still send; the target
    still gets what it sends (each direction closes on its own, as TCP)."""
    got: list[bytes] = []

    async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello, then I only listen\n")
        writer.write_eof()
        got.append(await reader.read())  # until the client's FIN
        writer.close()

    tport = free_port()
    server = await asyncio.start_server(greeter, LOOPBACK, tport)
    try:
        port = free_port()
        px = await start_proxy(nlb_conf(port, {BLUE: 1}, {BLUE: [f"{LOOPBACK}:{tport}"]},
                                        HealthCheckEnabled=False))
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        assert await asyncio.wait_for(reader.read(), 5) == b"hello, then I only listen\n"  # then EOF
        writer.write(b"but I still talk\n")
        writer.write_eof()
        await eventually(lambda: got == [b"but I still talk\n"], what="the target to get the client's bytes")
        writer.close()
        await eventually(lambda: px.lb.stats.total().flows_active == 0, what="the flow's end")
        assert px.lb.stats.total().resets_elb == 0
    finally:
        server.close()
