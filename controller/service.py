"""One service under the controller: its life cycle (adopt what a previous
controller left, start, stop), its record (which revision runs in which
group), the deployments asked of it, and the events it publishes.

The work is split by concern, each part holding this object for what the
service shares (settings, records, task sets, clock):
- runner.DeploymentRunner: feeds the state machine and carries out its actions;
- scheduler.Scheduler: the task sets (ECS's service scheduler);
- monitor.Monitor: metrics and alarms (CloudWatch's part);
- lbsync.LoadBalancerSync: the rules' weights, and the load balancer kept as the records say.
Traffic moves only through the Router; tasks only through the Backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from shiftlab.common.naming import target_group_name
from shiftlab.controller import describe as describing
from shiftlab.controller import eventbridge, eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.alarms import AlarmEvaluator, MetricAlarm
from shiftlab.controller.backends.base import RUNNING, Backend
from shiftlab.controller.clock import Clock, RealClock
from shiftlab.controller.clock import wait_for as clock_wait_for
from shiftlab.controller.config import ControllerRuntime, DeploymentConfiguration, ServiceConfig, TaskDefinitionSpec
from shiftlab.controller.lbsync import LoadBalancerSync
from shiftlab.controller.monitor import Monitor
from shiftlab.controller.records import Records, ServiceState
from shiftlab.controller.rolling import alarm_bake_minutes
from shiftlab.controller.router import Router
from shiftlab.controller.runner import DeploymentRunner
from shiftlab.controller.scheduler import Scheduler, TaskSet
from shiftlab.controller.usage import UsageCollector, sampler_for

log = logging.getLogger("shiftlab.controller")

Deployment = m.Deployment

# A headless service's two task sets (it has no target groups to name them after).
HEADLESS_SETS = ("tasks-a", "tasks-b")


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
    # Stand-ins for the Lambda functions hooks name (the `lambdaFunctions`
    # section): function ARN or name -> config.LambdaFunction.
    lambda_functions: dict[str, Any] = field(default_factory=dict)
    # The `prometheus` section (controller.promscrape.PrometheusConfig): what to scrape from the tasks.
    prometheus: Any = None
    # The load balancer's Type (loadBalancer.Type): "network" adds ECS's delay to traffic shifts.
    load_balancer_type: str = "application"
    # A LINEAR deployment's steps across weighted DNS records (route53.TrafficShift):
    # [(green percent, bake minutes), ...], instead of linearConfiguration's.
    dns_schedule: list[tuple[float, float]] | None = None

    def plan_fields(self, dc: DeploymentConfiguration) -> dict[str, Any]:
        """What a new deployment of `dc` takes from this service beside its
        configuration (m.Deployment's fields): ECS's delay on an NLB's traffic
        shifts, the weighted DNS records' schedule, ROLLING's bake derived from
        the alarms. The controller and `shiftlab simulate` both use it, so a
        simulation plans what a rehearsal would."""
        schedule = ([[p, mins] for p, mins in self.dns_schedule]
                    if dc.strategy == "LINEAR" and self.dns_schedule is not None else None)
        bake = (alarm_bake_minutes((a.plan.period, a.EvaluationPeriods) for a in self.alarms
                                   if a.AlarmName in dc.alarms.alarmNames)
                if dc.strategy == "ROLLING" and dc.alarms.enable else 0.0)
        delay = m.NLB_SHIFT_DELAY_MINUTES if self.load_balancer_type == "network" and dc.strategy != "ROLLING" else 0.0
        return {"shift_delay_minutes": delay, "schedule": schedule, "alarm_bake_minutes": bake}


class DeploymentConflict(Exception):
    """A request that the current deployment's state does not allow."""


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
        self.time_scale = settings.time_scale
        if settings.service.exposure == "headless":
            # Headless: no target groups; blue and green are two task sets
            # that take turns as primary, whatever the strategy (the Router
            # is router.NoLoadBalancer: no rules, so no weights to write).
            self.single_group = False
            self.groups = HEADLESS_SETS
        else:
            lb = settings.service.lb
            primary = target_group_name(lb.targetGroupArn)
            # ROLLING without advancedConfiguration: old and new tasks share the
            # service's one target group; the new ones are a set of their own
            # (this key) until they are promoted into the primary set.
            self.single_group = lb.advancedConfiguration is None
            self.groups = (primary, f"{primary} (new tasks)" if lb.advancedConfiguration is None
                           else target_group_name(lb.advancedConfiguration.alternateTargetGroupArn))
        self.state: ServiceState
        self.sets: dict[str, TaskSet] = {}
        self.session: aiohttp.ClientSession | None = None  # for URL hooks
        self.stopping = False
        self._background: set[asyncio.Task[Any]] = set()
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._monitoring: asyncio.Task[None] | None = None
        # Environment every task gets unless its definition sets the name (the CloudWatch endpoint).
        self.task_env: dict[str, str] = {}
        # Environment command hooks get besides the controller's own (the API's URL: controller.activation).
        self.hook_env: dict[str, str] = {}
        # Host names every task resolves (docker backend): Service Connect's aliases.
        self.task_hosts: dict[str, str] = {}
        self.lb = LoadBalancerSync(self)
        self.scheduler = Scheduler(self)
        self.monitor = Monitor(self)
        # Task CPU and memory (AWS/ECS, ECS/ContainerInsights) from the backend's sampler, if it has one.
        self.usage = UsageCollector(self, sampler_for(backend))
        # ECS's and CloudWatch's events, EventBridge-shaped, to controller.eventTargets (never blocking).
        self.events_out = eventbridge.EventDelivery(settings.runtime.eventTargets, Path())
        self.runner = DeploymentRunner(self)

    # -- what the API, the views and the CLI read --------------------------------

    @property
    def current(self) -> Deployment | None:
        """The deployment this controller runs or ran last."""
        return self.runner.current

    @property
    def primary(self) -> str:
        return self.state.primary_group

    @property
    def alternate(self) -> str:
        a, b = self.groups
        return b if self.state.primary_group == a else a

    @property
    def target_groups(self) -> list[str]:
        """The load balancer's target groups the service's tasks join."""
        return [self.groups[0]] if self.single_group else list(self.groups)

    @property
    def production_rule(self) -> str:
        return self.lb.production_rule

    @property
    def test_rules(self) -> list[str]:
        return self.lb.test_rules

    def rules_of(self, kind: str) -> list[str]:
        return self.lb.rules_of(kind)

    @property
    def evaluators(self) -> dict[str, AlarmEvaluator]:
        return self.monitor.evaluators

    @property
    def last_metrics(self) -> dict[str, Any]:
        return self.monitor.last_metrics

    def alarms_view(self) -> list[dict[str, Any]]:
        return self.monitor.alarms_view()

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Adopt what a previous controller left (machine.restart_plan), then
        bring blue to its desired count."""
        self.session = aiohttp.ClientSession()
        self.events_out.start()
        self.backend.subscribe(self.scheduler.on_task_change)
        await self.lb.resolve_rules()
        state = self.records.service(self.name)
        if state is None:
            spec = self.service.taskDefinition.model_dump()
            state = ServiceState(self.name, self.groups[0], "1", {"1": spec}, 2, {"1": True})
            self.records.save_service(state)
        self.state = state
        adopted = [t for t in await self.backend.adopt(self.name) if t.state == RUNNING]
        plan = m.restart_plan(state.running_revision, self.service.desiredCount,
                              next(iter(self.records.recent(self.name, 1)), None), self.records.unfinished(self.name),
                              [m.Adopted(t.task_id, t.revision) for t in adopted])
        if plan.promote is not None:
            latest = plan.promote
            self._run_in_alternate(latest.target_revision)
            self.note(latest.id, eventlog.recovery_promoted(latest.id, latest.target_revision, self.primary))
        blue = self.sets[self.primary] = TaskSet(self.primary, state.running_revision, plan.blue_desired,
                                                 target_group=self.groups[0])
        green = self.sets[self.alternate] = TaskSet(self.alternate, state.running_revision, 0,
                                                    target_group=self.groups[0] if self.single_group else "")
        for old in plan.supersede:  # cannot happen unless records were edited by hand
            self.records.save(m.step(old, m.StopRequest(False, "superseded"), self.clock.now())[0])
        for t in adopted:
            if t.task_id in plan.blue:
                blue.tasks[t.task_id] = t
            elif t.task_id in plan.green:
                green.tasks[t.task_id] = t
        for task_id in plan.stop:
            await self.backend.stop_task(task_id, 5.0)
        await self.scheduler.ensure_set(blue, self.scheduler.definition(state.running_revision), "blue")
        if plan.resume is not None:
            await self.runner.recover(plan.resume)
        else:
            # No deployment owns the alternate group: nothing should run there.
            # Traffic leaves it before its tasks do (a stop without rollback
            # left some there), or those requests would get 503s.
            await self.lb.route_all_to(self.primary)
            await self.scheduler.stop_set(green)
        self._monitoring = asyncio.create_task(self.monitor.run())
        self.spawn(self.usage.run())
        self.note(None, eventlog.service_started(self.name, state.running_revision, self.primary,
                                                 len(blue.running())))

    async def stop(self, stop_tasks: bool = True, deregister: bool = False) -> None:
        """`deregister`: take the tasks out of their target groups (drained)
        before stopping them, for a load balancer that outlives the controller."""
        self.stopping = True
        tasks = [self.runner.task, self._monitoring, *self._background]
        for t in tasks:
            if t is not None:
                t.cancel()
        for t in tasks:
            if t is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        await self.lb.writer.close()
        if stop_tasks and deregister:
            await asyncio.gather(*[self.scheduler.deregister_all(ts) for ts in self.sets.values()])
        await self.backend.close(stop_tasks=stop_tasks)
        await self.events_out.stop()
        if self.session is not None:
            await self.session.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background until it ends or the controller stops."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- the service's record ----------------------------------------------------------

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
        self.state.active[rev] = False  # a new revision starts deactivated (headless: controller.activation)
        self.state.next_revision += 1
        self.records.save_service(self.state)
        return rev

    def _run_in_alternate(self, revision: str) -> None:
        """The service's record: `revision` runs in the alternate group, which
        becomes primary (in the one target group: runs in the primary set)."""
        if not self.single_group:
            self.state.primary_group = self.alternate
        self.state.running_revision = revision
        self.records.save_service(self.state)

    def promote(self, d: Deployment) -> None:
        if d.dc.strategy == "ROLLING" and self.service.exposure == "headless":
            self.set_active({d.source_revision: False})  # its tasks are all replaced
        if self.single_group:
            # The new tasks become the primary set's, in the same target group.
            blue, green = self.sets[self.primary], self.sets[self.alternate]
            self._run_in_alternate(d.target_revision)
            blue.tasks.update(green.tasks)
            green.tasks.clear()
            blue.revision, blue.desired, green.desired = d.target_revision, d.desired_count, 0
            self.note(d.id, eventlog.service_promoted(d.target_revision, self.primary))
            return
        old, new = self.primary, self.alternate
        self._run_in_alternate(d.target_revision)
        self.sets[new].desired = d.desired_count
        self.sets[old].desired = 0
        self.note(d.id, eventlog.service_promoted(d.target_revision, new))

    # -- activation (a headless service's flags: controller.activation) -------------------

    def activation(self) -> dict[str, bool]:
        """Each known revision's flag (a revision never set: deactivated)."""
        return {rev: self.state.active.get(rev, False) for rev in self.state.revisions}

    def set_active(self, changes: dict[str, bool]) -> dict[str, bool]:
        """Set revisions' flags (KeyError for an unknown revision), recorded
        and logged as `service.activation`; returns every flag after."""
        for rev in changes:
            if rev not in self.state.revisions:
                raise KeyError(f"revision {rev} (known: {', '.join(self.state.revisions)})")
        d = self.current
        for rev, flag in changes.items():
            if self.state.active.get(rev, False) != flag:
                self.state.active[rev] = flag
                self.records.save_service(self.state)
                self.note(d.id if d is not None and not d.final else None, eventlog.service_activation(rev, flag))
        self.publish({"type": "activation", "revisions": self.activation()})
        return self.activation()

    # -- deployments ---------------------------------------------------------------------

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
            has_test_rules=bool(self.test_rules), **self.settings.plan_fields(dc),
        )
        self.records.save(d)
        self.note(d.id, eventlog.status_created(d.source_revision, rev, dc.strategy))
        if dc.strategy == "ROLLING" and self.service.exposure == "headless":
            # ROLLING runs no hooks to activate it: new tasks work as they
            # start, replacing old ones, as on ECS with no parameter to flip.
            self.set_active({rev: True})
        self.runner.begin(d)
        return d

    def stop_deployment(self, deployment_id: str, rollback: bool, reason: str | None = None) -> Deployment:
        d = self._current_or_raise(deployment_id)
        self.runner.feed(m.StopRequest(rollback=rollback) if reason is None else m.StopRequest(rollback, reason))
        return d

    def approve(self, deployment_id: str) -> Deployment:
        d = self._current_or_raise(deployment_id)
        if d.hook is None or d.hook.kind != "PAUSE":
            raise DeploymentConflict(f"deployment {d.id} is not waiting for approval")
        self.runner.feed(m.Approve())
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
                progress = self.runner.progress
                d = self.current if self.current and self.current.id == deployment_id else self.records.get(
                    deployment_id)
                if d is None:
                    raise KeyError(deployment_id)
                if d.final:
                    return d
                await progress.wait()

        return await clock_wait_for(self.clock, until_final(), timeout)

    # -- events out -------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, message: dict[str, Any]) -> None:
        for cb in list(self._subscribers):
            try:
                cb(message)
            except Exception:
                log.exception("event subscriber failed")

    def note(self, deployment_id: str | None, entry: eventlog.Entry) -> None:
        """A line in the event log, on the event stream and in the controller's log."""
        ev = self.records.event(deployment_id, entry, at=self.clock.now())
        log.info("%s%s", f"[{deployment_id[:8]}] " if deployment_id else "", ev["message"])
        self.publish({"type": "event", "event": ev})
        if deployment_id is not None and ev["type"] == eventlog.STATUS_CHANGED.name:
            current = self.current if self.current is not None and self.current.id == deployment_id else None
            reason = ev["data"]["reason"] or (current.status_reason if current is not None else None)
            for out in eventbridge.deployment_events(ev["data"]["status"], reason, deployment_id,
                                                     self.service_arn, ev["at"]):
                self.send_event(out)
        for out in eventbridge.service_action_events(ev["type"], ev["data"], self.service_arn,
                                                     describing.cluster_arn(self), ev["at"]):
            self.send_event(out)

    def send_event(self, event: dict[str, Any]) -> None:
        """An EventBridge-shaped event to the event targets and the event stream."""
        self.events_out.emit(event)
        self.publish({"type": "eventbridge", "event": event})

    # -- describing (controller.describe) -------------------------------------------------

    @property
    def service_arn(self) -> str:
        return describing.service_arn(self)

    def revision_arn(self, revision: str) -> str:
        return describing.revision_arn(self, revision)

    def describe(self, d: Deployment) -> dict[str, Any]:
        return describing.describe(self, d)

    def service_view(self) -> dict[str, Any]:
        return describing.service_view(self)
