"""What the machine hears: the driver's observations and the outcomes of its actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Start:
    alarm_states: dict[str, str] = field(default_factory=dict)
    # How many service revisions are ACTIVE as the deployment starts (the
    # driver counts them). ECS runs RECONCILE_SERVICE only with more than
    # one; None (not counted) reconciles, which is always safe.
    active_revisions: int | None = None


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class Recover:
    """The controller restarted and found this deployment unfinished."""

    alarm_states: dict[str, str] = field(default_factory=dict)
    active_revisions: int | None = None  # as Start's, for a deployment that never started


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
    """A ROLLING batch (RollingReplace) is over: the tasks each revision runs
    now. Without counts: every old task replaced."""

    ok: bool
    error: str | None = None
    blue: int | None = None
    green: int | None = None


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
class TaskHealthy:
    """The load balancer reports a green task healthy for the first time
    (the circuit breaker's resetOnHealthyTask)."""

    task_id: str


@dataclass(frozen=True)
class WeightsApplied:
    kind: str  # "production" | "test" | "all"
    percent: float
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class AlarmStates:
    states: dict[str, str]
    reasons: dict[str, str] = field(default_factory=dict)  # CloudWatch's StateReason, for the event log


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
         | WeightsApplied | AlarmStates | HookAnswer | Approve | StopRequest | TasksStopped
         | TaskHealthy)
