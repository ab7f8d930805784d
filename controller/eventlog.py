"""The event log's vocabulary: what each line of the controller's event log
says, as data.

Every line has a type ("<kind>.<what>", e.g. "weights.verified") and the
fields its type promises (TYPES, the schema); its message, for people, is
rendered here from those fields. Whoever needs to know what happened (the
rehearsal, the demo's expectations, the dashboard, the tests) reads `type`
and `data`, never the message. The kind, the part before the dot, is the
coarse class the log has always shown (status, stage, weights, hook, alarm,
task, recovery, service, warning).

Every emitter builds its line with one of the constructors below, so that
one kind of happening reads and parses alike wherever it comes from (the
state machine's Note, the driver, the scheduler, the load-balancer sync).
Field names are camelCase, as in the rest of the API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# What a field may hold once read back from JSON: its exact types (a bool is
# no number here, though Python says it is an int).
TEXT: tuple[type, ...] = (str,)
MAYBE_TEXT: tuple[type, ...] = (str, type(None))
NUMBER: tuple[type, ...] = (int, float)
COUNT: tuple[type, ...] = (int,)
MAYBE_COUNT: tuple[type, ...] = (int, type(None))
FLAG: tuple[type, ...] = (bool,)
WEIGHTS: tuple[type, ...] = (dict,)  # target group -> weight
NAMES: tuple[type, ...] = (list,)


@dataclass(frozen=True, eq=False)  # one object per type (TYPES): compared and hashed by identity
class EntryType:
    """One type of line: its name, its fields (name -> allowed types) and how it reads."""

    name: str
    fields: Mapping[str, tuple[type, ...]]
    render: Callable[[Mapping[str, Any]], str]

    @property
    def kind(self) -> str:
        return self.name.partition(".")[0]

    def entry(self, **data: Any) -> Entry:
        return Entry(self.name, data)


@dataclass(frozen=True)
class Entry:
    """One line of the event log before it is written: its type and fields."""

    type: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return TYPES[self.type].kind

    @property
    def message(self) -> str:
        return TYPES[self.type].render(self.data)


TYPES: dict[str, EntryType] = {}


def _type(name: str, fields: Mapping[str, tuple[type, ...]], render: Callable[[Mapping[str, Any]], str]) -> EntryType:
    t = EntryType(name, fields, render)
    TYPES[name] = t
    return t


def problems(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with an event as the API returns it (type, kind, data),
    against its type's schema; [] when it keeps the promise."""
    t = TYPES.get(event.get("type") or "")
    if t is None:
        return [f"type: {event.get('type')!r} is not a known event type"]
    out = [] if event.get("kind") == t.kind else [f"kind: {event.get('kind')!r} is not {t.kind!r}"]
    data = event.get("data")
    if not isinstance(data, dict):
        return [*out, f"data: {data!r} is not an object"]
    out += [f"data.{k}: missing" for k in t.fields if k not in data]
    out += [f"data.{k}: not a field of {t.name}" for k in data if k not in t.fields]
    out += [f"data.{k}: {data[k]!r} is not {' or '.join(a.__name__ for a in allowed)}"
            for k, allowed in t.fields.items() if k in data and type(data[k]) not in allowed]
    return out


def event_record(entry: Entry, seq: int | None, deployment_id: str | None, at: float) -> dict[str, Any]:
    """An event as the API returns it (GET /api/events, a deployment's
    `events`, the stream's `event` messages)."""
    return {"seq": seq, "deploymentId": deployment_id, "at": at, "kind": entry.kind, "type": entry.type,
            "message": entry.message, "data": entry.data}


def _pct(x: float) -> str:
    return f"{x:g}"


def _hook_fields(**more: tuple[type, ...]) -> dict[str, tuple[type, ...]]:
    return {"stage": TEXT, "hookIndex": COUNT, "executionId": TEXT, **more}


# -- the deployment's status -----------------------------------------------------

