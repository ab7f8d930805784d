"""The ECS deployment as a pure state machine.

`step(deployment, event, now)` returns the new deployment record and the
actions to carry out; it never sleeps, never does I/O, and reads time only
from `now`. The driver (controller.runner) performs the actions and feeds
their outcomes back as events. Tests read as playbooks: events in, actions
and states out, with a clock they step by hand.

Every stage is "do its work (if any), then run its hooks, then go on":
SCALE_UP starts green tasks, TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT
move weights (a step counts as done only when the proxy's read-back shows
it), BAKE_TIME waits, CLEAN_UP stops the old task set. A rollback is a
second, shorter route through the same stages: production and test traffic
back to blue first, then green stopped.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.strategies import Step, plan

# Lifecycle stages, in order.
RECONCILE_SERVICE = "RECONCILE_SERVICE"
PRE_SCALE_UP = "PRE_SCALE_UP"
SCALE_UP = "SCALE_UP"
POST_SCALE_UP = "POST_SCALE_UP"
TEST_TRAFFIC_SHIFT = "TEST_TRAFFIC_SHIFT"
POST_TEST_TRAFFIC_SHIFT = "POST_TEST_TRAFFIC_SHIFT"
PRE_PRODUCTION_TRAFFIC_SHIFT = "PRE_PRODUCTION_TRAFFIC_SHIFT"
PRODUCTION_TRAFFIC_SHIFT = "PRODUCTION_TRAFFIC_SHIFT"
POST_PRODUCTION_TRAFFIC_SHIFT = "POST_PRODUCTION_TRAFFIC_SHIFT"
BAKE_TIME = "BAKE_TIME"
CLEAN_UP = "CLEAN_UP"

# Deployment states.
PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
SUCCESSFUL = "SUCCESSFUL"
STOP_REQUESTED = "STOP_REQUESTED"
STOPPED = "STOPPED"
ROLLBACK_REQUESTED = "ROLLBACK_REQUESTED"
ROLLBACK_IN_PROGRESS = "ROLLBACK_IN_PROGRESS"
ROLLBACK_SUCCESSFUL = "ROLLBACK_SUCCESSFUL"
ROLLBACK_FAILED = "ROLLBACK_FAILED"
FINAL = (SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED)

# What the deployment waits for (Deployment.waiting).
W_SCALE = "scale_up"
W_ROLLING = "rolling"
W_WEIGHTS = "weights"
W_HOOK = "hook"
W_BAKE = "bake"
W_STOP = "stop_tasks"
W_RECONCILE = "reconcile"


# -- events ---------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    alarm_states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class Recover:
    """The controller restarted and found this deployment unfinished."""

    alarm_states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reconciled:
    ok: bool = True
    error: str | None = None


@dataclass(frozen=True)
class GreenReady:
    """All desired green tasks run and pass their target health check (or not)."""

    ok: bool
    running: int = 0
    error: str | None = None


@dataclass(frozen=True)
class RollingDone:
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class GreenServing:
    """ROLLING: weights that follow the task counts are in force, with this
    green share (percent) of production traffic. ECS watches alarms once
    new tasks run, so the first share above 0 starts monitoring."""

    percent: float


@dataclass(frozen=True)
class TaskFailed:
    """A green task failed to start, exited, or failed its health checks
    (the load balancer reports it unhealthy). A task counts once, however
    many of these it earns."""

    task_id: str
    reason: str


@dataclass(frozen=True)
class TaskUnhealthy:
    """The load balancer reports a green task unhealthy (UnhealthyThresholdCount
    checks failed). Reported on every look until the task is replaced: the
    machine ignores it within the service's healthCheckGracePeriodSeconds
    (AWS seconds) from `started_at`, as ECS's scheduler does."""

    task_id: str
    started_at: float | None
    grace_period_seconds: float = 0.0


@dataclass(frozen=True)
class WeightsApplied:
    kind: str  # "production" | "test" | "all"
    percent: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class AlarmStates:
    states: dict[str, str]


