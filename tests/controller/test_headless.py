"""A headless service (neither service.loadBalancers nor
serviceConnectConfiguration): what validate accepts and refuses, the
Router that stands for no load balancer, the activation flags, and a whole
rollout and rollback on the in-memory backend and a fake clock, with no
weight ever written.

AWS pages:
- blue/green without managed traffic shifting, for a headless service:
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html
  ("If your service doesn't use a load balancer, Service Connect, or VPC
  Lattice (headless service), you can still use blue/green deployments ...
  but Amazon ECS doesn't manage the traffic shift automatically.")
- canary and linear require one: "Amazon ECS canary deployments require
  that your service uses one of the following features" (Application Load
  Balancer, Network Load Balancer, Service Connect):
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deploy-canary-service.html
  and "Amazon ECS linear deployments require that your service to use one
  of the following features":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deploy-linear-service.html
- the hook payload's productionTrafficWeights, and the PRODUCTION_TRAFFIC_SHIFT
  hooks called again on a rollback:
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.activation_hook import answer
from shiftlab.common.configfile import ConfigError
from shiftlab.controller import activation, eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.backends.base import RUNNING
from shiftlab.controller.backends.fake import FakeBackend, FakeWorld
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.records import Records, ServiceState
from shiftlab.controller.router import NoLoadBalancer, RouterError
from shiftlab.controller.service import HEADLESS_SETS, ServiceController
from shiftlab.headless import headless_config
from shiftlab.settings import load_settings
from tests.controller.fakes import finished, run_until
from tests.helpers import logged

CANARY_PAGE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deploy-canary-service.html"
LINEAR_PAGE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deploy-linear-service.html"
BLUE_GREEN_PAGE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html"


def headless(tmp_path: Path, deployment: dict[str, Any] | None = None) -> dict[str, Any]:
    data = headless_config("http://127.0.0.1:9/", str(tmp_path / "state"))
    if deployment is not None:
        data["deploymentConfiguration"] = deployment
        data["alarms"] = []
    return data


# -- validate: the strategies ECS runs without a load balancer --------------------------------

@pytest.mark.parametrize(("deployment", "refused", "page"), [
    ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, False, BLUE_GREEN_PAGE),
    ({"strategy": "ROLLING"}, False, BLUE_GREEN_PAGE),  # no traffic to shift: tasks replaced
    ({"strategy": "CANARY"}, True, CANARY_PAGE),
    ({"strategy": "LINEAR"}, True, LINEAR_PAGE),
])
def test_strategies_a_headless_service_may_use(tmp_path: Path, deployment: dict[str, Any], refused: bool,
                                               page: str) -> None:
    """Each row: the strategy, whether ECS refuses it for a headless service, and the page that says so."""
    data = headless(tmp_path, deployment)
    if not refused:
        assert load_settings(data).service.exposure == "headless"  # type: ignore[union-attr]
        return
    with pytest.raises(ConfigError) as exc:
        load_settings(data)
    problem, = exc.value.problems
    assert problem.startswith(f"deploymentConfiguration.strategy: {deployment['strategy']} needs "
                              "service.loadBalancers or service.serviceConnectConfiguration"), problem


def test_a_headless_file_needs_no_load_balancer_and_a_load_balanced_one_still_does(tmp_path: Path) -> None:
    s = load_settings(headless(tmp_path))
    assert s.load_balancer_config is None and s.service is not None and s.service.exposure == "headless"
    assert s.summary().startswith("no load balancer (headless)")
    data = headless(tmp_path)
    data["service"]["loadBalancers"] = [{"targetGroupArn": "blue"}]
    with pytest.raises(ConfigError) as exc:
        load_settings(data)
    assert exc.value.problems[0].startswith("loadBalancer: is required")


def test_an_unused_load_balancer_section_is_a_warning(tmp_path: Path) -> None:
    from tests.helpers import free_port, lb_config

    data = headless(tmp_path)
    data["loadBalancer"] = lb_config(free_port())
    s = load_settings(data)
    assert any(w.startswith("loadBalancer: not used") for w in s.warnings())


def test_more_than_one_load_balancer_entry_is_still_refused(tmp_path: Path) -> None:
    data = headless(tmp_path)
    data["service"]["loadBalancers"] = [{"targetGroupArn": "a"}, {"targetGroupArn": "b"}]
    with pytest.raises(ConfigError) as exc:
        load_settings(data)
    assert any(p.startswith("service.loadBalancers") for p in exc.value.problems), exc.value.problems


# -- the Router of no load balancer ---------------------------------------------------------

async def test_no_load_balancer_counts_a_registered_task_healthy_until_deregistered() -> None:
    r = NoLoadBalancer(clock=lambda: 5.0)
    await r.register("tasks-a", [("127.0.0.1", 1000), ("127.0.0.1", 1001)])
    assert await r.target_health("tasks-a") == {"127.0.0.1:1000": "healthy", "127.0.0.1:1001": "healthy"}
    await r.deregister("tasks-a", [("127.0.0.1", 1000)])  # gone at once: nothing to drain
    assert await r.target_health("tasks-a") == {"127.0.0.1:1001": "healthy"}
    assert await r.target_health("tasks-b") == {}
    assert await r.rules() == {}
    assert (await r.stats())["targetGroups"] == {}
    with pytest.raises(RouterError, match="no load balancer"):
        await r.set_weights("prod/default", {"a": 1})
    with pytest.raises(RouterError, match="no load balancer"):
        await r.weights("prod/default")


# -- the activation flags -------------------------------------------------------------------

ARN = "arn:aws:ecs:us-east-1:123456789012:service-revision/local/worker/"


@pytest.mark.parametrize(("weights", "wanted"), [
    ({ARN + "2": 100, ARN + "1": 0}, {ARN + "2": True, ARN + "1": False}),  # PRODUCTION_TRAFFIC_SHIFT
    ({ARN + "2": 0, ARN + "1": 100}, {ARN + "2": False, ARN + "1": True}),  # the rollback's
    ({}, {}),  # any other stage's payload: no weights
])
def test_flags_follow_the_payloads_production_weights(weights: dict[str, float], wanted: dict[str, bool]) -> None:
    assert activation.wanted_from_weights(weights) == wanted


@pytest.mark.parametrize(("body", "changes"), [
    ({"revisions": {"2": True, "1": False}}, {"2": True, "1": False}),
    ({"revisions": {ARN + "3": True}}, {"3": True}),
])
def test_put_bodies(body: Any, changes: dict[str, bool]) -> None:
    assert activation.changes_from_body(body) == changes


@pytest.mark.parametrize(("body", "field"), [
    ({}, "revisions:"), ({"revisions": {}}, "revisions:"), ({"revisions": {"2": "yes"}}, "revisions.2:"),
])
def test_bad_put_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        activation.changes_from_body(body)


def test_activation_env_points_at_loopback_for_a_wildcard_bind() -> None:
    assert activation.activation_env("http://0.0.0.0:9091", "s3cret") == {
        activation.URL_VAR: "http://127.0.0.1:9091/api/activation", activation.TOKEN_VAR: "s3cret"}
    assert activation.activation_env("http://127.0.0.1:9091", None) == {
        activation.URL_VAR: "http://127.0.0.1:9091/api/activation"}


def test_the_hook_fails_outside_shiftlab_and_without_weights() -> None:
    out = answer({"executionDetails": {"productionTrafficWeights": {ARN + "2": 100}}}, environ={})
    assert out["hookStatus"] == "FAILED" and activation.URL_VAR in out["hookDetails"]["error"]
    out = answer({"executionDetails": {"productionTrafficWeights": {}}},
                 environ={activation.URL_VAR: "http://127.0.0.1:9/api/activation"})
    assert out["hookStatus"] == "FAILED" and "productionTrafficWeights" in out["hookDetails"]["error"]


def test_a_record_from_before_the_flags_keeps_its_running_revision_active() -> None:
    doc = {"primaryGroup": "blue", "runningRevision": "3", "revisions": {"3": {}}, "nextRevision": 4}
    state = ServiceState.from_doc("web", doc)
    assert state.active == {"3": True}
    assert "active" in state.to_doc()


# -- a rollout on the fake clock -------------------------------------------------------------

Start = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def controller(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Start]:
    started: list[ServiceController] = []

    async def start(deployment: dict[str, Any]) -> ServiceController:
        s = load_settings(headless(tmp_path, deployment))
        ctl = ServiceController(s.controller_settings(), NoLoadBalancer(clock.now),
                                FakeBackend(FakeWorld(), clock=clock.now), Records(tmp_path / "r.sqlite"),
                                clock=clock)
        await ctl.start()
        started.append(ctl)
        return ctl

    yield start
    for ctl in started:
        await ctl.stop()
        ctl.records.close()


BLUE_GREEN = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5}
ALL_STAGES = [m.PRE_SCALE_UP, m.SCALE_UP, m.POST_SCALE_UP, m.TEST_TRAFFIC_SHIFT, m.POST_TEST_TRAFFIC_SHIFT,
              m.PRE_PRODUCTION_TRAFFIC_SHIFT, m.PRODUCTION_TRAFFIC_SHIFT, m.POST_PRODUCTION_TRAFFIC_SHIFT,
              m.BAKE_TIME, m.CLEAN_UP]


def running(ctl: ServiceController, group: str) -> int:
    return sum(1 for t in ctl.sets[group].tasks.values() if t.state == RUNNING)


async def test_headless_blue_green_runs_every_stage_with_no_weights_and_green_deactivated(controller: Start,
                                                                                         clock: FakeClock) -> None:
    ctl = await controller(BLUE_GREEN)
    assert ctl.groups == HEADLESS_SETS and ctl.production_rule == "" and ctl.test_rules == []
    d = ctl.create_deployment({"env": {"V": "2"}})
    assert ctl.activation() == {"1": True, "2": False}  # green starts deactivated
    # Green's tasks count healthy once they run: no load balancer health check to wait for.
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=60)
    assert running(ctl, "tasks-b") == 2 and running(ctl, "tasks-a") == 2
    ctl.set_active({"2": True, "1": False})  # what the activation hook does at PRODUCTION_TRAFFIC_SHIFT
    final = await finished(ctl, clock, d.id, within=600)
    assert final.status == m.SUCCESSFUL, final.status_reason
    assert [s["stage"] for s in final.stages if s["stage"] != m.RECONCILE_SERVICE] == ALL_STAGES
    # The bake is the configured 5 minutes of the fake clock (timeScale 60: 5 s).
    bake = next(s for s in final.stages if s["stage"] == m.BAKE_TIME)
    assert bake["endedAt"] - bake["startedAt"] == pytest.approx(5.0)
    assert ctl.primary == "tasks-b" and running(ctl, "tasks-b") == 2 and running(ctl, "tasks-a") == 0
    assert ctl.activation() == {"1": False, "2": True}
    described = ctl.describe(final)
    assert described["shiftlab"]["exposure"] == "headless" and described["shiftlab"]["activeRevisions"] == ["2"]
    flips = [(f["revision"], f["active"]) for f in logged(ctl.records.events(d.id), eventlog.SERVICE_ACTIVATION)]
    assert flips == [("2", True), ("1", False)]


async def test_headless_rollback_stops_green_and_keeps_blue(controller: Start, clock: FakeClock) -> None:
    ctl = await controller(BLUE_GREEN)
    d = ctl.create_deployment({"env": {"V": "2"}})
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=60)
    ctl.stop_deployment(d.id, rollback=True)
    final = await finished(ctl, clock, d.id, within=120)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    assert ctl.primary == "tasks-a" and running(ctl, "tasks-a") == 2 and running(ctl, "tasks-b") == 0
    assert ctl.activation() == {"1": True, "2": False}


async def test_a_green_task_that_exits_is_replaced_and_counted(controller: Start, clock: FakeClock) -> None:
    ctl = await controller({**BLUE_GREEN, "deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    ctl.create_deployment({"env": {"V": "2"}})
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=60)
    backend = ctl.backend
    assert isinstance(backend, FakeBackend)
    victim = next(iter(ctl.sets["tasks-b"].running()))
    backend.exit_task(victim.task_id, 1)
    await run_until(clock, lambda: ctl.current.failure_count == 1 and running(ctl, "tasks-b") == 2,
                    "the exit counted and the task replaced", within=30)
    assert (await ctl.router.target_health("tasks-b")).keys() == {
        f"{t.host}:{t.port}" for t in ctl.sets["tasks-b"].running()}


def test_the_consumers_metrics_line_is_embedded_metric_format_the_controller_reads() -> None:
    from shiftlab.controller import emf
    from shiftlab.queue_consumer import emf_line, fails

    points = emf.parse(emf_line(7, 3, now=1_700_000_000.0), 1_700_000_000.0, lambda t: t, lambda t, res: t)
    got = {(p.key[0], p.key[1]): p for p in points}
    assert set(got) == {("WorkQueue", "MessagesProcessed"), ("WorkQueue", "MessagesFailed")}, points
    # A failure rate fails the same messages every time (deterministic by id), about that share of them.
    assert [fails(i, 0.0) for i in range(5)] == [False] * 5 and all(fails(i, 1.0) for i in range(5))
    assert 400 < sum(fails(i, 0.5) for i in range(1000)) < 600


async def test_flags_survive_a_controller_restart(tmp_path: Path, clock: FakeClock) -> None:
    s = load_settings(headless(tmp_path, BLUE_GREEN))
    world = FakeWorld()

    async def start() -> ServiceController:
        ctl = ServiceController(s.controller_settings(), NoLoadBalancer(clock.now),
                                FakeBackend(world, clock=clock.now), Records(tmp_path / "r.sqlite"), clock=clock)
        await ctl.start()
        return ctl

    ctl = await start()
    ctl.new_revision({"env": {"V": "2"}})
    ctl.set_active({"2": True, "1": False})
    await ctl.stop(stop_tasks=False)
    ctl.records.close()
    again = await start()
    try:
        assert again.activation() == {"1": False, "2": True}
    finally:
        await again.stop()
        again.records.close()


async def test_a_headless_rolling_deployment_activates_its_new_tasks_as_they_start(controller: Start,
                                                                                   clock: FakeClock) -> None:
    """ROLLING runs no hooks (ECS: hooks are for BLUE_GREEN, LINEAR and
    CANARY), so nothing would activate green: its tasks work from the start."""
    ctl = await controller({"strategy": "ROLLING"})
    d = ctl.create_deployment({"env": {"V": "2"}})
    assert ctl.activation() == {"1": True, "2": True}
    final = await finished(ctl, clock, d.id, within=120)
    assert final.status == m.SUCCESSFUL, final.status_reason
    assert ctl.activation() == {"1": False, "2": True}
    assert running(ctl, ctl.primary) == 2 and ctl.state.running_revision == "2"


async def test_a_headless_rolling_rollback_deactivates_the_new_revision(controller: Start, clock: FakeClock) -> None:
    ctl = await controller({"strategy": "ROLLING", "bakeTimeInMinutes": 10})
    d = ctl.create_deployment({"env": {"V": "2"}})
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=60)
    ctl.stop_deployment(d.id, rollback=True)
    final = await finished(ctl, clock, d.id, within=120)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    assert ctl.activation() == {"1": True, "2": False}


async def test_a_controller_restarted_mid_bake_resumes_the_headless_deployment(tmp_path: Path,
                                                                               clock: FakeClock) -> None:
    """The record and the adopted tasks are all a restart needs: there are
    no weights on a load balancer to put back."""
    s = load_settings(headless(tmp_path, BLUE_GREEN))
    world = FakeWorld()

    async def start() -> ServiceController:
        ctl = ServiceController(s.controller_settings(), NoLoadBalancer(clock.now),
                                FakeBackend(world, clock=clock.now), Records(tmp_path / "r.sqlite"), clock=clock)
        await ctl.start()
        return ctl

    ctl = await start()
    d = ctl.create_deployment({"env": {"V": "2"}})
    await run_until(clock, lambda: ctl.current is not None and ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=60)
    ctl.set_active({"2": True, "1": False})
    await ctl.stop(stop_tasks=False)
    ctl.records.close()
    again = await start()
    try:
        final = await finished(again, clock, d.id, within=600)
        assert final.status == m.SUCCESSFUL, final.status_reason
        assert again.primary == "tasks-b" and running(again, "tasks-b") == 2 and running(again, "tasks-a") == 0
        assert again.activation() == {"1": False, "2": True}
        assert sum(1 for t in world.tasks.values() if t.state == RUNNING) == 2  # nothing left over
    finally:
        await again.stop()
        again.records.close()


def test_a_headless_blue_green_without_an_activation_hook_is_warned_about(tmp_path: Path) -> None:
    with_hook = load_settings(headless(tmp_path))
    assert not [w for w in with_hook.warnings() if "PRODUCTION_TRAFFIC_SHIFT" in w]
    without = load_settings(headless(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}))
    warning, = [w for w in without.warnings() if w.startswith("deploymentConfiguration.lifecycleHooks: ")]
    assert "nothing activates the new revision" in warning
    rolling = load_settings(headless(tmp_path, {"strategy": "ROLLING"}))
    assert not [w for w in rolling.warnings() if "PRODUCTION_TRAFFIC_SHIFT" in w]


@pytest.mark.parametrize("command", [["simulate"], ["export", "-o", "out"]])
def test_simulate_and_export_take_a_headless_file(tmp_path: Path, command: list[str]) -> None:
    """They once refused it (service.loadBalancers); now simulate runs it
    (tests/test_simulate_headless.py) and export writes it with no ELB
    resources (tests/interop/test_headless_interop.py)."""
    import yaml

    from tests.controller.support import run_cli

    path = tmp_path / "headless.yaml"
    path.write_text(yaml.safe_dump(headless(tmp_path)))
    res = run_cli(*command[:1], "-c", str(path), *[str(tmp_path / a) if a == "out" else a for a in command[1:]])
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
