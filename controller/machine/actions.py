"""What the machine asks the driver to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shiftlab.controller.eventlog import Entry


@dataclass(frozen=True)
class Reconcile:
    """Make the service match its record before starting: no stray tasks in
    the alternate group, traffic on the primary group."""


@dataclass(frozen=True)
class ScaleUpGreen:
    count: int


@dataclass(frozen=True)
class RollingReplace:
    """ROLLING, one batch (rolling.rolling_plan): the old revision's tasks
    down to `blue` (traffic off them first), the new one's up to `green`
    running and healthy, then weights by task counts. Counts, not steps: a
    batch asked again (a restarted controller) changes nothing done."""

    blue: int
    green: int


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
    """A line for the event log and the event stream (its type and fields:
    controller.eventlog)."""

    entry: Entry


@dataclass(frozen=True)
class Promote:
    """Green is now the running revision; its group is now the primary one."""


Action = (Reconcile | ScaleUpGreen | RollingReplace | SetWeights | InvokeHook | StopTasks | ReplaceTask | WakeAt | Note
          | Promote)
