"""A restarted controller: what it does with an unfinished deployment
(recovery_plan) and with the tasks and records a previous controller left
(restart_plan)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from shiftlab.controller.machine.record import (
    BAKE_TIME,
    CLEAN_UP,
    PENDING,
    POST_PRODUCTION_TRAFFIC_SHIFT,
    SUCCESSFUL,
    Deployment,
)


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