@dataclass(frozen=True)
class HookAnswer:
    execution_id: str
    status: str  # SUCCEEDED | FAILED | IN_PROGRESS
    callback_delay: float | None = None  # AWS seconds
    hook_details: Any = None
    error: str | None = None
    call_seconds: float | None = None  # how long the call took (wall clock)


@dataclass(frozen=True)
class Approve:
    pass


@dataclass(frozen=True)
class StopRequest:
    rollback: bool
    reason: str = "stopped by the user"


@dataclass(frozen=True)
class TasksStopped:
    colour: str
    ok: bool
    error: str | None = None


Event = (Start | Tick | Recover | Reconciled | GreenReady | RollingDone | GreenServing | TaskFailed | TaskUnhealthy
         | WeightsApplied | AlarmStates | HookAnswer | Approve | StopRequest | TasksStopped)


# -- actions --------------------------------------------------------------


@dataclass(frozen=True)
class Reconcile:
    """Make the service match its record before starting: no stray tasks in
    the alternate group, traffic on the primary group."""


@dataclass(frozen=True)
class ScaleUpGreen:
    count: int


@dataclass(frozen=True)
class RollingReplace:
    pass


@dataclass(frozen=True)
class SetWeights:
    kind: str  # production | test | all
    percent: float  # green share


@dataclass(frozen=True)
class InvokeHook:
    hook_index: int
    stage: str
    execution_id: str
    hook_details: Any
    production_percent: float
    test_percent: float


@dataclass(frozen=True)
class StopTasks:
    colour: str  # "blue" on clean-up, "green" on rollback


@dataclass(frozen=True)
class ReplaceTask:
    """Take a green task out of its target group and stop it; the service
    scheduler starts another in its place."""

    task_id: str
    reason: str


@dataclass(frozen=True)
class WakeAt:
    at: float


@dataclass(frozen=True)
class Note:
    """A line for the event log and the event stream."""

    kind: str
    message: str


@dataclass(frozen=True)
class Promote:
    """Green is now the running revision; its group is now the primary one."""


Action = (Reconcile | ScaleUpGreen | RollingReplace | SetWeights | InvokeHook | StopTasks | ReplaceTask | WakeAt | Note
          | Promote)


# -- the record -------------------------------------------------------------


@dataclass
class HookRun:
    hook_index: int
    stage: str
    execution_id: str
    kind: str
    started_at: float
    attempts: int = 0
    status: str = "IN_PROGRESS"
    details: Any = None
    next_call_at: float | None = None
    timeout_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Deployment:
    id: str
    service: str
    config: dict[str, Any]  # DeploymentConfiguration as given (camelCase)
    time_scale: float
    desired_count: int
    source_revision: str
    target_revision: str
    created_at: float
    has_test_rules: bool = True
    status: str = PENDING
    status_reason: str | None = None
    stage: str | None = None
    stage_started_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    updated_at: float | None = None
    version: int = 0  # bumped by every step: lets a reader drop a snapshot older than one it has
    waiting: str | None = None
    wake_at: float | None = None
    step_index: int = 0
    production_percent: float = 0.0  # green share verified in force
    test_percent: float = 0.0
    requested_production_percent: float = 0.0
    requested_test_percent: float = 0.0
    monitoring: bool = False
    ignored_alarms: list[str] = field(default_factory=list)
    triggered_alarms: list[str] = field(default_factory=list)
    alarm_states: dict[str, str] = field(default_factory=dict)
    rollback: dict[str, Any] | None = None
    failure_count: int = 0
    failed_tasks: list[str] = field(default_factory=list)  # counted by the circuit breaker, each once
    circuit_breaker_status: str = "DISABLED"
    pending_hooks: list[int] = field(default_factory=list)
    hook: HookRun | None = None
    hook_runs: list[HookRun] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)  # timeline: stage, started, ended

    @cached_property
    def dc(self) -> DeploymentConfiguration:
        return DeploymentConfiguration.model_validate(self.config)

    @cached_property
    def steps(self) -> list[Step]:
        return plan(self.dc)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def rolling_back(self) -> bool:
        return self.status in (ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS)

    @property
    def threshold(self) -> int:
        """ECS's circuit-breaker threshold: clamp(ceil(0.5 x desiredCount), 3, 200)."""
        return min(max(math.ceil(0.5 * self.desired_count), 3), 200)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        data = dict(data)
        hook = data.pop("hook", None)
        runs = data.pop("hook_runs", [])
        d = cls(**data)
        d.hook = HookRun(**hook) if hook else None
        d.hook_runs = [HookRun(**r) for r in runs]
        return d


