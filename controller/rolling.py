"""ROLLING's task arithmetic (pure, table-tested).

ECS replaces tasks in batches bounded by two numbers: at least
ceil(desired x minimumHealthyPercent / 100) healthy tasks at all times, at
most floor(desired x maximumPercent / 100) tasks running. Each batch stops
what the lower bound allows, starts what the upper bound allows, and the
next batch begins once the new tasks pass their health checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Batch:
    stop_blue: int
    start_green: int


def alarm_bake_minutes(alarms: Iterable[tuple[int, int]]) -> float:
    """How long a ROLLING deployment with alarms goes on watching them after
    the last old task stopped, before bakeTimeInMinutes is added: ECS
    "computes this time period based on the alarm configuration" and does
    not publish how. shiftlab takes the longest Period x EvaluationPeriods
    of the deployment's alarms (`alarms`: (Period in seconds,
    EvaluationPeriods) each), the time one of them needs to see a whole
    evaluation window of the new revision alone (README: Differences from AWS)."""
    return max((period * periods for period, periods in alarms), default=0) / 60


class RollingStuck(ValueError):
    """The bounds leave no room to stop or start a single task."""


def bounds(desired: int, minimum_healthy_percent: int, maximum_percent: int) -> tuple[int, int]:
    # ECS rounds the minimum up and the maximum down.
    return math.ceil(desired * minimum_healthy_percent / 100), math.floor(desired * maximum_percent / 100)


def rolling_plan(desired: int, minimum_healthy_percent: int, maximum_percent: int,
                 blue: int | None = None, green: int = 0) -> list[Batch]:
    """The batches from `blue` old and `green` new tasks (by default: none
    replaced yet) to `desired` new ones; a restarted controller goes on
    from the counts it adopted."""
    low, high = bounds(desired, minimum_healthy_percent, maximum_percent)
    blue = desired if blue is None else blue
    batches: list[Batch] = []
    while blue > 0 or green < desired:
        stop = min(blue, max(0, blue + green - low))
        start = min(desired - green, max(0, high - (blue - stop + green)))
        if stop == 0 and start == 0:
            raise RollingStuck(
                f"desiredCount {desired} with minimumHealthyPercent {minimum_healthy_percent} "
                f"(at least {low} healthy) and maximumPercent {maximum_percent} (at most {high} running) "
                "leaves no room to replace a task"
            )
        blue -= stop
        green += start
        batches.append(Batch(stop, start))
    return batches
