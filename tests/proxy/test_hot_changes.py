"""Weights, targets and rules change under load without a restart and without
failing a single request."""

from __future__ import annotations

import random
from typing import Any

import aiohttp

from tests.proxy.conftest import Backend, Load, StartProxy, get_text, group_conf, lb_conf, listener_conf


async def put_json(client: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with client.put(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_weights_changed_100_times_under_load(start_proxy: StartProxy, backends: Any,
                                                    client: aiohttp.ClientSession) -> None:
    blue, green = await backends("blue-1"), await backends("green-1")
    px = await start_proxy(lb_conf([listener_conf({"blue": 100, "green": 0}, Name="prod")],
                                   [group_conf("blue", [blue]), group_conf("green", [green])]))
    rng = random.Random(42)
    load = Load(px.listener_url()).start()
    url = f"{px.admin_url}/admin/listeners/prod/rules/default/forward"
    for i in range(100):
        g = 100 if i == 99 else rng.randrange(0, 101)
        body = {"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 100 - g},
                                 {"TargetGroupArn": "green", "Weight": g}]}
        back = await put_json(client, url, body)
        assert back["ForwardConfig"]["TargetGroups"] == body["TargetGroups"], "the read-back is what is in force"
        await load.advanced(5)
    await load.stop()
    assert load.failures == []
    assert load.ok >= 500
    assert set(load.by_body) == {"blue-1", "green-1"}
    # The last step (0/100) is in force.
    for _ in range(5):
        assert (await get_text(client, px.listener_url()))[1] == "green-1"


async def test_targets_registered_and_deregistered_under_load(start_proxy: StartProxy, backends: Any,
                                                              client: aiohttp.ClientSession) -> None:
    pool = [await backends(f"blue-{i}") for i in range(1, 5)]
    delay = [{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}]
    px = await start_proxy(lb_conf([listener_conf({"blue": 1})],
                                   [group_conf("blue", pool[:2], TargetGroupAttributes=delay)]))
    admin = f"{px.admin_url}/admin/target-groups/blue"

    async def post(action: str, b: Backend) -> None:
        async with client.post(f"{admin}/{action}", json={"Targets": [{"Id": b.addr}]}) as resp:
            assert resp.status == 200, await resp.text()

    load = Load(px.listener_url()).start()
    registered = pool[:2]
    rng = random.Random(7)
    for _ in range(40):
        spare = [b for b in pool if b not in registered]
        newcomer = rng.choice(spare)
        await post("register", newcomer)
        leaving = rng.choice(registered)
        await post("deregister", leaving)
        registered = [b for b in registered if b is not leaving] + [newcomer]
        await load.advanced(5)
    await load.stop()
    assert load.failures == []
    assert set(load.by_body) == {b.name for b in pool}
    async with client.get(admin) as resp:
        states = {d["Id"]: d["TargetHealth"]["State"] for d in (await resp.json())["TargetHealthDescriptions"]}
    # Drained targets show `draining` for the whole deregistration delay (300 s), as on ALB.
    assert {i for i, s in states.items() if s != "draining"} == {b.addr for b in registered}
    group = px.lb.groups["blue"]
    assert all(not group.targets[i].pool.in_use for i, s in states.items() if s == "draining"), \
        "a drained target's deregistration completed once its requests were done"


async def test_rules_replaced_under_load(start_proxy: StartProxy, backends: Any,
                                         client: aiohttp.ClientSession) -> None:
    blue, green = await backends("blue-1"), await backends("green-1")
    px = await start_proxy(lb_conf([listener_conf({"blue": 1}, Name="prod")],
                                   [group_conf("blue", [blue]), group_conf("green", [green])]))

    def rules(group: str, prio: int) -> list[dict[str, Any]]:
        return [{"Priority": prio, "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}],
                 "Actions": [{"Type": "forward", "TargetGroupArn": group}]}]

    load = Load(px.listener_url()).start()
    for i in range(50):
        group = "green" if i % 2 == 0 else "blue"
        back = await put_json(client, f"{px.admin_url}/admin/listeners/prod/rules", rules(group, 1 + i))
        assert back["Rules"][1]["Priority"] == 1 + i
        await load.advanced(5)
    await load.stop()
    assert load.failures == []
    assert set(load.by_body) == {"blue-1", "green-1"}