def minutes(d: Deployment, m: float) -> float:
    """AWS minutes as seconds of this rehearsal's clock."""
    return m * 60.0 / d.time_scale


# -- the machine --------------------------------------------------------------


class _Step:
    """One call of `step`: the deployment being changed and the actions so far."""

    def __init__(self, d: Deployment, now: float) -> None:
        self.d = d
        self.now = now
        self.actions: list[Action] = []

    def emit(self, action: Action) -> None:
        self.actions.append(action)

    def note(self, kind: str, message: str) -> None:
        self.emit(Note(kind, message))

    # stages ------------------------------------------------------------

    def enter(self, stage: str) -> None:
        d = self.d
        if d.stages and d.stages[-1].get("endedAt") is None:
            d.stages[-1]["endedAt"] = self.now
        d.stage = stage
        d.stage_started_at = self.now
        d.stages.append({"stage": stage, "startedAt": self.now, "endedAt": None,
                         "rollback": d.rolling_back})
        self.note("stage", f"{stage}" + (" (rollback)" if d.rolling_back else ""))
        self.start_work()

    def start_work(self) -> None:
        d = self.d
        stage = d.stage
        if d.rolling_back:
            if stage == PRODUCTION_TRAFFIC_SHIFT:
                self.set_weights("all", 0.0)
            elif stage == CLEAN_UP:
                d.waiting = W_STOP
                self.emit(StopTasks("green"))
            return
        rolling = d.dc.strategy == "ROLLING"
        if stage == RECONCILE_SERVICE:
            d.waiting = W_RECONCILE
            self.emit(Reconcile())
        elif stage == SCALE_UP:
            d.waiting = W_ROLLING if rolling else W_SCALE
            self.emit(RollingReplace() if rolling else ScaleUpGreen(d.desired_count))
        elif stage == TEST_TRAFFIC_SHIFT and d.has_test_rules:
            self.set_weights("test", 100.0)
        elif stage == PRODUCTION_TRAFFIC_SHIFT:
            self.set_weights("production", d.steps[d.step_index].percent)
        elif stage == BAKE_TIME:
            self.bake(minutes(d, d.dc.bakeTimeInMinutes))
        elif stage == CLEAN_UP:
            d.monitoring = False
            d.waiting = W_STOP
            self.emit(StopTasks("blue"))
        else:
            self.work_done()

    def set_weights(self, kind: str, percent: float) -> None:
        d = self.d
        d.waiting = W_WEIGHTS
        if kind in ("production", "all"):
            d.requested_production_percent = percent
        if kind in ("test", "all"):
            d.requested_test_percent = percent
        self.emit(SetWeights(kind, percent))

    def bake(self, seconds: float) -> None:
        d = self.d
        d.waiting = W_BAKE
        d.wake_at = self.now + seconds
        self.emit(WakeAt(d.wake_at))
        self.check_bake()

    def check_bake(self) -> None:
        d = self.d
        if d.waiting == W_BAKE and d.wake_at is not None and self.now >= d.wake_at:
            d.wake_at = None
            d.waiting = None
            if d.stage == PRODUCTION_TRAFFIC_SHIFT:
                self.next_stage()  # the step bake comes after the step's hooks
            else:
                self.work_done()

    def work_done(self) -> None:
        """The stage's own work is over: run its hooks, then go on."""
        d = self.d
        d.waiting = None
        hooks = [i for i, h in enumerate(d.dc.lifecycleHooks) if d.stage in h.lifecycleStages]
        if d.dc.strategy == "ROLLING":
            hooks = []
        d.pending_hooks = hooks
        self.next_hook()

    def next_hook(self) -> None:
        d = self.d
        if not d.pending_hooks:
            self.hooks_done()
            return
        index = d.pending_hooks.pop(0)
        hook = d.dc.lifecycleHooks[index]
        n = sum(1 for r in d.hook_runs if r.stage == d.stage) + 1
        run = HookRun(
            hook_index=index, stage=d.stage or "", execution_id=f"{d.id}-{d.stage}-{n}-{index}",
            kind=hook.kind, started_at=self.now, details=hook.hookDetails,
        )
        if hook.timeoutConfiguration is not None or hook.kind == "PAUSE":
            tc = hook.timeoutConfiguration
            run.timeout_at = self.now + minutes(d, tc.timeoutInMinutes if tc else 60)
            self.emit(WakeAt(run.timeout_at))
        d.hook = run
        d.waiting = W_HOOK
        if hook.kind == "PAUSE":
            self.note("hook", f"{d.stage}: waiting for approval (shiftlab approve)")
        else:
            self.invoke(run)

    def invoke(self, run: HookRun) -> None:
        d = self.d
        run.attempts += 1
        run.next_call_at = None
        self.emit(InvokeHook(run.hook_index, run.stage, run.execution_id, run.details,
                             d.production_percent, d.test_percent))

    def hook_finished(self, status: str, error: str | None = None) -> None:
        d = self.d
        run = d.hook
        assert run is not None
        run.status = status
        run.finished_at = self.now
        run.error = error
        d.hook_runs.append(run)
        d.hook = None
        d.waiting = None
        self.note("hook", f"{run.stage} hook {run.hook_index} {status}" + (f": {error}" if error else ""))
        if status == "SUCCEEDED" or d.rolling_back:
            # Hook failures during a rollback are recorded; the rollback goes on.
            self.next_hook()
        else:
            self.fail(f"lifecycle hook at {run.stage} failed" + (f": {error}" if error else ""), rollback=True)

    def hooks_done(self) -> None:
        d = self.d
        if d.stage == PRODUCTION_TRAFFIC_SHIFT and not d.rolling_back:
            step = d.steps[d.step_index]
            if step.bake_minutes > 0:
                self.bake(minutes(d, step.bake_minutes))
                return
        self.next_stage()

    def next_stage(self) -> None:
        d = self.d
        stage = d.stage
        if d.rolling_back:
            if stage == PRODUCTION_TRAFFIC_SHIFT:
                self.enter(CLEAN_UP)
            else:
                self.finish(ROLLBACK_SUCCESSFUL, d.status_reason)
            return
        if d.dc.strategy == "ROLLING":
            order = [RECONCILE_SERVICE, SCALE_UP, BAKE_TIME, CLEAN_UP]
        else:
            order = [RECONCILE_SERVICE, PRE_SCALE_UP, SCALE_UP, POST_SCALE_UP, TEST_TRAFFIC_SHIFT,
                     POST_TEST_TRAFFIC_SHIFT, PRE_PRODUCTION_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT,
                     POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP]
        if stage == PRODUCTION_TRAFFIC_SHIFT and d.step_index + 1 < len(d.steps):
            d.step_index += 1
            self.enter(PRE_PRODUCTION_TRAFFIC_SHIFT)
            return
        if stage == CLEAN_UP:
            self.emit(Promote())
            self.finish(SUCCESSFUL, "deployment completed")
            return
        assert stage is not None
        self.enter(order[order.index(stage) + 1])

    # ends --------------------------------------------------------------

    def fail(self, reason: str, rollback: bool) -> None:
        d = self.d
        if d.final or d.rolling_back:
            return
        if rollback and d.stage == CLEAN_UP and d.dc.strategy != "ROLLING":
            # Blue is being stopped: there is nothing left to roll back to.
            self.note("warning", f"{reason}; ignored during CLEAN_UP")
            return
        if not rollback:
            d.status_reason = f"{reason}; rollback is disabled, traffic left at {d.production_percent:g}% green"
            self.finish(STOPPED, d.status_reason)
            return
        self.start_rollback(reason)

    def start_rollback(self, reason: str) -> None:
        d = self.d
        d.monitoring = False
        d.hook = None
        d.pending_hooks = []
        d.wake_at = None
        d.status = ROLLBACK_REQUESTED
        d.status_reason = reason
        d.rollback = {"reason": reason, "startedAt": self.now, "serviceRevisionArn": d.source_revision}
        self.note("status", f"{ROLLBACK_REQUESTED}: {reason}")
        d.status = ROLLBACK_IN_PROGRESS
        self.note("status", ROLLBACK_IN_PROGRESS)
        if d.dc.strategy == "ROLLING":
            # Rolling has no weights: restore blue's count, then stop green.
            self.enter(CLEAN_UP)
        else:
            self.enter(PRODUCTION_TRAFFIC_SHIFT)

    def finish(self, status: str, reason: str | None) -> None:
        d = self.d
        d.status = status
        d.status_reason = reason
        d.waiting = None
        d.wake_at = None
        d.monitoring = False
        if d.stages and d.stages[-1].get("endedAt") is None:
            d.stages[-1]["endedAt"] = self.now
        if status == STOPPED:
            d.stopped_at = self.now
        d.finished_at = self.now
        self.note("status", f"{status}" + (f": {reason}" if reason else ""))


