"""Writing weights to the load balancer: one writer per rule, latest wins.

Two changes to one rule may be wanted at once: a rollback starts while the
test shift's change is still being written. An admin call on its way
cannot be called back, and two calls in flight land in any order, so the
rollback's weights could be overwritten by the older change once the
rollback was done. Each rule has one writer instead: it writes the latest
weights wanted, one call at a time, and a change wanted while another is
in flight is written once that call returned. The caller of the replaced
change hears `Superseded`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from shiftlab.controller.clock import Clock
from shiftlab.controller.router import Router, RouterError

ATTEMPTS = 5  # set-and-read-back attempts for one change: one flaky admin call must not fail a deployment


class Superseded(RouterError):
    """A later change to the same rule replaced this one before it was in force."""


@dataclass
class _Rule:
    want: dict[str, int] | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class WeightWriter:
    def __init__(self, router: Router, clock: Clock) -> None:
        self.router = router
        self.clock = clock
        self._rules: dict[str, _Rule] = {}

    async def write(self, rule: str, want: dict[str, int]) -> None:
        """Until `want` is in force on `rule` (set, and read back). Raises
        RouterError when it could not be, Superseded when another change to
        the rule was asked for before it was in force."""
        r = self._rules.setdefault(rule, _Rule())
        if r.want != want:
            error = Superseded(f"{rule}: {r.want} was replaced by {want} before it was in force")
            for replaced in r.waiters:
                if not replaced.done():
                    replaced.set_exception(error)
            r.waiters = []
            r.want = dict(want)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        r.waiters.append(fut)
        if r.task is None or r.task.done():
            r.task = asyncio.create_task(self._write(rule, r))
        await fut

    async def _write(self, rule: str, r: _Rule) -> None:
        attempt, last_error = 0, ""
        while r.waiters:
            want = r.want
            assert want is not None
            try:
                got = await self.router.set_weights(rule, want)
                back = await self.router.weights(rule)
                if r.want is not want:
                    attempt = 0
                    continue  # replaced while this call was on its way: write the latest now
                if got == want and {g: back.get(g, 0) for g in want} == want:
                    self._settle(r, None)
                    return
                last_error = f"read-back of {rule} shows {back}, expected {want}"
            except RouterError as exc:
                if r.want is not want:
                    attempt = 0
                    continue
                last_error = str(exc)
            except Exception as exc:  # not the load balancer's answer: the callers hear it
                self._settle(r, exc)
                return
            attempt += 1
            await self.clock.sleep(0.2 * attempt)
            if r.want is not want:
                attempt = 0
            elif attempt >= ATTEMPTS:
                self._settle(r, RouterError(last_error or "weights not in force"))
                return

    @staticmethod
    def _settle(r: _Rule, error: BaseException | None) -> None:
        for fut in r.waiters:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        r.waiters = []
        r.want = None

    async def close(self) -> None:
        tasks = [r.task for r in self._rules.values() if r.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
