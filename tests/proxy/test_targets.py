"""Targets in a group: active health checks flipping a target, fail-open,
registration, and deregistration with draining."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.helpers import eventually
from tests.proxy.conftest import Backend, StartProxy, get_text, group_conf, lb_conf, listener_conf

# AWS seconds; at time scale 50 an interval of 5 s is 0.1 s.
FAST_CHECKS = {
    "HealthCheckEnabled": True, "HealthCheckPath": "/health", "HealthCheckIntervalSeconds": 5,
    "HealthCheckTimeoutSeconds": 2, "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 2,
}
SCALE = 50


async def describe(client: aiohttp.ClientSession, px: Any, group: str = "blue") -> dict[str, tuple[str, Any]]:
    """Target id -> (State, Reason), from the DescribeTargetHealth-like view."""
    async with client.get(f"{px.admin_url}/admin/target-groups/{group}") as resp:
        assert resp.status == 200
        data = await resp.json()
    return {d["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"]["Reason"])
            for d in data["TargetHealthDescriptions"]}


async def wait_states(client: aiohttp.ClientSession, px: Any, expected: dict[str, str], group: str = "blue",
                      timeout: float = 10) -> dict[str, tuple[str, Any]]:
    async def check() -> dict[str, tuple[str, Any]] | None:
        got = await describe(client, px, group)
        return got if {k: v[0] for k, v in got.items()} == expected else None

    result: dict[str, tuple[str, Any]] = await eventually(check, timeout=timeout, what=f"states {expected}")
    return result


async def spread(client: aiohttp.ClientSession, url: str, n: int = 20) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        status, body, _ = await get_text(client, url)
        assert status == 200, body
        out[body] += 1
    return out


async def test_health_checks_flip_a_target(start_proxy: StartProxy, backends: Any,
                                           client: aiohttp.ClientSession) -> None:
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [b1, b2], **FAST_CHECKS)]),
                           time_scale=SCALE)
    url = px.listener_url()
    first = await describe(client, px)
    assert {s for s, _ in first.values()} <= {"initial", "healthy"}
    got = await wait_states(client, px, {b1.addr: "healthy", b2.addr: "healthy"})
    assert got[b1.addr] == ("healthy", None)
    assert await spread(client, url) == {"blue-1": 10, "blue-2": 10}

    b2.health_status = 500
    got = await wait_states(client, px, {b1.addr: "healthy", b2.addr: "unhealthy"})
    assert got[b2.addr] == ("unhealthy", "Target.ResponseCodeMismatch")
    assert await spread(client, url) == {"blue-1": 20}
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    assert (stats["targetGroups"]["blue"]["HealthyHostCount"], stats["targetGroups"]["blue"]["UnHealthyHostCount"]) \
        == (1, 1)

    b2.health_status = 200
    await wait_states(client, px, {b1.addr: "healthy", b2.addr: "healthy"})
    assert await spread(client, url) == {"blue-1": 10, "blue-2": 10}
    assert b1.health_checks > 0 and b2.health_checks > 0


async def test_matcher_codes_and_a_stopped_target(start_proxy: StartProxy, backends: Any,
                                                  client: aiohttp.ClientSession) -> None:
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    b1.health_status = b2.health_status = 404
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [
        group_conf("blue", [b1, b2], **FAST_CHECKS, Matcher={"HttpCode": "200-299,404"})]), time_scale=SCALE)
    await wait_states(client, px, {b1.addr: "healthy", b2.addr: "healthy"})
    assert b2.runner is not None
    await b2.runner.cleanup()  # connection refused from now on
    got = await wait_states(client, px, {b1.addr: "healthy", b2.addr: "unhealthy"})
    assert got[b2.addr] == ("unhealthy", "Target.FailedHealthChecks")
    assert await spread(client, px.listener_url(), 6) == {"blue-1": 6}


async def test_health_check_timeout(start_proxy: StartProxy, backends: Any, raw_server: Any,
                                    client: aiohttp.ClientSession) -> None:
    # A target that accepts and never answers: each check waits the timeout
    # (floored at 1 s whatever the time scale), two of them make it unhealthy.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    b1 = await backends("blue-1")
    port = await raw_server(silent)
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [
        group_conf("blue", [b1, f"127.0.0.1:{port}"], **FAST_CHECKS)]), time_scale=SCALE)
    got = await wait_states(client, px, {b1.addr: "healthy", f"127.0.0.1:{port}": "unhealthy"})
    assert got[f"127.0.0.1:{port}"] == ("unhealthy", "Target.Timeout")


async def test_fail_open_when_every_target_is_unhealthy(start_proxy: StartProxy, backends: Any,
                                                        client: aiohttp.ClientSession) -> None:
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    b1.health_status = b2.health_status = 503
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [b1, b2], **FAST_CHECKS)]),
                           time_scale=SCALE)
    await wait_states(client, px, {b1.addr: "unhealthy", b2.addr: "unhealthy"})
    assert await spread(client, px.listener_url()) == {"blue-1": 10, "blue-2": 10}
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    assert stats["targetGroups"]["blue"]["UnHealthyHostCount"] == 2
    assert stats["targetGroups"]["blue"]["HTTPCode_Target_2XX_Count"] == 20


async def test_health_checks_are_not_counted_as_requests(start_proxy: StartProxy, backends: Any,
                                                         client: aiohttp.ClientSession) -> None:
    b1 = await backends("blue-1")
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})], [group_conf("blue", [b1], **FAST_CHECKS)]),
                           time_scale=SCALE)
    await eventually(lambda: b1.health_checks >= 5, what="five health checks")
    await spread(client, px.listener_url(), 3)
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    assert stats["targetGroups"]["blue"]["RequestCount"] == 3
    async with client.get(f"{px.admin_url}/metrics") as resp:
        text = await resp.text()
    line = next(m for m in text.splitlines() if m.startswith("shiftlab_request_count_total{") and 'target_group="blue"'
                in m)
    assert line.endswith(" 3.0")


async def post_targets(client: aiohttp.ClientSession, px: Any, action: str, *targets: Backend,
                       group: str = "blue") -> dict[str, Any]:
    async with client.post(f"{px.admin_url}/admin/target-groups/{group}/{action}",
                           json={"Targets": [{"Id": t.addr} for t in targets]}) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_register_and_deregister_idle_targets(start_proxy: StartProxy, backends: Any,
                                                    client: aiohttp.ClientSession) -> None:
    # "Even though target deregistration is complete, the status of the target
    # is displayed as draining until the deregistration delay timeout
    # expires. After the timeout expires, the target transitions to an
    # unused state."
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-target-groups.html#deregistration-delay
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    delay = [{"Key": "deregistration_delay.timeout_seconds", "Value": "20"}]
    # Time scale 10: the 20 s delay lasts 2 s.
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", [b1], TargetGroupAttributes=delay)]), time_scale=10)
    url = px.listener_url()
    body = await post_targets(client, px, "register", b2)
    assert {d["Id"] for d in body["TargetHealthDescriptions"]} == {b1.addr, b2.addr}
    assert await spread(client, url) == {"blue-1": 10, "blue-2": 10}
    body = await post_targets(client, px, "deregister", b1)
    states = {d["Id"]: d["TargetHealth"]["State"] for d in body["TargetHealthDescriptions"]}
    assert states == {b1.addr: "draining", b2.addr: "healthy"}, "an idle target shows draining"
    assert not px.lb.groups["blue"].targets[b1.addr].pool.in_use, "its deregistration is complete"
    assert await spread(client, url) == {"blue-2": 20}
    await wait_states(client, px, {b2.addr: "healthy"}, timeout=10)  # b1 gone once the delay expired
    await post_targets(client, px, "deregister", b2)
    status, _, _ = await get_text(client, url)
    assert status == 503


async def test_deregistration_drains(start_proxy: StartProxy, backends: Any, client: aiohttp.ClientSession) -> None:
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    delay = [{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]
    # Time scale 10: the 10 s delay lasts 1 s.
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", [b1], TargetGroupAttributes=delay)]), time_scale=10)
    url = px.listener_url()
    finishes = asyncio.ensure_future(get_text(client, url + "/hold/finishes"))
    cut = asyncio.ensure_future(get_text(client, url + "/hold/cut"))
    await eventually(lambda: b1.held.get("finishes") == 1 and b1.held.get("cut") == 1, what="two held requests")
    await post_targets(client, px, "register", b2)
    await post_targets(client, px, "deregister", b1)
    states = await describe(client, px)
    assert states[b1.addr] == ("draining", "Target.DeregistrationInProgress")
    assert await spread(client, url, 10) == {"blue-2": 10}, "no new requests to a draining target"
    b1.hold("finishes").set()
    assert (await finishes)[:2] == (200, "blue-1"), "an in-flight request finishes within the delay"
    status, body, _ = await asyncio.wait_for(cut, timeout=10)
    assert status == 502 and "502 Bad Gateway" in body, "still open after the delay: 502"
    await wait_states(client, px, {b2.addr: "healthy"})
    stats = await (await client.get(f"{px.admin_url}/admin/stats")).json()
    assert stats["targetGroups"]["blue"]["HTTPCode_ELB_502_Count"] == 1


async def test_the_last_request_completes_a_deregistration(start_proxy: StartProxy, backends: Any,
                                                           client: aiohttp.ClientSession) -> None:
    # The last in-flight request completes the deregistration (no connection
    # to the target is kept); the target still shows draining for the delay.
    b1, b2 = await backends("blue-1"), await backends("blue-2")
    delay = [{"Key": "deregistration_delay.timeout_seconds", "Value": "3600"}]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", [b1, b2], TargetGroupAttributes=delay)]))
    url = px.listener_url()
    held = [asyncio.ensure_future(get_text(client, url + "/hold/x")) for _ in range(2)]
    await eventually(lambda: b1.held.get("x") == 1 and b2.held.get("x") == 1, what="one held request each")
    await post_targets(client, px, "deregister", b1)
    assert (await describe(client, px))[b1.addr][0] == "draining"
    target = px.lb.groups["blue"].targets[b1.addr]
    assert target.pool.in_use
    b1.hold("x").set()
    await eventually(lambda: not target.pool.in_use and target.outstanding == 0, what="the connection closed")
    assert (await describe(client, px))[b1.addr] == ("draining", "Target.DeregistrationInProgress")
    b2.hold("x").set()
    assert sorted(r[1] for r in await asyncio.gather(*held)) == ["blue-1", "blue-2"]


@pytest.mark.parametrize("checks", [False, True], ids=["no health checks", "health checks"])
async def test_reregistering_a_draining_target(start_proxy: StartProxy, backends: Any,
                                               client: aiohttp.ClientSession, checks: bool) -> None:
    b1 = await backends("blue-1")
    delay = [{"Key": "deregistration_delay.timeout_seconds", "Value": "3600"}]
    extra = FAST_CHECKS if checks else {}
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", [b1], TargetGroupAttributes=delay, **extra)]), time_scale=SCALE)
    url = px.listener_url()
    await wait_states(client, px, {b1.addr: "healthy"})
    held = asyncio.ensure_future(get_text(client, url + "/hold/x"))
    await eventually(lambda: b1.held.get("x") == 1, what="a held request")
    await post_targets(client, px, "deregister", b1)
    assert (await get_text(client, url))[0] == 503
    await post_targets(client, px, "register", b1)
    await wait_states(client, px, {b1.addr: "healthy"})
    assert (await get_text(client, url))[:2] == (200, "blue-1")
    b1.hold("x").set()
    assert (await held)[:2] == (200, "blue-1"), "the request that began before deregistration still finishes"


async def test_a_new_target_is_in_service_after_one_passing_check(start_proxy: StartProxy, backends: Any,
                                                                  client: aiohttp.ClientSession) -> None:
    # AWS's defaults at real time (interval 30 s, healthy threshold 5): a
    # registered target is healthy at its first passing check, not after
    # five checks two minutes later ("After your target is registered, it
    # must pass one health check to be considered healthy",
    # https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html).
    b1 = await backends("blue-1")
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", [], HealthCheckEnabled=True, HealthCheckPath="/health")]))
    async with client.post(f"{px.admin_url}/admin/target-groups/blue/register",
                           json={"Targets": [{"Id": "127.0.0.1", "Port": b1.port}]}) as resp:
        assert resp.status == 200
    got = await wait_states(client, px, {b1.addr: "healthy"}, timeout=10)
    assert got[b1.addr] == ("healthy", None)
    assert b1.health_checks == 1