def recovery_plan(d: Deployment) -> str:
    """What a restarted controller does with an unfinished deployment.

    "start": it never started. "rollback": production traffic had not
    moved to green yet (no verified production step; for ROLLING, no green
    task serving yet), or a rollback was under way: roll back from the start of the rollback route. "resume":
    green already serves production: carry on where the record says, bake
    timers continuing from their recorded start."""
    if d.status == PENDING:
        return "start"
    if d.rolling_back:
        return "rollback"
    # ROLLING records the green share its task counts give (GreenServing):
    # the same rule holds for it.
    moved = d.production_percent > 0 or d.stage in (POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP)
    return "resume" if moved else "rollback"


def wanted_weights(d: Deployment | None) -> dict[str, float] | None:
    """The green share (percent) the load balancer's production and test
    rules should have now, by the service's last deployment (`d`: the
    current one, or the last one this controller ran). None: leave the
    weights alone, the deployment sets them itself right now.

    No deployment, or one that finished (promoted or rolled back): all
    traffic on the primary group (0% green). One in progress, or STOPPED
    (it left traffic where it was, on purpose): the weights its record says
    were verified in force. ROLLING weights follow the task counts and a
    ROLLING rollback that could not restore blue left green serving: those
    are the driver's to keep."""
    if d is None:
        return {"production": 0.0, "test": 0.0}
    holds = not d.final or d.status == STOPPED
    if holds and (d.waiting in (W_WEIGHTS, W_RECONCILE) or d.dc.strategy == "ROLLING"):
        return None
    if d.status == ROLLBACK_FAILED and d.dc.strategy == "ROLLING":
        return None
    if holds:
        return {"production": d.production_percent, "test": d.test_percent}
    return {"production": 0.0, "test": 0.0}


