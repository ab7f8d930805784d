"""Load-balancer sync: the listener rules the service uses, the weights
written to them, and the check that keeps the load balancer as the records
say (a proxy that restarted comes back with its config's weights and no
targets). Which weights should be in force is the machine's decision
(machine.wanted_weights); this module reads, compares and writes.

Two changes to one rule may be wanted at once: a rollback starts while
the test shift's change is still being written. An admin call on its way
cannot be called back, and two calls in flight land in any order, so the
rollback's weights could be overwritten by the older change once the
rollback was done. Each rule has one writer instead (WeightWriter): it
writes the latest weights wanted, one call at a time, and a change wanted
while another is in flight is written once that call returned. The caller
of the replaced change hears `Superseded`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.clock import Clock
from shiftlab.controller.router import DnsWeightedRouter, Router, RouterError, target_id
from shiftlab.controller.strategies import percent_of, weights

if TYPE_CHECKING:
    from shiftlab.controller.service import ServiceController

CHECK_INTERVAL = 1.0  # seconds between checks that the load balancer matches the records

ATTEMPTS = 5  # set-and-read-back attempts for one change: one flaky admin call must not fail a deployment


class Superseded(RouterError):
    """A later change to the same rule replaced this one before it was in force."""


@dataclass
class _Rule:
    want: dict[str, int] | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    calls: int = 0  # set_weights calls made so far


class WeightWriter:
    def __init__(self, router: Router, clock: Clock) -> None:
        self.router = router
        self.clock = clock
        self._rules: dict[str, _Rule] = {}

    def writes(self, rule: str) -> tuple[int, bool]:
        """How many calls changed `rule` so far, and whether a change is on its
        way: a read of the rule taken while either moved may be stale."""
        r = self._rules.get(rule)
        return (0, False) if r is None else (r.calls, r.task is not None and not r.task.done())

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
                r.calls += 1
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


class LoadBalancerSync:
    """The service's rules and weights on the load balancer."""

    def __init__(self, svc: ServiceController) -> None:
        self.svc = svc
        self.writer = WeightWriter(svc.router, svc.clock)
        ac = svc.service.lb.advancedConfiguration if svc.service.exposure != "headless" else None
        # Without advancedConfiguration (ROLLING in the one target group) or
        # without a load balancer (headless) no rule is the service's to
        # weigh: every write below is a no-op.
        self.production_rule = ac.productionListenerRule if ac else ""
        self.test_rules = list(ac.testListenerRule) if ac else []

    async def resolve_rules(self) -> None:
        """Rules may be named by id (`prod/default`) or by the RuleArn in the config."""
        rules = await self.svc.router.rules()
        by_arn = {arn: rid for rid, arn in rules.items() if arn}

        def resolve(ref: str) -> str:
            if ref in rules:
                return ref
            if ref in by_arn:
                return by_arn[ref]
            raise RouterError(f"no listener rule {ref!r} on the load balancer (rules: {', '.join(rules)})")

        self.production_rule = resolve(self.production_rule) if self.production_rule else ""
        self.test_rules = [resolve(r) for r in self.test_rules]

    def rules_of(self, kind: str) -> list[str]:
        if not self.production_rule:
            return []
        if kind == "production":
            return [self.production_rule]
        if kind == "test":
            return list(self.test_rules)
        return [self.production_rule, *self.test_rules]

    async def set_percent(self, kind: str, green_percent: float, green_group: str, blue_group: str) -> None:
        blue_w, green_w = weights(green_percent)
        await self.set_weights(kind, {blue_group: blue_w, green_group: green_w})

    async def set_weights(self, kind: str, want: dict[str, int]) -> None:
        for rule in self.rules_of(kind):
            router = self.svc.router
            if isinstance(router, DnsWeightedRouter) and router.owns(rule):
                await self._write_dns(router, rule, want)
            else:
                await self.writer.write(rule, want)

    async def _write_dns(self, router: DnsWeightedRouter, rule: str, want: dict[str, int]) -> None:
        """Weighted DNS records: in force once written, but clients go on with
        the answer they have until its TTL ends. A change counts as done once
        that TTL has passed (the reference architecture's ~60 s of propagation
        between increments): the bake after it, or the stopping of the tasks
        clients left, starts when no client should still reach them."""
        green = self.svc.alternate

        def share(w: dict[str, int]) -> float:
            return percent_of(sum(v for g, v in w.items() if g != green), w.get(green, 0))

        before = await router.weights(rule)
        await self.writer.write(rule, want)
        if share(before) == share(want):
            return  # the same answers as before (255:0 and 1:0 alike): nothing to propagate
        view = router.view()
        ttl = max(view["ttl"].values(), default=0)
        d = self.svc.current
        self.svc.note(d.id if d is not None and not d.final else None, eventlog.weights_dns_records(
            router.name, share(want), view["weights"], ttl))
        await self.svc.clock.sleep(ttl)

    async def route_all_to(self, group: str) -> None:
        a, b = self.svc.groups
        await self.set_percent("all", 100.0, group, b if group == a else a)

    def wanted(self, kind: str, d: m.Deployment | None) -> dict[str, int] | None:
        """By target group, the weights machine.wanted_weights wants on rules of `kind`."""
        wanted = m.wanted_weights(d)
        if wanted is None or self.svc.single_group:
            return None
        b, g = weights(wanted[kind])
        return {self.svc.primary: b, self.svc.alternate: g}

    async def check(self) -> None:
        """Keep the load balancer as the records say. A proxy that restarted
        comes back with its config's weights and no targets: put back the
        weights in force and register the running tasks again."""
        svc = self.svc
        for kind in ("production", "test"):
            for rule in self.rules_of(kind):
                if self.wanted(kind, svc.current) is None:
                    continue  # the deployment is setting weights itself right now
                before = self.writer.writes(rule)
                back = await svc.router.weights(rule)
                if before[1] or self.writer.writes(rule) != before:
                    continue  # weights were being written meanwhile: this read may be older than them
                # Decided again after the read, right before the write: the
                # deployment may have moved on (or started moving weights) meanwhile.
                d = svc.current
                want = self.wanted(kind, d)
                if want is None or {k: back.get(k, 0) for k in want} == want:
                    continue
                svc.note(d.id if d is not None and not d.final else None,
                         eventlog.recovery_weights_reset(rule, back, want))
                with contextlib.suppress(Superseded):  # the deployment wants other weights now: its own write goes on
                    await self.writer.write(rule, want)
        d = svc.current
        in_progress = d is not None and not d.final
        for ts in list(svc.sets.values()):
            # Only tasks registered before the read can be missing from it.
            registered = [t for t in ts.running() if t.task_id not in svc.scheduler.registering]
            health = await svc.router.target_health(ts.tg)
            missing = [t for t in registered if target_id(t.host, t.port) not in health]
            if missing:
                svc.note(d.id if in_progress and d else None,
                         eventlog.recovery_targets_registered(ts.tg, [t.task_id for t in missing]))
                await svc.router.register(ts.tg, [(t.host, t.port) for t in missing])
