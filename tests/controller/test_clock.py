"""The fake clock the driver's tests step: sleepers wake at their own
deadlines, in order, and what they set off runs before the next one wakes."""

from __future__ import annotations

import asyncio

import pytest

from shiftlab.controller.clock import FakeClock, RealClock, wait_for


async def test_advance_wakes_each_sleeper_at_its_own_deadline_in_order() -> None:
    clock = FakeClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("late", 9.0))]
    await clock.advance(5.0)
    assert woke == [("a", 101.0), ("b", 102.0), ("c", 103.0)]
    assert clock.now() == 105.0 and clock.next_wake() == 109.0
    await clock.advance(4.0)
    assert woke[-1] == ("late", 109.0)
    await asyncio.gather(*tasks)


async def test_a_loop_that_sleeps_again_runs_once_per_period_within_one_advance() -> None:
    clock = FakeClock(start=0.0)
    ticks: list[float] = []

    async def every_quarter() -> None:
        while True:
            ticks.append(clock.now())
            await clock.sleep(0.25)

    task = asyncio.create_task(every_quarter())
    await clock.advance(1.0)
    assert ticks == [0.0, 0.25, 0.5, 0.75, 1.0]
    task.cancel()


async def test_what_a_woken_sleeper_sets_off_runs_before_the_next_wakes() -> None:
    clock = FakeClock(start=0.0)
    seen: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()

    async def producer() -> None:
        await clock.sleep(1.0)
        await queue.put("made at 1")

    async def consumer() -> None:
        item = await queue.get()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen.append(f"{item}, seen at {clock.now():g}")

    async def later() -> None:
        await clock.sleep(1.5)
        seen.append("woke at 1.5")

    tasks = [asyncio.create_task(c) for c in (producer(), consumer(), later())]
    await clock.advance(2.0)
    assert seen == ["made at 1, seen at 1", "woke at 1.5"]
    await asyncio.gather(*tasks)


async def test_advance_to_next_wake_jumps_to_the_earliest_deadline() -> None:
    clock = FakeClock(start=10.0)
    assert await clock.advance_to_next_wake() is None and clock.now() == 10.0
    task = asyncio.create_task(clock.sleep(30.0))
    assert await clock.advance_to_next_wake() == 40.0
    assert task.done()


async def test_wait_for_times_out_on_the_clock_and_cancels_the_work() -> None:
    clock = FakeClock(start=0.0)
    never = asyncio.Event()
    waiter = asyncio.create_task(wait_for(clock, never.wait(), 5.0))
    await clock.advance(4.9)
    assert not waiter.done()
    await clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await waiter
    assert clock.next_wake() is None  # the timer went with it


async def test_wait_for_returns_what_finishes_first_and_leaves_no_timer() -> None:
    clock = FakeClock(start=0.0)

    async def answer() -> int:
        await clock.sleep(1.0)
        return 42

    waiter = asyncio.create_task(wait_for(clock, answer(), 5.0))
    await clock.advance(1.0)
    assert await waiter == 42
    assert clock.next_wake() is None


async def test_wait_for_on_the_real_clock() -> None:
    assert await wait_for(RealClock(), asyncio.sleep(0, result="done"), 5.0) == "done"
    with pytest.raises(TimeoutError):
        await wait_for(RealClock(), asyncio.Event().wait(), 0.01)
