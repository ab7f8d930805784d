"""Strategies as plans of production traffic steps (pure, table-tested).

A plan is the list of green percentages the production rule goes through,
each with the bake that follows it. ROLLING has no weight steps: traffic
follows the healthy registered targets (controller.rolling does the task
arithmetic). Percentages become ALB weights (integers 0..999) here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.vocabulary import Strategy


@dataclass(frozen=True)
class Step:
    percent: float  # green's share of production traffic after this step
    bake_minutes: float  # wait after the step (0 for the last: bakeTimeInMinutes follows)


def plan(dc: DeploymentConfiguration) -> list[Step]:
    if dc.strategy == Strategy.BLUE_GREEN:
        return [Step(100.0, 0)]
    if dc.strategy == Strategy.CANARY:
        c = dc.canaryConfiguration
        if c.canaryPercent >= 100:
            return [Step(100.0, 0)]
        return [Step(c.canaryPercent, c.canaryBakeTimeInMinutes), Step(100.0, 0)]
    if dc.strategy == Strategy.LINEAR:
        lc = dc.linearConfiguration
        steps, pct = [], 0.0
        while True:
            # Add in exact decimals so that 3 x 33.3 does not become 99.89999.
            pct = float(Fraction(str(pct)) + Fraction(str(lc.stepPercent)))
            if pct >= 100:
                steps.append(Step(100.0, 0))  # the last step may be smaller
                return steps
            steps.append(Step(round(pct, 6), lc.stepBakeTimeInMinutes))
    return []  # ROLLING


def weights(green_percent: float) -> tuple[int, int]:
    """ALB weights (blue, green) for a green share in percent.

    Whole percentages map to weights out of 100; shares with decimals (a
    0.1 % canary) out of 1000, scaled down only at the 0.05 % edges where a
    weight would exceed ALB's 999."""
    if green_percent <= 0:
        return 1, 0
    if green_percent >= 100:
        return 0, 1
    if float(green_percent).is_integer():
        g = int(green_percent)
        return 100 - g, g
    g = round(green_percent * 10)
    b = 1000 - g
    if b > 999 or g > 999:
        g, b = round(g * 0.999), round(b * 0.999)
    return b, max(g, 1)


def percent_of(blue_weight: int, green_weight: int) -> float:
    total = blue_weight + green_weight
    return 0.0 if total == 0 else round(100.0 * green_weight / total, 4)


def total_minutes(dc: DeploymentConfiguration) -> float:
    """Traffic-shift time of a plan plus the final bake (what a rehearsal lasts, unscaled)."""
    return sum(s.bake_minutes for s in plan(dc)) + dc.bakeTimeInMinutes