STATUS_CREATED = _type(
    "status.created", {"status": TEXT, "sourceRevision": TEXT, "targetRevision": TEXT, "strategy": TEXT},
    lambda f: f"{f['status']}: revision {f['sourceRevision']} -> {f['targetRevision']} ({f['strategy']})")
STATUS_CHANGED = _type(
    "status.changed", {"status": TEXT, "reason": MAYBE_TEXT},
    lambda f: f["status"] + (f": {f['reason']}" if f["reason"] else ""))


def status_created(source_revision: str, target_revision: str, strategy: str) -> Entry:
    return STATUS_CREATED.entry(status="PENDING", sourceRevision=source_revision, targetRevision=target_revision,
                                strategy=strategy)


def status_changed(status: str, reason: str | None = None) -> Entry:
    return STATUS_CHANGED.entry(status=status, reason=reason)


# -- lifecycle stages ------------------------------------------------------------------

STAGE_ENTERED = _type(
    "stage.entered", {"stage": TEXT, "from": MAYBE_TEXT, "rollback": FLAG},
    lambda f: f["stage"] + (" (rollback)" if f["rollback"] else ""))


def stage_entered(stage: str, previous: str | None, rollback: bool) -> Entry:
    return STAGE_ENTERED.entry(stage=stage, **{"from": previous}, rollback=rollback)


STAGE_SKIPPED = _type("stage.skipped", {"stage": TEXT, "reason": TEXT},
                      lambda f: f"{f['stage']} skipped: {f['reason']}")


def stage_skipped(stage: str, reason: str) -> Entry:
    """A stage this deployment does not pass through, and why (RECONCILE_SERVICE with one ACTIVE revision)."""
    return STAGE_SKIPPED.entry(stage=stage, reason=reason)


STAGE_DELAYED = _type(
    "stage.delayed", {"stage": TEXT, "minutes": NUMBER, "seconds": NUMBER},
    lambda f: f"{f['stage']}: waiting the {_pct(f['minutes'])} minutes ECS adds behind a network load balancer "
              f"({_pct(round(f['seconds'], 3))} s at this time scale)")


def shift_delayed(stage: str, minutes: float, seconds: float) -> Entry:
    """A traffic shift waits the delay ECS adds behind a network load balancer
    (`minutes` AWS minutes, `seconds` of the rehearsal's clock)."""
    return STAGE_DELAYED.entry(stage=stage, minutes=minutes, seconds=seconds)


# -- weights -------------------------------------------------------------------------------

# `traffic`: which rules, "production", "test" or "all"; `percent`: green's share.
WEIGHTS_VERIFIED = _type(
    "weights.verified", {"traffic": TEXT, "percent": NUMBER},
    lambda f: f"{f['traffic']} traffic: {_pct(f['percent'])}% green (verified)")
WEIGHTS_BY_TASKS = _type(
    "weights.by_tasks",
    {"traffic": TEXT, "percent": NUMBER, "blueTasks": COUNT, "greenTasks": COUNT, "weights": WEIGHTS},
    lambda f: f"{f['traffic']} traffic: {_pct(f['percent'])}% green ({f['blueTasks']} blue, "
              f"{f['greenTasks']} green tasks)")


WEIGHTS_DNS_RECORDS = _type(
    "weights.dns_records", {"record": TEXT, "percent": NUMBER, "weights": WEIGHTS, "ttl": COUNT},
    lambda f: f"{f['record']}: {_pct(f['percent'])}% green in DNS (weights "
              + ", ".join(f"{k} {v}" for k, v in f["weights"].items())
              + f"); resolvers may keep the previous answer for up to {f['ttl']} s")


def weights_verified(traffic: str, percent: float) -> Entry:
    """Weights set on the rules of `traffic` and read back from the load balancer."""
    return WEIGHTS_VERIFIED.entry(traffic=traffic, percent=percent)


def weights_dns_records(record: str, percent: float, weights: dict[str, int], ttl: int) -> Entry:
    """Weighted DNS records (`route53`) changed: weights by SetIdentifier and
    the longest TTL served, how long clients may go on with the old answer."""
    return WEIGHTS_DNS_RECORDS.entry(record=record, percent=percent, weights=dict(weights), ttl=ttl)


