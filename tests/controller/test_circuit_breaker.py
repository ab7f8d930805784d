"""The circuit breaker as the driver feeds it, on FakeBackend and FakeRouter:
green tasks that fail to start, exit, or that the load balancer reports
unhealthy are counted (each once), stopped and replaced, during SCALE_UP
and after it, for blue/green strategies and ROLLING alike; at the threshold
the deployment rolls back (or stops, without rollback). The controller runs
on a fake clock the tests step: start timeouts and the grace period are
reached in fake seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.backends.base import RUNNING
from shiftlab.controller.backends.fake import FakeBackend
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.config import CircuitBreaker
from shiftlab.controller.records import Records
from shiftlab.controller.router import FakeRouter, target_id
from shiftlab.controller.service import ServiceController
from shiftlab.settings import load_settings
from tests.controller.fakes import finished, run_until
from tests.controller.support import config, green_alarm


class Router(FakeRouter):
    """FakeRouter whose green targets can fail their health checks."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"green": 1},
                          "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
        self.sick_green = False  # targets registered in green from now on come up unhealthy

    async def register(self, group: str, targets: list[tuple[str, int]]) -> None:
        if group == "green" and self.sick_green:
            self.unhealthy |= {target_id(h, p) for h, p in targets}
        await super().register(group, targets)

    def turn_unhealthy(self, group: str, tid: str) -> None:
        """The target fails UnhealthyThresholdCount checks in a row."""
        self._groups[group][tid] = "unhealthy"


Factory = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def controller(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Factory]:
    made: list[tuple[ServiceController, Records]] = []

    async def make(deployment: dict[str, Any], desired: int = 2, start_timeout: float = 60.0,
                   alarms: list[dict[str, Any]] | None = None,
                   **service: Any) -> tuple[ServiceController, FakeBackend, Router]:
        data = config(tmp_path, deployment, alarms=alarms, desired=desired)
        data["controller"]["taskStartTimeoutSeconds"] = start_timeout
        data["service"].update(service)
        s = load_settings(data)
        router, backend = Router(clock), FakeBackend(clock=clock.now)
        records = Records(tmp_path / f"records-{len(made)}.sqlite")
        ctl = ServiceController(s.controller_settings(), router, backend, records, clock=clock)
        made.append((ctl, records))
        await ctl.start()
        return ctl, backend, router

    yield make
    for ctl, records in made:
        await ctl.stop()
        records.close()


def breaker(rollback: bool = True, cb: dict[str, Any] | None = None, **deployment: Any) -> dict[str, Any]:
    return {**deployment, "deploymentCircuitBreaker": {"enable": True, "rollback": rollback, **(cb or {})}}


CANARY: dict[str, Any] = {"strategy": "CANARY",
                          "canaryConfiguration": {"canaryPercent": 50, "canaryBakeTimeInMinutes": 600}}


def running(backend: FakeBackend, colour: str) -> set[str]:
    return {t.task_id for t in backend.world.tasks.values() if t.colour == colour and t.state == RUNNING}


async def test_unhealthy_green_is_counted_and_replaced_during_scale_up(controller, clock) -> None:
    ctl, backend, router = await controller(breaker(strategy="LINEAR"), start_timeout=600)
    blue = running(backend, "blue")
    router.sick_green = True
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED"
    assert final.failure_count == 3 == len(set(final.failed_tasks))
    assert "circuit breaker" in (final.status_reason or "")
    # Tripped by the counted health checks, not by the (600 s) start timeout.
    assert (final.finished_at or 0) - (final.started_at or 0) < 10
    assert all(backend.world.tasks[t].state != RUNNING for t in final.failed_tasks)
    assert running(backend, "green") == set()
    assert running(backend, "blue") == blue


async def test_without_rollback_the_breaker_stops_the_deployment_where_traffic_is(controller, clock) -> None:
    ctl, backend, router = await controller(breaker(rollback=False, strategy="LINEAR"), start_timeout=600)
    blue = running(backend, "blue")
    router.sick_green = True
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.STOPPED, final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED" and final.failure_count == 3
    assert final.rollback is None
    assert await router.weights("prod/default") == {"blue": 1, "green": 0}
    assert running(backend, "blue") == blue