class Adopted(NamedTuple):
    """A running task a restarted controller found (Backend.adopt)."""

    task_id: str
    revision: str


@dataclass(frozen=True)
class RestartPlan:
    """What a restarted controller does with what it found (restart_plan)."""

    running_revision: str  # after `promote`
    promote: Deployment | None  # SUCCESSFUL, but the service record still names its source revision
    supersede: list[Deployment]  # unfinished but older than the last one: stopped as superseded
    resume: Deployment | None  # the unfinished deployment to go on with (machine.Recover)
    blue: list[str]  # adopted tasks kept in the primary set
    green: list[str]  # adopted tasks kept in the alternate set (the resumed deployment's revision)
    stop: list[str]  # adopted tasks nothing owns
    blue_desired: int


def restart_plan(running_revision: str, desired_count: int, latest: Deployment | None,
                 unfinished: list[Deployment], adopted: list[Adopted]) -> RestartPlan:
    """Adopt what a previous controller left: promote a deployment it
    finished but did not promote (records are written before actions: a
    controller killed between saving SUCCESSFUL and saving the promoted
    service state left the service on the old revision, and the new one
    would be stopped), resume its last unfinished deployment, and give each
    running task to the set running its revision; anything else is
    stopped, so nothing is doubled or orphaned."""
    promote = None
    if latest is not None and latest.status == SUCCESSFUL and latest.target_revision != running_revision:
        promote = latest
        running_revision = latest.target_revision
    resume = unfinished[-1] if unfinished else None
    blue = [t.task_id for t in adopted if t.revision == running_revision]
    green = [t.task_id for t in adopted
             if t.revision != running_revision and resume is not None and t.revision == resume.target_revision]
    stop = [t.task_id for t in adopted if t.task_id not in blue and t.task_id not in green]
    blue_desired = desired_count
    if resume is not None and resume.dc.strategy == "ROLLING" and resume.status != PENDING:
        # Mid-ROLLING, blue has the tasks the replacement left it: growing it
        # back to desiredCount would start old tasks beside the new ones (a
        # rollback restores blue's count itself).
        blue_desired = min(desired_count, len(blue))
    return RestartPlan(running_revision, promote, unfinished[:-1], resume, blue, green, stop, blue_desired)


