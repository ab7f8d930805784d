"""Weight changes on one rule are written one after the other, the latest
wanted last. A rollback that starts while the test shift's change is still
being written (a slow admin call) must not have that change land after its
own: test/default went back to green after ROLLBACK_SUCCESSFUL until the
load-balancer check put it back, and noted '(load balancer restarted?)'."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.backends.fake import FakeBackend
from shiftlab.controller.clock import FakeClock
from shiftlab.controller.records import Records
from shiftlab.controller.router import FakeRouter
from shiftlab.controller.service import ServiceController
from shiftlab.settings import load_settings
from tests.controller.fakes import finished, run_until
from tests.controller.support import config
from tests.helpers import logged

SLOW = 5.0  # seconds (fake) a slow admin call takes before the proxy applies it

LB_RESTARTED = (eventlog.RECOVERY_WEIGHTS_RESET, eventlog.RECOVERY_TARGETS_REGISTERED)  # what the check put back


class SlowRouter(FakeRouter):
    """A load balancer whose admin API is slow to apply a change that gives
    green weight on test/default; every applied change is logged, with
    whether the deployment had ended by then (`ended`, set by the test)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"blue": 1, "green": 0},
                          "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
        self.clock = clock
        self.in_flight = 0
        self.applied: list[tuple[bool, str, dict[str, int]]] = []
        self.ended: Callable[[], bool] = lambda: False

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        if rule == "test/default" and weights.get("green", 0) > 0:
            self.in_flight += 1
            try:
                await self.clock.sleep(SLOW)
            finally:
                self.in_flight -= 1
        got = await super().set_weights(rule, weights)
        self.applied.append((self.ended(), rule, got))
        return got


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[ServiceController, SlowRouter, FakeClock]]:
    clock = FakeClock()
    router = SlowRouter(clock)
    s = load_settings(config(tmp_path, {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5}))
    records = Records(tmp_path / "records.sqlite")
    ctl = ServiceController(s.controller_settings(), router, FakeBackend(clock=clock.now), records, clock=clock)
    await ctl.start()
    try:
        yield ctl, router, clock
    finally:
        await ctl.stop()
        records.close()


async def test_a_rollback_s_weights_land_after_the_test_shift_it_overtook(stack) -> None:
    ctl, router, clock = stack
    d = ctl.create_deployment({"env": {"GREETING": "v2"}})
    router.ended = lambda: ctl.current.final
    await run_until(clock, lambda: router.in_flight == 1, "the test shift writing test/default")
    assert ctl.current.stage == m.TEST_TRAFFIC_SHIFT
    ctl.stop_deployment(d.id, rollback=True)
    final = await finished(ctl, clock, d.id, within=30)
    assert final.status == m.ROLLBACK_SUCCESSFUL, final.status_reason
    await clock.advance(2 * SLOW)  # whatever was still on its way has landed; load-balancer checks ran
    # Nothing gave green traffic after the rollback ended, and nothing needed putting back.
    assert [(rule, w) for ended, rule, w in router.applied if ended and w["green"] > 0] == []
    for rule in ("prod/default", "prod/test", "test/default"):
        assert await router.weights(rule) == {"blue": 1, "green": 0}
    assert logged(ctl.records.events(None), *LB_RESTARTED) == []
    # The rollback's own change to test/default was written after the test shift's.
    to_test_default = [w["green"] for _, rule, w in router.applied if rule == "test/default"]
    assert to_test_default[-2:] == [1, 0]


class HeldRouter(FakeRouter):
    """A load balancer whose next read of a rule, once armed, waits for the test."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__({"prod/default": {"blue": 1, "green": 0}, "prod/test": {"blue": 1, "green": 0},
                          "test/default": {"blue": 1, "green": 0}}, ["blue", "green"], clock=clock.now)
        self.hold: tuple[str, asyncio.Event, asyncio.Event] | None = None  # rule, read started, release

    async def weights(self, rule: str) -> dict[str, int]:
        held = self.hold
        back = await super().weights(rule)
        if held is not None and held[0] == rule:
            self.hold = None
            held[1].set()
            await held[2].wait()
        return back


async def test_the_load_balancer_check_decides_again_after_its_read(tmp_path: Path) -> None:
    """The check read production weights (0% green) just before an approval
    moved the deployment on to its canary step: it must not put its stale
    answer back over the step's weights."""
    clock = FakeClock()
    router = HeldRouter(clock)
    paused = {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 60},
              "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]}
    s = load_settings(config(tmp_path, paused))
    records = Records(tmp_path / "records.sqlite")
    ctl = ServiceController(s.controller_settings(), router, FakeBackend(clock=clock.now), records, clock=clock)
    await ctl.start()
    try:
        d = ctl.create_deployment({"env": {"GREETING": "v2"}})
        await run_until(clock, lambda: ctl.current is not None and ctl.current.hook is not None
                        and ctl.current.hook.kind == "PAUSE", "waiting for approval")
        read, release = asyncio.Event(), asyncio.Event()
        router.hold = ("prod/default", read, release)
        check = asyncio.create_task(ctl.lb.check())
        await clock.settle()
        assert read.is_set()  # the check holds production's old weights: 0% green
        ctl.approve(d.id)
        await run_until(clock, lambda: ctl.current is not None and ctl.current.production_percent == 10,
                        "the canary step in force")
        release.set()
        await check
        await clock.advance(3)  # more checks
        assert ctl.current is not None
        assert ctl.current.status == m.IN_PROGRESS and ctl.current.production_percent == 10
        assert (await router.weights("prod/default"))["green"] > 0
        assert logged(records.events(None), *LB_RESTARTED) == []
    finally:
        await ctl.stop()
        records.close()