def weights_by_tasks(percent: float, blue_tasks: int, green_tasks: int, weights: dict[str, int]) -> Entry:
    """ROLLING: weights on every rule that follow the healthy tasks in each group."""
    return WEIGHTS_BY_TASKS.entry(traffic="all", percent=percent, blueTasks=blue_tasks, greenTasks=green_tasks,
                                  weights=dict(weights))


# -- lifecycle hooks --------------------------------------------------------------------

HOOK_WAITING = _type("hook.waiting", _hook_fields(),
                     lambda f: f"{f['stage']}: waiting for approval (shiftlab approve)")
HOOK_APPROVED = _type("hook.approved", _hook_fields(), lambda f: f"{f['stage']}: approved")
HOOK_ANSWERED = _type(
    "hook.answered", _hook_fields(target=TEXT, status=TEXT, seconds=NUMBER, error=MAYBE_TEXT),
    lambda f: f"{f['stage']}: {f['target']} answered {f['status']} in {f['seconds']:g} s"
              + (f" ({f['error']})" if f["error"] else ""))
HOOK_TIMED_OUT = _type("hook.timed_out", _hook_fields(action=TEXT),
                       lambda f: f"{f['stage']}: timed out; timeoutConfiguration says {f['action']}")
HOOK_FINISHED = _type(
    "hook.finished", _hook_fields(status=TEXT, error=MAYBE_TEXT),
    lambda f: f"{f['stage']} hook {f['hookIndex']} {f['status']}" + (f": {f['error']}" if f["error"] else ""))


def hook_waiting(stage: str, hook_index: int, execution_id: str) -> Entry:
    """A PAUSE hook waits for `shiftlab approve`."""
    return HOOK_WAITING.entry(stage=stage, hookIndex=hook_index, executionId=execution_id)


def hook_approved(stage: str, hook_index: int, execution_id: str) -> Entry:
    return HOOK_APPROVED.entry(stage=stage, hookIndex=hook_index, executionId=execution_id)


def hook_answered(stage: str, hook_index: int, execution_id: str, target: str, status: str,
                  seconds: float, error: str | None) -> Entry:
    """One call of a hook's target and its answer (SUCCEEDED, FAILED or IN_PROGRESS)."""
    return HOOK_ANSWERED.entry(stage=stage, hookIndex=hook_index, executionId=execution_id, target=target,
                               status=status, seconds=seconds, error=error)


def hook_timed_out(stage: str, hook_index: int, execution_id: str, action: str) -> Entry:
    return HOOK_TIMED_OUT.entry(stage=stage, hookIndex=hook_index, executionId=execution_id, action=action)


def hook_finished(stage: str, hook_index: int, execution_id: str, status: str, error: str | None) -> Entry:
    """A hook run's end: SUCCEEDED or FAILED."""
    return HOOK_FINISHED.entry(stage=stage, hookIndex=hook_index, executionId=execution_id, status=status,
                               error=error)


# -- alarms -------------------------------------------------------------------------------

ALARM_STATE = _type("alarm.state", {"alarm": TEXT, "state": TEXT, "reason": MAYBE_TEXT},
                    lambda f: f"{f['alarm']}: {f['state']}")
ALARM_IGNORED = _type(
    "alarm.ignored", {"inAlarm": NAMES, "alarms": NAMES},
    lambda f: (f"{', '.join(f['inAlarm'])} in ALARM as the deployment starts: as ECS, this deployment's alarms "
               f"are not monitored ({', '.join(f['alarms'])})"))
ALARM_WATCHED = _type("alarm.watched", {}, lambda f: "green tasks serve: alarms are watched from now on")


def alarm_state(alarm: str, state: str, reason: str | None) -> Entry:
    """An alarm changed state (OK, ALARM, INSUFFICIENT_DATA); `reason` as CloudWatch's StateReason."""
    return ALARM_STATE.entry(alarm=alarm, state=state, reason=reason)