def step(deployment: Deployment, event: Event, now: float) -> tuple[Deployment, list[Action]]:
    """Apply one event. The input record is not modified."""
    d = copy.deepcopy(deployment)
    s = _Step(d, now)
    d.updated_at = now
    if d.final:
        return d, []
    d.version += 1
    _dispatch(s, event)
    # Hook timeouts and callbacks are deadlines like bakes: any event may
    # find one passed, not only a Tick.
    _check_hook_deadlines(s)
    return d, s.actions


def _dispatch(s: _Step, event: Event) -> None:
    d = s.d
    if isinstance(event, Start):
        if d.status != PENDING:
            return
        d.status = IN_PROGRESS
        d.started_at = s.now
        dc = d.dc
        if dc.alarms.enable:
            d.ignored_alarms = [n for n in dc.alarms.alarmNames if event.alarm_states.get(n) == "ALARM"]
            for n in d.ignored_alarms:
                s.note("alarm", f"{n} is in ALARM as the deployment starts: ignored for this deployment, as ECS does")
        d.circuit_breaker_status = "MONITORING" if dc.deploymentCircuitBreaker.enable else "DISABLED"
        s.note("status", IN_PROGRESS)
        s.enter(RECONCILE_SERVICE)
    elif isinstance(event, Tick):
        s.check_bake()
    elif isinstance(event, Recover):
        _recover(s, event)
    elif isinstance(event, Reconciled):
        if d.waiting == W_RECONCILE:
            if event.ok:
                s.work_done()
            else:
                s.finish(STOPPED, f"could not reconcile the service: {event.error}")
    elif isinstance(event, GreenReady | RollingDone):
        if d.waiting in (W_SCALE, W_ROLLING):
            if event.ok:
                d.monitoring = True  # ECS watches alarms once the new tasks run
                if isinstance(event, RollingDone):
                    d.production_percent = d.test_percent = 100.0  # every blue task replaced
                s.work_done()
            else:
                s.fail(f"new tasks did not become healthy: {event.error}", rollback=True)
    elif isinstance(event, GreenServing):
        if d.waiting == W_ROLLING:
            # Recorded so that a restarted controller knows production traffic
            # reached green (the recovery rule) and what to re-apply.
            d.production_percent = d.test_percent = event.percent
            d.requested_production_percent = d.requested_test_percent = event.percent
            if event.percent > 0 and not d.monitoring:
                d.monitoring = True
                if d.dc.alarms.enable:
                    s.note("alarm", "green tasks serve: alarms are watched from now on")
    elif isinstance(event, TaskFailed):
        _task_failed(s, event)
    elif isinstance(event, TaskUnhealthy):
        _task_unhealthy(s, event)
    elif isinstance(event, WeightsApplied):
        if not _answers_weights_request(d, event):
            return
        if not event.ok:
            if d.rolling_back:
                s.finish(ROLLBACK_FAILED, f"could not move traffic back to blue: {event.error}")
            else:
                s.fail(f"could not set {event.kind} weights: {event.error}", rollback=True)
            return
        if event.kind in ("production", "all"):
            d.production_percent = event.percent
        if event.kind in ("test", "all"):
            d.test_percent = event.percent
        s.note("weights", f"{event.kind} traffic: {event.percent:g}% green (verified)")
        s.work_done()
    elif isinstance(event, AlarmStates):
        _alarms(s, event)
    elif isinstance(event, HookAnswer):
        _hook_answer(s, event)
    elif isinstance(event, Approve):
        run = d.hook
        if run is not None and run.kind == "PAUSE":
            s.note("hook", f"{run.stage}: approved")
            s.hook_finished("SUCCEEDED")
    elif isinstance(event, StopRequest):
        if d.rolling_back:
            return
        if event.rollback:
            s.start_rollback(event.reason)
        else:
            d.status = STOP_REQUESTED
            s.note("status", STOP_REQUESTED)
            s.finish(STOPPED, f"{event.reason}; traffic left at {d.production_percent:g}% green, "
                              f"both task sets left running")
    elif isinstance(event, TasksStopped):
        if d.waiting != W_STOP:
            return
        if d.rolling_back:
            if event.ok:
                if d.dc.strategy == "ROLLING":
                    d.production_percent = d.test_percent = 0.0  # blue restored and serving alone
                s.work_done()
            elif d.dc.strategy == "ROLLING":
                # The driver says what went wrong: blue not restored (green left
                # serving) or green not stopped.
                s.finish(ROLLBACK_FAILED, f"{d.status_reason}; rollback failed: {event.error}")
            else:
                s.finish(ROLLBACK_FAILED, f"traffic is back on blue but green did not stop: {event.error}")
        elif event.ok:
            s.work_done()
        else:
            s.finish(STOPPED, f"could not stop the old tasks: {event.error}")


