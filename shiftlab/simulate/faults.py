"""What each revision does to the requests it serves and the metrics it
publishes: blue's baseline and green's fault (config models, AWS-free names
in camelCase like the rest of a scenario), and the pure functions the engine
asks each tick.

Green behaves as blue until its fault is active: from `startsAfterMinutes`
after the deployment started (a fault that starts late, after a canary's
bake, say) and, with `onlyAboveRps`, only while green gets at least that many
requests per second (a fault only under load). A crash (`crashAtMinutes`) is
apart: every green task exits then, whatever else the fault says.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shiftlab.common.configfile import Model, in_range
from shiftlab.controller.vocabulary import Stage
from shiftlab.proxy.stats import BOUNDS

Z99 = 2.3263478740408408  # the standard normal's 99th percentile


class Latency(Model):
    """A log-normal response time, given by its median and 99th percentile."""

    p50Ms: Annotated[float, Field(gt=0)]
    p99Ms: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Latency:
        if self.p99Ms < self.p50Ms:
            raise ValueError(f"p99Ms ({self.p99Ms:g}) is below p50Ms ({self.p50Ms:g})")
        return self


class Behaviour(Model):
    """A revision's requests and resources. `cpuPercent`: each task's CPU, as
    a percentage of what its task definition reserves; `cpuPercentPerRps` adds
    that much for each request per second a task serves (capped at 100)."""

    errorRate: Annotated[float, in_range(0, 1)] = 0.0
    latency: Latency = Latency(p50Ms=20, p99Ms=80)
    cpuPercent: Annotated[float, in_range(0, 100)] = 20.0
    cpuPercentPerRps: Annotated[float, Field(ge=0)] = 0.0


class GreenFault(Model):
    """Green's fault: each field given replaces blue's while the fault is
    active; the rest is blue's."""

    errorRate: Annotated[float | None, in_range(0, 1)] = None
    latency: Latency | None = None
    cpuPercent: Annotated[float | None, in_range(0, 100)] = None
    cpuPercentPerRps: Annotated[float | None, Field(ge=0)] = None
    startsAfterMinutes: Annotated[float, Field(ge=0)] = 0.0
    onlyAboveRps: Annotated[float | None, Field(gt=0)] = None
    crashAtMinutes: Annotated[float | None, Field(ge=0)] = None
    # Restarted tasks crash again this long after they start (a crash loop).
    crashLoopSeconds: Annotated[float | None, Field(gt=0)] = None

    @property
    def in_requests(self) -> bool:
        """Whether the fault shows in the requests green serves (errors, latency)."""
        return self.errorRate is not None or self.latency is not None

    @property
    def in_resources(self) -> bool:
        """Whether it shows in green's CPU, whatever its traffic."""
        return self.cpuPercent is not None or self.cpuPercentPerRps is not None

    def active(self, t: float, green_rps: float) -> bool:
        """Whether the fault shows `t` seconds after the deployment started,
        with green getting `green_rps` requests per second."""
        if t < self.startsAfterMinutes * 60:
            return False
        return self.onlyAboveRps is None or green_rps >= self.onlyAboveRps

    def applied(self, blue: Behaviour) -> Behaviour:
        """Green's behaviour while the fault is active."""
        fields = {k: v for k, v in (("errorRate", self.errorRate), ("latency", self.latency),
                                    ("cpuPercent", self.cpuPercent), ("cpuPercentPerRps", self.cpuPercentPerRps))
                  if v is not None}
        return blue.model_copy(update=fields)


class Dimension(Model):
    Name: str
    Value: str


class AppMetric(Model):
    """A metric the tasks publish themselves (PutMetricData or EMF), once a
    minute: `perRequest` true, each request adds `blue`/`green` (a count such
    as failed payments: its Sum); false, each running task reports the value
    (a rate or a gauge: its Average). Green reports `green` while its fault
    is active, blue's value before."""

    Namespace: str
    MetricName: str
    Dimensions: list[Dimension] = []
    Unit: str = "None"
    blue: float = 0.0
    green: float | None = None
    perRequest: bool = False

    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return self.Namespace, self.MetricName, tuple(sorted((d.Name, d.Value) for d in self.Dimensions))


class HookModel(Model):
    """How a lifecycle hook (its index in deploymentConfiguration.lifecycleHooks)
    answers: each call takes `seconds` and answers IN_PROGRESS `inProgressCalls`
    times (call me again after `callBackDelaySeconds`), then `answer`. A
    PAUSE hook is approved `approveAfterMinutes` after it starts waiting;
    None: never (its timeout decides)."""

    hook: Annotated[int, Field(ge=0)]
    stage: Stage | None = None  # only its runs at this stage (default: every stage it runs at)
    seconds: Annotated[float, Field(ge=0)] = 1.0
    answer: Literal["SUCCEEDED", "FAILED"] = "SUCCEEDED"
    inProgressCalls: Annotated[int, Field(ge=0)] = 0
    callBackDelaySeconds: Annotated[float, Field(ge=0)] = 30.0
    approveAfterMinutes: Annotated[float | None, Field(ge=0)] = 0.0


def cpu_percent(b: Behaviour, rps_per_task: float) -> float:
    return min(100.0, b.cpuPercent + b.cpuPercentPerRps * rps_per_task)


@lru_cache(maxsize=64)
def bucket_shares(p50_ms: float, p99_ms: float) -> tuple[float, ...]:
    """The share of responses in each of the proxy's TargetResponseTime
    buckets (proxy.stats.BOUNDS, plus the overflow) for a log-normal latency."""
    mu = math.log(p50_ms / 1000)
    sigma = math.log(p99_ms / p50_ms) / Z99
    if sigma <= 0:
        out = [0.0] * (len(BOUNDS) + 1)
        out[bisect_left(BOUNDS, p50_ms / 1000)] = 1.0
        return tuple(out)
    cdf = [0.5 * (1 + math.erf((math.log(b) - mu) / (sigma * math.sqrt(2)))) for b in BOUNDS]
    shares, before = [], 0.0
    for c in cdf:
        shares.append(c - before)
        before = c
    shares.append(1.0 - before)
    return tuple(shares)


def mean_seconds(lat: Latency) -> float:
    """A log-normal's mean: exp(mu + sigma^2 / 2)."""
    mu = math.log(lat.p50Ms / 1000)
    sigma = math.log(lat.p99Ms / lat.p50Ms) / Z99
    return math.exp(mu + sigma * sigma / 2)
