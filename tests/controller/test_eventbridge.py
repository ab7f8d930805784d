"""ECS's and CloudWatch's events out, EventBridge-shaped, to a JSON-lines
file and a webhook (retried with backoff, never blocking the controller).

https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.controller.alarms import parse_alarms
from shiftlab.controller.eventbridge import (
    QUEUE_LIMIT,
    EventDelivery,
    EventTarget,
    alarm_state_change,
    deployment_events,
)
from tests.controller.support import config, green_alarm, run_with_load
from tests.helpers import aws_walkthrough, eventually

ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
ARN = "arn:aws:ecs:local:000000000000:service/default/web"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("PENDING", []),
        ("IN_PROGRESS", [("INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS")]),
        ("SUCCESSFUL", [("INFO", "SERVICE_DEPLOYMENT_COMPLETED")]),
        # A rollback: the deployment failed, and the rollback is a deployment in progress.
        ("ROLLBACK_IN_PROGRESS", [("ERROR", "SERVICE_DEPLOYMENT_FAILED"), ("INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS")]),
        ("ROLLBACK_SUCCESSFUL", [("INFO", "SERVICE_DEPLOYMENT_COMPLETED")]),
        ("ROLLBACK_FAILED", [("ERROR", "SERVICE_DEPLOYMENT_FAILED")]),
        ("STOPPED", [("ERROR", "SERVICE_DEPLOYMENT_FAILED")]),
    ],
)
def test_deployment_state_change_events(status: str, expected: list[tuple[str, str]]) -> None:
    events = deployment_events(status, "alarm green-5xx in ALARM", "d-1", ARN, 1_700_000_000.0)
    assert [(e["detail"]["eventType"], e["detail"]["eventName"]) for e in events] == expected
    for e in events:
        assert set(e) == ENVELOPE
        assert (e["detail-type"], e["source"], e["resources"]) == ("ECS Deployment State Change", "aws.ecs", [ARN])
        assert set(e["detail"]) == {"eventType", "eventName", "deploymentId", "updatedAt", "reason"}
        assert e["time"] == e["detail"]["updatedAt"] == "2023-11-14T22:13:20Z"


def test_alarm_state_change_event_of_the_walkthrough_alarms() -> None:
    alarms = parse_alarms([json.loads((aws_walkthrough() / n).read_text())
                           for n in ("canary-business-alarm.json", "linear-5xx-alarm.json")], ["blue", "green"])
    business, math = (alarm_state_change(a, ("ALARM", "Threshold Crossed", 1_700_000_060.0),
                                         ("OK", "fine", 1_700_000_000.0), 1_700_000_060.0) for a in alarms)
    assert set(business) == ENVELOPE
    assert (business["detail-type"], business["source"]) == ("CloudWatch Alarm State Change", "aws.cloudwatch")
    detail = business["detail"]
    assert detail["alarmName"] == "payment-transaction-failure-rate"
    assert detail["state"] == {"value": "ALARM", "reason": "Threshold Crossed",
                               "timestamp": "2023-11-14T22:14:20.000+0000"}
    assert detail["previousState"]["value"] == "OK"
    assert detail["configuration"]["metrics"] == [{"id": "m1", "returnData": True, "metricStat": {
        "metric": {"namespace": "CustomApp/Payments", "name": "TransactionFailureRate", "dimensions": {}},
        "period": 300, "stat": "Average"}}]
    metrics = math["detail"]["configuration"]["metrics"]
    assert [("expression" in m, m["returnData"]) for m in metrics] == [(False, False), (False, False), (True, True)]
    assert metrics[0]["metricStat"]["metric"]["dimensions"]["TargetGroup"].startswith("targetgroup/blue/")


@pytest.mark.parametrize(
    ("target", "problem"),
    [({}, "give exactly one of file and url"), ({"file": "a", "url": "http://x/"}, "give exactly one"),
     ({"url": "ftp://x/"}, "is not an http(s) URL"), ({"url": "http://x/", "maxAttempts": 0}, "maxAttempts")],
)
def test_event_targets_are_checked(target: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(EventTarget, target, "controller.eventTargets[0]")
    assert any(p.startswith("controller.eventTargets[0]") and problem in p for p in err.value.problems), err.value


class Webhook:
    """A receiver on 127.0.0.1 that fails the first `failures` requests with 500, or never answers."""

    def __init__(self, failures: int = 0, hang: bool = False) -> None:
        self.failures, self.hang = failures, hang
        self.calls = 0
        self.received: list[dict[str, Any]] = []
        self.release = asyncio.Event()  # ends the hanging requests, so that the server can stop
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.hang:
            await self.release.wait()
            return web.Response(status=503)
        if self.calls <= self.failures:
            return web.Response(status=500)
        self.received.append(await request.json())
        return web.Response(status=200)

    async def __aenter__(self) -> Webhook:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        self.release.set()
        await self._runner.cleanup()


async def test_a_failing_webhook_is_retried_with_exponential_backoff(tmp_path: Path) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the backoff, recorded instead of waited
        waits.append(seconds)

    async with Webhook(failures=3) as hook:
        out = EventDelivery([EventTarget(url=hook.url)], tmp_path, sleep=sleep)
        out.start()
        try:
            out.emit({"detail-type": "ECS Deployment State Change", "n": 1})
            await eventually(lambda: hook.received)
        finally:
            await out.stop()
    assert hook.received == [{"detail-type": "ECS Deployment State Change", "n": 1}]
    assert waits == [0.5, 1.0, 2.0] and hook.calls == 4
    assert (out.targets[0].delivered, out.targets[0].failed) == (1, 0)


async def test_a_webhook_that_never_succeeds_is_given_up_after_max_attempts(tmp_path: Path) -> None:
    async def sleep(seconds: float) -> None:
        pass

    async with Webhook(failures=1000) as hook:
        out = EventDelivery([EventTarget(url=hook.url, maxAttempts=3)], tmp_path, sleep=sleep)
        out.start()
        try:
            out.emit({"detail-type": "x", "n": 1})
            out.emit({"detail-type": "x", "n": 2})
            await eventually(lambda: out.targets[0].failed == 2)
        finally:
            await out.stop()
    assert hook.calls == 6


async def test_a_hanging_webhook_blocks_neither_emit_nor_the_file(tmp_path: Path) -> None:
    async with Webhook(hang=True) as hook:
        out = EventDelivery([EventTarget(url=hook.url), EventTarget(file=str(tmp_path / "events.jsonl"))], tmp_path)
        out.start()
        try:
            webhook, file = out.targets
            out.emit({"detail-type": "x", "n": 0})
            await eventually(lambda: hook.calls == 1)  # the first event is in flight, and stays there
            for n in range(1, 11):
                out.emit({"detail-type": "x", "n": n})
            await eventually(lambda: file.delivered == 11)  # the file goes on while the webhook hangs
            for n in range(11, QUEUE_LIMIT + 11):
                out.emit({"detail-type": "x", "n": n})  # returns at once: a bounded queue per target
            assert (webhook.queue.qsize(), webhook.dropped) == (QUEUE_LIMIT, 10)
            await eventually(lambda: file.delivered == QUEUE_LIMIT + 11)
        finally:
            await out.stop()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(QUEUE_LIMIT + 11))


async def test_a_rolled_back_deployment_sends_ecs_and_cloudwatch_events(stack_factory: Any, tmp_path: Path) -> None:
    async with Webhook(failures=1) as hook:
        data = config(tmp_path, {
            "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
            "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
            alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)])
        file = tmp_path / "events.jsonl"
        data["controller"]["eventTargets"] = [{"file": str(file)}, {"url": hook.url}]
        stack = await stack_factory(data)
        seen: list[dict[str, Any]] = []
        stack.controller.subscribe(lambda m: seen.append(m["event"]) if m["type"] == "eventbridge" else None)
        final, _ = await run_with_load(stack, data, {"ERROR_RATE": "1.0"})
        assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason

        def story(events: list[dict[str, Any]]) -> list[str]:
            return [e["detail"]["eventName"] if e["source"] == "aws.ecs"
                    else f"alarm {e['detail']['alarmName']} {e['detail']['state']['value']}" for e in events]

        expected = ["SERVICE_DEPLOYMENT_IN_PROGRESS", "alarm green-5xx ALARM", "SERVICE_DEPLOYMENT_FAILED",
                    "SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_COMPLETED"]
        # The stream (SSE `eventbridge` messages) saw them; the file and the webhook get them too.
        # (The alarm also goes from INSUFFICIENT_DATA to OK, and back to OK after the rollback.)
        assert [s for s in story(seen) if s != "alarm green-5xx OK"][:5] == expected, story(seen)
        # Blue is at its desired count and healthy again: "ECS Service Action" SERVICE_STEADY_STATE
        # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_events.html).
        steady = [e for e in seen if e["detail-type"] == "ECS Service Action"]
        assert [e["detail"]["eventName"] for e in steady] == ["SERVICE_STEADY_STATE"], story(seen)
        assert story(seen).index("SERVICE_STEADY_STATE") > story(seen).index("SERVICE_DEPLOYMENT_COMPLETED")

        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in file.read_text().splitlines()] if file.exists() else []

        await eventually(lambda: len(lines()) >= len(seen) and len(hook.received) >= len(seen))
        assert lines() == seen and hook.received == seen
        failed = next(e for e in seen if e["detail"].get("eventName") == "SERVICE_DEPLOYMENT_FAILED")
        assert failed["detail"]["deploymentId"] == final.id and "green-5xx" in failed["detail"]["reason"]
