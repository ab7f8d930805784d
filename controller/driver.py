"""The asyncio driver: carries out the state machine's actions for one
service and feeds the outcomes back as events.

It also plays the two ECS parts that are not the deployment itself: the
service scheduler (keep each task set at its desired count, replace tasks
that exit) and CloudWatch (scrape the proxy's stats, evaluate alarms).
Traffic moves only through the Router; tasks only through the Backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shiftlab.common.naming import target_group_name
from shiftlab.controller import describe as describing
from shiftlab.controller import hooks as hook_calls
from shiftlab.controller import machine as m
from shiftlab.controller.alarms import AlarmEvaluator, MetricAlarm, required_retention
from shiftlab.controller.backends.base import USER_INITIATED, Backend, Task, TaskDefinition
from shiftlab.controller.clock import Clock, RealClock
from shiftlab.controller.clock import wait_for as clock_wait_for
from shiftlab.controller.config import ControllerRuntime, DeploymentConfiguration, ServiceConfig, TaskDefinitionSpec
from shiftlab.controller.lbsync import Superseded, WeightWriter
from shiftlab.controller.metricstore import MetricStore
from shiftlab.controller.records import Records, ServiceState
from shiftlab.controller.rolling import rolling_plan
from shiftlab.controller.router import Router, RouterError, target_id
from shiftlab.controller.strategies import weights

log = logging.getLogger("shiftlab.controller")

RUNNING = "RUNNING"
STOPPED = "STOPPED"
HOOK_CALL_TIMEOUT = 30.0  # seconds (real) for one hook invocation to answer
RATE_WINDOW = 2.0  # seconds of scrapes behind the live views' rates
FRAME_INTERVAL = 0.25  # seconds between metrics frames on the event stream
LB_CHECK_INTERVAL = 1.0  # seconds between checks that the load balancer matches the records
HEALTH_WATCH_INTERVAL = 0.2  # seconds between looks at green's target health during a deployment
BRING_UP_INTERVAL = 0.1  # seconds between checks that a scaling set is up and healthy


@dataclass(frozen=True)
class ControllerSettings:
    service: ServiceConfig
    deployment: DeploymentConfiguration
    alarms: list[MetricAlarm]
    runtime: ControllerRuntime
    # Real seconds each target group drains a deregistered target (its
    # scaled deregistration delay): how long to wait for a drain to end.
    drain_seconds: dict[str, float]
    time_scale: float = 1.0


@dataclass
class TaskSet:
    """The tasks of one target group (blue = the primary group's)."""

    group: str
    revision: str
    desired: int = 0
    tasks: dict[str, Task] = field(default_factory=dict)
    # One scheduler pass at a time: a replacement and a scale-up must not both fill one gap.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def running(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state == RUNNING]


class ServiceController:
    def __init__(self, settings: ControllerSettings, router: Router, backend: Backend, records: Records,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.service = settings.service
        self.name = settings.service.serviceName
        self.router = router
        self.backend = backend
        self.records = records
        self.clock = clock or RealClock()
        self.writer = WeightWriter(router, self.clock)
        self.time_scale = settings.time_scale
        lb = settings.service.lb
        self.groups = (target_group_name(lb.targetGroupArn),
                       target_group_name(lb.advancedConfiguration.alternateTargetGroupArn))
        self.production_rule = lb.advancedConfiguration.productionListenerRule
        self.test_rules = list(lb.advancedConfiguration.testListenerRule)
        self.state: ServiceState
        self.sets: dict[str, TaskSet] = {}
        self.store = MetricStore(retention_seconds=self._retention())
        self.evaluators = {a.AlarmName: AlarmEvaluator(a, self.time_scale) for a in settings.alarms}
        self.alarm_states: dict[str, str] = {}
        self.alarm_reasons: dict[str, str] = {}
        self.current: Deployment | None = None
        self._queue: asyncio.Queue[m.Event] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._scraper: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._replacing: set[str] = set()
        self._registering: set[str] = set()  # tasks in a set whose registration is on its way
        self._replacement: asyncio.Task[Any] | None = None  # the ROLLING task replacement under way
        self.last_metrics: dict[str, Any] = {}
        self._recent: deque[dict[str, Any]] = deque()
        self._progress = asyncio.Event()  # set (and replaced) whenever the current deployment steps

    # -- life cycle ----------------------------------------------------------

    @property
    def primary(self) -> str:
        return self.state.primary_group

    @property
    def alternate(self) -> str:
        a, b = self.groups
        return b if self.state.primary_group == a else a

    def _retention(self) -> float:
        return max(required_retention(self.settings.alarms, self.time_scale) * 2, 60.0)

    async def start(self) -> None:
        """Adopt what a previous controller left, then bring blue to its desired count."""
        self._session = aiohttp.ClientSession()
        self.backend.subscribe(self._on_task_change)
        await self._resolve_rules()
        state = self.records.service(self.name)
        if state is None:
            spec = self.service.taskDefinition.model_dump()
            state = ServiceState(self.name, self.groups[0], "1", {"1": spec}, 2)
            self.records.save_service(state)
        self.state = state
        adopted = [t for t in await self.backend.adopt(self.name) if t.state == RUNNING]
        plan = m.restart_plan(state.running_revision, self.service.desiredCount,
                              next(iter(self.records.recent(self.name, 1)), None), self.records.unfinished(self.name),
                              [m.Adopted(t.task_id, t.revision) for t in adopted])
        if plan.promote is not None:
            self._finish_promotion(plan.promote)
        self.sets = {
            self.primary: TaskSet(self.primary, state.running_revision, plan.blue_desired),
            self.alternate: TaskSet(self.alternate, state.running_revision, 0),
        }
        resuming = plan.resume
        for old in plan.supersede:  # cannot happen unless records were edited by hand
            self.records.save(m.step(old, m.StopRequest(False, "superseded"), self.clock.now())[0])
        for t in adopted:
            if t.task_id in plan.blue:
                self.sets[self.primary].tasks[t.task_id] = t
            elif t.task_id in plan.green:
                self.sets[self.alternate].tasks[t.task_id] = t
        for task_id in plan.stop:
            await self.backend.stop_task(task_id, 5.0)
        await self._ensure_set(self.sets[self.primary], self._definition(state.running_revision), "blue")
        if resuming is not None:
            await self._recover(resuming)
        else:
            # No deployment owns the alternate group: nothing should run there.
            # Traffic leaves it before its tasks do (a stop without rollback
            # left some there), or those requests would get 503s.
            await self._route_all_to(self.primary)
            await self._stop_set(self.sets[self.alternate])
        self._scraper = asyncio.create_task(self._scrape_loop())
        self._note(None, "service", f"{self.name}: revision {state.running_revision} running in "
                   f"{self.primary} ({len(self.sets[self.primary].running())} tasks)")

    def _finish_promotion(self, latest: Deployment) -> None:
        """See machine.restart_plan: a deployment that was SUCCESSFUL but not promoted."""
        self._run_in_alternate(latest.target_revision)
        self._note(latest.id, "recovery", f"deployment {latest.id} was SUCCESSFUL but not promoted when the "
                   f"controller stopped: revision {latest.target_revision} is now running in {self.primary}")

    async def stop(self, stop_tasks: bool = True, deregister: bool = False) -> None:
        """`deregister`: take the tasks out of their target groups (drained)
        before stopping them, for a load balancer that outlives the controller."""
        self._stopping = True
        for t in [self._runner, self._scraper, *self._tasks]:
            if t is not None:
                t.cancel()
        for t in [self._runner, self._scraper, *self._tasks]:
            if t is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        await self.writer.close()
        if stop_tasks and deregister:
            await asyncio.gather(*[self._deregister_all(ts) for ts in self.sets.values()])
        await self.backend.close(stop_tasks=stop_tasks)
        if self._session is not None:
            await self._session.close()

    # -- rules and weights -----------------------------------------------------

    async def _resolve_rules(self) -> None:
        """Rules may be named by id (`prod/default`) or by the RuleArn in the config."""
        rules = await self.router.rules()
        by_arn = {arn: rid for rid, arn in rules.items() if arn}

        def resolve(ref: str) -> str:
            if ref in rules:
                return ref
            if ref in by_arn:
                return by_arn[ref]
            raise RouterError(f"no listener rule {ref!r} on the load balancer (rules: {', '.join(rules)})")

        self.production_rule = resolve(self.production_rule)
        self.test_rules = [resolve(r) for r in self.test_rules]

    def rules_of(self, kind: str) -> list[str]:
        if kind == "production":
            return [self.production_rule]
        if kind == "test":
            return list(self.test_rules)
        return [self.production_rule, *self.test_rules]

    async def _set_percent(self, kind: str, green_percent: float, green_group: str, blue_group: str) -> None:
        blue_w, green_w = weights(green_percent)
        await self._set_weights(kind, {blue_group: blue_w, green_group: green_w})

    async def _set_weights(self, kind: str, want: dict[str, int]) -> None:
        for rule in self.rules_of(kind):
            await self._set_weights_of(rule, want)

    async def _set_weights_of(self, rule: str, want: dict[str, int]) -> None:
        """Set one rule and read it back (lbsync.WeightWriter: retried, and
        the latest change asked for is the one left in force)."""
        await self.writer.write(rule, want)

    async def _route_all_to(self, group: str) -> None:
        other = self.groups[1] if group == self.groups[0] else self.groups[0]
        await self._set_percent("all", 100.0, group, other)

    # -- task sets (the service scheduler) --------------------------------------

    def _definition(self, revision: str) -> TaskDefinition:
        spec = TaskDefinitionSpec.model_validate(self.state.revisions[revision])
        return TaskDefinition(
            revision=revision, command=tuple(spec.command), env=dict(spec.environment), image=spec.image,
            container_port=spec.containerPort, stop_timeout=spec.stopTimeout / max(self.time_scale, 1.0),
            cpu=spec.cpu, memory=spec.memory,
        )

    async def _start_one(self, ts: TaskSet, definition: TaskDefinition, colour: str,
                         deployment_id: str | None) -> Task | None:
        """Start one task into `ts`; None when the set no longer wants it."""
        task = await self.backend.start_task(
            self.name, definition, colour, deployment_id,
            {"SHIFTLAB_TARGET_GROUP": ts.group},
        )
        if task.state == RUNNING and (definition.revision != ts.revision or len(ts.running()) >= ts.desired):
            # The set was stopped, shrunk or moved to another revision while
            # this task started (a start takes a second with Docker, and a
            # rollback does not wait for it): it would run on unowned.
            await self.backend.stop_task(task.task_id, 1.0)
            return None
        ts.tasks[task.task_id] = task
        if task.state == RUNNING:
            self._registering.add(task.task_id)
            try:
                await self.router.register(ts.group, [(task.host, task.port)])
            finally:
                self._registering.discard(task.task_id)
        return task

    async def _ensure_set(self, ts: TaskSet, definition: TaskDefinition, colour: str,
                          deployment_id: str | None = None) -> list[Task]:
        """Start tasks until `desired` run; returns the ones that failed to start."""
        async with ts.lock:
            failed: list[Task] = []
            missing = ts.desired - len(ts.running())
            if missing > 0:
                started = await asyncio.gather(*[self._start_one(ts, definition, colour, deployment_id)
                                                 for _ in range(missing)])
                failed = [t for t in started if t is not None and t.state != RUNNING]
            # Targets adopted from a previous controller may not be registered.
            running = ts.running()
            if running:
                await self.router.register(ts.group, [(t.host, t.port) for t in running])
            return failed

    async def _replenish(self, ts: TaskSet, deployment_id: str | None) -> None:
        """The service scheduler's pass over one set: start what it misses. A
        green task that fails to start counts against the circuit breaker."""
        green = ts.group == self.alternate
        failed = await self._ensure_set(ts, self._definition(ts.revision), "green" if green else "blue",
                                        deployment_id if green else None)
        for t in failed:
            ts.tasks.pop(t.task_id, None)
            if green:
                self._feed(m.TaskFailed(t.task_id, t.stopped_reason or "failed to start"))

    async def _all_healthy(self, ts: TaskSet) -> bool:
        """`desired` tasks run and every one passes its target health check."""
        running = ts.running()
        if not running or len(running) < ts.desired:
            return False
        health = await self.router.target_health(ts.group)
        return all(health.get(target_id(t.host, t.port)) == "healthy" for t in running)

    async def _wait_healthy(self, ts: TaskSet, timeout: float) -> bool:
        deadline = self.clock.now() + timeout
        while not await self._all_healthy(ts):
            if self.clock.now() >= deadline:
                return False
            await self.clock.sleep(0.1)
        return True

    async def _stop_set(self, ts: TaskSet, keep: int = 0) -> None:
        """Deregister (drain), then stop all tasks of a set but `keep`."""
        ts.desired = keep
        victims = ts.running()[keep:] if keep else list(ts.tasks.values())
        for t in victims:  # out of the set first: nothing re-registers a task on its way out
            ts.tasks.pop(t.task_id, None)
        live = [t for t in victims if t.state == RUNNING]
        if live:
            with contextlib.suppress(RouterError):
                await self.router.deregister(ts.group, [(t.host, t.port) for t in live])
            await self._wait_drained(ts.group, [target_id(t.host, t.port) for t in live])
        await asyncio.gather(*[self.backend.stop_task(t.task_id, self._definition_timeout(t)) for t in live])

    async def _deregister_all(self, ts: TaskSet) -> None:
        live = ts.running()
        if not live:
            return
        with contextlib.suppress(RouterError):
            await self.router.deregister(ts.group, [(t.host, t.port) for t in live])
            await self._wait_drained(ts.group, [target_id(t.host, t.port) for t in live])

    def _definition_timeout(self, task: Task) -> float:
        spec = self.state.revisions.get(task.revision, {})
        return float(spec.get("stopTimeout", 30)) / max(self.time_scale, 1.0)

    async def _wait_drained(self, group: str, ids: list[str]) -> None:
        """Until the proxy has finished draining (it ends a drain early when idle)."""
        delay = self.settings.drain_seconds.get(group, 300 / self.time_scale)
        deadline = self.clock.now() + delay + 1.0
        while self.clock.now() < deadline:
            try:
                health = await self.router.target_health(group)
            except RouterError:
                return
            if not any(i in health for i in ids):
                return
            await self.clock.sleep(0.05)

    def _on_task_change(self, task: Task) -> None:
        """Backend callback: a task changed state (an exit is what matters)."""
        if self._stopping or task.state != STOPPED:
            return
        for ts in self.sets.values():
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
            self._note(self.current.id if self.current else None, "task",
                       f"task {task.task_id} in {ts.group} stopped: {reason}")
            self._spawn(self._after_exit(ts, task, reason))
            return

    async def _after_exit(self, ts: TaskSet, task: Task, reason: str) -> None:
        with contextlib.suppress(RouterError):
            await self.router.deregister(ts.group, [(task.host, task.port)])
        ts.tasks.pop(task.task_id, None)
        d = self.current
        green = ts.group == self.alternate
        if green and d is not None and not d.final:
            self._feed(m.TaskFailed(task.task_id, reason))
        if ts.desired > len(ts.running()) and not self._stopping:
            # The service scheduler replaces a task that exits.
            await self._replenish(ts, d.id if d else None)

    # -- deployments -------------------------------------------------------------

    def new_revision(self, overrides: dict[str, Any]) -> str:
        """Register a task definition revision: the running one with overrides applied."""
        base = dict(self.state.revisions[self.state.running_revision])
        for key in ("command", "environment", "image", "containerPort", "stopTimeout", "cpu", "memory"):
            if key in overrides and overrides[key] is not None:
                base[key] = overrides[key]
        if overrides.get("env"):
            base["environment"] = {**base.get("environment", {}), **overrides["env"]}
        spec = TaskDefinitionSpec.model_validate(base)
        rev = str(self.state.next_revision)
        self.state.revisions[rev] = spec.model_dump()
        self.state.next_revision += 1
        self.records.save_service(self.state)
        return rev

    def create_deployment(self, overrides: dict[str, Any], config: DeploymentConfiguration | None = None) -> Deployment:
        if self.current is not None and not self.current.final:
            raise DeploymentConflict(f"deployment {self.current.id} is {self.current.status}; "
                                     "stop it first (shiftlab stop)")
        dc = config or self.settings.deployment
        rev = self.new_revision(overrides)
        d = m.Deployment(
            id=uuid.uuid4().hex[:20], service=self.name, config=dc.model_dump(mode="json"),
            time_scale=self.time_scale, desired_count=self.service.desiredCount,
            source_revision=self.state.running_revision, target_revision=rev, created_at=self.clock.now(),
            has_test_rules=bool(self.test_rules),
        )
        self.records.save(d)
        self._note(d.id, "status", f"{m.PENDING}: revision {d.source_revision} -> {rev} ({dc.strategy})")
        self._begin(d)
        return d

    def _begin(self, d: Deployment) -> None:
        self.current = d
        self._queue = asyncio.Queue()
        self._runner = asyncio.create_task(self._run(d))

    async def _run(self, d: Deployment, resume: bool = False) -> None:
        assert self._queue is not None
        self._spawn(self._watch_green(d.id))
        if not resume:
            await self._apply(m.Start(dict(self.alarm_states)))
        while self.current is not None and not self.current.final:
            wake = self._next_wake(self.current)
            try:
                timeout = None if wake is None else max(0.0, wake - self.clock.now())
                if timeout is None:
                    event = await self._queue.get()
                else:
                    event = await self._wait_event(timeout)
            except asyncio.CancelledError:
                raise
            await self._apply(event)

    async def _wait_event(self, timeout: float) -> m.Event:
        assert self._queue is not None
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            done, _ = await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        return m.Tick()

    @staticmethod
    def _next_wake(d: Deployment) -> float | None:
        times = [t for t in (d.wake_at,
                             d.hook.next_call_at if d.hook else None,
                             d.hook.timeout_at if d.hook else None) if t is not None]
        return min(times) if times else None

    def _feed(self, event: m.Event) -> None:
        if self._queue is not None and self.current is not None and not self.current.final:
            self._queue.put_nowait(event)

    async def _apply(self, event: m.Event) -> None:
        assert self.current is not None
        d, actions = m.step(self.current, event, self.clock.now())
        self.current = d
        self.records.save(d)  # before any action of this transition starts
        self._progress.set()
        self._progress = asyncio.Event()
        for a in actions:
            if isinstance(a, m.Note):
                self._note(d.id, a.kind, a.message)
        for a in actions:
            if not isinstance(a, m.Note | m.WakeAt):
                await self._perform(d, a)
        self._publish({"type": "deployment", "deployment": self.describe(d)})

    async def _perform(self, d: Deployment, action: m.Action) -> None:
        if isinstance(action, m.Promote):
            self._promote(d)
        else:
            self._spawn(self._carry_out(d, action))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _carry_out(self, d: Deployment, action: m.Action) -> None:
        try:
            event = await self._outcome(d, action)
        except RouterError as exc:
            event = self._failure_event(action, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the deployment moving to a defined end
            log.exception("action %s failed", action)
            event = self._failure_event(action, f"{type(exc).__name__}: {exc}")
        if event is not None:
            self._feed(event)

    @staticmethod
    def _failure_event(action: m.Action, error: str) -> m.Event | None:
        if isinstance(action, m.SetWeights):
            return m.WeightsApplied(action.kind, action.percent, ok=False, error=error)
        if isinstance(action, m.ScaleUpGreen):
            return m.GreenReady(ok=False, error=error)
        if isinstance(action, m.RollingReplace):
            return m.RollingDone(ok=False, error=error)
        if isinstance(action, m.StopTasks):
            return m.TasksStopped(action.colour, ok=False, error=error)
        if isinstance(action, m.Reconcile):
            return m.Reconciled(ok=False, error=error)
        if isinstance(action, m.InvokeHook):
            return m.HookAnswer(action.execution_id, "FAILED", error=error)
        return None

    async def _outcome(self, d: Deployment, action: m.Action) -> m.Event | None:
        green, blue = self.sets[self.alternate], self.sets[self.primary]
        if isinstance(action, m.Reconcile):
            await self._route_all_to(self.primary)  # before green's tasks go: see start()
            await self._stop_set(green)
            return m.Reconciled(ok=True)
        if isinstance(action, m.ScaleUpGreen):
            return await self._scale_up(d, green, action.count)
        if isinstance(action, m.RollingReplace):
            self._replacement = asyncio.current_task()
            return await self._rolling(d, blue, green)
        if isinstance(action, m.SetWeights):
            await self._set_percent(action.kind, action.percent, green.group, blue.group)
            return m.WeightsApplied(action.kind, action.percent, ok=True)
        if isinstance(action, m.StopTasks):
            if action.colour == "blue":
                await self._stop_set(blue)
            else:
                if d.dc.strategy == "ROLLING":
                    # Restore blue's count before green goes, once the replacement
                    # has stopped changing the sets and the weights.
                    await self._replacement_over()
                    blue.desired = d.desired_count
                    await self._ensure_set(blue, self._definition(blue.revision), "blue")
                    timeout = self.settings.runtime.taskStartTimeoutSeconds
                    if not await self._wait_healthy(blue, timeout):
                        return m.TasksStopped(action.colour, ok=False, error=(
                            f"blue (revision {blue.revision}) did not get back to {d.desired_count} healthy tasks "
                            f"within {timeout:g} s ({len(blue.running())} running); green left running and serving"))
                    await self._set_percent("all", 0.0, green.group, blue.group)
                await self._stop_set(green)
            return m.TasksStopped(action.colour, ok=True)
        if isinstance(action, m.InvokeHook):
            return await self._invoke_hook(d, action)
        if isinstance(action, m.ReplaceTask):
            await self._replace_task(action)
        return None

    async def _scale_up(self, d: Deployment, green: TaskSet, count: int) -> m.Event:
        green.revision = d.target_revision
        green.desired = count
        error = await self._bring_up(d, green)
        if error is not None:
            return m.GreenReady(ok=False, error=error)
        return m.GreenReady(ok=True, running=len(green.running()))

    def _in_progress(self, deployment_id: str) -> bool:
        d = self.current
        return d is not None and d.id == deployment_id and not d.final and not d.rolling_back

    async def _bring_up(self, d: Deployment, ts: TaskSet) -> str | None:
        """Until `ts.desired` tasks run and pass their target health checks:
        None then, else why not. A task that fails to start is counted and
        started again; one the load balancer reports unhealthy is counted and
        replaced by _watch_green meanwhile. The circuit breaker (when enabled)
        ends this at its threshold; taskStartTimeoutSeconds ends it anyway."""
        timeout = self.settings.runtime.taskStartTimeoutSeconds
        deadline = self.clock.now() + timeout
        while True:
            if len(ts.running()) < ts.desired:
                await self._replenish(ts, d.id)
            if not self._in_progress(d.id):
                return "deployment ended"
            if await self._all_healthy(ts):
                return None
            if self.clock.now() >= deadline:
                running = ts.running()
                if len(running) < ts.desired:
                    return f"{ts.desired - len(running)} of {ts.desired} tasks did not start within {timeout:g} s"
                return f"tasks not healthy within {timeout:g} s"
            await self.clock.sleep(BRING_UP_INTERVAL)

    async def _watch_green(self, deployment_id: str) -> None:
        """Until the deployment ends (or rolls back): green tasks the load
        balancer reports unhealthy go to the machine (which counts and
        replaces them, see machine.TaskUnhealthy); after SCALE_UP (where
        _bring_up does it: one start loop is enough), a green set short of
        its count (a replacement that failed to start) is filled again."""
        while self._in_progress(deployment_id):
            d = self.current
            assert d is not None
            if d.stage not in (None, m.RECONCILE_SERVICE, m.PRE_SCALE_UP):
                green = self.sets[self.alternate]
                try:
                    await self._report_unhealthy(green)
                    if (d.stage != m.SCALE_UP and len(green.running()) < green.desired
                            and self._in_progress(deployment_id)):
                        await self._replenish(green, deployment_id)
                except asyncio.CancelledError:
                    raise
                except RouterError as exc:
                    log.warning("cannot read green's target health: %s", exc)
                except Exception:
                    log.exception("watching green's target health failed")
            await self.clock.sleep(HEALTH_WATCH_INTERVAL)

    async def _report_unhealthy(self, ts: TaskSet) -> None:
        """Green tasks the load balancer reports unhealthy, for the machine to
        count and replace (machine.TaskUnhealthy)."""
        health = await self.router.target_health(ts.group)
        grace = float(self.service.healthCheckGracePeriodSeconds)
        for t in ts.running():
            if health.get(target_id(t.host, t.port)) == "unhealthy":
                self._feed(m.TaskUnhealthy(t.task_id, t.started_at, grace))

    async def _replace_task(self, action: m.ReplaceTask) -> None:
        """Out of its set (once: a second ReplaceTask finds it gone), out of
        its target group, stopped; the scheduler fills the gap."""
        ts = self.sets[self.alternate]
        task = ts.tasks.pop(action.task_id, None)
        if task is None:
            return
        with contextlib.suppress(RouterError):
            await self.router.deregister(ts.group, [(task.host, task.port)])
        await self.backend.stop_task(task.task_id, 1.0)

    async def _rolling(self, d: Deployment, blue: TaskSet, green: TaskSet) -> m.Event:
        """ROLLING: replace blue tasks by green ones within minimumHealthyPercent
        and maximumPercent. On ECS old and new tasks share one target group;
        here each set has its group, so the weights follow the number of
        healthy tasks in each: traffic per task stays even, as on ECS. New
        tasks that fail are counted and replaced, as in a blue/green scale-up."""
        dc = d.dc
        green.revision = d.target_revision
        if green.running():  # adopted by a restarted controller: healthy before blue goes
            green.desired = len(green.running())
            error = await self._bring_up(d, green)
            if error is not None:
                return m.RollingDone(ok=False, error=f"adopted new tasks: {error}")
        want_green = len(green.running())
        plan = rolling_plan(d.desired_count, dc.minimumHealthyPercent, dc.maximumPercent,
                            blue=min(len(blue.running()), d.desired_count), green=want_green)
        for batch in plan:
            if not self._in_progress(d.id):
                return m.RollingDone(ok=False, error="deployment ended")
            if batch.stop_blue:
                keep = max(0, len(blue.running()) - batch.stop_blue)
                await self._weights_by_tasks(blue, green, blue_count=keep)  # traffic off them first
                await self._stop_set(blue, keep=keep)
            if batch.start_green:
                # The batches' total, not running + batch: a task being replaced must not shrink it.
                want_green += batch.start_green
                green.desired = want_green
                error = await self._bring_up(d, green)
                if error is not None:
                    return m.RollingDone(ok=False, error=error)
                await self._weights_by_tasks(blue, green)
        return m.RollingDone(ok=True)

    async def _replacement_over(self) -> None:
        """Until the ROLLING replacement returned (it stops at its next batch
        once the deployment rolls back)."""
        task = self._replacement
        if task is not None and task is not asyncio.current_task() and not task.done():
            await asyncio.wait({task})

    async def _weights_by_tasks(self, blue: TaskSet, green: TaskSet, blue_count: int | None = None) -> None:
        d = self.current
        if d is not None and (d.final or d.rolling_back):
            return  # the rollback owns the weights now
        b = len(blue.running()) if blue_count is None else blue_count
        g = len(green.running())
        if b + g == 0:
            return  # minimumHealthyPercent 0 allows a gap; ALB needs one weight above 0
        await self._set_weights("all", {blue.group: b, green.group: g})
        pct = round(100.0 * g / (b + g), 4)
        if d is not None:
            self._note(d.id, "weights", f"all traffic: {pct:g}% green ({b} blue, {g} green tasks)")
            self._feed(m.GreenServing(pct))

    async def _invoke_hook(self, d: Deployment, action: m.InvokeHook) -> m.Event:
        hook = d.dc.lifecycleHooks[action.hook_index]
        body = hook_calls.payload(
            action.execution_id, action.stage, self.service_arn, self.revision_arn(d.target_revision),
            self.revision_arn(d.source_revision), action.production_percent, action.test_percent,
            action.hook_details,
        )
        assert self._session is not None and hook.hookTargetArn
        began = time.monotonic()
        answer = await hook_calls.invoke(self._session, hook.hookTargetArn, body, HOOK_CALL_TIMEOUT, self.clock)
        answer = dataclasses.replace(answer, call_seconds=round(time.monotonic() - began, 3))
        self._note(d.id, "hook", f"{action.stage}: {hook.hookTargetArn} answered {answer.status} "
                   f"in {answer.call_seconds:g} s" + (f" ({answer.error})" if answer.error else ""))
        return answer

    def _run_in_alternate(self, revision: str) -> None:
        """The service's record: `revision` runs in the alternate group, which becomes primary."""
        self.state.primary_group = self.alternate
        self.state.running_revision = revision
        self.records.save_service(self.state)

    def _promote(self, d: Deployment) -> None:
        old, new = self.primary, self.alternate
        self._run_in_alternate(d.target_revision)
        self.sets[new].desired = d.desired_count
        self.sets[old].desired = 0
        self._note(d.id, "service", f"revision {d.target_revision} is now running in {new}")

    def stop_deployment(self, deployment_id: str, rollback: bool) -> Deployment:
        d = self._current_or_raise(deployment_id)
        self._feed(m.StopRequest(rollback=rollback))
        return d

    def approve(self, deployment_id: str) -> Deployment:
        d = self._current_or_raise(deployment_id)
        if d.hook is None or d.hook.kind != "PAUSE":
            raise DeploymentConflict(f"deployment {d.id} is not waiting for approval")
        self._feed(m.Approve())
        return d

    def _current_or_raise(self, deployment_id: str) -> Deployment:
        d = self.current
        if d is None or d.final or deployment_id not in (d.id, "current"):
            raise DeploymentConflict(f"deployment {deployment_id} is not in progress")
        return d

    async def wait_finished(self, deployment_id: str, timeout: float | None = None) -> Deployment:
        """The deployment once final; TimeoutError after `timeout` seconds of the clock."""
        async def until_final() -> Deployment:
            while True:
                progress = self._progress
                d = self.current if self.current and self.current.id == deployment_id else self.records.get(
                    deployment_id)
                if d is None:
                    raise KeyError(deployment_id)
                if d.final:
                    return d
                await progress.wait()

        return await clock_wait_for(self.clock, until_final(), timeout)

    # -- crash recovery --------------------------------------------------------

    async def _recover(self, d: Deployment) -> None:
        """A deployment the previous controller did not finish (the rule is
        the state machine's, see machine.Recover). The weights the record says
        are in force are applied again first: the proxy may have restarted."""
        green = self.sets[self.alternate]
        green.revision = d.target_revision
        plan = m.recovery_plan(d)
        if d.dc.strategy == "ROLLING" and d.status != m.PENDING:
            # ROLLING's weights follow the task counts: those adopted. Green
            # grows to desiredCount only once the replacement was over; mid-way
            # the replacement (or the rollback) goes on from what runs.
            replaced = d.stage in (m.BAKE_TIME, m.CLEAN_UP) and not d.rolling_back
            green.desired = d.desired_count if replaced and plan == "resume" else len(green.running())
            await self._ensure_set(green, self._definition(d.target_revision), "green", d.id)
            await self._weights_by_tasks(self.sets[self.primary], green)
            applied = (f"weights re-applied by task counts ({len(self.sets[self.primary].running())} blue, "
                       f"{len(green.running())} green)")
        else:
            await self._set_percent("production", d.production_percent, green.group, self.primary)
            if self.test_rules:
                await self._set_percent("test", d.test_percent, green.group, self.primary)
            if plan == "resume":
                green.desired = d.desired_count
                await self._ensure_set(green, self._definition(d.target_revision), "green", d.id)
            applied = f"weights re-applied: production {d.production_percent:g}% green"
        self._note(d.id, "recovery", f"controller restarted during {d.stage} ({d.status}); {applied}")
        self.current = d
        self._queue = asyncio.Queue()
        self._queue.put_nowait(m.Recover(dict(self.alarm_states)))
        self._runner = asyncio.create_task(self._run(d, resume=True))

    # -- metrics and alarms --------------------------------------------------------

    def _scrape_interval(self) -> float:
        periods = [ev.period for ev in self.evaluators.values()]
        return min([0.5, *(p / 5 for p in periods)]) if periods else 0.5

    async def _scrape_loop(self) -> None:
        interval = max(self._scrape_interval(), 0.05)
        next_check = 0.0
        while True:
            try:
                if self.clock.now() >= next_check:
                    next_check = self.clock.now() + LB_CHECK_INTERVAL
                    await self._check_load_balancer()
                snap = await self.router.stats()
                now = self.clock.now()
                self.store.add(snap, now)
                self._evaluate(now)
                self._publish_metrics(snap, now)
            except RouterError as exc:
                log.warning("cannot read the load balancer's stats: %s", exc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("metrics scrape failed")
            await self.clock.sleep(interval)

    async def _check_load_balancer(self) -> None:
        """Keep the load balancer as the records say. A proxy that restarted
        comes back with its config's weights and no targets: put back the
        weights in force and register the running tasks again."""
        for kind in ("production", "test"):
            for rule in self.rules_of(kind):
                if self._wanted_weights(kind, self.current) is None:
                    continue  # the deployment is setting weights itself right now
                back = await self.router.weights(rule)
                # Decided again after the read, right before the write: the
                # deployment may have moved on (or started moving weights) meanwhile.
                d = self.current
                want = self._wanted_weights(kind, d)
                if want is None or {k: back.get(k, 0) for k in want} == want:
                    continue
                self._note(d.id if d is not None and not d.final else None, "recovery",
                           f"{rule} had {back} instead of {want} (load balancer restarted?): set again")
                with contextlib.suppress(Superseded):  # the deployment wants other weights now: its own write goes on
                    await self._set_weights_of(rule, want)
        d = self.current
        in_progress = d is not None and not d.final
        for ts in list(self.sets.values()):
            # Only tasks registered before the read can be missing from it.
            registered = [t for t in ts.running() if t.task_id not in self._registering]
            health = await self.router.target_health(ts.group)
            missing = [t for t in registered if target_id(t.host, t.port) not in health]
            if missing:
                self._note(d.id if in_progress and d else None, "recovery",
                           f"{len(missing)} task(s) missing from {ts.group} (load balancer restarted?): registered")
                await self.router.register(ts.group, [(t.host, t.port) for t in missing])

    def _wanted_weights(self, kind: str, d: Deployment | None) -> dict[str, int] | None:
        """By target group, the weights machine.wanted_weights wants on rules of `kind`."""
        wanted = m.wanted_weights(d)
        if wanted is None:
            return None
        b, g = weights(wanted[kind])
        return {self.primary: b, self.alternate: g}

    def _evaluate(self, now: float) -> None:
        changed = False
        for name, ev in self.evaluators.items():
            result = ev.evaluate(self.store, now)
            self.alarm_reasons[name] = result.reason
            if self.alarm_states.get(name) != result.state:
                changed = True
                self.alarm_states[name] = result.state
        if changed or self.current is not None:
            self._feed(m.AlarmStates(dict(self.alarm_states)))

    def _publish_metrics(self, snap: dict[str, Any], now: float) -> None:
        """A metrics frame for the live views: rates over the last ~2 s (one
        scrape apart is too noisy to read), at most four frames a second."""
        self._recent.append(snap)
        while len(self._recent) > 2 and snap["timestamp"] - self._recent[1]["timestamp"] >= RATE_WINDOW:
            self._recent.popleft()
        if now - self.last_metrics.get("at", 0.0) < FRAME_INTERVAL:
            return
        prev = self._recent[0] if len(self._recent) > 1 else None
        groups = {}
        for name, g in snap.get("targetGroups", {}).items():
            row = {"healthy": g.get("HealthyHostCount", 0), "unhealthy": g.get("UnHealthyHostCount", 0)}
            if prev is not None:
                p = prev["targetGroups"].get(name, {})
                dt = max(snap["timestamp"] - prev["timestamp"], 1e-6)
                req = g.get("RequestCount", 0) - p.get("RequestCount", 0)
                err = (g.get("HTTPCode_Target_5XX_Count", 0) - p.get("HTTPCode_Target_5XX_Count", 0)
                       + g.get("HTTPCode_ELB_5XX_Count", 0) - p.get("HTTPCode_ELB_5XX_Count", 0))
                row.update({"rps": round(max(req, 0) / dt, 2), "errorsPerSecond": round(max(err, 0) / dt, 2),
                            "p99": _p99(snap, prev, name)})
            groups[name] = row
        self.last_metrics = {"at": now, "groups": groups}
        self._publish({"type": "metrics", "at": now, "groups": groups, "alarms": self.alarms_view()})

    def alarms_view(self) -> list[dict[str, Any]]:
        return [{"AlarmName": n, "StateValue": self.alarm_states.get(n, "INSUFFICIENT_DATA"),
                 "StateReason": self.alarm_reasons.get(n, "")} for n in self.evaluators]

    # -- events out ---------------------------------------------------------------

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _publish(self, message: dict[str, Any]) -> None:
        for cb in list(self._subscribers):
            try:
                cb(message)
            except Exception:
                log.exception("event subscriber failed")

    def _note(self, deployment_id: str | None, kind: str, message: str) -> None:
        ev = self.records.event(deployment_id, kind, message, at=self.clock.now())
        log.info("%s%s", f"[{deployment_id[:8]}] " if deployment_id else "", message)
        self._publish({"type": "event", "event": ev})

    # -- describing (controller.describe) ---------------------------------------------

    @property
    def service_arn(self) -> str:
        return describing.service_arn(self)

    def revision_arn(self, revision: str) -> str:
        return describing.revision_arn(self, revision)

    def describe(self, d: Deployment) -> dict[str, Any]:
        return describing.describe(self, d)

    def service_view(self) -> dict[str, Any]:
        return describing.service_view(self)


Deployment = m.Deployment


class DeploymentConflict(Exception):
    """A request that the current deployment's state does not allow."""


def _p99(snap: dict[str, Any], prev: dict[str, Any], group: str) -> float | None:
    bounds = snap.get("responseTimeBuckets") or []
    now_b = snap["targetGroups"].get(group, {}).get("TargetResponseTime", {}).get("buckets")
    old_b = prev["targetGroups"].get(group, {}).get("TargetResponseTime", {}).get("buckets")
    if not now_b or not old_b or not bounds:
        return None
    delta = [a - b for a, b in zip(now_b, old_b, strict=False)]
    total = sum(delta)
    if total <= 0:
        return None
    rank, seen = 0.99 * total, 0
    for i, n in enumerate(delta):
        seen += n
        if seen >= rank:
            return bounds[min(i, len(bounds) - 1)]
    return bounds[-1]