def alarm_ignored(in_alarm: list[str], alarms: list[str]) -> Entry:
    """`in_alarm` were in ALARM as the deployment started, so none of `alarms` is watched."""
    return ALARM_IGNORED.entry(inAlarm=list(in_alarm), alarms=list(alarms))


def alarm_watched() -> Entry:
    """ROLLING: green serves production traffic, so the deployment's alarms count from now on."""
    return ALARM_WATCHED.entry()


# -- tasks ----------------------------------------------------------------------------------

TASK_FAILED = _type(
    "task.failed",
    {"task": TEXT, "revision": TEXT, "reason": TEXT, "failures": COUNT, "threshold": COUNT},
    lambda f: f"green task {f['task']} failed ({f['reason']}); circuit breaker {f['failures']}/{f['threshold']}")
TASK_STOPPED = _type(
    "task.stopped",
    {"task": TEXT, "group": TEXT, "colour": TEXT, "revision": TEXT, "exitCode": MAYBE_COUNT,
     "stopCode": MAYBE_TEXT, "reason": TEXT},
    lambda f: f"task {f['task']} in {f['group']} stopped: {f['reason']}")


TASK_FAILURES_RESET = _type(
    "task.failures_reset", {"task": TEXT, "failures": COUNT, "threshold": COUNT},
    lambda f: f"green task {f['task']} is healthy: circuit breaker count reset "
              f"({f['failures']}/{f['threshold']} -> 0/{f['threshold']})")
TASK_NOT_HEALTHY = _type(
    "task.not_healthy", {"desired": COUNT, "running": COUNT, "seconds": NUMBER},
    lambda f: f"new tasks not healthy after {f['seconds']:g} s ({f['running']} of {f['desired']} running); "
              "no circuit breaker: as on ECS, the deployment stays IN_PROGRESS and failed tasks are replaced")


def task_failures_reset(task: str, failures: int, threshold: int) -> Entry:
    """resetOnHealthyTask: a green task reached a healthy state; the count (`failures`) goes back to 0."""
    return TASK_FAILURES_RESET.entry(task=task, failures=failures, threshold=threshold)


def task_not_healthy(desired: int, running: int, seconds: float) -> Entry:
    """taskStartTimeoutSeconds passed without the circuit breaker: the deployment goes on, as on ECS."""
    return TASK_NOT_HEALTHY.entry(desired=desired, running=running, seconds=seconds)


def task_failed(task: str, revision: str, reason: str, failures: int, threshold: int) -> Entry:
    """A green task failed; the circuit breaker counts it (`failures` of `threshold`)."""
    return TASK_FAILED.entry(task=task, revision=revision, reason=reason, failures=failures, threshold=threshold)


def task_stopped(task: str, group: str, colour: str, revision: str, exit_code: int | None, stop_code: str | None,
                 reason: str) -> Entry:
    """A running task exited by itself (not stopped by the controller)."""
    return TASK_STOPPED.entry(task=task, group=group, colour=colour, revision=revision, exitCode=exit_code,
                              stopCode=stop_code, reason=reason)


# -- a restarted controller or load balancer --------------------------------------------------

RECOVERY_RESTARTED = _type(
    "recovery.restarted",
    {"stage": MAYBE_TEXT, "status": TEXT, "byTaskCounts": FLAG, "productionPercent": NUMBER, "blueTasks": COUNT,
     "greenTasks": COUNT},
    lambda f: f"controller restarted during {f['stage']} ({f['status']}); " + (
        f"weights re-applied by task counts ({f['blueTasks']} blue, {f['greenTasks']} green)"
        if f["byTaskCounts"] else f"weights re-applied: production {_pct(f['productionPercent'])}% green"))
RECOVERY_RESUMED = _type(
    "recovery.resumed", {"stage": MAYBE_TEXT, "waiting": MAYBE_TEXT},
    lambda f: f"resuming {f['stage']}" + (f" ({f['waiting']})" if f["waiting"] else ""))
