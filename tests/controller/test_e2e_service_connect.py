"""End to end on the process backend: a canary of the catalog in a Service
Connect namespace, its load coming from a frontend client task through the
alias, watched by an alarm on Service Connect's own metric
(AWS/ECS HTTPCode_Target_5XX_Count per TargetDiscoveryName,
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html).
A green answering 5xx is rolled back by it; the same green without the fault
is promoted and takes all production traffic. Test requests sent while the
POST_TEST_TRAFFIC_SHIFT hook runs reach green before any production request
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-connect-blue-green.html)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shiftlab.loadgen import LoadResult, run_load
from shiftlab.stack import Stack
from tests.controller.sc_support import BLUE, GREEN, TEST_HEADER, frontend_url, sc_alarm, sc_config

ALARM = sc_alarm("catalog-5xx", "HTTPCode_Target_5XX_Count", 2)
CANARY = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
          "bakeTimeInMinutes": 2, "alarms": {"alarmNames": [ALARM["AlarmName"]], "enable": True, "rollback": True},
          "lifecycleHooks": [{"hookTargetArn": "command:{python} -m shiftlab.demo_hook",
                              "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"], "hookDetails": {"waitSeconds": 60}}]}


async def deploy_with_load(stack: Stack, env: dict[str, str]) -> tuple[Any, LoadResult, LoadResult]:
    ctl = stack.controller
    assert ctl is not None
    url = frontend_url(stack)
    stop = asyncio.Event()
    prod, test = LoadResult(), LoadResult()
    loads = [asyncio.create_task(run_load(url, 20, 90, stop=stop, result=prod)),
             asyncio.create_task(run_load(url, 10, 90, stop=stop, result=test, headers={TEST_HEADER: "1"}))]
    try:
        d = ctl.create_deployment({"env": env})
        final = await ctl.wait_finished(d.id, timeout=90)
    finally:
        stop.set()
        await asyncio.gather(*loads)
    return final, prod, test


async def test_a_green_catalog_answering_5xx_is_rolled_back_by_its_service_connect_alarm(
        stack_factory: Any, tmp_path: Path) -> None:
    stack = await stack_factory(sc_config(tmp_path, CANARY, alarms=[ALARM]))
    final, prod, test = await deploy_with_load(stack, {"ERROR_RATE": "0.5"})
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [ALARM["AlarmName"]]
    # Only green failed, and test requests were on green before production was.
    assert set(prod.errors_by_group) | set(test.errors_by_group) == {GREEN}, (prod.summary(), test.summary())
    assert test.first_at_by_group[GREEN] < prod.first_at_by_group.get(GREEN, float("inf"))


async def test_the_same_green_without_the_fault_is_promoted(stack_factory: Any, tmp_path: Path) -> None:
    stack = await stack_factory(sc_config(tmp_path, CANARY, alarms=[ALARM]))
    final, prod, test = await deploy_with_load(stack, {"GREETING": "calm"})
    assert final.status == "SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == [] and prod.failed == 0 and test.failed == 0
    assert test.first_at_by_group[GREEN] < prod.first_at_by_group[GREEN]
    # Green is the catalog now: the alias's default rule sends it everything.
    assert stack.router is not None
    (listener,) = (await stack.router.state())["Listeners"]
    default = next(r for r in listener["Rules"] if r["Id"] == "sc-catalog/default")
    weights = {t["TargetGroupArn"]: t["Weight"] for t in default["Actions"][0]["ForwardConfig"]["TargetGroups"]}
    assert weights[GREEN] > 0 and weights[BLUE] == 0
