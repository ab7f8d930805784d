"""A canary through a network load balancer, end to end: the line service
as real processes (process backend), the proxy's TCP listeners on
127.0.0.1, the controller at a high time scale.

What it shows, as ECS and NLB document it: the test listener's traffic
reaches green first; ECS waits its 10 minutes after each traffic shift
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html);
a connection opened before the shift stays on blue while new connections
go to green (NLB routes flows, not requests:
https://docs.aws.amazon.com/elasticloadbalancing/latest/network/introduction.html).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shiftlab.controller import eventlog
from shiftlab.controller.describe import service_view
from tests.controller.support import weight_steps
from tests.helpers import eventually, free_port, logged

LINE = ["{python}", "-m", "shiftlab.line_service"]


def nlb_config(tmp_path: Path, deployment: dict[str, Any], time_scale: float = 120.0) -> dict[str, Any]:
    fwd = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": "blue", "Weight": 100}, {"TargetGroupArn": "green", "Weight": 0}]}}
    return {
        "timeScale": time_scale,
        "loadBalancer": {
            "Name": "my-network-lb", "Type": "network",
            "Listeners": [{"Name": "prod", "Port": free_port(), "DefaultActions": [fwd]},
                          {"Name": "test", "Port": free_port(), "DefaultActions": [fwd]}],
            "TargetGroups": [{"Name": n, "TargetGroupAttributes": [
                {"Key": "deregistration_delay.timeout_seconds", "Value": "60"}]} for n in ("blue", "green")],
            "Admin": {"Port": 0},
        },
        "service": {
            "serviceName": "lines", "desiredCount": 2,
            "taskDefinition": {"command": LINE, "stopTimeout": 5},
            "loadBalancers": [{"targetGroupArn": "blue", "advancedConfiguration": {
                "alternateTargetGroupArn": "green", "productionListenerRule": "prod/default",
                "testListenerRule": "test/default"}}],
        },
        "deploymentConfiguration": deployment,
        "controller": {"port": 0, "stateDir": str(tmp_path / "state"), "taskStartTimeoutSeconds": 20},
    }


async def ask(port: int, line: str = "hi") -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await again(reader, writer, line), reader, writer


async def again(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str = "hi") -> str:
    writer.write(line.encode() + b"\n")
    await writer.drain()
    answer = (await asyncio.wait_for(reader.readline(), 5)).decode()
    return answer.split()[1]  # the revision


async def revision_of_new_connection(port: int) -> str:
    rev, _, writer = await ask(port)
    writer.close()
    return rev


async def test_canary_through_a_network_load_balancer(stack_factory: Any, tmp_path: Path) -> None:
    data = nlb_config(tmp_path, {"strategy": "CANARY", "bakeTimeInMinutes": 0,
                                 "canaryConfiguration": {"canaryPercent": 50, "canaryBakeTimeInMinutes": 1}})
    prod, test = (ls["Port"] for ls in data["loadBalancer"]["Listeners"])
    stack = await stack_factory(data)
    ctl = stack.controller
    assert await revision_of_new_connection(prod) == "1"
    old_rev, old_reader, old_writer = await ask(prod, "before")  # a long-lived connection, on blue
    assert old_rev == "1"

    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    assert service_view(ctl)["loadBalancerType"] == "network"
    # While TEST_TRAFFIC_SHIFT waits ECS's delay, DescribeServiceDeployments says until when.
    await eventually(lambda: ctl.describe(ctl.current)["shiftlab"]["delayUntil"] is not None, timeout=60,
                     what="the NLB delay in the description")
    assert ctl.describe(ctl.current)["shiftlab"]["shiftDelayMinutes"] == 10
    # Test traffic first: the test listener reaches green while production stays on blue.
    await eventually(lambda: ctl.current is not None and ctl.current.test_percent == 100, timeout=60,
                     what="test traffic on green")
    assert await revision_of_new_connection(test) == "2"
    assert await revision_of_new_connection(prod) == "1"
    # All production traffic moved: new connections go to green, the open one stays on blue.
    await eventually(lambda: ctl.current is not None and ctl.current.production_percent == 100, timeout=60,
                     what="production traffic on green")
    assert {await revision_of_new_connection(prod) for _ in range(4)} == {"2"}
    assert [await again(old_reader, old_writer, f"still {i}") for i in range(3)] == ["1", "1", "1"]

    final = await ctl.wait_finished(d.id, timeout=90)
    assert final.status == "SUCCESSFUL", final.status_reason
    assert weight_steps(stack, final.id) == [50, 100]
    assert stack.records is not None
    delayed = logged(stack.records.events(final.id), eventlog.STAGE_DELAYED)
    assert [e["stage"] for e in delayed] == ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT",
                                             "PRODUCTION_TRAFFIC_SHIFT"]
    assert all(e["minutes"] == 10 and e["seconds"] == 5 for e in delayed)  # 10 minutes at timeScale 120
    shift = next(s for s in final.stages if s["stage"] == "TEST_TRAFFIC_SHIFT")
    assert shift["endedAt"] - shift["startedAt"] >= 5.0
    old_writer.close()
    stats = await stack.router.stats()
    assert stats["namespace"] == "AWS/NetworkELB"
    assert stats["targetGroups"]["green"]["NewFlowCount"] >= 5