def _answers_weights_request(d: Deployment, event: WeightsApplied) -> bool:
    """Whether `event` answers the SetWeights the deployment waits for. A
    rollback can start while a test or production shift is still being
    carried out: that shift's answer (test traffic 100% green) must not
    pass for the rollback's (all traffic 0% green), or the record keeps the
    old weights and the rollback goes on before blue has the traffic back."""
    if d.waiting != W_WEIGHTS:
        return False
    if d.rolling_back:
        return event.kind == "all" and event.percent == d.requested_production_percent
    if event.kind == "test":
        return event.percent == d.requested_test_percent
    return event.kind == "production" and event.percent == d.requested_production_percent


def _recover(s: _Step, event: Recover) -> None:
    d = s.d
    plan_ = recovery_plan(d)
    if plan_ == "start":
        _dispatch(s, Start(event.alarm_states))
        return
    if plan_ == "rollback":
        reason = (d.status_reason if d.rolling_back else
                  f"the controller restarted during {d.stage}, before production traffic moved")
        d.status = IN_PROGRESS  # the rollback route starts again from its first stage
        s.start_rollback(reason or "the controller restarted during a rollback")
        return
    s.note("recovery", f"resuming {d.stage}" + (f" ({d.waiting})" if d.waiting else ""))
    if d.waiting == W_BAKE and d.wake_at is not None:
        s.emit(WakeAt(d.wake_at))
        s.check_bake()
    elif d.waiting == W_HOOK and d.hook is not None:
        if d.hook.kind == "PAUSE":
            if d.hook.timeout_at is not None:
                s.emit(WakeAt(d.hook.timeout_at))
        elif d.hook.next_call_at is None:
            s.invoke(d.hook)  # the answer to the last call was lost with the controller
        else:
            s.emit(WakeAt(d.hook.next_call_at))
    else:
        s.start_work()  # every stage's work is idempotent: do it again


