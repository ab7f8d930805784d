"""`step`: one event applied to a deployment, dispatched by its kind."""

from __future__ import annotations

import copy
from typing import Any

from shiftlab.controller import eventlog
from shiftlab.controller.machine.actions import Action, ReplaceTask, WakeAt
from shiftlab.controller.machine.events import (
    AlarmStates,
    Approve,
    Event,
    GreenReady,
    GreenServing,
    HookAnswer,
    Reconciled,
    Recover,
    RollingDone,
    Start,
    StopRequest,
    TaskFailed,
    TaskHealthy,
    TasksStopped,
    TaskUnhealthy,
    Tick,
    WeightsApplied,
)
from shiftlab.controller.machine.record import (
    CLEAN_UP,
    HOOK_TIMED_OUT,
    HOOK_TIMED_OUT_CONTINUE,
    IN_PROGRESS,
    PENDING,
    PRE_SCALE_UP,
    RECONCILE_SERVICE,
    ROLLBACK_FAILED,
    STOP_REQUESTED,
    STOPPED,
    W_BAKE,
    W_DELAY,
    W_HOOK,
    W_RECONCILE,
    W_ROLLING,
    W_SCALE,
    W_STOP,
    W_WEIGHTS,
    Deployment,
)
from shiftlab.controller.machine.restart import recovery_plan
from shiftlab.controller.machine.stages import Transition


def step(deployment: Deployment, event: Event, now: float) -> tuple[Deployment, list[Action]]:
    """Apply one event. The input record is not modified."""
    d = copy.deepcopy(deployment)
    s = Transition(d, now)
    d.updated_at = now
    if d.final:
        return d, []
    d.version += 1
    _dispatch(s, event)
    # Hook timeouts and callbacks are deadlines like bakes: any event may
    # find one passed, not only a Tick.
    _check_hook_deadlines(s)
    return d, s.actions


def _dispatch(s: Transition, event: Event) -> None:
    match event:
        case Start():
            _start(s, event)
        case Tick():
            s.check_bake()
        case Recover():
            _recover(s, event)
        case Reconciled():
            _reconciled(s, event)
        case GreenReady() | RollingDone():
            _green_up(s, event)
        case GreenServing():
            _green_serving(s, event)
        case TaskFailed():
            _task_failed(s, event)
        case TaskUnhealthy():
            _task_unhealthy(s, event)
        case TaskHealthy():
            _task_healthy(s, event)
        case WeightsApplied():
            _weights_applied(s, event)
        case AlarmStates():
            _alarms(s, event)
        case HookAnswer():
            _hook_answer(s, event)
        case Approve():
            _approve(s, event)
        case StopRequest():
            _stop_request(s, event)
        case TasksStopped():
            _tasks_stopped(s, event)


def _start(s: Transition, event: Start) -> None:
    d = s.d
    if d.status != PENDING:
        return
    d.status = IN_PROGRESS
    d.started_at = s.now
    dc = d.dc
    if dc.alarms.enable:
        # ECS: with an alarm already in ALARM when a deployment starts, the
        # deployment's alarm configuration is not used at all (not just that alarm).
        already = [n for n in dc.alarms.alarmNames if event.alarm_states.get(n) == "ALARM"]
        if already:
            d.ignored_alarms = list(dc.alarms.alarmNames)
            s.note(eventlog.alarm_ignored(already, d.ignored_alarms))
    d.circuit_breaker_status = "MONITORING" if dc.deploymentCircuitBreaker.enable else "DISABLED"
    s.note(eventlog.status_changed(IN_PROGRESS))
    if dc.strategy != "ROLLING" and event.active_revisions is not None and event.active_revisions < 2:
        # RECONCILE_SERVICE "only happens when you start a new service deployment with
        # more than 1 service revision in an ACTIVE state" (DeploymentLifecycleHook).
        s.note(eventlog.stage_skipped(RECONCILE_SERVICE, "only one service revision is ACTIVE"))
        s.enter(PRE_SCALE_UP)
        return
    s.enter(RECONCILE_SERVICE)


def _reconciled(s: Transition, event: Reconciled) -> None:
    d = s.d
    if d.waiting == W_RECONCILE:
        if event.ok:
            s.work_done()
        else:
            s.finish(STOPPED, f"could not reconcile the service: {event.error}")


def _green_up(s: Transition, event: GreenReady | RollingDone) -> None:
    d = s.d
    if d.waiting in (W_SCALE, W_ROLLING):
        if event.ok and isinstance(event, RollingDone):
            d.rolling_tasks = [0, d.desired_count] if event.blue is None or event.green is None else \
                [event.blue, event.green]
            s.next_batch()
        elif event.ok:
            d.monitoring = True  # ECS watches alarms once the new tasks run
            s.work_done()
        else:
            s.fail(f"new tasks did not become healthy: {event.error}", rollback=True)


def _green_serving(s: Transition, event: GreenServing) -> None:
    d = s.d
    if d.waiting == W_ROLLING:
        # Recorded so that a restarted controller knows production traffic
        # reached green (the recovery rule) and what to re-apply.
        d.production_percent = d.test_percent = event.percent
        d.requested_production_percent = d.requested_test_percent = event.percent
        if event.percent > 0 and not d.monitoring:
            d.monitoring = True
            if d.dc.alarms.enable:
                s.note(eventlog.alarm_watched())


def _weights_applied(s: Transition, event: WeightsApplied) -> None:
    d = s.d
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
    s.note(eventlog.weights_verified(event.kind, event.percent))
    s.weights_done()


