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
import pytest

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


async def test_shiftlab_up_runs_a_headless_service_without_any_load_balancer(tmp_path: Path) -> None:
    """`shiftlab up` with a headless file: the controller and blue's tasks,
    no proxy process (no proxy.json in the state directory), and `status`
    says which revision is active."""
    import signal
    import sys

    import yaml

    from tests.controller.support import cli

    data = headless_config("http://127.0.0.1:9/", str(tmp_path / "state"))
    data["controller"]["port"] = free_port()
    config = tmp_path / "headless.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shiftlab", "up", "-c", str(config),
                                                stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{data['controller']['port']}/api/service"

        async def two_running() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(url) as r:
                    svc = await r.json()
            except aiohttp.ClientError:
                return False
            return sum(t["lastStatus"] == "RUNNING" for t in svc["taskSets"][0]["tasks"]) == 2

        await eventually(two_running, 30, 0.1, "blue's two tasks running under `shiftlab up`")
        assert not (tmp_path / "state" / "proxy.json").exists()
        code, out, err = await cli("status", "-c", str(config))
        assert code == 0, err
        assert "headless: active revision 1" in out, out
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_shiftlab_rehearse_feeds_the_work_queue_and_counts_it(tmp_path: Path) -> None:
    """`shiftlab rehearse --queue-rate` on the example headless file: no load,
    the work queue beside it, its accounting in the JSON outcome; a green
    that fails messages is rolled back (exit 1) with nothing lost."""
    import json

    from shiftlab.controller.vocabulary import Status
    from tests.controller.support import cli
    from tests.helpers import REPO

    example = str(REPO / "shiftlab" / "examples" / "headless.yaml")
    code, out, err = await cli("rehearse", "-c", example, "--time-scale", "200", "--queue-rate", "40",
                               "--env", "FAILURE_RATE=0.5", "--json", timeout=120)
    assert code == 1, err
    outcome = json.loads(out)
    assert outcome["status"] == Status.ROLLBACK_SUCCESSFUL and outcome["load"] is None
    assert outcome["triggeredAlarms"] == [FAILURE_ALARM_NAME]
    q = outcome["queue"]
    assert q["sent"] > 0 and q["lost"] == 0 and q["duplicates"] == 0, q
    assert q["byConsumer"].get("revision 1", 0) > 0, q


async def test_the_activation_api_names_bad_input_and_asks_for_the_token(stack_factory: Any, tmp_path: Path) -> None:
    """Real sockets: a task of a headless service reads its revision's flag
    with the token the controller gave it; bad bodies and unknown revisions
    are refused naming what is wrong."""
    import secrets

    from shiftlab.controller import activation

    token = secrets.token_urlsafe(24)
    data = headless_config("http://127.0.0.1:9/", str(tmp_path / "state"))
    data["controller"]["token"] = token
    stack = await stack_factory(data)
    env = stack.controller.task_env
    url = env[activation.URL_VAR]
    assert url == f"{stack.api_url}/api/activation" and env[activation.TOKEN_VAR] == token
    # What the consumer and the hook do (the standard-library client), from a thread.
    assert await asyncio.to_thread(activation.is_active, url, "1", token) is True
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/1") as r:
            assert r.status == 401
        async with s.get(url + "/7", headers=auth) as r:
            assert r.status == 404 and "revision 7" in (await r.json())["error"]
        async with s.put(url, json={"revisions": {"1": "yes"}}, headers=auth) as r:
            assert r.status == 400 and (await r.json())["problems"] == ["revisions.1: 'yes' is not true or false"]
        async with s.put(url, json={"revisions": {"9": False}}, headers=auth) as r:
            assert r.status == 404
        arn = stack.controller.revision_arn("1")
        async with s.put(url, json={"revisions": {arn: False}}, headers=auth) as r:
            assert r.status == 200 and (await r.json())["revisions"] == {"1": False}
    with pytest.raises(activation.ActivationError, match="HTTP 401"):
        await asyncio.to_thread(activation.is_active, url, "1", None)
