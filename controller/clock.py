"""The injected clock. The state machine only ever sees `now`; the driver asks
the clock for it and sleeps through it, so tests can run a whole deployment
on a clock they advance by hand."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


async def wait_for(clock: Clock, awaitable: Awaitable[T], timeout: float | None) -> T:
    """asyncio.wait_for with the deadline on `clock`: raises TimeoutError
    (after cancelling `awaitable`) once `timeout` seconds of it passed."""
    if timeout is None:
        return await awaitable
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work.cancel()
        raise
    finally:
        timer.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    raise TimeoutError(f"not done within {timeout:g} s")


class FakeClock:
    """Time moves only when a test moves it.

    A sleeper wakes at its own deadline, in deadline order, with `now()`
    equal to that deadline, and everything it sets off runs (the event
    loop runs until idle) before the next one wakes: a test that advances
    by ten seconds sees what ten seconds of real time would have done,
    in the same order, without waiting for any of it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: dict[int, tuple[float, asyncio.Future[None]]] = {}
        self._ids = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = next(self._ids)
        self._sleepers[key] = (self._now + seconds, fut)
        try:
            await fut
        finally:
            self._sleepers.pop(key, None)

    def next_wake(self) -> float | None:
        """The earliest deadline a sleeper waits for, if any."""
        times = [t for t, fut in self._sleepers.values() if not fut.done()]
        return min(times) if times else None

    async def settle(self) -> None:
        """Run the event loop until nothing is ready to run (every task waits
        for the clock, an event, or I/O)."""
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        if ready is None:  # a loop that does not show its ready queue: a fixed number of turns
            for _ in range(200):
                await asyncio.sleep(0)
            return
        for _ in range(1_000_000):
            await asyncio.sleep(0)
            if not ready:
                return
        raise RuntimeError("the event loop never became idle (a task that never awaits?)")

    async def advance_to_next_wake(self) -> float | None:
        """Move to the earliest deadline, wake its sleepers, and settle.
        Returns the new time, or None (time unchanged) when nothing sleeps."""
        await self.settle()
        at = self.next_wake()
        if at is None:
            return None
        self._now = max(self._now, at)
        for t, fut in list(self._sleepers.values()):
            if t <= self._now and not fut.done():
                fut.set_result(None)
        await self.settle()
        return self._now

    async def advance(self, seconds: float) -> None:
        """Move `seconds` ahead, waking each sleeper at its own deadline on the way."""
        target = self._now + seconds
        while True:
            await self.settle()
            at = self.next_wake()
            if at is None or at > target:
                break
            await self.advance_to_next_wake()
        self._now = max(self._now, target)
        await self.settle()