async def test_green_turning_unhealthy_after_scale_up_is_counted_once_and_replaced(controller, clock) -> None:
    ctl, backend, router = await controller(breaker(cb={"resetOnHealthyTask": False}, **CANARY))
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.production_percent == 50, "the canary bake", within=10)
    green = ctl.sets["green"]
    victim = next(iter(green.tasks.values()))
    router.turn_unhealthy("green", target_id(victim.host, victim.port))
    await run_until(clock, lambda: victim.task_id not in green.tasks and len(green.running()) == 2,
                    "the unhealthy task replaced", within=10)
    assert backend.world.tasks[victim.task_id].state != RUNNING
    assert ctl.current.failed_tasks == [victim.task_id] and ctl.current.failure_count == 1
    assert ctl.current.status == m.IN_PROGRESS
    # Two more, one of them the replacement: the threshold (3) is reached.
    for t in list(green.running()):
        router.turn_unhealthy("green", target_id(t.host, t.port))
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED" and final.failure_count == 3
    assert await router.weights("prod/default") == {"blue": 1, "green": 0}


async def test_a_failed_replacement_of_an_exited_green_task_counts_too(controller, clock) -> None:
    ctl, backend, _ = await controller(breaker(**CANARY))
    ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.production_percent == 50, "the canary bake", within=10)
    exited = next(iter(ctl.sets["green"].tasks))
    backend.fail_next_starts(1)  # its replacement exits at once
    backend.exit_task(exited)
    await run_until(clock, lambda: ctl.current.failure_count == 2, "both failures counted", within=10)
    await run_until(clock, lambda: len(ctl.sets["green"].running()) == 2, "green back to 2", within=10)
    assert ctl.current.failed_tasks[0] == exited and ctl.current.status == m.IN_PROGRESS


