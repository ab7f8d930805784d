"""lbsync.WeightWriter: one writer per rule, the latest change wins; on the
in-memory load balancer and a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from shiftlab.controller.clock import FakeClock
from shiftlab.controller.lbsync import Superseded, WeightWriter
from shiftlab.controller.router import FakeRouter, RouterError


class SlowRouter(FakeRouter):
    """Each change takes `delay` seconds of the fake clock before it is applied."""

    def __init__(self, clock: FakeClock, delay: float = 1.0) -> None:
        super().__init__({"r1": {"blue": 1, "green": 0}, "r2": {"blue": 1, "green": 0}}, ["blue", "green"])
        self.clock, self.delay = clock, delay
        self.in_flight: dict[str, int] = {"r1": 0, "r2": 0}
        self.most_in_flight = 0
        self.lie = 0  # the next reads show other weights (a change not in force yet)

    async def set_weights(self, rule: str, weights: dict[str, int]) -> dict[str, int]:
        self.in_flight[rule] += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight[rule])
        try:
            await self.clock.sleep(self.delay)
        finally:
            self.in_flight[rule] -= 1
        return await super().set_weights(rule, weights)

    async def weights(self, rule: str) -> dict[str, int]:
        if self.lie > 0:
            self.lie -= 1
            return {"blue": 5, "green": 5}
        return await super().weights(rule)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_change_asked_for_while_another_is_written_lands_last(clock: FakeClock) -> None:
    router = SlowRouter(clock)
    writer = WeightWriter(router, clock)
    first = asyncio.create_task(writer.write("r1", {"blue": 0, "green": 1}))
    await clock.settle()
    second = asyncio.create_task(writer.write("r1", {"blue": 1, "green": 0}))
    await clock.advance(5)
    with pytest.raises(Superseded, match="replaced by"):
        await first
    await second
    assert router.history == [("r1", {"blue": 0, "green": 1}), ("r1", {"blue": 1, "green": 0})]
    assert router.most_in_flight == 1  # one call at a time on a rule
    assert await router.weights("r1") == {"blue": 1, "green": 0}


async def test_of_three_changes_in_a_row_the_middle_one_is_never_written(clock: FakeClock) -> None:
    router = SlowRouter(clock)
    writer = WeightWriter(router, clock)
    calls = [asyncio.create_task(writer.write("r1", {"blue": 0, "green": 1}))]
    await clock.settle()  # the first is on its way
    calls += [asyncio.create_task(writer.write("r1", {"blue": b, "green": g})) for b, g in ((1, 1), (1, 0))]
    await clock.advance(5)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Superseded", "Superseded", "NoneType"]
    assert router.history == [("r1", {"blue": 0, "green": 1}), ("r1", {"blue": 1, "green": 0})]


async def test_the_same_change_asked_for_twice_is_one_write(clock: FakeClock) -> None:
    router = SlowRouter(clock)
    writer = WeightWriter(router, clock)
    calls = [asyncio.create_task(writer.write("r1", {"blue": 0, "green": 1})) for _ in range(2)]
    await clock.advance(2)
    await asyncio.gather(*calls)
    assert router.history == [("r1", {"blue": 0, "green": 1})]


async def test_rules_are_written_side_by_side(clock: FakeClock) -> None:
    router = SlowRouter(clock)
    writer = WeightWriter(router, clock)
    calls = [asyncio.create_task(writer.write(r, {"blue": 0, "green": 1})) for r in ("r1", "r2")]
    await clock.advance(1)
    assert all(c.done() for c in calls)  # both in one second, not one after the other


async def test_a_change_not_read_back_is_tried_again_then_fails(clock: FakeClock) -> None:
    router = SlowRouter(clock, delay=0)
    writer = WeightWriter(router, clock)
    router.lie = 2
    await asyncio.gather(writer.write("r1", {"blue": 0, "green": 1}), clock.advance(1))
    assert len(router.history) == 3  # two reads showed other weights: written three times
    router.lie = 100
    call = asyncio.create_task(writer.write("r1", {"blue": 1, "green": 0}))
    await clock.advance(2.9)  # 0.2 + 0.4 + 0.6 + 0.8 + 1.0 s between and after five attempts
    assert not call.done()
    await clock.advance(0.1)
    with pytest.raises(RouterError, match="read-back of r1 shows"):
        await call


async def test_a_change_asked_for_during_a_retry_is_written_at_once_with_its_own_attempts(clock: FakeClock) -> None:
    router = SlowRouter(clock, delay=0)
    writer = WeightWriter(router, clock)
    router.fail_next = 1
    first = asyncio.create_task(writer.write("r1", {"blue": 0, "green": 1}))
    await clock.settle()  # failed once, waiting 0.2 s to try again
    second = asyncio.create_task(writer.write("r1", {"blue": 1, "green": 0}))
    await clock.advance(0.2)
    await second
    with pytest.raises(Superseded):
        await first
    assert router.history == [("r1", {"blue": 1, "green": 0})]