RECOVERY_PROMOTED = _type(
    "recovery.promoted", {"deployment": TEXT, "revision": TEXT, "group": TEXT},
    lambda f: f"deployment {f['deployment']} was SUCCESSFUL but not promoted when the controller stopped: "
              f"revision {f['revision']} is now running in {f['group']}")
RECOVERY_WEIGHTS_RESET = _type(
    "recovery.weights_reset", {"rule": TEXT, "found": WEIGHTS, "weights": WEIGHTS},
    lambda f: f"{f['rule']} had {f['found']} instead of {f['weights']} (load balancer restarted?): set again")
RECOVERY_TARGETS_REGISTERED = _type(
    "recovery.targets_registered", {"group": TEXT, "tasks": NAMES},
    lambda f: f"{len(f['tasks'])} task(s) missing from {f['group']} (load balancer restarted?): registered")


def recovery_restarted(stage: str | None, status: str, by_task_counts: bool, production_percent: float,
                       blue_tasks: int, green_tasks: int) -> Entry:
    """A restarted controller found this deployment unfinished and re-applied its weights."""
    return RECOVERY_RESTARTED.entry(stage=stage, status=status, byTaskCounts=by_task_counts,
                                    productionPercent=production_percent, blueTasks=blue_tasks,
                                    greenTasks=green_tasks)


def recovery_resumed(stage: str | None, waiting: str | None) -> Entry:
    return RECOVERY_RESUMED.entry(stage=stage, waiting=waiting)


def recovery_promoted(deployment: str, revision: str, group: str) -> Entry:
    return RECOVERY_PROMOTED.entry(deployment=deployment, revision=revision, group=group)


def recovery_weights_reset(rule: str, found: dict[str, int], weights: dict[str, int]) -> Entry:
    """A rule's weights were not as the records say: set again."""
    return RECOVERY_WEIGHTS_RESET.entry(rule=rule, found=dict(found), weights=dict(weights))


def recovery_targets_registered(group: str, tasks: list[str]) -> Entry:
    """Running tasks missing from their target group: registered again."""
    return RECOVERY_TARGETS_REGISTERED.entry(group=group, tasks=list(tasks))


# -- the service ----------------------------------------------------------------------------

SERVICE_STARTED = _type(
    "service.started", {"service": TEXT, "revision": TEXT, "group": TEXT, "tasks": COUNT},
    lambda f: f"{f['service']}: revision {f['revision']} running in {f['group']} ({f['tasks']} tasks)")
SERVICE_PROMOTED = _type("service.promoted", {"revision": TEXT, "group": TEXT},
                         lambda f: f"revision {f['revision']} is now running in {f['group']}")


def service_started(service: str, revision: str, group: str, tasks: int) -> Entry:
    return SERVICE_STARTED.entry(service=service, revision=revision, group=group, tasks=tasks)


def service_promoted(revision: str, group: str) -> Entry:
    """The new revision is the running one; its group the primary one."""
    return SERVICE_PROMOTED.entry(revision=revision, group=group)


SERVICE_ACTIVATION = _type(
    "service.activation", {"revision": TEXT, "active": FLAG},
    lambda f: f"revision {f['revision']} {'activated' if f['active'] else 'deactivated'} (headless: its tasks "
              f"{'work' if f['active'] else 'stand by'})")


def service_activation(revision: str, active: bool) -> Entry:
    """A headless service's revision was activated or deactivated (controller.activation)."""
    return SERVICE_ACTIVATION.entry(revision=revision, active=active)


# -- warnings -------------------------------------------------------------------------------

WARNING_FAILURE_IGNORED = _type("warning.failure_ignored", {"reason": TEXT, "stage": TEXT},
                                lambda f: f"{f['reason']}; ignored during {f['stage']}")


def failure_ignored(reason: str, stage: str) -> Entry:
    """A failure that would roll back, seen where nothing is left to roll back to (CLEAN_UP)."""
    return WARNING_FAILURE_IGNORED.entry(reason=reason, stage=stage)
