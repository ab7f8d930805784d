"""The driver's ROLLING rollback and its restarts, on the in-memory load
balancer and backend and a fake clock the tests step: a rollback whose blue
never comes back, the event that says when traffic was back on blue, a
controller that stopped between recording SUCCESSFUL and promoting the
revision, and restarts in the middle of a ROLLING deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.backends.base import RUNNING
from shiftlab.controller.backends.fake import FakeBackend, FakeWorld
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.records import Records
from shiftlab.controller.router import FakeRouter
from shiftlab.controller.service import ServiceController
from shiftlab.rehearse import rollback_at
from shiftlab.settings import load_settings
from tests.controller.fakes import finished, run_until
from tests.controller.support import config
from tests.helpers import logged

RULES = ("prod/default", "prod/test", "test/default")
Start = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def controllers(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Start]:
    """Start controllers one after the other on one world of tasks, one load
    balancer, one records file and one clock, as a restarted controller finds them."""
    world = FakeWorld()
    router = FakeRouter({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"blue": 1, "green": 0},
                         "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
    started: list[tuple[ServiceController, Records]] = []

    async def start(deployment: dict[str, Any], desired: int = 2, **runtime: Any) -> ServiceController:
        data = config(tmp_path, deployment, desired=desired)
        data["controller"].update(runtime)
        s = load_settings(data)
        records = Records(tmp_path / "records.sqlite")
        ctl = ServiceController(s.controller_settings(),
                                router, FakeBackend(world, clock=clock.now), records, clock=clock)
        ctl.world, ctl.fake_router = world, router  # type: ignore[attr-defined]
        await ctl.start()
        started.append((ctl, records))
        return ctl

    yield start
    for ctl, records in started:
        if not ctl.stopping:
            await ctl.stop()
        records.close()


async def crash(ctl: ServiceController) -> None:
    """The controller goes away; its tasks run on (a SIGKILL, as far as the tasks can tell)."""
    await ctl.stop(stop_tasks=False)
    ctl.records.close()


def running(ctl: ServiceController, colour: str | None = None) -> list[str]:
    world: FakeWorld = ctl.world  # type: ignore[attr-defined]
    return sorted(t.task_id for t in world.tasks.values()
                  if t.state == RUNNING and (colour is None or t.colour == colour))


async def weights(ctl: ServiceController) -> list[dict[str, int]]:
    return [await ctl.router.weights(r) for r in RULES]


ROLLING_BAKE = {"strategy": "ROLLING", "bakeTimeInMinutes": 10, "minimumHealthyPercent": 50,
                "maximumPercent": 200}


async def test_rolling_rollback_whose_blue_never_gets_healthy_fails_and_leaves_green_serving(controllers,
                                                                                            clock) -> None:
    ctl = await controllers(ROLLING_BAKE, taskStartTimeoutSeconds=1)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=10)
    assert not ctl.sets["blue"].running() and len(ctl.sets["green"].running()) == 2
    ctl.backend.fail_next_starts(10)  # blue's revision cannot start any more
    ctl.stop_deployment(d.id, rollback=True)
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_FAILED, final.status_reason
    assert "blue (revision 1) did not get back to 2 healthy tasks" in (final.status_reason or "")
    assert "green left running" in (final.status_reason or "")
    # Nothing else serves: green goes on, and the weights stay on it.
    assert len(ctl.sets["green"].running()) == 2
    assert await weights(ctl) == [{"blue": 0, "green": 2}] * 3
    # The load balancer check (1 s) does not move traffic to the empty blue group either.
    await clock.advance(1.5)
    assert await weights(ctl) == [{"blue": 0, "green": 2}] * 3


def colour_starts(ctl: ServiceController, colour: str) -> int:
    world: FakeWorld = ctl.world  # type: ignore[attr-defined]
    return sum(1 for t in world.tasks.values() if t.colour == colour)


async def test_restart_mid_rolling_goes_on_from_the_adopted_tasks(controllers, clock) -> None:
    one_at_a_time = {"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 125}
    ctl = await controllers(one_at_a_time, desired=4)
    backend: FakeBackend = ctl.backend
    first = backend.hold_starts()
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: backend.starts_waiting == 1, "the first green start", within=5)
    backend.hold_starts()  # the next start waits on a gate nobody opens
    first.set()
    await run_until(clock, lambda: backend.starts_waiting == 1 and ctl.current.production_percent > 0,
                    "the first green task serving, the second one starting", within=5)
    assert (len(ctl.sets["blue"].running()), len(ctl.sets["green"].running())) == (3, 1)
    green_first = running(ctl, "green")
    router: FakeRouter = ctl.fake_router
    await crash(ctl)
    before_restart = len(router.history)

    again = await controllers(one_at_a_time, desired=4)
    # Weights follow the adopted tasks (as during the replacement), and blue was not grown
    # back to desiredCount beside the new tasks.
    after_restart = router.history[before_restart:]
    assert after_restart[:3] == [(r, {"blue": 3, "green": 1}) for r in RULES], after_restart[:3]
    assert colour_starts(again, "blue") == 4
    final = await finished(again, clock, d.id, within=15)
    assert final.status == m.SUCCESSFUL, final.status_reason
    restarts = logged(again.records.events(d.id), eventlog.RECOVERY_RESTARTED)
    assert [(r["stage"], r["byTaskCounts"], r["blueTasks"], r["greenTasks"]) for r in restarts] == [
        ("SCALE_UP", True, 3, 1)], restarts
    assert running(again, "blue") == [] and len(running(again, "green")) == 4
    assert set(green_first) <= set(running(again, "green"))  # adopted, not replaced
    assert colour_starts(again, "blue") == 4 and colour_starts(again, "green") == 4
    assert again.primary == "green"
    assert all(w["blue"] == 0 and w["green"] > 0 for w in await weights(again))


async def test_restart_in_rolling_bake_time_keeps_green_and_its_weights(controllers, clock) -> None:
    cfg = {**ROLLING_BAKE, "bakeTimeInMinutes": 2}
    ctl = await controllers(cfg)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=10)
    green = running(ctl, "green")
    await crash(ctl)

    again = await controllers(cfg)
    # Right after the restart: no old task came back, traffic on the green tasks.
    assert colour_starts(again, "blue") == 2 and running(again, "blue") == []
    assert await weights(again) == [{"blue": 0, "green": 2}] * 3
    final = await finished(again, clock, d.id, within=10)
    assert final.status == m.SUCCESSFUL, final.status_reason
    assert running(again) == green
    assert again.primary == "green"


@pytest.mark.parametrize("strategy", [{"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, {"strategy": "ROLLING"}])
async def test_successful_but_not_promoted_is_promoted_on_restart(controllers, clock, strategy) -> None:
    ctl = await controllers(strategy)
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.SUCCESSFUL
    green = running(ctl)
    assert len(green) == 2 and running(ctl, "blue") == []
    # The controller is killed after saving SUCCESSFUL, before the promotion's own save:
    # the service state on disk still names the old revision and group.
    state = ctl.records.service(ctl.name)
    assert state is not None
    state.primary_group, state.running_revision = "blue", final.source_revision
    ctl.records.save_service(state)
    await crash(ctl)

    again = await controllers(strategy)
    assert again.primary == "green" and again.state.running_revision == final.target_revision
    assert again.records.service(again.name).running_revision == final.target_revision
    # The new revision's tasks were adopted; the old one did not come back.
    assert running(again) == green and colour_starts(again, "blue") == 2
    assert await weights(again) == [{"green": 1, "blue": 0}] * 3
    assert logged(again.records.events(d.id), eventlog.RECOVERY_PROMOTED) == [
        {"deployment": d.id, "revision": final.target_revision, "group": "green"}]
    # And the next deployment starts from the promoted revision.
    nxt = again.create_deployment({"env": {"GREETING": "v3"}})
    assert nxt.source_revision == final.target_revision
    assert (await finished(again, clock, nxt.id, within=10)).status == m.SUCCESSFUL


async def test_a_stack_opens_its_listeners_once_the_controller_has_placed_its_tasks(tmp_path: Path) -> None:
    """A restarted `shiftlab up` brings a new load balancer with no targets: a
    request reaching it before the controller registered the tasks it adopted
    would get 503."""
    import socket

    from shiftlab.stack import Stack

    data = config(tmp_path, {"strategy": "ROLLING"})
    port = data["loadBalancer"]["Listeners"][0]["Port"]
    seen: list[bool] = []

    class Watching(FakeBackend):
        async def adopt(self, service: str) -> list[Any]:
            with socket.socket() as s:
                seen.append(s.connect_ex(("127.0.0.1", port)) == 0)
            return await super().adopt(service)

    stack = Stack(load_settings(data), backend=Watching())
    await stack.start()
    try:
        assert seen == [False]  # nothing listening while the controller placed its tasks
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        await stack.stop()


async def test_a_rolling_rollback_logs_when_all_traffic_is_back_on_blue(controllers, clock) -> None:
    # Blue's tasks go first (maximumPercent 100): the first weights, by task
    # counts, give green 0 % long before any rollback. The rehearsal's
    # "production back on blue" is the rollback's own verified weights.
    ctl = await controllers({"strategy": "ROLLING", "bakeTimeInMinutes": 10, "minimumHealthyPercent": 50,
                             "maximumPercent": 100})
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    await run_until(clock, lambda: ctl.current.stage == m.BAKE_TIME, "BAKE_TIME", within=10)
    by_tasks = [e for e in ctl.records.events(d.id) if e["type"] == eventlog.WEIGHTS_BY_TASKS.name]
    assert by_tasks[0]["data"]["percent"] == 0 and by_tasks[-1]["data"]["percent"] == 100
    stopped_at = clock.now()
    ctl.stop_deployment(d.id, rollback=True)
    final = await finished(ctl, clock, d.id, within=10)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    events = ctl.records.events(d.id)
    assert logged(events, eventlog.WEIGHTS_VERIFIED) == [{"traffic": "all", "percent": 0}]
    back = rollback_at(events)
    assert back is not None and final.finished_at is not None and stopped_at <= back <= final.finished_at
    assert await weights(ctl) == [{"blue": 1, "green": 0}] * 3
