"""One transition's work: the lifecycle stages in order, their hooks and
bakes, and the ends (success, stop, rollback). Every stage is "do its work
(if any), then run its hooks, then go on"."""

from __future__ import annotations

from shiftlab.controller import eventlog
from shiftlab.controller.eventlog import Entry
from shiftlab.controller.machine.actions import (
    Action,
    InvokeHook,
    Note,
    Promote,
    Reconcile,
    RollingReplace,
    ScaleUpGreen,
    SetWeights,
    StopTasks,
    WakeAt,
)
from shiftlab.controller.machine.record import (
    BAKE_TIME,
    CLEAN_UP,
    POST_PRODUCTION_TRAFFIC_SHIFT,
    POST_SCALE_UP,
    POST_TEST_TRAFFIC_SHIFT,
    PRE_PRODUCTION_TRAFFIC_SHIFT,
    PRE_SCALE_UP,
    PRODUCTION_TRAFFIC_SHIFT,
    RECONCILE_SERVICE,
    ROLLBACK_IN_PROGRESS,
    ROLLBACK_REQUESTED,
    ROLLBACK_SUCCESSFUL,
    SCALE_UP,
    STOPPED,
    SUCCESSFUL,
    TEST_TRAFFIC_SHIFT,
    W_BAKE,
    W_DELAY,
    W_HOOK,
    W_RECONCILE,
    W_ROLLING,
    W_SCALE,
    W_STOP,
    W_WEIGHTS,
    Deployment,
    HookRun,
    minutes,
)
from shiftlab.controller.rolling import RollingStuck, rolling_plan


class Transition:
    """One call of `step`: the deployment being changed and the actions so far."""

    def __init__(self, d: Deployment, now: float) -> None:
        self.d = d
        self.now = now
        self.actions: list[Action] = []

    def emit(self, action: Action) -> None:
        self.actions.append(action)

    def note(self, entry: Entry) -> None:
        self.emit(Note(entry))

    # stages ------------------------------------------------------------

    def enter(self, stage: str) -> None:
        d = self.d
        previous = d.stages[-1]["stage"] if d.stages else None
        if d.stages and d.stages[-1].get("endedAt") is None:
            d.stages[-1]["endedAt"] = self.now
        d.stage = stage
        d.stage_started_at = self.now
        d.stages.append({"stage": stage, "startedAt": self.now, "endedAt": None,
                         "rollback": d.rolling_back})
        self.note(eventlog.stage_entered(stage, previous, d.rolling_back))
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
            else:
                self.work_done()  # TEST_TRAFFIC_SHIFT: test traffic moved back with the rest; its hooks run
            return
        rolling = d.dc.strategy == "ROLLING"
        if stage == RECONCILE_SERVICE:
            d.waiting = W_RECONCILE
            self.emit(Reconcile())
        elif stage == SCALE_UP and rolling:
            d.waiting = W_ROLLING
            self.next_batch()
        elif stage == SCALE_UP:
            d.waiting = W_SCALE
            self.emit(ScaleUpGreen(d.desired_count))
        elif stage == TEST_TRAFFIC_SHIFT and d.has_test_rules:
            self.set_weights("test", 100.0)
        elif stage == PRODUCTION_TRAFFIC_SHIFT:
            self.set_weights("production", d.steps[d.step_index].percent)
        elif stage == BAKE_TIME:
            # ROLLING with alarms watches them for the bake ECS derives from them, then bakeTimeInMinutes.
            self.bake(minutes(d, d.dc.bakeTimeInMinutes + (d.alarm_bake_minutes if rolling else 0.0)))
        elif stage == CLEAN_UP:
            d.monitoring = False
            d.waiting = W_STOP
            self.emit(StopTasks("blue"))
        else:
            self.work_done()

    def next_batch(self) -> None:
        """ROLLING: the next batch from the counts the last one left, or,
        every old task replaced, the end of SCALE_UP."""
        d = self.d
        dc = d.dc
        blue, green = d.rolling_tasks or (d.desired_count, 0)
        try:
            batches = rolling_plan(d.desired_count, dc.minimumHealthyPercent, dc.maximumPercent,
                                   blue=min(blue, d.desired_count), green=green)
        except RollingStuck as exc:
            self.fail(f"new tasks cannot replace the old ones: {exc}", rollback=True)
            return
        if not batches:
            d.monitoring = True  # ECS watches alarms once the new tasks run
            d.production_percent = d.test_percent = 100.0  # every old task replaced
            self.work_done()
            return
        b = batches[0]
        self.emit(RollingReplace(min(blue, d.desired_count) - b.stop_blue, green + b.start_green))

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

    def weights_done(self) -> None:
        """A traffic shift's weights are in force: behind a network load
        balancer ECS waits its delay before the stage's hooks (forward route
        only: a rollback moves traffic back without it)."""
        d = self.d
        delay = d.shift_delay_minutes
        if delay > 0 and not d.rolling_back and d.stage in (TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT):
            d.waiting = W_DELAY
            d.wake_at = self.now + minutes(d, delay)
            self.note(eventlog.shift_delayed(d.stage, delay, d.wake_at - self.now))
            self.emit(WakeAt(d.wake_at))
            return
        self.work_done()

    def check_bake(self) -> None:
        d = self.d
        if d.waiting == W_DELAY and d.wake_at is not None and self.now >= d.wake_at:
            d.wake_at = None
            self.work_done()
            return
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
        # Every hook has a timeout, 1,440 AWS minutes unless configured (ECS's default).
        run.timeout_at = self.now + minutes(d, hook.timeout_minutes)
        self.emit(WakeAt(run.timeout_at))
        d.hook = run
        d.waiting = W_HOOK
        if hook.kind == "PAUSE":
            self.note(eventlog.hook_waiting(run.stage, index, run.execution_id))
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
        self.note(eventlog.hook_finished(run.stage, run.hook_index, run.execution_id, status, error))
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
            # "When a rollback occurs, Amazon ECS re-invokes hooks registered at the
            # PRODUCTION_TRAFFIC_SHIFT and TEST_TRAFFIC_SHIFT stages" (the Lambda hooks page).
            if stage == PRODUCTION_TRAFFIC_SHIFT:
                self.enter(TEST_TRAFFIC_SHIFT)
            elif stage == TEST_TRAFFIC_SHIFT:
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
            self.note(eventlog.failure_ignored(reason, CLEAN_UP))
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
        self.note(eventlog.status_changed(ROLLBACK_REQUESTED, reason))
        d.status = ROLLBACK_IN_PROGRESS
        self.note(eventlog.status_changed(ROLLBACK_IN_PROGRESS))
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
        self.note(eventlog.status_changed(status, reason))