def _task_failed(s: _Step, event: TaskFailed) -> None:
    d = s.d
    if d.rolling_back or d.stage == CLEAN_UP or event.task_id in d.failed_tasks:
        return
    d.failed_tasks.append(event.task_id)
    d.failure_count += 1
    cb = d.dc.deploymentCircuitBreaker
    s.note("task", f"green task {event.task_id} failed ({event.reason}); "
                   f"circuit breaker {d.failure_count}/{d.threshold}")
    if cb.enable and d.failure_count >= d.threshold:
        d.circuit_breaker_status = "TRIGGERED"
        s.fail(f"circuit breaker: {d.failure_count} task failures reached the threshold {d.threshold}",
               rollback=cb.rollback)


UNHEALTHY = "failed target group health checks"


def _task_unhealthy(s: _Step, event: TaskUnhealthy) -> None:
    """As ECS replaces a task whose target health check fails, and its
    circuit breaker counts it: from SCALE_UP until the deployment ends or
    rolls back (green runs nothing before; a rollback stops it anyway), once
    the task is out of its grace period. Counted once (TaskFailed's rule);
    replaced in CLEAN_UP too, where it no longer counts."""
    d = s.d
    if d.rolling_back or d.stage in (None, RECONCILE_SERVICE, PRE_SCALE_UP) or event.task_id in d.failed_tasks:
        return
    grace = event.grace_period_seconds / d.time_scale
    if grace > 0 and event.started_at is not None and s.now - event.started_at < grace:
        return
    s.emit(ReplaceTask(event.task_id, UNHEALTHY))
    _task_failed(s, TaskFailed(event.task_id, UNHEALTHY))


def _alarms(s: _Step, event: AlarmStates) -> None:
    d = s.d
    changed = {k: v for k, v in event.states.items() if d.alarm_states.get(k) != v}
    d.alarm_states.update(event.states)
    for name, state in changed.items():
        s.note("alarm", f"{name}: {state}")
    dc = d.dc
    if not (dc.alarms.enable and d.monitoring) or d.rolling_back:
        return
    firing = [n for n in dc.alarms.alarmNames if event.states.get(n) == "ALARM" and n not in d.ignored_alarms]
    if firing:
        d.triggered_alarms = sorted(set(d.triggered_alarms) | set(firing))
        s.fail(f"alarm {', '.join(firing)} in ALARM", rollback=dc.alarms.rollback)


def _hook_answer(s: _Step, event: HookAnswer) -> None:
    d = s.d
    run = d.hook
    if run is None or run.execution_id != event.execution_id:
        return
    run.answers.append({"at": s.now, "hookStatus": event.status, "callBackDelay": event.callback_delay,
                        "error": event.error, "seconds": event.call_seconds})
    if event.status == "IN_PROGRESS":
        run.details = event.hook_details if event.hook_details is not None else run.details
        delay = 30.0 if event.callback_delay is None else event.callback_delay
        run.next_call_at = s.now + delay / d.time_scale
        s.emit(WakeAt(run.next_call_at))
    elif event.status == "SUCCEEDED":
        s.hook_finished("SUCCEEDED")
    else:
        s.hook_finished("FAILED", event.error or "the hook answered FAILED")


def _check_hook_deadlines(s: _Step) -> None:
    d = s.d
    run = d.hook
    if run is None or d.final or d.waiting != W_HOOK:
        return
    if run.timeout_at is not None and s.now >= run.timeout_at:
        hook = d.dc.lifecycleHooks[run.hook_index]
        action = hook.timeoutConfiguration.action if hook.timeoutConfiguration else "ROLLBACK"
        if action == "CONTINUE":
            s.note("hook", f"{run.stage}: timed out; timeoutConfiguration says CONTINUE")
            s.hook_finished("SUCCEEDED", "timed out (CONTINUE)")
        else:
            s.hook_finished("FAILED", "timed out")
        return
    if run.next_call_at is not None and s.now >= run.next_call_at:
        s.invoke(run)
