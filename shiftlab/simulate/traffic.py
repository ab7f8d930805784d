"""Traffic models: how many production requests per second reach the load
balancer at a simulated time (seconds since the deployment started).

`Constant(rps)`, `Daily(trough, peak, peak_hour, start_hour)` (a cosine
between the quietest and busiest hour of a day) and `Recorded(per_minute)`
(a profile: `shiftlab load --json`'s summary, or a CSV of per-minute request
counts, replayed minute by minute and from its start again when the rollout
outlasts it). `recorded(text, source)` reads a profile; `shiftlab lint
--rps-from` reads the same files (its quietest minute).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Protocol


class Traffic(Protocol):
    def rps(self, t: float) -> float:
        """Requests per second at `t` seconds after the deployment started."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Constant:
    value: float

    def rps(self, t: float) -> float:
        return self.value

    def describe(self) -> str:
        return f"{self.value:g} req/s"


@dataclass(frozen=True)
class Daily:
    """A day's curve: `trough` req/s at the quietest hour (12 hours from the
    busiest), `peak` at `peak_hour`; the deployment starts at `start_hour`."""

    trough: float
    peak: float
    peak_hour: float = 14.0
    start_hour: float = 10.0

    def rps(self, t: float) -> float:
        hour = self.start_hour + t / 3600.0
        return self.trough + (self.peak - self.trough) * (1 + math.cos(2 * math.pi * (hour - self.peak_hour) / 24)) / 2

    def describe(self) -> str:
        return (f"daily {self.trough:g}..{self.peak:g} req/s (peak at {self.peak_hour:g}h, "
                f"start at {self.start_hour:g}h)")


@dataclass(frozen=True)
class Recorded:
    """A recorded profile: requests per second for each minute, replayed in a loop."""

    per_minute: tuple[float, ...]
    source: str = "profile"

    def rps(self, t: float) -> float:
        return self.per_minute[int(t // 60) % len(self.per_minute)]

    def describe(self) -> str:
        lo, hi = min(self.per_minute), max(self.per_minute)
        span = f"{lo:g} req/s" if lo == hi else f"{lo:g}..{hi:g} req/s"
        return f"{self.source} ({len(self.per_minute)} min, {span})"


def recorded(text: str, source: str) -> Recorded:
    """A profile's requests per second, minute by minute: `shiftlab load
    --json`'s summary (its `requests` over its `seconds`: one level), or a
    CSV of per-minute request counts (the last column of each row; a header
    row is skipped). Raises ValueError naming the file (and line) and what
    is wrong."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
            rps = float(doc["requests"]) / float(doc["seconds"])
        except (ValueError, KeyError, TypeError, ZeroDivisionError):
            raise ValueError(f"{source}: not a `shiftlab load --json` summary (needs requests and seconds > 0)") \
                from None
        per_minute = [rps]
    else:
        per_minute = []
        for n, row in enumerate(stripped.splitlines(), 1):
            cell = row.split(",")[-1].strip()
            try:
                count = float(cell)
            except ValueError:
                if n == 1:
                    continue  # a header
                raise ValueError(f"{source}:{n}: {cell!r} is not a request count") from None
            if not math.isfinite(count) or count < 0:
                raise ValueError(f"{source}:{n}: {cell!r} is not a request count")
            per_minute.append(count / 60)
        if not per_minute:
            raise ValueError(f"{source}: no per-minute request counts")
    if not max(per_minute) > 0:
        raise ValueError(f"{source}: the profile has no traffic (0 requests in every minute)")
    return Recorded(tuple(per_minute), source)
