"""The driver on fakes: FakeRouter and FakeBackend in memory, on a FakeClock
the test steps from one wake-up to the next. Nothing waits for the wall
clock: a test reaches a condition in as many steps of fake time as the
controller needs, and fails (naming it) if fake time runs past `within`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shiftlab.controller import machine as m
from shiftlab.controller.clock import FakeClock


async def run_until(clock: FakeClock, predicate: Callable[[], Any], what: str, within: float = 120.0) -> Any:
    """Step `clock` from wake-up to wake-up until `predicate()` is truthy;
    returns its value. Fails once `within` seconds of fake time passed, or
    when nothing sleeps any more (nothing could make it true)."""
    deadline = clock.now() + within
    while True:
        await clock.settle()
        value = predicate()
        if value:
            return value
        at = clock.next_wake()
        if at is None:
            raise AssertionError(f"{what}: not reached, and nothing waits for the clock any more")
        if at > deadline:
            raise AssertionError(f"{what}: not reached within {within:g} s of fake time")
        await clock.advance_to_next_wake()


async def finished(ctl: Any, clock: FakeClock, deployment_id: str, within: float = 120.0) -> m.Deployment:
    """Run the fake clock until the deployment is final; returns its record."""
    def final() -> m.Deployment | None:
        d = ctl.current if ctl.current is not None and ctl.current.id == deployment_id else \
            ctl.records.get(deployment_id)
        return d if d is not None and d.final else None

    d: m.Deployment = await run_until(clock, final, f"deployment {deployment_id} final", within)
    return d
