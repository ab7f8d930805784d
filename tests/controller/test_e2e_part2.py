"""End to end, part 2: lifecycle hooks (URL, command, PAUSE), the circuit
breaker, ROLLING, and a controller killed with SIGKILL mid-canary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shiftlab.client import ApiError, Client
from shiftlab.controller import eventlog
from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.machine import UNHEALTHY
from tests.controller.support import config, green_alarm, run_with_load, weight_steps, write_on_free_ports
from tests.helpers import eventually, kill_left_over_proxies, logged


@pytest.fixture
async def hook_server() -> AsyncIterator[tuple[str, list[dict[str, Any]], list[Any]]]:
    """A hook endpoint answering from a script of answers; it records every call."""
    calls: list[dict[str, Any]] = []
    script: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        calls.append(await request.json())
        answer = script.pop(0) if script else {"hookStatus": "SUCCEEDED"}
        if isinstance(answer, int):
            return web.Response(status=answer, text="nope")
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/hook", calls, script
    await runner.cleanup()


def canary(**extra: Any) -> dict[str, Any]:
    return {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 50, "canaryBakeTimeInMinutes": 1},
            **extra}


async def test_url_hook_in_progress_twice_then_succeeded(stack_factory, tmp_path, hook_server) -> None:
    url, calls, script = hook_server
    script += [{"hookStatus": "IN_PROGRESS", "callBackDelay": 30, "hookDetails": {"round": 1}},
               {"hookStatus": "IN_PROGRESS", "callBackDelay": 30, "hookDetails": {"round": 2}},
               {"hookStatus": "SUCCEEDED"}]
    hooks = [{"hookTargetArn": url, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"], "hookDetails": {"round": 0}}]
    data = config(tmp_path, canary(lifecycleHooks=hooks))
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "SUCCESSFUL", final.status_reason
    assert [c["hookDetails"] for c in calls] == [{"round": 0}, {"round": 1}, {"round": 2}]
    first = calls[0]
    assert first["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    details = first["executionDetails"]
    assert details["serviceArn"].endswith(":service/local/web")
    assert details["targetServiceRevisionArn"].endswith("/web/2")
    # As the Lambda hooks page's POST_TEST_TRAFFIC_SHIFT example: no weight maps at this stage.
    assert details["testTrafficWeights"] == {} and details["productionTrafficWeights"] == {}
    assert first["resourceArn"] == stack.controller.describe(final)["serviceDeploymentArn"]
    assert len({c["executionId"] for c in calls}) == 1
    # Two callbacks of 30 AWS seconds at timeScale 60: at least 1 s between first and last call.
    run = final.hook_runs[0]
    assert run.attempts == 3 and run.status == "SUCCEEDED"
    assert run.finished_at - run.started_at >= 1.0
    assert load.failed == 0
    # describe shows every invocation and its answer.
    described = stack.controller.describe(final)["shiftlab"]["hookRuns"]
    assert [a["hookStatus"] for a in described[0]["answers"]] == ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]
    # ... and how long each call took.
    assert all(0 <= a["seconds"] < 5 for a in described[0]["answers"]), described[0]["answers"]
    answers = logged(stack.records.events(final.id), eventlog.HOOK_ANSWERED)
    assert [a["status"] for a in answers] == ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"], answers
    assert all(a["target"] == url and 0 <= a["seconds"] < 5 for a in answers), answers


async def test_production_hooks_run_at_both_canary_steps(stack_factory, tmp_path, hook_server) -> None:
    url, calls, _ = hook_server
    hooks = [{"hookTargetArn": url, "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]}]
    data = config(tmp_path, canary(lifecycleHooks=hooks))
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "SUCCESSFUL", final.status_reason
    stages = [(c["lifecycleStage"], max(c["executionDetails"]["productionTrafficWeights"].values())) for c in calls]
    assert [s for s, _ in stages] == ["PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] * 2


@pytest.mark.parametrize("answer", [{"hookStatus": "FAILED"}, 500, {"nonsense": True}])
async def test_failing_hook_rolls_back(stack_factory, tmp_path, hook_server, answer) -> None:
    url, _, script = hook_server
    script.append(answer)
    hooks = [{"hookTargetArn": url, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
    data = config(tmp_path, canary(lifecycleHooks=hooks))
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "ROLLBACK_SUCCESSFUL"
    assert "lifecycle hook at POST_TEST_TRAFFIC_SHIFT failed" in final.status_reason
    assert weight_steps(stack, final.id) == []  # production never moved
    assert load.failed == 0


async def test_command_hook(stack_factory, tmp_path) -> None:
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, sys\n"
        "p = json.load(sys.stdin)\n"
        f"open({str(tmp_path / 'seen.json')!r}, 'w').write(json.dumps(p))\n"
        "ok = p['hookDetails']['expect'] == 'pass'\n"
        "print(json.dumps({'hookStatus': 'SUCCEEDED' if ok else 'FAILED'}))\n")
    hooks = [{"hookTargetArn": f"command:{{python}} {script}", "lifecycleStages": ["POST_SCALE_UP"],
              "hookDetails": {"expect": "pass"}}]
    data = config(tmp_path, canary(lifecycleHooks=hooks))
    stack = await stack_factory(data)
    final, _ = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "SUCCESSFUL", final.status_reason
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["lifecycleStage"] == "POST_SCALE_UP"
    # The same hook answering FAILED rolls back; so does a command that crashes.
    ctl = stack.controller
    for hook, error in ((hooks[0] | {"hookDetails": {"expect": "other"}}, "answered FAILED"),
                        ({"hookTargetArn": "command:{python} -c 'raise SystemExit(3)'",
                          "lifecycleStages": ["POST_SCALE_UP"]}, "exited with 3")):
        dc = DeploymentConfiguration.model_validate({**data["deploymentConfiguration"], "lifecycleHooks": [hook]})
        d = ctl.create_deployment({"env": {"GREETING": "v3"}}, dc)
        final = await ctl.wait_finished(d.id, timeout=60)
        assert final.status == "ROLLBACK_SUCCESSFUL"
        assert error in (final.hook_runs[0].error or ""), final.hook_runs[0]


PAUSE = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
    {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
     "timeoutConfiguration": {"action": "ROLLBACK", "timeoutInMinutes": 60}}]}


async def test_pause_approved_from_the_cli(stack_factory, tmp_path) -> None:
    data = config(tmp_path, PAUSE)
    stack = await stack_factory(data)
    ctl = stack.controller
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await eventually(lambda: ctl.current.hook is not None and ctl.current.hook.kind == "PAUSE", timeout=30,
                     what="the PAUSE hook")
    assert ctl.current.production_percent == 0 and ctl.current.test_percent == 100
    # A real CLI process, as a user would run it (the subprocess must not block this event loop).
    import asyncio

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shiftlab", "approve", "--url", stack.api_url,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert b"approved at POST_TEST_TRAFFIC_SHIFT" in out
    final = await ctl.wait_finished(d.id, timeout=60)
    assert final.status == "SUCCESSFUL"
    assert final.hook_runs[0].kind == "PAUSE" and final.hook_runs[0].status == "SUCCEEDED"


async def test_pause_timeout_rolls_back(stack_factory, tmp_path) -> None:
    pause = json.loads(json.dumps(PAUSE))
    pause["lifecycleHooks"][0]["timeoutConfiguration"]["timeoutInMinutes"] = 1  # 1 s at timeScale 60
    data = config(tmp_path, pause)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "ROLLBACK_SUCCESSFUL"
    assert "timed out" in final.status_reason
    assert load.failed == 0


async def test_green_that_exits_at_once_trips_the_circuit_breaker(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {"strategy": "LINEAR", "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    stack = await stack_factory(data)
    ctl = stack.controller
    blue_before = {t.task_id for t in ctl.sets["blue"].running()}
    final, load = await run_with_load(stack, data, {"EXIT_AT_START": "1"})
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED"
    assert final.failure_count >= 3
    described = ctl.describe(final)["deploymentCircuitBreaker"]
    assert described == {"status": "TRIGGERED", "failureCount": final.failure_count, "threshold": 3}
    # Blue untouched: the same tasks, all serving, no request failed.
    assert {t.task_id for t in ctl.sets["blue"].running()} == blue_before
    assert load.failed == 0 and set(load.by_group) == {"blue"}


BREAKER_TIMEOUT = 30.0  # taskStartTimeoutSeconds of the breaker tests: the breaker must trip well before it


def breaker_config(tmp_path: Path, deployment: dict[str, Any], rollback: bool = True, **kw: Any) -> dict[str, Any]:
    data = config(tmp_path, {**deployment, "deploymentCircuitBreaker": {"enable": True, "rollback": rollback}}, **kw)
    data["controller"]["taskStartTimeoutSeconds"] = BREAKER_TIMEOUT
    return data


async def test_green_failing_health_checks_trips_the_circuit_breaker(stack_factory, tmp_path) -> None:
    data = breaker_config(tmp_path, {"strategy": "LINEAR"})
    stack = await stack_factory(data)
    ctl = stack.controller
    blue_before = {t.task_id for t in ctl.sets["blue"].running()}
    final, load = await run_with_load(stack, data, {"HEALTH_FAIL": "1"}, timeout=BREAKER_TIMEOUT * 2)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED"
    assert final.failure_count == 3
    assert "circuit breaker" in final.status_reason
    # Each unhealthy task was counted as the load balancer reported it, not when the start timeout ran out.
    assert final.finished_at - final.started_at < BREAKER_TIMEOUT / 2
    failures = [f for f in logged(stack.records.events(final.id), eventlog.TASK_FAILED) if f["reason"] == UNHEALTHY]
    assert [f["failures"] for f in failures] == [1, 2, 3], failures
    assert {t.task_id for t in ctl.sets["blue"].running()} == blue_before
    assert not ctl.sets["green"].running()
    assert load.failed == 0 and set(load.by_group) == {"blue"}


async def test_circuit_breaker_without_rollback_stops_the_deployment(stack_factory, tmp_path) -> None:
    data = breaker_config(tmp_path, {"strategy": "LINEAR"}, rollback=False)
    stack = await stack_factory(data)
    ctl = stack.controller
    blue_before = {t.task_id for t in ctl.sets["blue"].running()}
    final, load = await run_with_load(stack, data, {"HEALTH_FAIL": "1"}, timeout=BREAKER_TIMEOUT * 2)
    assert final.status == "STOPPED", final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED"
    assert final.failure_count == 3
    assert "rollback is disabled" in final.status_reason
    assert final.rollback is None
    assert final.finished_at - final.started_at < BREAKER_TIMEOUT / 2
    # Not rolled back, and nothing to roll back: production never left blue.
    for rule in ("prod/default", "prod/test", "test/default"):
        assert (await stack.router.weights(rule))["green"] == 0, rule
    assert {t.task_id for t in ctl.sets["blue"].running()} == blue_before
    assert load.failed == 0 and set(load.by_group) == {"blue"}


async def test_rolling_replaces_new_tasks_that_exit_until_the_circuit_breaker_trips(stack_factory, tmp_path) -> None:
    # One new task at a time (maximumPercent 150 of 2): the first failure alone must not end the deployment.
    data = breaker_config(tmp_path, {"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 150})
    stack = await stack_factory(data)
    ctl = stack.controller
    blue_before = {t.task_id for t in ctl.sets["blue"].running()}
    final, load = await run_with_load(stack, data, {"EXIT_AT_START": "1"}, timeout=BREAKER_TIMEOUT * 2)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED"
    assert final.failure_count == 3
    assert "circuit breaker" in final.status_reason
    assert {t.task_id for t in ctl.sets["blue"].running()} == blue_before
    assert not ctl.sets["green"].running()
    assert load.failed == 0 and set(load.by_group) == {"blue"}


async def test_rolling_four_tasks_50_200(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 200},
                  desired=4)
    stack = await stack_factory(data)
    ctl = stack.controller
    counts: list[tuple[int, int]] = []
    ctl.subscribe(lambda m: counts.append((len(ctl.sets["blue"].running()), len(ctl.sets["green"].running())))
                  if m.get("type") == "metrics" else None)
    final, load = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "SUCCESSFUL", final.status_reason
    assert ctl.primary == "green" and len(ctl.sets["green"].running()) == 4
    assert not ctl.sets["blue"].running()
    # Never fewer than 2 (50 %) nor more than 8 (200 %) tasks running.
    assert all(2 <= b + g <= 8 for b, g in counts), counts
    assert load.connection_errors == 0 and load.elb_errors == 0, load.summary()


async def test_rolling_in_the_services_one_target_group_without_advanced_configuration(stack_factory,
                                                                                       tmp_path) -> None:
    """ROLLING as ECS runs it (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html):
    no advancedConfiguration, old and new tasks side by side in the service's one target group, batches
    within minimumHealthyPercent 50 and maximumPercent 200 of 4 tasks; the rule's weights never change."""
    data = config(tmp_path, {"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 200},
                  desired=4)
    del data["service"]["loadBalancers"][0]["advancedConfiguration"]
    stack = await stack_factory(data)
    ctl = stack.controller
    weights_before = await stack.router.weights("prod/default")
    seen: list[tuple[int, int]] = []
    ctl.subscribe(lambda msg: seen.append((len(ctl.sets[ctl.primary].running()),
                                           len(ctl.sets[ctl.alternate].running())))
                  if msg.get("type") == "metrics" else None)
    final, load = await run_with_load(stack, data, {"GREETING": "v2"})
    assert final.status == "SUCCESSFUL", final.status_reason
    assert ctl.primary == "blue" and ctl.state.running_revision == final.target_revision
    blue = ctl.sets["blue"]
    assert len(blue.running()) == 4 and {t.revision for t in blue.running()} == {final.target_revision}
    assert not ctl.sets[ctl.alternate].running()
    health = await stack.router.target_health("blue")
    assert sorted(health) == sorted(f"{t.host}:{t.port}" for t in blue.running())
    assert await stack.router.target_health("green") == {}  # never used
    assert await stack.router.weights("prod/default") == weights_before
    assert any(g > 0 for _, g in seen), seen  # new tasks ran beside the old ones
    assert all(2 <= b + g <= 8 for b, g in seen), seen
    assert set(load.by_group) == {"blue"}, load.summary()  # every answer from the one group
    assert load.connection_errors == 0 and load.elb_errors == 0, load.summary()
    # The API refuses what the file would: a blue/green strategy needs advancedConfiguration.
    async with aiohttp.ClientSession() as s, s.post(f"{stack.api_url}/api/deployments",
                                                    json={"deploymentConfiguration": {"strategy": "CANARY"}}) as r:
        assert r.status == 400
        assert (await r.json())["problems"] == [
            "deploymentConfiguration.strategy: CANARY needs service.loadBalancers[0].advancedConfiguration "
            "(alternateTargetGroupArn, productionListenerRule), as ECS's blue/green deployments do; "
            "only ROLLING runs without it"]


async def test_rolling_green_5xx_alarm_during_the_replacement_rolls_back(stack_factory, tmp_path) -> None:
    # One task at a time (100/125), each new task healthy after 5 checks of 30 AWS seconds
    # (2.5 s here): the alarm trips while tasks are still being replaced, before any bake.
    data = config(tmp_path, {"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 125,
                             "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
                  alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)], desired=4)
    for tg in data["loadBalancer"]["TargetGroups"]:
        tg.update(HealthCheckIntervalSeconds=30, HealthyThresholdCount=5)
    stack = await stack_factory(data)
    ctl = stack.controller
    blue_before = {t.task_id for t in ctl.sets["blue"].running()}
    final, load = await run_with_load(stack, data, {"ERROR_RATE": "1.0"})
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    assert final.triggered_alarms == ["green-5xx"]
    # Rolled back from the replacement itself: no bake, no clean-up of blue happened.
    assert [s["stage"] for s in final.stages if not s["rollback"]] == ["RECONCILE_SERVICE", "SCALE_UP"]
    # Blue back at desiredCount (the replacement had stopped some), green gone, traffic on blue.
    assert len(ctl.sets["blue"].running()) == 4 and ctl.sets["green"].running() == []
    assert blue_before - {t.task_id for t in ctl.sets["blue"].running()}, "no blue task had been replaced"
    assert ctl.primary == "blue" and ctl.state.running_revision == final.source_revision
    for rule in ("prod/default", "prod/test", "test/default"):
        assert await stack.router.weights(rule) == {"blue": 1, "green": 0}
    assert final.production_percent == 0
    # Every failure came from green's own answers; the load balancer failed nothing.
    assert load.errors_by_group.keys() == {"green"}, load.summary()
    assert load.connection_errors == 0


