"""DescribeServiceDeployments' shape and values, read from the controller API
of a real stack (real processes, the real proxy) after a deployment that
succeeded and one that an alarm rolled back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp

from tests.controller.support import config, green_alarm, run_with_load

ARN = "arn:aws:ecs:local:000000000000"
TOP_LEVEL = {
    "serviceDeploymentArn", "serviceArn", "clusterArn", "createdAt", "startedAt", "finishedAt", "stoppedAt",
    "updatedAt", "sourceServiceRevisions", "targetServiceRevision", "status", "statusReason", "lifecycleStage",
    "deploymentConfiguration", "rollback", "deploymentCircuitBreaker", "alarms", "lifecycleHookDetails",
}
REVISION = {"arn", "requestedTaskCount", "runningTaskCount", "pendingTaskCount"}
TARGET = REVISION | {"requestedTestTrafficWeight", "requestedProductionTrafficWeight"}


def when(value: Any) -> dt.datetime:
    assert isinstance(value, str) and value.endswith("Z"), value
    return dt.datetime.fromisoformat(value)


async def described(api_url: str, deployment_id: str) -> dict[str, Any]:
    """The deployment as GET /api/deployments/{id} gives it; the listing says the same."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url}/api/deployments/{deployment_id}") as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
        async with s.get(f"{api_url}/api/deployments") as resp:
            assert resp.status == 200
            listed = {d["shiftlab"]["id"]: d for d in (await resp.json())["serviceDeployments"]}
    assert body.keys() >= TOP_LEVEL, TOP_LEVEL - body.keys()
    assert {k: listed[deployment_id][k] for k in TOP_LEVEL} == {k: body[k] for k in TOP_LEVEL}
    return body


def check_common(body: dict[str, Any], deployment_id: str) -> None:
    assert body["serviceDeploymentArn"] == f"{ARN}:service-deployment/local/web/{deployment_id}"
    assert body["serviceArn"] == f"{ARN}:service/local/web"
    assert body["clusterArn"] == f"{ARN}:cluster/local"
    assert [set(r) for r in body["sourceServiceRevisions"]] == [REVISION]
    assert set(body["targetServiceRevision"]) == TARGET
    assert body["sourceServiceRevisions"][0]["arn"] == f"{ARN}:service-revision/local/web/1"
    assert body["targetServiceRevision"]["arn"] == f"{ARN}:service-revision/local/web/2"
    created, started, finished, updated = (when(body[k]) for k in ("createdAt", "startedAt", "finishedAt",
                                                                    "updatedAt"))
    assert created <= started < finished <= updated
    assert body["stoppedAt"] is None, "neither deployment was stopped"
    assert body["lifecycleStage"] == "CLEAN_UP"


async def test_a_successful_deployment(stack_factory, tmp_path) -> None:
    deployment = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50, "stepBakeTimeInMinutes": 0},
                  "bakeTimeInMinutes": 0}
    data = config(tmp_path, deployment)
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {"GREETING": "v2"}, rps=20)
    assert final.status == "SUCCESSFUL", final.status_reason
    body = await described(stack.api_url, final.id)
    check_common(body, final.id)
    assert (body["status"], body["statusReason"]) == ("SUCCESSFUL", "deployment completed")
    assert body["rollback"] is None
    # Blue was scaled in by CLEAN_UP; green runs the whole service, with all traffic.
    assert {k: v for k, v in body["sourceServiceRevisions"][0].items() if k != "arn"} == {
        "requestedTaskCount": 0, "runningTaskCount": 0, "pendingTaskCount": 0}
    assert {k: v for k, v in body["targetServiceRevision"].items() if k != "arn"} == {
        "requestedTaskCount": 2, "runningTaskCount": 2, "pendingTaskCount": 0,
        "requestedTestTrafficWeight": 100.0, "requestedProductionTrafficWeight": 100.0}
    # For the live views: the task sets as they are now (green is the primary group since CLEAN_UP).
    assert body["shiftlab"]["taskSets"] == [
        {"targetGroup": "blue", "role": "alternate", "revision": "1", "desiredCount": 0, "runningCount": 0},
        {"targetGroup": "green", "role": "primary", "revision": "2", "desiredCount": 2, "runningCount": 2}]
    assert body["alarms"] == {"status": "DISABLED", "alarmNames": [], "triggeredAlarmNames": []}
    assert body["deploymentCircuitBreaker"] == {"status": "DISABLED", "failureCount": 0, "threshold": 3}
    assert body["deploymentConfiguration"]["strategy"] == "LINEAR"
    assert body["deploymentConfiguration"]["linearConfiguration"] == {"stepPercent": 50.0,
                                                                     "stepBakeTimeInMinutes": 0}


async def test_a_deployment_rolled_back_by_an_alarm(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True},
        "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)])
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {"ERROR_RATE": "1.0"})
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    body = await described(stack.api_url, final.id)
    check_common(body, final.id)
    assert (body["status"], body["statusReason"]) == ("ROLLBACK_SUCCESSFUL", "alarm green-5xx in ALARM")
    rollback = body["rollback"]
    assert set(rollback) == {"reason", "startedAt", "serviceRevisionArn"}
    assert rollback["reason"] == "alarm green-5xx in ALARM"
    assert rollback["serviceRevisionArn"] == body["sourceServiceRevisions"][0]["arn"]
    assert when(body["startedAt"]) < when(rollback["startedAt"]) <= when(body["finishedAt"])
    # Blue serves the whole service again; green's tasks are gone and no traffic is asked for it.
    assert {k: v for k, v in body["sourceServiceRevisions"][0].items() if k != "arn"} == {
        "requestedTaskCount": 2, "runningTaskCount": 2, "pendingTaskCount": 0}
    assert {k: v for k, v in body["targetServiceRevision"].items() if k != "arn"} == {
        "requestedTaskCount": 0, "runningTaskCount": 0, "pendingTaskCount": 0,
        "requestedTestTrafficWeight": 0.0, "requestedProductionTrafficWeight": 0.0}
    assert body["alarms"] == {"status": "TRIGGERED", "alarmNames": ["green-5xx"],
                              "triggeredAlarmNames": ["green-5xx"]}
    # Green's tasks started and served: the circuit breaker watched and counted nothing.
    assert body["deploymentCircuitBreaker"] == {"status": "MONITORING", "failureCount": 0, "threshold": 3}
    assert body["deploymentConfiguration"]["alarms"] == {"alarmNames": ["green-5xx"], "enable": True,
                                                         "rollback": True}
