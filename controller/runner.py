"""The deployment runner: feeds one deployment's events to the state
machine, one at a time, writes the record before any action of a
transition starts, and carries the actions out (each in a task of its
own), turning their outcomes into events. Time reaches the machine as
Ticks when a deadline it set (bake, hook callback or timeout) is due."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from shiftlab.controller import eventlog
from shiftlab.controller import hooks as hook_calls
from shiftlab.controller import machine as m
from shiftlab.controller.describe import deployment_arn
from shiftlab.controller.router import RouterError
from shiftlab.controller.scheduler import TaskSet

if TYPE_CHECKING:
    from shiftlab.controller.service import ServiceController

log = logging.getLogger("shiftlab.controller")

BRING_UP_INTERVAL = 0.1  # seconds between checks that a scaling set is up and healthy


class DeploymentRunner:
    def __init__(self, svc: ServiceController) -> None:
        self.svc = svc
        self.current: m.Deployment | None = None
        self.task: asyncio.Task[None] | None = None
        self.progress = asyncio.Event()  # set (and replaced) whenever the current deployment steps
        self._queue: asyncio.Queue[m.Event] | None = None
        self._replacement: asyncio.Task[object] | None = None  # the ROLLING task replacement under way

    def begin(self, d: m.Deployment, resume: bool = False) -> None:
        self.current = d
        self._queue = asyncio.Queue()
        if resume:
            self._queue.put_nowait(m.Recover(dict(self.svc.monitor.alarm_states), self.active_revisions()))
        self.task = asyncio.create_task(self._run(d, resume))

    def feed(self, event: m.Event) -> None:
        if self._queue is not None and self.current is not None and not self.current.final:
            self._queue.put_nowait(event)

    def in_progress(self, deployment_id: str) -> bool:
        d = self.current
        return d is not None and d.id == deployment_id and not d.final and not d.rolling_back

    def active_revisions(self) -> int:
        """Service revisions ACTIVE as a deployment starts: the running one and
        any other a task set runs or still wants (a deployment stopped without
        rollback leaves its tasks)."""
        svc = self.svc
        return len({svc.state.running_revision}
                   | {ts.revision for ts in svc.sets.values() if ts.desired > 0 or ts.running()})

    # -- the event loop of one deployment ----------------------------------------

    async def _run(self, d: m.Deployment, resume: bool = False) -> None:
        assert self._queue is not None
        self.svc.spawn(self.svc.scheduler.watch_green(d.id))
        if not resume:
            await self._apply(m.Start(dict(self.svc.monitor.alarm_states), self.active_revisions()))
        while self.current is not None and not self.current.final:
            wake = _next_wake(self.current)
            timeout = None if wake is None else max(0.0, wake - self.svc.clock.now())
            event = await (self._queue.get() if timeout is None else self._wait_event(timeout))
            await self._apply(event)

    async def _wait_event(self, timeout: float) -> m.Event:
        assert self._queue is not None
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        sleeper = asyncio.ensure_future(self.svc.clock.sleep(timeout))
        try:
            done, _ = await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        return m.Tick()

    async def _apply(self, event: m.Event) -> None:
        svc = self.svc
        assert self.current is not None
        d, actions = m.step(self.current, event, svc.clock.now())
        self.current = d
        svc.records.save(d)  # before any action of this transition starts
        self.progress.set()
        self.progress = asyncio.Event()
        for a in actions:
            if isinstance(a, m.Note):
                svc.note(d.id, a.entry)
        if d.final and d.rollback and d.dc.strategy == "ROLLING" and svc.service.exposure == "headless":
            svc.set_active({d.target_revision: False})  # rolled back: its tasks are gone (see create_deployment)
        for a in actions:
            if isinstance(a, m.Promote):
                svc.promote(d)
            elif not isinstance(a, m.Note | m.WakeAt):
                svc.spawn(self._carry_out(d, a))
        svc.publish({"type": "deployment", "deployment": svc.describe(d)})

    async def _carry_out(self, d: m.Deployment, action: m.Action) -> None:
        try:
            event = await self._outcome(d, action)
        except RouterError as exc:
            event = _failure_event(action, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the deployment moving to a defined end
            log.exception("action %s failed", action)
            event = _failure_event(action, f"{type(exc).__name__}: {exc}")
        if event is not None:
            self.feed(event)

    async def _outcome(self, d: m.Deployment, action: m.Action) -> m.Event | None:
        svc = self.svc
        green, blue = svc.sets[svc.alternate], svc.sets[svc.primary]
        match action:
            case m.Reconcile():
                await svc.lb.route_all_to(svc.primary)  # before green's tasks go: see ServiceController.start
                await svc.scheduler.stop_set(green)
                return m.Reconciled(ok=True)
            case m.ScaleUpGreen(count=count):
                return await self._scale_up(d, green, count)
            case m.RollingReplace():
                self._replacement = asyncio.current_task()
                return await self._rolling(d, blue, green, action)
            case m.SetWeights(kind=kind, percent=percent):
                await svc.lb.set_percent(kind, percent, green.group, blue.group)
                return m.WeightsApplied(kind, percent, ok=True)
            case m.StopTasks(colour="blue"):
                await svc.scheduler.stop_set(blue)
                return m.TasksStopped("blue", ok=True)
            case m.StopTasks(colour=colour):
                if d.dc.strategy == "ROLLING":
                    error = await self._restore_blue(d, blue, green)
                    if error is not None:
                        return m.TasksStopped(colour, ok=False, error=error)
                await svc.scheduler.stop_set(green)
                return m.TasksStopped(colour, ok=True)
            case m.InvokeHook():
                return await self._invoke_hook(d, action)
            case m.ReplaceTask():
                await svc.scheduler.replace_task(action)
        return None

    # -- the actions ---------------------------------------------------------------

    async def _scale_up(self, d: m.Deployment, green: TaskSet, count: int) -> m.Event:
        green.revision = d.target_revision
        green.desired = count
        error = await self._bring_up(d, green)
        if error is not None:
            return m.GreenReady(ok=False, error=error)
        return m.GreenReady(ok=True, running=len(green.running()))

    async def _bring_up(self, d: m.Deployment, ts: TaskSet) -> str | None:
        """Until `ts.desired` tasks run and pass their target health checks:
        None then, else why not. A task that fails to start is counted and
        started again; one the load balancer reports unhealthy is counted and
        replaced meanwhile (Scheduler.watch_green, machine.TaskUnhealthy). The
        circuit breaker (when enabled) ends this at its threshold, and
        taskStartTimeoutSeconds then too. Without a breaker, nothing ends it:
        as on ECS the deployment stays IN_PROGRESS, its failed tasks replaced
        (an event says so once the start timeout has passed)."""
        svc = self.svc
        timeout = svc.settings.runtime.taskStartTimeoutSeconds
        deadline: float | None = svc.clock.now() + timeout
        while True:
            if len(ts.running()) < ts.desired:
                await svc.scheduler.replenish(ts, d.id)
            if not self.in_progress(d.id):
                return "deployment ended"
            if await svc.scheduler.all_healthy(ts):
                return None
            if deadline is not None and svc.clock.now() >= deadline and not d.dc.deploymentCircuitBreaker.enable:
                deadline = None
                svc.note(d.id, eventlog.task_not_healthy(ts.desired, len(ts.running()), timeout))
            if deadline is not None and svc.clock.now() >= deadline:
                running = ts.running()
                if len(running) < ts.desired:
                    return f"{ts.desired - len(running)} of {ts.desired} tasks did not start within {timeout:g} s"
                return f"tasks not healthy within {timeout:g} s"
            await svc.clock.sleep(BRING_UP_INTERVAL)

    async def _rolling(self, d: m.Deployment, blue: TaskSet, green: TaskSet, batch: m.RollingReplace) -> m.Event:
        """ROLLING, one batch the machine planned: blue down to `batch.blue`
        tasks (traffic off them first), green up to `batch.green` running and
        healthy. On ECS old and new tasks share one target group; here each
        set has its group, so the weights follow the number of healthy tasks
        in each: traffic per task stays even, as on ECS. New tasks that fail
        are counted and replaced, as in a blue/green scale-up."""
        green.revision = d.target_revision
        if not self.in_progress(d.id):
            return m.RollingDone(ok=False, error="deployment ended")
        if len(blue.running()) > batch.blue:
            await self.weights_by_tasks(blue, green, blue_count=batch.blue)  # traffic off them first
            await self.svc.scheduler.stop_set(blue, keep=batch.blue)
        else:
            blue.desired = min(blue.desired, batch.blue)
        if batch.green:
            green.desired = batch.green
            error = await self._bring_up(d, green)
            if error is not None:
                return m.RollingDone(ok=False, error=error)
            await self.weights_by_tasks(blue, green)
        return m.RollingDone(ok=True, blue=len(blue.running()), green=min(len(green.running()), batch.green))

    async def _restore_blue(self, d: m.Deployment, blue: TaskSet, green: TaskSet) -> str | None:
        """A ROLLING rollback: blue back to its count and healthy, and all
        traffic on it, before green goes; else why not. Only once the
        replacement has stopped changing the sets and the weights (it stops
        at its next batch once the deployment rolls back)."""
        svc = self.svc
        task = self._replacement
        if task is not None and task is not asyncio.current_task() and not task.done():
            await asyncio.wait({task})
        blue.desired = d.desired_count
        await svc.scheduler.ensure_set(blue, svc.scheduler.definition(blue.revision), "blue")
        timeout = svc.settings.runtime.taskStartTimeoutSeconds
        if not await svc.scheduler.wait_healthy(blue, timeout):
            return (f"blue (revision {blue.revision}) did not get back to {d.desired_count} healthy tasks "
                    f"within {timeout:g} s ({len(blue.running())} running); green left running and serving")
        await svc.lb.set_percent("all", 0.0, green.group, blue.group)
        # As a blue/green rollback notes it (machine: WeightsApplied): when
        # production traffic was back on blue, which rehearse measures.
        svc.note(d.id, eventlog.weights_verified("all", 0.0))
        return None

    async def weights_by_tasks(self, blue: TaskSet, green: TaskSet, blue_count: int | None = None) -> None:
        d = self.current
        if d is not None and (d.final or d.rolling_back):
            return  # the rollback owns the weights now
        b = len(blue.running()) if blue_count is None else blue_count
        g = len(green.running())
        if b + g == 0:
            return  # minimumHealthyPercent 0 allows a gap; ALB needs one weight above 0
        # In the one target group (no advancedConfiguration) the load balancer
        # spreads traffic over the tasks by itself: no weights to set.
        want = {} if self.svc.single_group else {blue.group: b, green.group: g}
        await self.svc.lb.set_weights("all", want)
        pct = round(100.0 * g / (b + g), 4)
        if d is not None:
            self.svc.note(d.id, eventlog.weights_by_tasks(pct, b, g, want))
            self.feed(m.GreenServing(pct))

    async def _invoke_hook(self, d: m.Deployment, action: m.InvokeHook) -> m.Event:
        svc = self.svc
        hook = d.dc.lifecycleHooks[action.hook_index]
        body = hook_calls.payload(
            execution_id=action.execution_id, stage=action.stage, resource_arn=deployment_arn(svc, d.id),
            service_arn=svc.service_arn, target_revision_arn=svc.revision_arn(d.target_revision),
            source_revision_arn=svc.revision_arn(d.source_revision), production_percent=action.production_percent,
            test_percent=action.test_percent, hook_details=action.hook_details,
        )
        assert svc.session is not None and hook.hookTargetArn
        began = time.monotonic()  # what the call took, as shown: real seconds whatever the clock
        run = d.hook
        remaining = None if run is None or run.timeout_at is None else run.timeout_at - svc.clock.now()
        answer = await hook_calls.invoke_hook(svc.session, hook, svc.settings.lambda_functions, body, remaining,
                                              svc.clock, svc.hook_env)
        seconds = round(time.monotonic() - began, 3)
        answer = dataclasses.replace(answer, call_seconds=seconds)
        svc.note(d.id, eventlog.hook_answered(action.stage, action.hook_index, action.execution_id,
                                              hook.hookTargetArn, answer.status, seconds, answer.error))
        return answer

    # -- crash recovery --------------------------------------------------------------

    async def recover(self, d: m.Deployment) -> None:
        """A deployment the previous controller did not finish (the rule is
        the state machine's, see machine.Recover). The weights the record says
        are in force are applied again first: the proxy may have restarted."""
        svc = self.svc
        green, blue = svc.sets[svc.alternate], svc.sets[svc.primary]
        green.revision = d.target_revision
        plan = m.recovery_plan(d)
        by_task_counts = d.dc.strategy == "ROLLING" and d.status != m.PENDING
        if by_task_counts:
            # ROLLING's weights follow the task counts: those adopted. Green
            # grows to desiredCount only once the replacement was over; mid-way
            # the replacement (or the rollback) goes on from what runs.
            replaced = d.stage in (m.BAKE_TIME, m.CLEAN_UP) and not d.rolling_back
            green.desired = d.desired_count if replaced and plan == "resume" else len(green.running())
            await svc.scheduler.ensure_set(green, svc.scheduler.definition(d.target_revision), "green", d.id)
            await self.weights_by_tasks(blue, green)  # before `current` is set: no event for the machine yet
        else:
            await svc.lb.set_percent("production", d.production_percent, green.group, blue.group)
            if svc.lb.test_rules:
                await svc.lb.set_percent("test", d.test_percent, green.group, blue.group)
            if plan == "resume":
                green.desired = d.desired_count
                await svc.scheduler.ensure_set(green, svc.scheduler.definition(d.target_revision), "green", d.id)
        svc.note(d.id, eventlog.recovery_restarted(
            d.stage, d.status, by_task_counts, d.production_percent, len(blue.running()), len(green.running())))
        self.begin(d, resume=True)


def _next_wake(d: m.Deployment) -> float | None:
    times = [t for t in (d.wake_at,
                         d.hook.next_call_at if d.hook else None,
                         d.hook.timeout_at if d.hook else None) if t is not None]
    return min(times) if times else None


def _failure_event(action: m.Action, error: str) -> m.Event | None:
    """What the machine hears of an action that raised."""
    match action:
        case m.SetWeights(kind=kind, percent=percent):
            return m.WeightsApplied(kind, percent, ok=False, error=error)
        case m.ScaleUpGreen():
            return m.GreenReady(ok=False, error=error)
        case m.RollingReplace():
            return m.RollingDone(ok=False, error=error)
        case m.StopTasks(colour=colour):
            return m.TasksStopped(colour, ok=False, error=error)
        case m.Reconcile():
            return m.Reconciled(ok=False, error=error)
        case m.InvokeHook(execution_id=execution_id):
            return m.HookAnswer(execution_id, "FAILED", error=error)
    return None
