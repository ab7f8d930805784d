"""End to end, a headless service (neither loadBalancers nor Service Connect)
with the process backend: queue consumers on shiftlab's work queue, no load
balancer at all. Green starts deactivated; the activation hook at
PRODUCTION_TRAFFIC_SHIFT activates it and deactivates blue. A green that
fails messages trips the alarm on the consumers' own metric
(WorkQueue MessagesFailed, EMF in their output), the rollback's
PRODUCTION_TRAFFIC_SHIFT hook puts blue back to work, and no message is
lost or processed twice.

ECS runs blue/green for a service with no load balancer, without managing
a traffic shift ("If your service doesn't use a load balancer, Service
Connect, or VPC Lattice (headless service), you can still use blue/green
deployments for controlled rollouts, but Amazon ECS doesn't manage the
traffic shift automatically."):
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from shiftlab.controller import eventlog
from shiftlab.headless import FAILURE_ALARM_NAME, QueueRun, headless_config
from tests.helpers import eventually, free_port, logged

MESSAGES = 300
RATE = 60.0  # messages a second


async def rollout(stack_factory: Any, tmp_path: Path, env: dict[str, str]) -> tuple[Any, Any, Any]:
    port = free_port()
    async with QueueRun(tmp_path / "queue.sqlite", port) as q:
        data = headless_config(q.url, str(tmp_path / "state"))
        stack = await stack_factory(data)
        assert stack.proxy is None and stack.proxy_admin_url is None  # no load balancer runs
        ctl = stack.controller
        # Blue works before the deployment starts.
        producer = asyncio.create_task(q.produce(MESSAGES, RATE))
        await eventually(lambda: q.accounting().processed > 0, 20, what="blue processing messages")
        d = ctl.create_deployment({"env": env})
        final = await ctl.wait_finished(d.id, timeout=90)
        await producer
        assert await q.drained(30), q.accounting().line()
        return stack, final, q.accounting()


async def test_headless_rollout_activates_green_and_loses_nothing(stack_factory: Any, tmp_path: Path) -> None:
    stack, final, acc = await rollout(stack_factory, tmp_path, {"WORK_MS": "5"})
    assert final.status == "SUCCESSFUL", final.status_reason
    assert acc.sent == MESSAGES and acc.lost == 0 and acc.duplicates == 0, acc.line()
    assert acc.by_consumer.get("revision 2", 0) > 0, acc.line()  # green did work once activated
    events = stack.records.events(final.id)
    flips = [(f["revision"], f["active"]) for f in logged(events, eventlog.SERVICE_ACTIVATION)]
    assert flips == [("2", True), ("1", False)]
    described = stack.controller.describe(final)
    assert described["shiftlab"]["exposure"] == "headless"
    assert described["shiftlab"]["activeRevisions"] == ["2"]
    async with aiohttp.ClientSession() as s, s.get(stack.api_url + "/api/activation") as r:
        assert (await r.json())["revisions"] == {"1": False, "2": True}


async def test_green_failing_messages_is_rolled_back_by_its_alarm_and_blue_takes_over(
        stack_factory: Any, tmp_path: Path) -> None:
    stack, final, acc = await rollout(stack_factory, tmp_path, {"FAILURE_RATE": "0.5", "WORK_MS": "5"})
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [FAILURE_ALARM_NAME]
    events = stack.records.events(final.id)
    flips = [(f["revision"], f["active"]) for f in logged(events, eventlog.SERVICE_ACTIVATION)]
    # Forward: green on, blue off; the rollback's PRODUCTION_TRAFFIC_SHIFT hook: blue on, green off.
    assert flips == [("2", True), ("1", False), ("1", True), ("2", False)]
    # Every message processed, none twice; the ones green failed went back to blue.
    assert acc.sent == MESSAGES and acc.lost == 0 and acc.duplicates == 0, acc.line()
    assert acc.redelivered > 0, acc.line()
    assert stack.controller.activation() == {"1": True, "2": False}