# -- crash recovery ----------------------------------------------------------------


def _pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie is gone for our purposes.
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    continue
        except OSError:
            continue
        alive.append(pid)
    return alive


def _wait_api(client: Client, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get("/api/healthz")
            return
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sigkill_mid_canary_then_restart_finishes_without_orphans(tmp_path: Path) -> None:
    data = config(tmp_path, {"strategy": "CANARY", "bakeTimeInMinutes": 1,
                             "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 6}})
    path, api_url = write_on_free_ports(tmp_path, data)
    client = Client(api_url)
    with open(tmp_path / "up1.log", "w") as log1:  # the child keeps its own descriptor
        up = subprocess.Popen([sys.executable, "-m", "shiftlab", "up", "-c", str(path)], stdout=log1, stderr=log1)
    up2 = None
    try:
        _wait_api(client)
        d = client.post("/api/deployments", {"taskDefinition": {"env": {"GREETING": "v2"}}})
        dep_id = d["shiftlab"]["id"]
        deadline = time.monotonic() + 30
        while client.get("/api/deployments/current")["shiftlab"]["productionTrafficWeight"] != 30:
            assert time.monotonic() < deadline, "the canary step never happened"
            time.sleep(0.05)
        pids_before = [t["pid"] for t in client.get("/api/tasks")["tasks"] if t["lastStatus"] == "RUNNING"]
        assert len(pids_before) == 4  # 2 blue, 2 green
        up.send_signal(signal.SIGKILL)
        up.wait(10)
        # Tasks keep serving while no controller runs: they are not children of its process group.
        assert _pids_alive(pids_before) == pids_before
        with open(tmp_path / "up2.log", "w") as log2:
            up2 = subprocess.Popen([sys.executable, "-m", "shiftlab", "up", "-c", str(path)], stdout=log2,
                                   stderr=log2)
        _wait_api(client)
        deadline = time.monotonic() + 60
        while (status := client.get(f"/api/deployments/{dep_id}")["status"]) not in (
                "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED"):
            assert time.monotonic() < deadline, f"deployment stuck in {status}"
            time.sleep(0.1)
        assert status == "SUCCESSFUL"
        described = client.get(f"/api/deployments/{dep_id}")
        restarts = logged(described["events"], eventlog.RECOVERY_RESTARTED)
        assert [r["stage"] for r in restarts] == ["PRODUCTION_TRAFFIC_SHIFT"], described["events"]
        tasks = client.get("/api/tasks")["tasks"]
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
        # The green tasks were adopted, not started twice: the two running now are two of those from before.
        assert len(running) == 2 and {t["pid"] for t in running} <= set(pids_before)
    finally:
        for p in (up, up2):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(30)
        left = kill_left_over_proxies(tmp_path)  # the killed `up`'s load balancer, had none adopted it
    # Ctrl-C stopped everything that was started, before and after the crash, the load balancer too.
    assert _pids_alive(pids_before) == [] and left == []


async def test_proxy_restart_mid_canary_gets_the_recorded_weights_back(stack_factory, tmp_path) -> None:
    from shiftlab.proxy.app import Proxy

    data = config(tmp_path, {"strategy": "CANARY",
                             "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 8}})
    stack = await stack_factory(data)
    ctl = stack.controller
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await eventually(lambda: ctl.current.production_percent == 30, timeout=30, what="the canary step")
    # The load balancer restarts: it comes back with its config's weights and no targets.
    old = stack.proxy
    await old.stop()
    stack.proxy = Proxy(old.conf, time_scale=old.lb.time_scale, admin_port=old.admin_port)
    await stack.proxy.start()
    for rule in ("prod/default", "prod/test", "test/default"):
        assert (await stack.router.weights(rule))["green"] == 0, rule

    async def restored() -> bool:
        health = {**await stack.router.target_health("blue"), **await stack.router.target_health("green")}
        return (await stack.router.weights("prod/default") == {"blue": 70, "green": 30}
                and len(health) == 4)

    await eventually(restored, timeout=10, what="weights and targets back as recorded")
    assert ctl.current.id == d.id and not ctl.current.final
    final = await ctl.wait_finished(d.id, timeout=60)
    assert final.status == "SUCCESSFUL"
    events = stack.records.events(d.id)
    assert logged(events, eventlog.RECOVERY_WEIGHTS_RESET) and logged(events, eventlog.RECOVERY_TARGETS_REGISTERED)


class _Load:
    """Requests to the production listener (127.0.0.1 only) from a thread, one
    connection each, every answer kept with its time, across the kill and
    the restart of `shiftlab up`."""

    def __init__(self, port: int, rps: float = 25) -> None:
        import threading

        self.port, self.interval = port, 1 / rps
        # (sent, answered, status or None when refused or reset, target group)
        self.answers: list[tuple[float, float, int | None, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import http.client

        while not self._stop.is_set():
            at = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                self.answers.append((at, time.monotonic(), resp.status,
                                     resp.getheader("X-Shiftlab-Target-Group") or "-"))
                conn.close()
            except OSError:
                self.answers.append((at, time.monotonic(), None, "-"))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - at)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _deployment(client: Client, dep_id: str) -> dict[str, Any]:
    return client.get(f"/api/deployments/{dep_id}")


@pytest.mark.parametrize("when", ["mid-replacement", "bake-time"])
def test_sigkill_mid_rolling_then_restart_finishes_with_the_tasks_it_had(tmp_path: Path, when: str) -> None:
    if when == "mid-replacement":
        # One task at a time, each healthy after 5 checks of 30 AWS seconds (2.5 s): time to
        # kill the controller with some green tasks serving and some blue ones left.
        dc = {"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 125}
        desired = 4
    else:
        dc = {"strategy": "ROLLING", "bakeTimeInMinutes": 6}
        desired = 2
    data = config(tmp_path, dc, desired=desired)
    if when == "mid-replacement":
        for tg in data["loadBalancer"]["TargetGroups"]:
            tg.update(HealthCheckIntervalSeconds=30, HealthyThresholdCount=5)
    path, api_url = write_on_free_ports(tmp_path, data)
    client = Client(api_url)
    cmd = [sys.executable, "-m", "shiftlab", "up", "-c", str(path)]
    with open(tmp_path / "up1.log", "w") as log1:  # the child keeps its own descriptor
        up = subprocess.Popen(cmd, stdout=log1, stderr=log1)
    up2 = None
    load = None
    seen_pids: set[int] = set()
    try:
        _wait_api(client)
        load = _Load(data["loadBalancer"]["Listeners"][0]["Port"])
        d = client.post("/api/deployments", {"taskDefinition": {"env": {"GREETING": "v2"}}})
        dep_id = d["shiftlab"]["id"]
        deadline = time.monotonic() + 60
        while True:
            cur = _deployment(client, dep_id)
            share = cur["shiftlab"]["productionTrafficWeight"]
            live = [t["revision"] for t in client.get("/api/tasks")["tasks"] if t["lastStatus"] == "RUNNING"]
            # A blue task stopped: the first green one passed its health checks and serves.
            if when == "mid-replacement" and cur["lifecycleStage"] == "SCALE_UP" and 0 < live.count("1") < desired:
                break
            if when == "bake-time" and cur["lifecycleStage"] == "BAKE_TIME":
                break
            assert time.monotonic() < deadline, f"never got to the kill point ({cur['lifecycleStage']}, {share})"
            time.sleep(0.05)
        tasks = client.get("/api/tasks")["tasks"]
        seen_pids = {t["pid"] for t in tasks if t["pid"]}
        green_before = [t["pid"] for t in tasks if t["lastStatus"] == "RUNNING" and t["revision"] == "2"]
        blue_before = [t["pid"] for t in tasks if t["lastStatus"] == "RUNNING" and t["revision"] == "1"]
        assert green_before and (blue_before if when == "mid-replacement" else not blue_before)
        up.send_signal(signal.SIGKILL)
        up.wait(10)
        with open(tmp_path / "up2.log", "w") as log2:
            up2 = subprocess.Popen(cmd, stdout=log2, stderr=log2)
        _wait_api(client)
        back_at = time.monotonic()
        deadline = time.monotonic() + 90
        while (status := _deployment(client, dep_id)["status"]) not in (
                "SUCCESSFUL", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED"):
            assert time.monotonic() < deadline, f"deployment stuck in {status}"
            time.sleep(0.1)
        # The load goes on past the end (a 503 showed right after SUCCESSFUL before the fix).
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            time.sleep(0.1)
        load.stop()
        assert status == "SUCCESSFUL", _deployment(client, dep_id)["statusReason"]
        events = _deployment(client, dep_id)["events"]
        stage = "SCALE_UP" if when == "mid-replacement" else "BAKE_TIME"
        assert [r["stage"] for r in logged(events, eventlog.RECOVERY_RESTARTED)] == [stage], events
        tasks = client.get("/api/tasks")["tasks"]
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
        # desiredCount new tasks; those running before the kill were adopted, not doubled.
        assert len(running) == desired and {t["revision"] for t in running} == {"2"}
        assert set(green_before) <= {t["pid"] for t in running}
        # No task of the old revision was started after the restart.
        assert [t for t in tasks if t["revision"] == "1" and t["pid"] not in seen_pids] == []
        # Traffic: nothing failed, neither a 5xx nor a refused or reset connection: the load
        # balancer runs in a process of its own, which the kill left serving.
        assert [a for a in load.answers if a[2] is None or a[2] >= 500] == [], load.answers[-3:]
        after = [a for a in load.answers if a[0] > back_at]
        assert after and {a[3] for a in after[-10:]} == {"green"}
    finally:
        if load is not None:
            load.stop()
        for p in (up, up2):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(30)
        left = kill_left_over_proxies(tmp_path)  # the killed `up`'s load balancer, had none adopted it
    # Ctrl-C stopped everything that was started, before and after the crash, the load balancer too.
    assert _pids_alive(sorted(seen_pids)) == [] and left == []
