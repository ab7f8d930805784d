"""End to end with real processes, the real proxy on 127.0.0.1 and the
controller, at a high time scale: the rollouts a user rehearses."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import yaml

from shiftlab.controller.router import HttpRouter
from shiftlab.loadgen import LoadResult, run_load
from tests.controller.support import config, green_alarm, prod_url, run_cli, run_with_load, weight_steps
from tests.helpers import eventually

LINEAR = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 1},
          "bakeTimeInMinutes": 2}


async def test_good_linear_rollout_is_promoted_and_blue_stops_after_the_bake(stack_factory, tmp_path) -> None:
    data = config(tmp_path, LINEAR)
    stack = await stack_factory(data)
    ctl = stack.controller
    blue_tasks = {t.task_id for t in ctl.sets["blue"].running()}
    assert len(blue_tasks) == 2
    final, load = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "SUCCESSFUL", final.status_reason
    assert weight_steps(stack, final.id) == [25, 50, 75, 100]
    # Blue kept running through the final bake (2 minutes = 2 s), then stopped.
    bake = next(s for s in final.stages if s["stage"] == "BAKE_TIME")
    assert bake["endedAt"] - bake["startedAt"] >= 2.0
    tasks = {t.task_id: t for t in await ctl.backend.tasks("web")}
    assert all(tasks[t].state == "STOPPED" for t in blue_tasks)
    # Green's group is now the primary one, at 100 %.
    assert ctl.primary == "green" and ctl.state.running_revision == final.target_revision
    assert await stack.router.weights("prod/default") == {"green": 1, "blue": 0}
    # The load saw no error at all, and both revisions answered.
    assert load.failed == 0 and load.connection_errors == 0, load.summary()
    assert set(load.by_group) == {"blue", "green"}


async def test_bad_canary_is_rolled_back_by_a_green_5xx_alarm(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)])
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"ERROR_RATE": "1.0"})
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == ["green-5xx"]
    assert weight_steps(stack, final.id) == [20]
    assert await stack.router.weights("prod/default") == {"blue": 1, "green": 0}
    for rule in ("prod/test", "test/default"):
        assert await stack.router.weights(rule) == {"blue": 1, "green": 0}
    ctl = stack.controller
    assert ctl.sets["green"].running() == [] and len(ctl.sets["blue"].running()) == 2
    # Every failure came from green; the proxy itself failed nothing.
    assert load.errors_by_group.keys() == {"green"}, load.summary()
    assert load.connection_errors == 0
    # After the rollback, blue answers everything.
    after = await run_load(prod_url(data), 50, 1.0)
    assert after.failed == 0 and set(after.by_group) == {"blue"}


async def test_p99_latency_alarm_trips(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 50, "canaryBakeTimeInMinutes": 30},
        "alarms": {"alarmNames": ["green-p99"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-p99", "TargetResponseTime", 0.2, ExtendedStatistic="p99")])
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"LATENCY_MS": "300"}, rps=30)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == ["green-p99"]
    assert load.failed == 0


async def test_blue_green_test_traffic_reaches_green_before_production(stack_factory, tmp_path) -> None:
    hook = {"hookTargetArn": "command:{python} -m shiftlab.demo_hook", "hookDetails": {"waitSeconds": 60},
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1, "lifecycleHooks": [hook]})
    stack = await stack_factory(data)
    test_url = f"http://127.0.0.1:{data['loadBalancer']['Listeners'][1]['Port']}/"
    stop = asyncio.Event()
    header_load = LoadResult()
    listener_load = LoadResult()
    tasks = [
        asyncio.create_task(run_load(prod_url(data), 20, 60, stop=stop, result=header_load,
                                     headers={"X-Amazon-ECS-blue-green-test": "yes"})),
        asyncio.create_task(run_load(test_url, 20, 60, stop=stop, result=listener_load)),
    ]
    try:
        final, prod_load = await run_with_load(stack, data, {"GREETING": "v2"})
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert final.status == "SUCCESSFUL", final.status_reason
    assert weight_steps(stack, final.id, "test") == [100]
    first_prod_green = prod_load.first_at_by_group["green"]
    # The hook held POST_TEST_TRAFFIC_SHIFT for 1 s: test traffic had green well before production.
    assert header_load.first_at_by_group["green"] < first_prod_green - 0.5
    assert listener_load.first_at_by_group["green"] < first_prod_green - 0.5
    assert prod_load.failed == header_load.failed == listener_load.failed == 0


async def test_stop_without_rollback_leaves_traffic_where_it_is(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {"strategy": "CANARY",
                             "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 60}})
    stack = await stack_factory(data)
    ctl = stack.controller
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await eventually(lambda: ctl.current.production_percent == 30, timeout=30, what="canary step")
    ctl.stop_deployment(d.id, rollback=False)
    final = await ctl.wait_finished(d.id, timeout=10)
    assert final.status == "STOPPED"
    assert "traffic left at 30% green" in final.status_reason
    assert await stack.router.weights("prod/default") == {"blue": 70, "green": 30}
    # The next deployment starts by reconciling: traffic back on blue before
    # the stopped green goes, so not one request fails on the way.
    stop = asyncio.Event()
    result = LoadResult()
    load = asyncio.create_task(run_load(prod_url(data), 100, 30, stop=stop, result=result))
    try:
        await eventually(lambda: result.by_group["green"] >= 5, timeout=10, what="load on the stopped green")
        d2 = ctl.create_deployment({"env": {"GREETING": "v3"}}, None)
        await eventually(lambda: ctl.current.stage not in (None, "RECONCILE_SERVICE"), timeout=30)
    finally:
        stop.set()
    await load
    assert d2.source_revision == "1"
    assert result.failed == 0 and result.connection_errors == 0, result.summary()


def test_rehearse_exit_codes(tmp_path: Path) -> None:
    data = config(tmp_path, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 25, "canaryBakeTimeInMinutes": 3},
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)])
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    good = run_cli("rehearse", "-c", str(path), "--env", "GREETING=v2", "--json", "--load-rps", "30")
    assert good.returncode == 0, good.stderr
    outcome = json.loads(good.stdout)
    assert outcome["status"] == "SUCCESSFUL" and outcome["load"]["connectionErrors"] == 0
    assert outcome["timedOut"] is False
    bad = run_cli("rehearse", "-c", str(path), "--env", "ERROR_RATE=1", "--json", "--load-rps", "30")
    assert bad.returncode == 1, bad.stderr
    outcome = json.loads(bad.stdout)
    assert outcome["status"] == "ROLLBACK_SUCCESSFUL"
    assert outcome["triggeredAlarms"] == ["green-5xx"]
    assert outcome["secondsFromFirst5xxToRollback"] is not None
    data["deploymentConfiguration"]["canaryConfiguration"]["canaryPercent"] = 0
    path.write_text(yaml.safe_dump(data))
    invalid = run_cli("rehearse", "-c", str(path), "--env", "X=1")
    assert invalid.returncode == 2
    assert "deploymentConfiguration.canaryConfiguration.canaryPercent: 0 is out of range 0.1..100" in invalid.stderr


def test_rehearse_ends_a_deployment_ecs_would_leave_in_progress_with_its_own_timeout(tmp_path: Path) -> None:
    """No circuit breaker and a revision that never passes its health check:
    ECS leaves such a deployment IN_PROGRESS, replacing tasks (the breaker is
    what fails it: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/
    deployment-circuit-breaker.html), so the 1 s start timeout rolls nothing
    back; `rehearse --timeout` ends it, rolled back, with exit code 4."""
    data = config(tmp_path, {"strategy": "CANARY"})
    data["controller"]["taskStartTimeoutSeconds"] = 1
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    res = run_cli("rehearse", "-c", str(path), "--env", "HEALTH_FAIL=1", "--json", "--load-rps", "0",
                  "--timeout", "6")
    assert res.returncode == 4, (res.stdout, res.stderr)
    outcome = json.loads(res.stdout)
    assert outcome["timedOut"] is True
    assert outcome["status"] == "ROLLBACK_SUCCESSFUL"
    assert outcome["statusReason"] == "the rehearsal timed out after 6 s", outcome
    assert outcome["circuitBreaker"]["status"] == "DISABLED"


def test_rehearse_that_cannot_start_is_not_a_rollback(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY"})
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    with socket.socket() as taken:  # the production listener's port, in use
        taken.bind(("127.0.0.1", data["loadBalancer"]["Listeners"][0]["Port"]))
        taken.listen()
        res = run_cli("rehearse", "-c", str(path), "--env", "X=1", "-q")
    assert res.returncode == 3, res
    assert "cannot start" in res.stderr and "Traceback" not in res.stderr


async def test_router_sees_what_the_controller_verified(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    stack = await stack_factory(data)
    r = HttpRouter(stack.proxy.admin_url)
    try:
        assert await r.weights("prod/default") == {"blue": 1, "green": 0}
        health = await r.target_health("blue")
        assert len(health) == 2
    finally:
        await r.close()
