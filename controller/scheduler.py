"""The service scheduler: ECS's part that keeps each task set at its
desired count. It starts tasks into a set and registers them with the set's
target group, stops them (drained first), replaces tasks that exit, and
during a deployment reports the green tasks the load balancer finds
unhealthy (the machine decides which to replace and counts them).
Tasks move only through the Backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.backends.base import RUNNING, STOPPED, USER_INITIATED, Task, TaskDefinition
from shiftlab.controller.config import TaskDefinitionSpec
from shiftlab.controller.router import RouterError, target_id

if TYPE_CHECKING:
    from shiftlab.controller.service import ServiceController

log = logging.getLogger("shiftlab.controller")

HEALTH_WATCH_INTERVAL = 0.2  # seconds between looks at green's target health during a deployment


@dataclass
class TaskSet:
    """The tasks of one target group (blue = the primary group's)."""

    group: str
    revision: str
    desired: int = 0
    tasks: dict[str, Task] = field(default_factory=dict)
    # One scheduler pass at a time: a replacement and a scale-up must not both fill one gap.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The load balancer's target group its tasks join: `group` but for a
    # ROLLING service without advancedConfiguration, whose new tasks join
    # the service's one target group beside the old ones.
    target_group: str = ""

    @property
    def tg(self) -> str:
        return self.target_group or self.group

    def running(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state == RUNNING]


class Scheduler:
    def __init__(self, svc: ServiceController) -> None:
        self.svc = svc
        self.registering: set[str] = set()  # tasks in a set whose registration is on its way
        self.seen_healthy: set[str] = set()  # green tasks reported healthy (machine.TaskHealthy), each once

    def definition(self, revision: str) -> TaskDefinition:
        svc = self.svc
        spec = TaskDefinitionSpec.model_validate(svc.state.revisions[revision])
        return TaskDefinition(
            revision=revision, command=tuple(spec.command), env=dict(spec.environment), image=spec.image,
            container_port=spec.containerPort, stop_timeout=spec.stopTimeout / max(svc.time_scale, 1.0),
            cpu=spec.cpu, memory=spec.memory, hosts=dict(svc.task_hosts),
        )

    async def start_one(self, ts: TaskSet, definition: TaskDefinition, colour: str,
                        deployment_id: str | None) -> Task | None:
        """Start one task into `ts`; None when the set no longer wants it."""
        svc = self.svc
        # What the controller gives every task (the CloudWatch endpoint), unless its definition sets it.
        given = {k: v for k, v in svc.task_env.items() if k not in definition.env}
        task = await svc.backend.start_task(
            svc.name, definition, colour, deployment_id,
            {**given, "SHIFTLAB_TARGET_GROUP": ts.tg},
        )
        if task.state == RUNNING and (definition.revision != ts.revision or len(ts.running()) >= ts.desired):
            # The set was stopped, shrunk or moved to another revision while
            # this task started (a start takes a second with Docker, and a
            # rollback does not wait for it): it would run on unowned.
            await svc.backend.stop_task(task.task_id, 1.0)
            return None
        ts.tasks[task.task_id] = task
        if task.state == RUNNING:
            self.registering.add(task.task_id)
            try:
                await svc.router.register(ts.tg, [(task.host, task.port)])
            finally:
                self.registering.discard(task.task_id)
        return task

    async def ensure_set(self, ts: TaskSet, definition: TaskDefinition, colour: str,
                         deployment_id: str | None = None) -> list[Task]:
        """Start tasks until `desired` run; returns the ones that failed to start."""
        async with ts.lock:
            failed: list[Task] = []
            missing = ts.desired - len(ts.running())
            if missing > 0:
                started = await asyncio.gather(*[self.start_one(ts, definition, colour, deployment_id)
                                                 for _ in range(missing)])
                failed = [t for t in started if t is not None and t.state != RUNNING]
            # Targets adopted from a previous controller may not be registered.
            running = ts.running()
            if running:
                await self.svc.router.register(ts.tg, [(t.host, t.port) for t in running])
            return failed

    async def replenish(self, ts: TaskSet, deployment_id: str | None) -> None:
        """The service scheduler's pass over one set: start what it misses. A
        green task that fails to start counts against the circuit breaker."""
        green = ts.group == self.svc.alternate
        failed = await self.ensure_set(ts, self.definition(ts.revision), "green" if green else "blue",
                                       deployment_id if green else None)
        for t in failed:
            ts.tasks.pop(t.task_id, None)
            if green:
                self.svc.runner.feed(m.TaskFailed(t.task_id, t.stopped_reason or "failed to start"))

    async def all_healthy(self, ts: TaskSet) -> bool:
        """`desired` tasks run and every one passes its target health check."""
        running = ts.running()
        if not running or len(running) < ts.desired:
            return False
        health = await self.svc.router.target_health(ts.tg)
        return all(health.get(target_id(t.host, t.port)) == "healthy" for t in running)

    async def wait_healthy(self, ts: TaskSet, timeout: float) -> bool:
        clock = self.svc.clock
        deadline = clock.now() + timeout
        while not await self.all_healthy(ts):
            if clock.now() >= deadline:
                return False
            await clock.sleep(0.1)
        return True

    async def stop_set(self, ts: TaskSet, keep: int = 0) -> None:
        """Deregister (drain), then stop all tasks of a set but `keep`."""
        ts.desired = keep
        victims = ts.running()[keep:] if keep else list(ts.tasks.values())
        for t in victims:  # out of the set first: nothing re-registers a task on its way out
            ts.tasks.pop(t.task_id, None)
        live = [t for t in victims if t.state == RUNNING]
        if live:
            with contextlib.suppress(RouterError):
                await self.svc.router.deregister(ts.tg, [(t.host, t.port) for t in live])
            await self.wait_drained(ts.tg, [target_id(t.host, t.port) for t in live])
        await asyncio.gather(*[self.svc.backend.stop_task(t.task_id, self.stop_timeout(t)) for t in live])

    async def deregister_all(self, ts: TaskSet) -> None:
        live = ts.running()
        if not live:
            return
        with contextlib.suppress(RouterError):
            await self.svc.router.deregister(ts.tg, [(t.host, t.port) for t in live])
            await self.wait_drained(ts.tg, [target_id(t.host, t.port) for t in live])

    def stop_timeout(self, task: Task) -> float:
        spec = self.svc.state.revisions.get(task.revision, {})
        return float(spec.get("stopTimeout", 30)) / max(self.svc.time_scale, 1.0)

    async def wait_drained(self, group: str, ids: list[str]) -> None:
        """Until the proxy has finished draining (it ends a drain early when idle)."""
        svc = self.svc
        delay = svc.settings.drain_seconds.get(group, 300 / svc.time_scale)
        deadline = svc.clock.now() + delay + 1.0
        while svc.clock.now() < deadline:
            try:
                health = await svc.router.target_health(group)
            except RouterError:
                return
            if not any(i in health for i in ids):
                return
            await svc.clock.sleep(0.05)

    def on_task_change(self, task: Task) -> None:
        """Backend callback: a task changed state (an exit is what matters)."""
        svc = self.svc
        if svc.stopping or task.state != STOPPED:
            return
        for ts in svc.sets.values():
            known = ts.tasks.get(task.task_id)
            if known is None:
                continue
            if task.stop_code == USER_INITIATED:
                ts.tasks.pop(task.task_id, None)  # we stopped it: not an exit
                return
            was_running = known.state == RUNNING
            ts.tasks[task.task_id] = task
            if not was_running:
                return
            reason = task.stopped_reason or "task stopped"
            current = svc.current
            svc.note(current.id if current else None, eventlog.task_stopped(
                task.task_id, ts.tg, task.colour, task.revision, task.exit_code, task.stop_code, reason))
            svc.spawn(self.after_exit(ts, task, reason))
            return

    async def after_exit(self, ts: TaskSet, task: Task, reason: str) -> None:
        svc = self.svc
        with contextlib.suppress(RouterError):
            await svc.router.deregister(ts.tg, [(task.host, task.port)])
        ts.tasks.pop(task.task_id, None)
        d = svc.current
        green = ts.group == svc.alternate
        if green and d is not None and not d.final:
            svc.runner.feed(m.TaskFailed(task.task_id, reason))
        if ts.desired > len(ts.running()) and not svc.stopping:
            # The service scheduler replaces a task that exits.
            await self.replenish(ts, d.id if d else None)

    # -- during a deployment ---------------------------------------------------------

    async def watch_green(self, deployment_id: str) -> None:
        """Until the deployment ends (or rolls back): green tasks the load
        balancer reports unhealthy go to the machine (which counts and
        replaces them, see machine.TaskUnhealthy); after SCALE_UP (where the
        runner's bring-up does it: one start loop is enough), a green set
        short of its count (a replacement that failed to start) is filled again."""
        svc = self.svc
        while svc.runner.in_progress(deployment_id):
            d = svc.current
            assert d is not None
            if d.stage not in (None, m.RECONCILE_SERVICE, m.PRE_SCALE_UP):
                green = svc.sets[svc.alternate]
                try:
                    await self.report_unhealthy(green)
                    if (d.stage != m.SCALE_UP and len(green.running()) < green.desired
                            and svc.runner.in_progress(deployment_id)):
                        await self.replenish(green, deployment_id)
                except asyncio.CancelledError:
                    raise
                except RouterError as exc:
                    log.warning("cannot read green's target health: %s", exc)
                except Exception:
                    log.exception("watching green's target health failed")
            await svc.clock.sleep(HEALTH_WATCH_INTERVAL)

    async def report_unhealthy(self, ts: TaskSet) -> None:
        """Green tasks the load balancer reports unhealthy, for the machine to
        count and replace (machine.TaskUnhealthy), and those it reports
        healthy for the first time (machine.TaskHealthy: the circuit
        breaker's resetOnHealthyTask)."""
        svc = self.svc
        health = await svc.router.target_health(ts.tg)
        grace = float(svc.service.healthCheckGracePeriodSeconds)
        for t in ts.running():
            state = health.get(target_id(t.host, t.port))
            if state == "unhealthy":
                svc.runner.feed(m.TaskUnhealthy(t.task_id, t.started_at, grace))
            elif state == "healthy" and t.task_id not in self.seen_healthy:
                self.seen_healthy.add(t.task_id)
                svc.runner.feed(m.TaskHealthy(t.task_id))

    async def replace_task(self, action: m.ReplaceTask) -> None:
        """Out of its set (once: a second ReplaceTask finds it gone), out of
        its target group, stopped; the scheduler fills the gap."""
        ts = self.svc.sets[self.svc.alternate]
        task = ts.tasks.pop(action.task_id, None)
        if task is None:
            return
        with contextlib.suppress(RouterError):
            await self.svc.router.deregister(ts.tg, [(task.host, task.port)])
        await self.svc.backend.stop_task(task.task_id, 1.0)
