"""The simulation: the controller's own state machine (`machine.step`), its
strategy plans and its alarm evaluators (`AlarmEvaluator` over a
`MetricStore`, metric math and all) driven in virtual time against a
modelled world. No sleeps, no sockets: time jumps from one thing that
happens to the next.

What the runner (controller.runner) does with real task sets, a real load
balancer and hooks, `Simulation` does with a model: it carries out each
action the machine asks for (weights at once, green up `startSeconds`
later, a hook's answer after its modelled duration, a task set stopped
after its group's deregistration delay) and feeds the outcome back as the
same events. What the monitor (controller.monitor) does with the proxy's
stats, it does with counts: every 10 AWS seconds the requests since the
last look are drawn in aggregate (a Poisson count, split between the
groups by weight and into errors binomially; latencies into the proxy's
own histogram buckets), added as a stats snapshot of the proxy's shape to
a real MetricStore (which publishes per minute as ALB does), and the
alarms are evaluated on it. Task CPU goes through controller.usage's
UsageBook, the tasks' own metrics into the store's PutMetricData side.

A headless service (neither loadBalancers nor Service Connect) serves no
requests: the machine runs the same (its weights move nothing: no load
balancer, as controller.router.NoLoadBalancer), and what decides who works
is each revision's activation flag (controller.activation): blue starts
active, green deactivated, and a hook that is shiftlab's activation hook
(directly or as a Lambda function's stand-in) sets them from the payload's
production weights when it succeeds; ROLLING's new tasks work as they come
up. The traffic is then messages a second, taken by the active revisions'
tasks; green's fault shows in the metrics its active tasks publish (a
consumer's failure count) and in crashes. Request counts are not drawn.

Times are AWS seconds (the deployment runs at time scale 1): a config's
timeScale changes nothing here. Before the deployment starts, blue serves
alone for as long as the alarms look back, so they start from blue's
steady state as they would on a running service.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shiftlab.common.naming import target_group_name
from shiftlab.controller import eventlog, serviceconnect, usage
from shiftlab.controller import machine as m
from shiftlab.controller.alarms import ALARM, AlarmEvaluator, required_retention
from shiftlab.controller.config import service_connect_names
from shiftlab.controller.metricstore import PUBLISH_SECONDS, Entry, MetricStore, metric_key
from shiftlab.controller.strategies import total_minutes
from shiftlab.proxy.stats import BOUNDS
from shiftlab.settings import Settings
from shiftlab.simulate.counts import COUNTS, Group, binomial, poisson
from shiftlab.simulate.faults import Behaviour, HookModel, cpu_percent
from shiftlab.simulate.scenario import Scenario
from shiftlab.simulate.traffic import Traffic

EPOCH = 1_800_000_000.0  # a whole minute: the deployment starts within the minute after it
SCRAPE_SECONDS = 10.0  # how often the store gets a snapshot (AWS seconds)
BLUE_REVISION, GREEN_REVISION = "1", "2"
DEFAULT_TASK_CPU = 1024  # CPU units a task reserves when its definition says nothing
DEFAULT_TASK_MEMORY = 2048
_BOUNDS = list(BOUNDS)


@dataclass
class Sample:
    """One look (every SCRAPE_SECONDS), for the chart: minutes since the
    deployment started, green's production share, the requests per second and
    the share that failed (green's and all), and every alarm's state."""

    t: float
    green_percent: float
    rps: float
    green_error_rate: float | None
    error_rate: float
    alarms: dict[str, str]
    active: list[str] | None = None  # headless: the revisions whose flag says work


@dataclass
class RunResult:
    label: str
    seed: int
    strategy: str
    status: str
    reason: str | None
    timed_out: bool
    duration: float | None  # minutes from the deployment's start to its end
    fault_at: float | None  # minutes: green first showed its fault to users (or crashed)
    detected_at: float | None  # minutes: the rollback (or stop) started
    back_on_blue_at: float | None  # minutes: production traffic back on blue
    detected_by: str | None
    triggered_alarms: list[str]
    # In ALARM as the deployment started (blue's own errors, say): as ECS, no alarm was watched.
    alarms_off: list[str]
    requests: int
    green_requests: int
    green_failed: int  # the blast radius: requests green failed (its 5xx, or 502 with its tasks down)
    failed: int  # every failed request, blue's baseline included
    stages: list[dict[str, Any]]
    weights: list[dict[str, Any]]
    alarm_timeline: list[dict[str, Any]]
    samples: list[Sample] = field(default_factory=list)
    # A headless service: no requests (the request counts mean nothing: reports say n/a), and
    # each change of which revisions work ({"t", "active": ["1"], "by"}) instead of weights.
    headless: bool = False
    activations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rolled_back(self) -> bool:
        return self.status.startswith("ROLLBACK")

    @property
    def time_to_detect(self) -> float | None:
        if self.detected_at is None or self.fault_at is None:
            return None
        return round(max(self.detected_at - self.fault_at, 0.0), 4)

    @property
    def time_to_rollback(self) -> float | None:
        if self.back_on_blue_at is None or self.fault_at is None:
            return None
        return round(max(self.back_on_blue_at - self.fault_at, 0.0), 4)


def run(settings: Settings, scenario: Scenario, traffic: Traffic, seed: int = 0, label: str = "",
        samples: bool = True, phase: float | None = None) -> RunResult:
    """One seeded run of the deployment `settings` describes. `phase`: the
    second of its minute the deployment starts at (the alarms' periods are
    aligned to whole minutes, as CloudWatch's); None: drawn from the seed."""
    return Simulation(settings, scenario, traffic, seed, label, samples, phase).run()


class Simulation:
    def __init__(self, settings: Settings, scenario: Scenario, traffic: Traffic, seed: int, label: str,
                 keep_samples: bool = True, phase: float | None = None) -> None:
        assert settings.service is not None, "a deployment needs the service section"
        self.settings, self.scenario, self.traffic = settings, scenario, traffic
        self.rng = random.Random(seed)
        self.seed, self.label, self.keep_samples = seed, label, keep_samples
        svc = settings.service
        self.svc = svc
        dc = settings.deployment
        self.dc = dc
        self.desired = svc.desiredCount
        self.headless = svc.exposure == "headless"
        ac = svc.lb.advancedConfiguration if not self.headless else None
        if self.headless:  # two task sets, no target groups (controller.service's HEADLESS_SETS)
            self.blue_group, self.green_group = "blue", "green"
        else:
            self.blue_group = target_group_name(svc.lb.targetGroupArn)
            self.green_group = target_group_name(ac.alternateTargetGroupArn) if ac else self.blue_group
        alarms = list(settings.alarms)
        needs_latency = any(q.metric_name == "TargetResponseTime" for a in alarms for q in a.plan.metrics)
        self.groups = {g: Group(needs_latency) for g in dict.fromkeys((self.blue_group, self.green_group))}
        # A Service Connect endpoint's metrics (AWS/ECS per (Target)DiscoveryName) are its two groups' summed.
        sc = svc.service_connect
        names = service_connect_names(sc, svc.namespace) if sc is not None else None
        self.endpoints = {names.discovery: (names.listener, names.blue, names.green)} if names else {}
        retention = max(required_retention(alarms) * 2, 600.0)
        self.store = MetricStore(retention_seconds=retention, publish_seconds=PUBLISH_SECONDS)
        self.evaluators = {a.AlarmName: AlarmEvaluator(a, 1.0) for a in alarms}
        self.alarm_states = {name: ev.state for name, ev in self.evaluators.items()}
        self.alarm_reasons: dict[str, str] = {}
        self._evaluated: dict[str, int] = {}
        family = svc.taskDefinition.family or svc.serviceName
        self.needs_usage = any(usage.fed(q.namespace, q.metric_name, q.dimensions, svc.clusterName,
                                         svc.serviceName, [family]) for a in alarms for q in a.custom_metrics())
        self.usage_book = usage.UsageBook(svc.clusterName, svc.serviceName, lambda _rev: family, 60.0)
        cpu = svc.taskDefinition.cpu or DEFAULT_TASK_CPU
        memory = svc.taskDefinition.memory or DEFAULT_TASK_MEMORY
        self.reserved = usage.Reserved(float(cpu), float(memory), True)
        # The world.
        self.start = EPOCH + (self.rng.random() * 60.0 if phase is None else phase % 60.0)
        warmup = max(required_retention(alarms), 300.0) if alarms else 60.0
        self.now = math.floor((self.start - warmup) / SCRAPE_SECONDS) * SCRAPE_SECONDS
        self.next_scrape = self.now
        self.next_look = self.now
        self.next_minute = math.floor(self.now / 60) * 60 + 60
        self.prod_percent = 0.0
        self.blue_tasks = self.desired
        self.green_tasks = 0
        self.green_desired = 0
        self.green_ids: list[str] = []
        self._task_serial = 0
        self.awaiting_ready = False
        self.pending_crash = False
        self.green_stopped = False
        self.fault = scenario.green
        self.green_faulty = self.fault.applied(scenario.blue)
        self.minute_requests = {BLUE_REVISION: 0, GREEN_REVISION: 0}
        # Headless: which revisions work (their activation flags), and the hooks that set them.
        self.active = {BLUE_REVISION}
        self.activation_hooks = activation_hooks(settings) if self.headless else set()
        self.activations: list[dict[str, Any]] = []
        # The deployment.
        self.d = m.Deployment(
            id=f"sim-{seed}", service=svc.serviceName, config=dc.model_dump(mode="json"), time_scale=1.0,
            desired_count=self.desired, source_revision=BLUE_REVISION, target_revision=GREEN_REVISION,
            created_at=self.start, has_test_rules=bool(ac and ac.testListenerRule),
            # As the service plans it: an NLB's shift delays, weighted DNS records' schedule (their TTL
            # lag is not modelled), ROLLING's alarm-derived bake.
            **settings.controller_settings().plan_fields(dc))
        self.started = False
        self._alarm_at_start: dict[str, str] = {}
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self.hook_calls: dict[str, int] = {}
        self.paused: set[str] = set()
        # What the report reads.
        self.requests = self.green_requests = self.green_failed = self.failed = 0
        self.fault_at: float | None = None
        self.back_on_blue_at: float | None = None
        self.weights: list[dict[str, Any]] = []
        self.alarm_timeline: list[dict[str, Any]] = []
        self.samples: list[Sample] = []
        self._interval = [0, 0, 0, 0]  # requests, failed, green requests, green failed since the last look
        limit = scenario.maxMinutes if scenario.maxMinutes is not None else 3 * total_minutes(dc) + 60
        self.limit = self.start + limit * 60

    # -- the loop ------------------------------------------------------------------

    def at(self, t: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (t, self._seq, fn))

    def run(self) -> RunResult:
        self.at(self.start, self._start)
        timed_out = False
        while not self.d.final:
            candidates = [self.next_scrape, self.next_minute]
            if self.queue:
                candidates.append(self.queue[0][0])
            if self.needs_usage:
                candidates.append(self.next_look)
            wake = _next_wake(self.d) if self.started else None
            if wake is not None:
                candidates.append(wake)
            t = max(min(candidates), self.now)
            if t > self.limit:
                timed_out = True
                self._advance(self.limit)
                break
            self._advance(t)
            if self.next_minute <= t:
                self._publish_minute()
            if self.needs_usage and self.next_look <= t:
                self._look()
            while self.queue and self.queue[0][0] <= t and not self.d.final:
                heapq.heappop(self.queue)[2]()
            if wake is not None and wake <= t and not self.d.final:
                self.feed(m.Tick())
            if self.next_scrape <= t and not self.d.final:
                self._scrape()
        return self._result(timed_out)

    def minutes(self, t: float | None) -> float | None:
        return None if t is None else round((t - self.start) / 60, 4)

    # -- the machine ----------------------------------------------------------------

    def _start(self) -> None:
        self.started = True
        self._alarm_at_start = dict(self.alarm_states)
        self.feed(m.Start(dict(self.alarm_states), active_revisions=1))
        if self.fault.crashAtMinutes is not None:
            self.at(self.start + self.fault.crashAtMinutes * 60, self._crash)

    def feed(self, event: m.Event) -> None:
        if self.d.final:
            return
        self.d, actions = m.step(self.d, event, self.now)
        for a in actions:
            self._carry_out(a)
        run = self.d.hook
        if run is not None and run.kind == "PAUSE" and run.execution_id not in self.paused:
            self.paused.add(run.execution_id)
            model = self._hook_model(run.hook_index, run.stage)
            if model.approveAfterMinutes is not None:
                eid = run.execution_id
                self.at(self.now + model.approveAfterMinutes * 60, lambda: self._approve(eid))

    def _approve(self, execution_id: str) -> None:
        run = self.d.hook
        if run is not None and run.execution_id == execution_id:
            self.feed(m.Approve())

    def _carry_out(self, a: m.Action) -> None:
        now = self.now
        match a:
            case m.Note(entry=entry):
                self._noted(entry)
            case m.Reconcile():
                self.at(now, lambda: self.feed(m.Reconciled(ok=True)))
            case m.ScaleUpGreen(count=count):
                self.green_desired = count
                self.awaiting_ready = True
                self.at(now + self.scenario.tasks.startSeconds, self._green_up)
            case m.SetWeights(kind=kind, percent=percent):
                if kind in ("production", "all"):
                    self.prod_percent = percent
                self.at(now, lambda: self.feed(m.WeightsApplied(kind, percent, ok=True)))
            case m.RollingReplace(blue=blue, green=green):
                self._rolling(blue, green)
            case m.InvokeHook():
                self._hook(a)
            case m.StopTasks(colour=colour):
                self._stop(colour)
            case _:
                pass  # WakeAt (the loop reads the record's deadlines), Promote, ReplaceTask

    def _noted(self, entry: eventlog.Entry) -> None:
        if entry.type == eventlog.WEIGHTS_VERIFIED.name and self.headless:
            # No load balancer: the weights move nothing (they only feed the hooks' payloads).
            if (entry.data["traffic"] == "all" and entry.data["percent"] == 0 and self.d.rolling_back
                    and not self.activation_hooks):
                self.back_on_blue_at = self.now
            return
        if entry.type == eventlog.WEIGHTS_VERIFIED.name:
            self.weights.append({"t": self.minutes(self.now), "traffic": entry.data["traffic"],
                                 "percent": entry.data["percent"]})
            if entry.data["traffic"] == "all" and entry.data["percent"] == 0 and self.d.rolling_back:
                self.back_on_blue_at = self.now

    def _hook_model(self, index: int, stage: str) -> HookModel:
        for h in self.scenario.hooks:
            if h.hook == index and (h.stage is None or h.stage == stage):
                return h
        return HookModel(hook=index)

    def _hook(self, a: m.InvokeHook) -> None:
        model = self._hook_model(a.hook_index, a.stage)
        calls = self.hook_calls.get(a.execution_id, 0) + 1
        self.hook_calls[a.execution_id] = calls
        if calls <= model.inProgressCalls:
            answer = m.HookAnswer(a.execution_id, "IN_PROGRESS", callback_delay=model.callBackDelaySeconds,
                                  call_seconds=model.seconds)
        else:
            answer = m.HookAnswer(a.execution_id, model.answer, call_seconds=model.seconds,
                                  error=None if model.answer == "SUCCEEDED" else "the hook answered FAILED")
            if a.hook_index in self.activation_hooks and model.answer == "SUCCEEDED":
                # shiftlab.activation_hook: the revision with production weight works, the other stands by.
                percent = a.production_percent
                wanted = {GREEN_REVISION} if percent >= 100 else {BLUE_REVISION} if percent <= 0 else \
                    {BLUE_REVISION, GREEN_REVISION}

                def activate() -> None:
                    self._set_active(wanted, f"hook {a.hook_index} at {a.stage}")
                    self.feed(answer)
                self.at(self.now + model.seconds, activate)
                return
        self.at(self.now + model.seconds, lambda: self.feed(answer))

    def _set_active(self, wanted: set[str], by: str) -> None:
        """A headless service's activation flags (controller.activation) changed."""
        if wanted == self.active:
            return
        self.active = set(wanted)
        self.activations.append({"t": self.minutes(self.now), "active": sorted(wanted), "by": by})
        if self.d.rolling_back and wanted == {BLUE_REVISION}:
            self.back_on_blue_at = self.now

    # -- tasks -------------------------------------------------------------------------

    def _new_ids(self, n: int) -> list[str]:
        out = []
        for _ in range(n):
            self._task_serial += 1
            out.append(f"green-{self._task_serial}")
        return out

    def _green_up(self) -> None:
        if self.green_stopped or self.green_desired == 0:
            return
        self.green_tasks = self.green_desired
        self.green_ids = self._new_ids(self.green_tasks)
        if self.pending_crash:
            self.pending_crash = False
            self._crash()
            return
        if self.fault.crashLoopSeconds is not None and self.fault.crashAtMinutes is not None \
                and self.now > self.start + self.fault.crashAtMinutes * 60:
            self.at(self.now + self.fault.crashLoopSeconds, self._crash)
        if self.awaiting_ready:
            self.awaiting_ready = False
            self.feed(m.GreenReady(ok=True, running=self.green_tasks))

    def _crash(self) -> None:
        """Every running green task exits; the scheduler starts others."""
        if self.green_stopped or self.d.final:
            return
        if self.green_tasks == 0:
            self.pending_crash = True  # not up yet (or being replaced): its tasks exit once they are
            return
        if self.fault_at is None:
            self.fault_at = self.now
        ids, self.green_ids, self.green_tasks = self.green_ids, [], 0
        self._refresh_rolling_share()
        for task_id in ids:
            self.feed(m.TaskFailed(task_id, "essential container in task exited"))
        if not self.d.final:
            self.at(self.now + self.scenario.tasks.startSeconds, self._green_up)

    def _rolling(self, blue: int, green: int) -> None:
        self.blue_tasks = min(self.blue_tasks, blue)
        self.green_desired = green
        self._refresh_rolling_share()

        def up() -> None:
            if self.d.final or self.d.rolling_back:
                return
            self.green_tasks = max(self.green_tasks, green)
            self.green_ids = self._new_ids(self.green_tasks)
            self._refresh_rolling_share()
            if self.headless:  # ROLLING runs no hooks: the new revision works from the start
                self._set_active({BLUE_REVISION, GREEN_REVISION} if self.blue_tasks else {GREEN_REVISION},
                                 "ROLLING: new tasks work as they start")
            self.feed(m.GreenServing(self.prod_percent))
            self.feed(m.RollingDone(ok=True, blue=self.blue_tasks, green=self.green_tasks))

        delay = self.scenario.tasks.startSeconds if green > self.green_tasks else 0.0
        self.at(self.now + delay, up)

    def _refresh_rolling_share(self) -> None:
        if self.dc.strategy == "ROLLING":
            total = self.blue_tasks + self.green_tasks
            self.prod_percent = 100.0 * self.green_tasks / total if total else 0.0

    def _stop_seconds(self, group: str) -> float:
        if self.scenario.tasks.stopSeconds is not None:
            return self.scenario.tasks.stopSeconds
        if self.headless:
            return 0.0  # no target group to drain
        for tg in self.settings.load_balancer.TargetGroups:
            if tg.Name == group:
                return float(tg.deregistration_delay)
        return 0.0

    def _stop(self, colour: str) -> None:
        if colour == "blue":
            def blue_gone() -> None:
                self.blue_tasks = 0
                self.feed(m.TasksStopped("blue", ok=True))
            self.at(self.now + self._stop_seconds(self.blue_group), blue_gone)
            return
        delay = 0.0
        if self.dc.strategy == "ROLLING" and self.blue_tasks < self.desired:
            delay = self.scenario.tasks.startSeconds  # blue back to its count first

        def green_gone() -> None:
            self.green_stopped = True
            self.green_tasks = self.green_desired = 0
            self.green_ids = []
            if self.dc.strategy == "ROLLING":
                self.blue_tasks = self.desired
                self.prod_percent = 0.0
                self.back_on_blue_at = self.now
                if self.headless:
                    self._set_active({BLUE_REVISION}, "ROLLING rolled back: the new tasks are gone")
            self.feed(m.TasksStopped("green", ok=True))

        self.at(self.now + delay + self._stop_seconds(self.green_group), green_gone)

    # -- traffic and metrics -----------------------------------------------------------

    def _advance(self, t: float) -> None:
        """The requests of [now, t), with the world as it stands."""
        dt = t - self.now
        if dt <= 0:
            return
        if self.headless:
            self._advance_headless(t, dt)
            return
        since = (self.now - self.start)
        rps = self.traffic.rps(max(since, 0.0))
        n = poisson(self.rng, rps * dt)
        share = self.prod_percent / 100
        g = binomial(self.rng, n, share) if 0 < share < 1 else (n if share >= 1 else 0)
        b = n - g
        blue = self.scenario.blue
        green = blue
        faulty = self.started and self.fault.active(since, rps * share)
        if faulty:
            green = self.green_faulty
        b_err = binomial(self.rng, b, blue.errorRate)
        group_b, group_g = self.groups[self.blue_group], self.groups[self.green_group]
        group_b.served(b, b_err, blue)
        if g and self.green_tasks == 0:
            group_g.refused(g)
            g_err = g
        else:
            g_err = binomial(self.rng, g, green.errorRate)
            group_g.served(g, g_err, green)
        if faulty and self.fault_at is None and (
                (g and self.fault.in_requests) or (self.green_tasks and self._resource_fault())):
            self.fault_at = self.now
        if self.started:  # what the report counts: the deployment's requests, not the warm-up's
            self.requests += n
            self.green_requests += g
            self.green_failed += g_err
            self.failed += b_err + g_err
        iv = self._interval
        iv[0] += n
        iv[1] += b_err + g_err
        iv[2] += g
        iv[3] += g_err
        self.minute_requests[BLUE_REVISION] += b
        self.minute_requests[GREEN_REVISION] += g
        self.now = t

    def _working(self) -> dict[str, int]:
        """Headless: the tasks that take messages now, by revision (an active revision's running tasks)."""
        tasks = {BLUE_REVISION: self.blue_tasks, GREEN_REVISION: self.green_tasks}
        return {rev: n for rev, n in tasks.items() if rev in self.active and n > 0}

    def _advance_headless(self, t: float, dt: float) -> None:
        """No requests: messages, taken by the working tasks (for a metric
        counted per message), and green's fault showing once green works."""
        since = self.now - self.start
        rate = self.traffic.rps(max(since, 0.0))
        working = self._working()
        total = sum(working.values())
        n = poisson(self.rng, rate * dt) if total else 0
        g = binomial(self.rng, n, working.get(GREEN_REVISION, 0) / total) if n else 0
        self.minute_requests[BLUE_REVISION] += n - g
        self.minute_requests[GREEN_REVISION] += g
        if (self.started and self.fault_at is None and self.green_tasks
                and self.fault.active(since, rate if GREEN_REVISION in working else 0.0)
                and (self.fault.in_resources or (GREEN_REVISION in working and self._resource_fault()))):
            self.fault_at = self.now
        self.now = t

    def _resource_fault(self) -> bool:
        """A fault that shows without traffic: CPU, or a metric the tasks publish."""
        return self.fault.in_resources or any(x.green is not None for x in self.scenario.metrics)

    def _green_behaviour(self, rps: float) -> Behaviour:
        since = self.now - self.start
        if self.started and self.fault.active(since, rps * self.prod_percent / 100):
            return self.green_faulty
        return self.scenario.blue

    def _scrape(self) -> None:
        now = self.now
        self.next_scrape = now + SCRAPE_SECONDS
        groups = {}
        healthy = {self.blue_group: self.blue_tasks, self.green_group: self.green_tasks}
        if self.blue_group == self.green_group:
            healthy[self.blue_group] = self.blue_tasks + self.green_tasks
        for name, grp in self.groups.items():
            groups[name] = grp.metrics(healthy[name])
        total = {k: sum(g.counts[k] for g in self.groups.values()) for k in COUNTS}
        snap = {"timestamp": now, "responseTimeBuckets": _BOUNDS, "targetGroups": groups, "total": total}
        if self.headless:  # as controller.router.NoLoadBalancer's stats: no load balancer, no metrics
            snap = {"timestamp": now, "loadBalancer": None, "responseTimeBuckets": [], "targetGroups": {},
                    "total": {}}
        if self.endpoints:
            serviceconnect.add_to_snapshot(snap, self.endpoints)
        self.store.add(snap, now)
        changed = False
        for name, ev in self.evaluators.items():
            index = math.floor(now / ev.period + 1e-9)
            if self._evaluated.get(name) == index and ev.period > SCRAPE_SECONDS:
                continue  # no new complete period since the last look: nothing can change
            self._evaluated[name] = index
            result = ev.evaluate(self.store, now)
            self.alarm_reasons[name] = result.reason
            if self.alarm_states.get(name) != result.state:
                changed = True
                self.alarm_states[name] = result.state
                self.alarm_timeline.append({"t": self.minutes(now), "alarm": name, "state": result.state})
        if self.started and (changed or ALARM in self.alarm_states.values()):
            self.feed(m.AlarmStates(dict(self.alarm_states), dict(self.alarm_reasons)))
        if self.keep_samples and now >= self.start - SCRAPE_SECONDS:
            n, failed, g, g_failed = self._interval
            self.samples.append(Sample(
                round((now - self.start) / 60, 4),
                (100.0 if GREEN_REVISION in self.active else 0.0) if self.headless else self.prod_percent,
                round(n / SCRAPE_SECONDS, 3), round(g_failed / g, 5) if g else None,
                round(failed / n, 5) if n else 0.0, dict(self.alarm_states),
                sorted(self.active) if self.headless else None))
        self._interval = [0, 0, 0, 0]

    def _look(self) -> None:
        """controller.usage's look: each running task's CPU (modelled) into the UsageBook."""
        now = self.now
        self.next_look = now + usage.LOOK_SECONDS
        rps = self.traffic.rps(max(now - self.start, 0.0))
        share = self.prod_percent / 100
        looks = []
        per_blue = rps * (1 - share) / self.blue_tasks if self.blue_tasks else 0.0
        per_green = rps * share / self.green_tasks if self.green_tasks else 0.0
        green = self._green_behaviour(rps)
        for i in range(self.blue_tasks):
            looks.append(self._task_look(f"blue-{i}", BLUE_REVISION, self.scenario.blue, per_blue))
        for task_id in self.green_ids[:self.green_tasks]:
            looks.append(self._task_look(task_id, GREEN_REVISION, green, per_green))
        running = self.blue_tasks + self.green_tasks
        for key, entry in self.usage_book.add(now, looks, (running, 0, self.desired)):
            self.store.custom.add(key, entry, now)

    def _task_look(self, task_id: str, revision: str, b: Behaviour, rps_per_task: float) -> usage.TaskLook:
        cpu = cpu_percent(b, rps_per_task) / 100 * self.reserved.cpu_units
        return usage.TaskLook(task_id, revision, usage.Usage(cpu, 0.25 * self.reserved.memory_mib), self.reserved)

    def _publish_minute(self) -> None:
        """The tasks' own metrics for the minute that just ended, filed at its start."""
        start = self.next_minute - 60
        self.next_minute += 60
        counts, self.minute_requests = self.minute_requests, {BLUE_REVISION: 0, GREEN_REVISION: 0}
        if not self.scenario.metrics:
            return
        green_active = self._green_behaviour(self.traffic.rps(max(self.now - self.start, 0.0))) is self.green_faulty
        for metric in self.scenario.metrics:
            key = metric_key(metric.Namespace, metric.MetricName, [(d.Name, d.Value) for d in metric.Dimensions])
            for revision, tasks in ((BLUE_REVISION, self.blue_tasks), (GREEN_REVISION, self.green_tasks)):
                value = metric.blue
                if revision == GREEN_REVISION and green_active and metric.green is not None:
                    value = metric.green
                if self.headless and revision not in self.active:
                    value = 0.0  # a consumer standing by takes no message: nothing processed, nothing failed
                n = counts[revision] if metric.perRequest else tasks
                if n <= 0:
                    continue
                self.store.custom.add(key, Entry(start, metric.Unit, float(n), value * n, value, value,
                                                 ((value, float(n)),)), self.now)

    # -- the result ------------------------------------------------------------------

    def _result(self, timed_out: bool) -> RunResult:
        d = self.d
        detected_at = d.rollback["startedAt"] if d.rollback else (d.stopped_at if d.status == m.STOPPED else None)
        by = None
        if d.triggered_alarms:
            by = "alarm " + ", ".join(d.triggered_alarms)
        elif d.circuit_breaker_status == "TRIGGERED":
            by = "circuit breaker"
        elif d.status_reason and "hook" in d.status_reason and detected_at is not None:
            by = "lifecycle hook"
        elif detected_at is not None:
            by = d.status_reason
        stages = [{"stage": s["stage"], "start": self.minutes(s["startedAt"]),
                   "end": self.minutes(s["endedAt"]), "rollback": s.get("rollback", False)} for s in d.stages]
        return RunResult(
            label=self.label, seed=self.seed, strategy=self.dc.strategy,
            status=d.status if not timed_out else f"{d.status} (timed out)", reason=d.status_reason,
            timed_out=timed_out, duration=self.minutes(d.finished_at) if d.finished_at else None,
            fault_at=self.minutes(self.fault_at), detected_at=self.minutes(detected_at),
            back_on_blue_at=self.minutes(self.back_on_blue_at), detected_by=by,
            triggered_alarms=list(d.triggered_alarms),
            alarms_off=[n for n in d.ignored_alarms if self._alarm_at_start.get(n) == ALARM],
            requests=self.requests, green_requests=self.green_requests,
            green_failed=self.green_failed, failed=self.failed, stages=stages, weights=self.weights,
            alarm_timeline=self.alarm_timeline, samples=self.samples, headless=self.headless,
            activations=self.activations)


ACTIVATION_MODULE = "shiftlab.activation_hook"


def activation_hooks(settings: Settings) -> set[int]:
    """The lifecycle hooks (indices) that are shiftlab's activation hook: a
    command hook running it, or a Lambda function whose stand-in does."""
    from shiftlab.controller.config import lambda_function

    out = set()
    for i, hook in enumerate(settings.deployment.lifecycleHooks):
        target = hook.hookTargetArn or ""
        if hook.kind == "LAMBDA":
            fn = lambda_function(target, settings.lambda_functions)
            target = fn.target if fn is not None else ""
        if ACTIVATION_MODULE in target:
            out.add(i)
    return out


def _next_wake(d: m.Deployment) -> float | None:
    """The record's next deadline (as the runner's): a bake, a hook's callback or timeout."""
    if d.final:
        return None
    times = [t for t in (d.wake_at, d.hook.next_call_at if d.hook else None,
                         d.hook.timeout_at if d.hook else None) if t is not None]
    return min(times) if times else None