def _approve(s: Transition, event: Approve) -> None:
    d = s.d
    run = d.hook
    if run is not None and run.kind == "PAUSE":
        s.note(eventlog.hook_approved(run.stage, run.hook_index, run.execution_id))
        s.hook_finished("SUCCEEDED")


def _stop_request(s: Transition, event: StopRequest) -> None:
    d = s.d
    if d.rolling_back:
        return
    if event.rollback:
        s.start_rollback(event.reason)
    else:
        d.status = STOP_REQUESTED
        s.note(eventlog.status_changed(STOP_REQUESTED))
        s.finish(STOPPED, f"{event.reason}; traffic left at {d.production_percent:g}% green, "
                          f"both task sets left running")


def _tasks_stopped(s: Transition, event: TasksStopped) -> None:
    d = s.d
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


def _recover(s: Transition, event: Recover) -> None:
    d = s.d
    plan_ = recovery_plan(d)
    if plan_ == "start":
        _dispatch(s, Start(event.alarm_states, event.active_revisions))
        return
    if plan_ == "rollback":
        reason = (d.status_reason if d.rolling_back else
                  f"the controller restarted during {d.stage}, before production traffic moved")
        d.status = IN_PROGRESS  # the rollback route starts again from its first stage
        s.start_rollback(reason or "the controller restarted during a rollback")
        return
    s.note(eventlog.recovery_resumed(d.stage, d.waiting))
    if d.waiting in (W_BAKE, W_DELAY) and d.wake_at is not None:
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


def _task_failed(s: Transition, event: TaskFailed) -> None:
    d = s.d
    if d.rolling_back or d.stage == CLEAN_UP or event.task_id in d.failed_tasks:
        return
    d.failed_tasks.append(event.task_id)
    d.failure_count += 1
    cb = d.dc.deploymentCircuitBreaker
    s.note(eventlog.task_failed(event.task_id, d.target_revision, event.reason, d.failure_count, d.threshold))
    if cb.enable and d.failure_count >= d.threshold:
        d.circuit_breaker_status = "TRIGGERED"
        s.fail(f"circuit breaker: {d.failure_count} task failures reached the threshold {d.threshold}",
               rollback=cb.rollback)


UNHEALTHY = "failed target group health checks"


def _task_unhealthy(s: Transition, event: TaskUnhealthy) -> None:
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


def _task_healthy(s: Transition, event: TaskHealthy) -> None:
    """ECS's resetOnHealthyTask (default true): "a task that reaches a
    healthy state resets the failure count to 0"."""
    d = s.d
    cb = d.dc.deploymentCircuitBreaker
    if (not cb.enable or not cb.resetOnHealthyTask or d.rolling_back or d.failure_count == 0
            or d.circuit_breaker_status == "TRIGGERED" or event.task_id in d.failed_tasks):
        return
    s.note(eventlog.task_failures_reset(event.task_id, d.failure_count, d.threshold))
    d.failure_count = 0


def _alarms(s: Transition, event: AlarmStates) -> None:
    d = s.d
    changed = {k: v for k, v in event.states.items() if d.alarm_states.get(k) != v}
    d.alarm_states.update(event.states)
    for name, state in changed.items():
        s.note(eventlog.alarm_state(name, state, event.reasons.get(name)))
    dc = d.dc
    if not (dc.alarms.enable and d.monitoring) or d.rolling_back:
        return
    firing = [n for n in dc.alarms.alarmNames if event.states.get(n) == "ALARM" and n not in d.ignored_alarms]
    if firing:
        d.triggered_alarms = sorted(set(d.triggered_alarms) | set(firing))
        s.fail(f"alarm {', '.join(firing)} in ALARM", rollback=dc.alarms.rollback)


def _hook_answer(s: Transition, event: HookAnswer) -> None:
    d = s.d
    run = d.hook
    if run is None or run.execution_id != event.execution_id:
        return
    run.answers.append({"at": s.now, "hookStatus": event.status, "callBackDelay": event.callback_delay,
                        "error": event.error, "seconds": event.call_seconds})
    if event.status == "IN_PROGRESS":
        run.details = merged_details(run.details, event.hook_details)
        delay = 30.0 if event.callback_delay is None else event.callback_delay
        run.next_call_at = s.now + delay / d.time_scale
        s.emit(WakeAt(run.next_call_at))
    elif event.status == "SUCCEEDED":
        s.hook_finished("SUCCEEDED")
    else:
        s.hook_finished("FAILED", event.error or "the hook answered FAILED")


def merged_details(current: Any, answered: Any) -> Any:
    """What the next call of an IN_PROGRESS hook gets: "Amazon ECS merges this
    data and passes it back on the next invocation" (the Lambda hooks page,
    "Passing state with hookDetails"). The answer's keys win; a configured
    value that is not an object is replaced."""
    if answered is None:
        return current
    if isinstance(current, dict) and isinstance(answered, dict):
        return {**current, **answered}
    return answered


def _check_hook_deadlines(s: Transition) -> None:
    d = s.d
    run = d.hook
    if run is None or d.final or d.waiting != W_HOOK:
        return
    if run.timeout_at is not None and s.now >= run.timeout_at:
        action = d.dc.lifecycleHooks[run.hook_index].timeout_action
        if action == "CONTINUE":
            s.note(eventlog.hook_timed_out(run.stage, run.hook_index, run.execution_id, action))
            s.hook_finished("SUCCEEDED", HOOK_TIMED_OUT_CONTINUE)
        else:
            s.hook_finished("FAILED", HOOK_TIMED_OUT)
        return
    if run.next_call_at is not None and s.now >= run.next_call_at:
        s.invoke(run)
