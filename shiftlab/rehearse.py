"""One deployment from start to end, for CI: start the stack, put a bounded
load on the production listener, deploy the new revision, wait for the
end, stop everything. The outcome is the deployment's record plus what the
load saw."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftlab.common.configfile import ConfigError
from shiftlab.controller import eventlog
from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.strategies import total_minutes
from shiftlab.controller.vocabulary import Status
from shiftlab.loadgen import LoadResult, run_load
from shiftlab.settings import Settings, self_contained
from shiftlab.stack import Stack


@dataclass(frozen=True)
class LoadSpec:
    """A background load during the rehearsal: `rps` on `url` (empty: where
    the production load goes), with `headers`."""

    url: str
    rps: float
    headers: dict[str, str] | None = None


@dataclass
class Outcome:
    deployment: dict[str, Any]
    load: LoadResult | None
    seconds: float
    events: list[dict[str, Any]]
    extra_loads: list[LoadResult] = field(default_factory=list)
    # The rehearsal's own timeout ended it (then stopped with a rollback): a
    # deployment that stays IN_PROGRESS, as ECS leaves one whose new tasks
    # never get healthy without a circuit breaker, ends here.
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.deployment["status"] == Status.SUCCESSFUL

    def rollback_seconds(self) -> float | None:
        """From the first 5xx the load saw to production traffic back on blue."""
        return self.seconds_to_rollback(self.load.first_5xx_at if self.load else None)

    def bad_response_to_rollback_seconds(self) -> float | None:
        """From the load's first bad response (5xx, connection error, or
        slower than its `slow_after`) to production traffic back on blue."""
        return self.seconds_to_rollback(self.load.first_bad_at if self.load else None)

    def seconds_to_rollback(self, since: float | None) -> float | None:
        """From `since` (wall clock) to production traffic back on blue; None
        without a `since` or a rollback."""
        if since is None:
            return None
        back = rollback_at(self.events)
        return None if back is None else round(back - since, 3)


def rollback_at(events: list[dict[str, Any]]) -> float | None:
    """When a rollback put all traffic back on blue (its verified weights event)."""
    return next((e["at"] for e in events if e["type"] == eventlog.WEIGHTS_VERIFIED.name
                 and e["data"]["traffic"] == "all" and e["data"]["percent"] == 0), None)


def production_url(settings: Settings) -> str | None:
    """The listener that carries the production rule; with weighted DNS
    records (route53/<name>), the name on the listeners' port; None for a
    headless service (no load balancer: no requests to send)."""
    assert settings.service is not None
    if settings.service.exposure == "headless" or settings.load_balancer_config is None:
        return None
    route = settings.dns_route()
    if route is not None:
        return f"http://{route[0].rstrip('.')}:{settings.load_balancer.Listeners[0].Port}/"
    ac = settings.service.lb.advancedConfiguration
    listener = ac.productionListenerRule.rpartition("/")[0] if ac else ""
    for ls in settings.load_balancer.Listeners:
        if ls.name == listener:
            return f"http://{ls.Address}:{ls.Port}/"
    ls = settings.load_balancer.Listeners[0]
    return f"http://{ls.Address}:{ls.Port}/"


def entry_url(stack: Stack) -> str | None:
    """The first Service Connect client task's URL (a frontend in the
    namespace), where a rehearsal's load enters; None without one."""
    tasks = list(stack.clients.tasks.values()) if stack.clients is not None else []
    return f"http://{tasks[0].host}:{tasks[0].port}/" if tasks else None


def check_overrides(settings: Settings, overrides: dict[str, Any]) -> None:
    """The new revision (the running one with `overrides`) must be valid
    before anything starts: raises ConfigError naming the field."""
    from shiftlab.common.configfile import parse
    from shiftlab.controller.config import TaskDefinitionSpec

    if settings.service is None:
        raise ConfigError(["service: is required to rehearse a deployment"])
    parse(TaskDefinitionSpec, {**settings.service.taskDefinition.model_dump(),
                               **{k: v for k, v in overrides.items() if k != "env"}}, "taskDefinition")


async def rehearse(settings: Settings, overrides: dict[str, Any], config: DeploymentConfiguration | None = None,
                   load_rps: float = 20.0, state_dir: Path | None = None, timeout: float | None = None,
                   on_message: Any = None, extra_loads: tuple[LoadSpec, ...] = (),
                   on_started: Any = None, slow_after: float | None = None, before_stop: Any = None) -> Outcome:
    """`slow_after`: seconds beyond which the production load counts a response as slow (LoadResult).
    `before_stop`: awaited with the final deployment's record once it is final, while the
    tasks still run (a headless rehearsal lets its consumers empty the queue)."""
    check_overrides(settings, overrides)
    started = time.monotonic()
    dc = config or settings.deployment
    # The rehearsal's own records live apart from `shiftlab up`'s, and its API
    # and admin ports are free ones: several rehearsals may run side by side.
    # It runs its own proxy: no second controller on `up`'s load balancer.
    stack = Stack(self_contained(settings), state_dir=state_dir, api_port=0, admin_port=0)
    await stack.start()
    stop_load = asyncio.Event()
    load_task = None
    extra_tasks: list[asyncio.Task[LoadResult]] = []
    try:
        ctl = stack.controller
        assert ctl is not None
        unsubscribe = ctl.subscribe(on_message) if on_message else None
        expected = total_minutes(dc) * 60 / settings.time_scale
        limit = timeout if timeout is not None else max(600.0, expected * 3 + 120)
        load = LoadResult(slow_after=slow_after)
        # With Service Connect the load enters the namespace through its first
        # client task; a headless service takes no requests (no production URL).
        entry = entry_url(stack) or production_url(settings)
        load_rps = load_rps if entry is not None else 0.0
        if load_rps > 0 and entry is not None:
            load_task = asyncio.create_task(run_load(
                entry, load_rps, limit, stop=stop_load, result=load,
                max_requests=int(load_rps * limit) + 1,
                dns=stack.dns.endpoint if stack.dns is not None and settings.dns_route() is not None else None))
        extra_results = [LoadResult() for _ in extra_loads]
        for spec, res in zip(extra_loads, extra_results, strict=True):
            extra_tasks.append(asyncio.create_task(run_load(
                spec.url or entry or "", spec.rps, limit, headers=spec.headers, stop=stop_load, result=res,
                max_requests=int(spec.rps * limit) + 1)))
        if on_started is not None:
            on_started(stack)
        d = ctl.create_deployment(overrides, dc)
        timed_out = False
        try:
            final = await ctl.wait_finished(d.id, timeout=limit)
        except TimeoutError:
            timed_out = True
            ctl.stop_deployment(d.id, rollback=True, reason=f"the rehearsal timed out after {limit:g} s")
            final = await ctl.wait_finished(d.id, timeout=120)
        stop_load.set()
        for t in [load_task, *extra_tasks]:
            if t is not None:
                await t
        if before_stop is not None:
            await before_stop(ctl.records.events(final.id))
        described = ctl.describe(final)
        events = ctl.records.events(final.id)
        if unsubscribe:
            unsubscribe()
        return Outcome(described, load if load_rps > 0 else None, round(time.monotonic() - started, 3), events,
                       extra_results, timed_out)
    finally:
        stop_load.set()
        for t in [load_task, *extra_tasks]:
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
        await stack.stop()