ROLLING_ONE_AT_A_TIME: dict[str, Any] = {"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 150}


async def test_rolling_replaces_failed_starts_below_the_threshold(controller, clock) -> None:
    ctl, backend, _ = await controller(breaker(cb={"resetOnHealthyTask": False}, **ROLLING_ONE_AT_A_TIME))
    backend.fail_next_starts(2)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.SUCCESSFUL, final.status_reason
    assert final.failure_count == 2 and final.circuit_breaker_status == "MONITORING"
    assert len(running(backend, "green")) == 2 and running(backend, "blue") == set()


async def test_tasks_failing_to_start_send_service_task_start_impaired(controller, clock) -> None:
    """"ECS Service Action" SERVICE_TASK_START_IMPAIRED (WARN): "The service is
    unable to consistently start tasks successfully"; SERVICE_STEADY_STATE once
    it is "healthy and at the desired number of tasks"
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_events.html).
    Two new tasks fail in a row (below the threshold, 3): one warning."""
    ctl, backend, _ = await controller(breaker(cb={"resetOnHealthyTask": False}, **ROLLING_ONE_AT_A_TIME))
    seen: list[dict[str, Any]] = []
    ctl.subscribe(lambda msg: seen.append(msg["event"]) if msg["type"] == "eventbridge" else None)
    backend.fail_next_starts(2)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.SUCCESSFUL and final.failure_count == 2, final.status_reason
    assert [(e["detail-type"], e["detail"]["eventType"], e["detail"]["eventName"]) for e in seen] == [
        ("ECS Deployment State Change", "INFO", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
        ("ECS Service Action", "WARN", "SERVICE_TASK_START_IMPAIRED"),
        ("ECS Deployment State Change", "INFO", "SERVICE_DEPLOYMENT_COMPLETED"),
        ("ECS Service Action", "INFO", "SERVICE_STEADY_STATE"),
    ]
    assert seen[1]["resources"] == [ctl.service_arn]
    assert seen[1]["detail"]["clusterArn"] == "arn:aws:ecs:local:000000000000:cluster/local"


async def test_rolling_trips_the_breaker_at_the_threshold_and_restores_blue(controller, clock) -> None:
    ctl, backend, _ = await controller(breaker(**ROLLING_ONE_AT_A_TIME), start_timeout=600)
    blue = running(backend, "blue")
    backend.fail_next_starts(5)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED" and final.failure_count == 3
    assert running(backend, "blue") == blue and running(backend, "green") == set()


async def test_rolling_with_unhealthy_new_tasks_trips_the_breaker(controller, clock) -> None:
    ctl, backend, router = await controller(breaker(rollback=False, **ROLLING_ONE_AT_A_TIME), start_timeout=600)
    router.sick_green = True
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.STOPPED, final.status_reason
    assert final.circuit_breaker_status == "TRIGGERED" and final.failure_count == 3
    assert len(running(backend, "blue")) == 2  # minimumHealthyPercent 100: no blue task went


async def test_without_a_breaker_a_green_that_never_gets_healthy_leaves_the_deployment_in_progress(
        controller, clock) -> None:
    """ECS: without the circuit breaker, a deployment whose new tasks never
    get healthy does not fail; the scheduler goes on replacing them and the
    deployment stays IN_PROGRESS (https://docs.aws.amazon.com/AmazonECS/latest/
    developerguide/deployment-circuit-breaker.html: the breaker is what moves
    such a deployment to FAILED). The start timeout (1 s) only says so."""
    ctl, backend, router = await controller({"strategy": "LINEAR"}, start_timeout=1)
    router.sick_green = True
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.failure_count >= 6 and clock.now() - ctl.current.started_at > 30,
                    "30 s past the start timeout", within=60)
    assert ctl.current.status == m.IN_PROGRESS and ctl.current.stage == m.SCALE_UP
    assert ctl.current.circuit_breaker_status == "DISABLED"
    said = [e for e in ctl.records.events(d.id) if e["type"] == eventlog.TASK_NOT_HEALTHY.name]
    assert len(said) == 1 and said[0]["data"]["seconds"] == 1, said
    # Replaced all the while: more green tasks started than the two wanted.
    assert sum(1 for t in backend.world.tasks.values() if t.colour == "green") >= 6
    ctl.stop_deployment(d.id, rollback=True)
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL
    assert running(backend, "green") == set()


@pytest.mark.parametrize(("desired", "tc", "threshold"), [
    # ServiceDeploymentCircuitBreaker.threshold: "a minimum threshold of 3 and a maximum threshold of 200 ...
    # 0.5 * desired task count" (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/
    # API_ServiceDeploymentCircuitBreaker.html), the default ThresholdConfiguration (BOUNDED_PERCENT, 50).
    (1, None, 3), (2, None, 3), (6, None, 3), (7, None, 4), (10, None, 5), (25, None, 13), (400, None, 200),
    (401, None, 200), (1000, None, 200),
    # ThresholdConfiguration (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/
    # API_ThresholdConfiguration.html): COUNT is the threshold itself; the percentage types multiply
    # `value` by the desired count, BOUNDED_PERCENT within 3..200, UNBOUNDED_PERCENT not.
    (10, {"type": "COUNT", "value": 1}, 1),
    (10, {"type": "COUNT", "value": 500}, 500),
    (10, {"type": "BOUNDED_PERCENT", "value": 10}, 3),
    (1000, {"type": "BOUNDED_PERCENT", "value": 100}, 200),
    (2, {"type": "UNBOUNDED_PERCENT", "value": 50}, 1),
    (1000, {"type": "UNBOUNDED_PERCENT", "value": 50}, 500),
    (3, {"type": "UNBOUNDED_PERCENT", "value": 100}, 3),
])
def test_failure_threshold(desired: int, tc: dict[str, Any] | None, threshold: int) -> None:
    cb = CircuitBreaker.model_validate({"enable": True, "rollback": True,
                                        **({"thresholdConfiguration": tc} if tc else {})})
    assert m.failure_threshold(desired, cb.thresholdConfiguration) == threshold


def test_circuit_breaker_defaults_are_ecs_defaults() -> None:
    cb = CircuitBreaker.model_validate({"enable": True, "rollback": False})
    assert cb.resetOnHealthyTask is True
    assert (cb.thresholdConfiguration.type, cb.thresholdConfiguration.value) == ("BOUNDED_PERCENT", 50)


async def test_a_count_threshold_of_one_trips_on_the_first_failure(controller, clock) -> None:
    ctl, backend, _ = await controller(breaker(cb={"thresholdConfiguration": {"type": "COUNT", "value": 1}},
                                               **ROLLING_ONE_AT_A_TIME))
    backend.fail_next_starts(1)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    assert final.failure_count == 1 and final.circuit_breaker_status == "TRIGGERED"
    assert ctl.describe(final)["deploymentCircuitBreaker"]["threshold"] == 1


@pytest.mark.parametrize("reset", [True, False])
async def test_a_healthy_task_resets_the_failure_count_unless_reset_on_healthy_task_is_false(
        controller, clock, reset: bool) -> None:
    """DeploymentCircuitBreaker.resetOnHealthyTask (https://docs.aws.amazon.com/AmazonECS/latest/
    APIReference/API_DeploymentCircuitBreaker.html): "When set to true, a task that reaches a healthy
    state resets the failure count to 0 ... The default is true." Three green tasks exit, one at a
    time, each replaced by one that gets healthy: the count reaches the threshold (3) only without
    the reset."""
    ctl, backend, _ = await controller(breaker(cb={"resetOnHealthyTask": reset}, **CANARY))
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.production_percent == 50, "the canary bake", within=10)
    green = ctl.sets["green"]
    await run_until(clock, lambda: all(t.task_id in ctl.scheduler.seen_healthy for t in green.running()),
                    "green seen healthy", within=10)
    for n in range(3):
        victim = next(t for t in green.running() if t.task_id in ctl.scheduler.seen_healthy)
        backend.exit_task(victim.task_id)
        def counted(n: int = n) -> bool:
            d = ctl.current
            return d.final or (len(d.failed_tasks) == n + 1 and len(green.running()) == 2
                               and all(t.task_id in ctl.scheduler.seen_healthy for t in green.running())
                               and d.failure_count == (0 if reset else n + 1))

        await run_until(clock, counted, f"exit {n + 1} counted", within=10)
    if reset:
        assert ctl.current.status == m.IN_PROGRESS and ctl.current.failure_count == 0
        resets = [e["data"] for e in ctl.records.events(d.id) if e["type"] == eventlog.TASK_FAILURES_RESET.name]
        assert [r["failures"] for r in resets] == [1, 1, 1], resets
        ctl.stop_deployment(d.id, rollback=True)
        await finished(ctl, clock, d.id, within=10)
    else:
        final = await finished(ctl, clock, d.id, within=10)
        assert final.status == m.ROLLBACK_SUCCESSFUL and final.failure_count == 3
        assert not [e for e in ctl.records.events(d.id) if e["type"] == eventlog.TASK_FAILURES_RESET.name]


