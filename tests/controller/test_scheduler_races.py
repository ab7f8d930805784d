"""The driver's service scheduler against starts that take time: a task
whose start began before its set was stopped must not join the set after
it (it would run on, owned by nothing). The Docker backend hits this every
time a rollback follows a replacement, as a container takes ~1 s to start;
FakeBackend's `hold_starts` makes the race deterministic here, and the
controller's clock is a fake one nobody moves: no scrape or check runs
unless a test calls it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shiftlab.controller.backends.base import RUNNING
from shiftlab.controller.backends.fake import FakeBackend
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.records import Records
from shiftlab.controller.router import FakeRouter
from shiftlab.controller.service import ServiceController
from shiftlab.settings import load_settings
from tests.controller.support import config


@pytest.fixture
async def controller(tmp_path: Path) -> AsyncIterator[tuple[ServiceController, FakeBackend]]:
    s = load_settings(config(tmp_path, {"strategy": "CANARY"}, desired=2))
    clock = FakeClock()
    router = FakeRouter({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"green": 1},
                         "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
    backend = FakeBackend(clock=clock.now)
    records = Records(tmp_path / "records.sqlite")
    ctl = ServiceController(s.controller_settings(), router, backend, records, clock=clock)
    await ctl.start()
    try:
        yield ctl, backend
    finally:
        await ctl.stop()
        records.close()


async def settle(ctl: ServiceController) -> None:
    """Let every task that can run, run (the clock stands still)."""
    assert isinstance(ctl.clock, FakeClock)
    await ctl.clock.settle()


def _running_in_backend(backend: FakeBackend, colour: str) -> list[str]:
    return [t.task_id for t in backend.world.tasks.values() if t.colour == colour and t.state == RUNNING]


async def test_a_start_that_ends_after_its_set_was_stopped_is_stopped(controller) -> None:
    ctl, backend = controller
    green = ctl.sets["green"]
    green.desired = 1
    gate = backend.hold_starts()
    definition = ctl.scheduler.definition(green.revision)
    start = asyncio.create_task(ctl.scheduler.ensure_set(green, definition, "green", "d-1"))
    await settle(ctl)
    assert backend.starts_waiting == 1  # the start began, and waits
    await ctl.scheduler.stop_set(green)  # a rollback stops green meanwhile
    gate.set()
    await start
    assert green.tasks == {}
    assert _running_in_backend(backend, "green") == []
    assert len(ctl.sets["blue"].running()) == 2


async def test_a_start_that_ends_after_the_set_shrank_is_stopped(controller) -> None:
    ctl, backend = controller
    blue = ctl.sets["blue"]
    gate = backend.hold_starts()
    blue.desired = 3
    start = asyncio.create_task(ctl.scheduler.ensure_set(blue, ctl.scheduler.definition(blue.revision), "blue"))
    await settle(ctl)
    assert backend.starts_waiting == 1  # the start began, and waits
    await ctl.scheduler.stop_set(blue, keep=2)  # scaled back to 2 meanwhile
    gate.set()
    await start
    assert len(blue.running()) == 2
    assert sorted(_running_in_backend(backend, "blue")) == sorted(t.task_id for t in blue.running())


async def test_starts_the_set_still_wants_join_it(controller) -> None:
    ctl, backend = controller
    green = ctl.sets["green"]
    green.desired = 2
    gate = backend.hold_starts()
    gate.set()
    failed = await ctl.scheduler.ensure_set(green, ctl.scheduler.definition(green.revision), "green", "d-1")
    assert failed == []
    assert len(green.running()) == 2
    assert sorted(_running_in_backend(backend, "green")) == sorted(t.task_id for t in green.running())


async def test_a_task_registered_after_the_health_read_is_not_reported_missing(controller) -> None:
    # The load-balancer check reads target health, then looks at the tasks: a
    # task started and registered while the read was on its way is not
    # "missing" (it was once reported as "load balancer restarted?").
    ctl, _ = controller
    blue = ctl.sets["blue"]
    router = ctl.router
    read = asyncio.Event()
    release = asyncio.Event()
    target_health = router.target_health

    async def stale_read(group: str) -> dict[str, str]:
        health = await target_health(group)
        if group == "blue":
            read.set()
            await release.wait()
        return health

    router.target_health = stale_read
    check = asyncio.create_task(ctl.lb.check())
    await settle(ctl)
    assert read.is_set()
    blue.desired = 3
    await ctl.scheduler.ensure_set(blue, ctl.scheduler.definition(blue.revision), "blue")
    release.set()
    await check
    assert len(blue.running()) == 3
    notes = [e["message"] for e in ctl.records.events(None) if e["kind"] == "recovery"]
    assert notes == []