async def test_unhealthy_checks_within_the_grace_period_are_not_counted(controller, clock) -> None:
    # healthCheckGracePeriodSeconds 600 at timeScale 60: 10 s, longer than the 1 s start timeout.
    ctl, backend, router = await controller(breaker(strategy="LINEAR"), start_timeout=1,
                                            healthCheckGracePeriodSeconds=600)
    router.sick_green = True
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL
    assert "not healthy within 1 s" in (final.status_reason or "")
    assert final.failure_count == 0 and final.circuit_breaker_status == "MONITORING"
    assert sum(1 for t in backend.world.tasks.values() if t.colour == "green") == 2  # none replaced


async def test_rolling_with_alarms_bakes_for_the_longest_alarm_window_plus_bake_time(controller, clock) -> None:
    """ROLLING: ECS goes on watching the alarms for a bake it derives from them (the longest
    Period x EvaluationPeriods here: 5 x 60 s) plus bakeTimeInMinutes (2); at timeScale 60, 7 s."""
    alarms = [green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 1, EvaluationPeriods=5),
              green_alarm("green-p99", "TargetResponseTime", 1.0, EvaluationPeriods=2)]
    ctl, _, _ = await controller({"strategy": "ROLLING", "bakeTimeInMinutes": 2,
                                  "alarms": {"alarmNames": ["green-5xx", "green-p99"], "enable": True,
                                             "rollback": True}}, alarms=alarms)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    assert d.alarm_bake_minutes == 5
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "the bake", within=10)
    assert ctl.current.wake_at == pytest.approx(clock.now() + 7.0, abs=0.5)
    assert ctl.current.monitoring
    final = await finished(ctl, clock, d.id, within=30)
    assert final.status == m.SUCCESSFUL, final.status_reason
    bake = next(s for s in final.stages if s["stage"] == m.BAKE_TIME)
    assert bake["endedAt"] - bake["startedAt"] == pytest.approx(7.0, abs=0.5)
