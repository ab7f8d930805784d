"""CloudWatch's role for the controller: turns the proxy's cumulative stats
snapshots (`GET /admin/stats`, see proxy.stats.Stats.snapshot) into
per-period datapoints of AWS/ApplicationELB metrics.

Public API
----------
`MetricStore(retention_seconds)`
  - `add(snapshot, at)`: store one scrape; `at` is the controller's own
    (injected) clock time, used for period placement instead of the
    snapshot's timestamp. Snapshots older than `retention_seconds` before
    the newest are dropped: keep at least (EvaluationPeriods + 1) periods.
  - `series(metric_name, target_group, stat, period, end, count)`: the
    last `count` complete periods ending at or before `end`, oldest first,
    one float or None (missing) each. `target_group=None` means the load
    balancer's totals. Periods are aligned to multiples of `period` from
    epoch 0 (`period_starts` gives their start times).

`MetricStore.custom`, a `CustomMetrics`: datapoints published with
  PutMetricData, by `metric_key(namespace, name, dimensions)`; `add(key,
  Entry, now)`, `series(key, stat, unit, period, end, count)`. Bounded by
  the same retention, `MAX_SERIES` metrics and `MAX_ENTRIES_PER_SERIES`
  datapoints each.

Module helpers: `METRICS` (what can be computed), `METRIC_UNITS`,
`TARGET_GROUP_ONLY` / `LOAD_BALANCER_ONLY` (which dimension a metric
needs), `supports_statistic(stat)`.

How a datapoint is made, as ALB publishes to CloudWatch:
  - A period [start, end) needs a snapshot at or before `start` and one at
    or after `end`; otherwise it is missing. Scrape several times a period
    and evaluate with `end` = the time of the latest `add` so the newest
    period is complete.
  - Counts (RequestCount, HTTPCode_*, ...): the increase over the period.
    Each scrape interval's increase belongs to the period holding the
    interval's end, so every request is counted in exactly one period. A
    decrease means the proxy restarted: the new value is the increase. ALB
    publishes nothing for a period with no count, so 0 is missing. Sum and
    pNN give the increase; for the HTTPCode_* counts each request is a sample
    of 1 (SampleCount the increase, Average, Minimum and Maximum 1, as ALB
    documents), for the others SampleCount is 1.
  - TargetResponseTime: the histogram's increase; Average, Sum,
    SampleCount exact, pNN interpolated within buckets (about 10 % wide),
    Minimum/Maximum from bucket edges. Missing when no responses.
  - HealthyHostCount, UnHealthyHostCount, ActiveConnectionCount: gauges;
    statistics over the samples taken in [start, end).
  - RequestCountPerTarget: RequestCount increase / average HealthyHostCount.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from shiftlab.controller import serviceconnect

COUNT_METRICS = (
    "RequestCount",
    "HTTPCode_Target_2XX_Count",
    "HTTPCode_Target_3XX_Count",
    "HTTPCode_Target_4XX_Count",
    "HTTPCode_Target_5XX_Count",
    "HTTPCode_ELB_4XX_Count",
    "HTTPCode_ELB_5XX_Count",
    "HTTPCode_ELB_502_Count",
    "HTTPCode_ELB_503_Count",
    "HTTPCode_ELB_504_Count",
    "TargetConnectionErrorCount",
    "ProcessedBytes",
    "NewConnectionCount",
    "DesyncMitigationMode_NonCompliant_Request_Count",
)
GAUGE_METRICS = ("HealthyHostCount", "UnHealthyHostCount", "ActiveConnectionCount")
RESPONSE_TIME = "TargetResponseTime"
PER_TARGET = "RequestCountPerTarget"
METRICS = (*COUNT_METRICS, RESPONSE_TIME, *GAUGE_METRICS, PER_TARGET)
# Service Connect's own counts (AWS/ECS; controller.serviceconnect), kept
# apart so that an AWS/ApplicationELB alarm cannot name them.
SERVICE_CONNECT_COUNTS = tuple(n for n in serviceconnect.METRICS if n not in METRICS)

# A network load balancer's (AWS/NetworkELB), from the proxy's stats of a
# `Type: network` load balancer: NLB's CloudWatch metrics page
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-cloudwatch-metrics.html)
# publishes the flow, byte and reset counts per load balancer (LoadBalancer;
# AvailabilityZone, LoadBalancer) and the host counts per target group
# (LoadBalancer, TargetGroup).
NLB_COUNT_METRICS = ("NewFlowCount", "NewFlowCount_TCP", "ProcessedBytes", "ProcessedBytes_TCP",
                     "TCP_Client_Reset_Count", "TCP_Target_Reset_Count", "TCP_ELB_Reset_Count")
NLB_GAUGE_METRICS = ("ActiveFlowCount", "ActiveFlowCount_TCP", "HealthyHostCount", "UnHealthyHostCount")
NLB_METRICS = (*NLB_COUNT_METRICS, *NLB_GAUGE_METRICS)
NLB_TARGET_GROUP_ONLY = ("HealthyHostCount", "UnHealthyHostCount")
ALL_METRICS = (*METRICS, *(n for n in NLB_METRICS if n not in METRICS))

METRIC_UNITS = {name: "Count" for name in ALL_METRICS} | {RESPONSE_TIME: "Seconds", "ProcessedBytes": "Bytes",
                                                        "ProcessedBytes_TCP": "Bytes"}
# ALB publishes these only per target group / only per load balancer
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html).
TARGET_GROUP_ONLY = ("HealthyHostCount", "UnHealthyHostCount", PER_TARGET)
LOAD_BALANCER_ONLY = ("ActiveConnectionCount", "NewConnectionCount", "ProcessedBytes", "HTTPCode_ELB_4XX_Count",
                      "HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_502_Count", "HTTPCode_ELB_503_Count",
                      "HTTPCode_ELB_504_Count", "DesyncMitigationMode_NonCompliant_Request_Count")
# Counts of requests by status: one sample of 1 per request.
PER_REQUEST_COUNTS = tuple(n for n in COUNT_METRICS if n.startswith("HTTPCode_"))

# CloudWatch's units (StandardUnit: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html).
UNITS = ("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None")
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100(?:\.0+)?)\Z")


def percentile(stat: str) -> float | None:
    """`p99.9` -> 99.9; None for anything that is not a percentile."""
    m = _PERCENTILE.match(stat)
    return float(m.group(1)) if m else None


def supports_statistic(stat: str) -> bool:
    return stat in STATISTICS or percentile(stat) is not None


def period_starts(period: float, end: float, count: int) -> list[float]:
    """Start times of the last `count` whole periods ending at or before `end`, oldest first."""
    # The epsilon keeps a period ending exactly at `end` from being lost to float rounding.
    last_end = math.floor(end / period + 1e-9)
    return [(last_end - count + i) * period for i in range(count)]


# "If there are requests flowing through the load balancer, Elastic Load
# Balancing measures and sends its metrics in 60-second intervals."
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
PUBLISH_SECONDS = 60.0


class MetricStore:
    """`publish_seconds`: how often ALB publishes, on the store's clock (60 s
    divided by the time scale). A period shorter than that sees what it would
    see on AWS: the datapoint of a whole publication interval in the period
    holding that interval's start, nothing in the others."""

    def __init__(self, retention_seconds: float, publish_seconds: float = 0.0) -> None:
        self.retention = retention_seconds
        self.publish = publish_seconds
        self._times: list[float] = []
        self._snaps: list[dict[str, Any]] = []
        # What PutMetricData publishes; its minute is ALB's publication interval (one minute, scaled).
        self.custom = CustomMetrics(retention_seconds, minute=publish_seconds or 60.0)

    def __len__(self) -> int:
        return len(self._times)

    def add(self, snapshot: dict[str, Any], at: float) -> None:
        i = bisect_right(self._times, at)
        self._times.insert(i, at)
        self._snaps.insert(i, snapshot)
        drop = bisect_left(self._times, self._times[-1] - self.retention)
        if drop:
            del self._times[:drop]
            del self._snaps[:drop]

    def series(
        self, metric_name: str, target_group: str | None, stat: str, period: float, end: float, count: int
    ) -> list[float | None]:
        if metric_name not in ALL_METRICS and metric_name not in SERVICE_CONNECT_COUNTS:
            raise ValueError(f"{metric_name!r} is not a metric shiftlab computes")
        if not supports_statistic(stat):
            raise ValueError(f"{stat!r} is not a statistic shiftlab computes")
        g = self.publish
        if period >= g * (1 - 1e-9):
            return [
                self.datapoint(metric_name, target_group, stat, start, start + period)
                for start in period_starts(period, end, count)
            ]
        out: list[float | None] = []
        for start in period_starts(period, end, count):
            published = math.ceil(start / g - 1e-9) * g  # the first publication at or after the start
            out.append(self.datapoint(metric_name, target_group, stat, published, published + g)
                       if published < start + period - 1e-9 else None)
        return out

    def datapoint(
        self, metric_name: str, target_group: str | None, stat: str, start: float, end: float
    ) -> float | None:
        """One statistic of one metric over [start, end), or None when missing."""
        first = bisect_right(self._times, start) - 1  # last snapshot at or before start
        if first < 0 or not self._times or self._times[-1] < end:
            return None
        if metric_name in GAUGE_METRICS or metric_name in NLB_GAUGE_METRICS:
            return _gauge_stat(self._samples(metric_name, target_group, start, end), stat)
        if metric_name == RESPONSE_TIME:
            value = _histogram_stat(self._histogram(target_group, first, end), stat)
            if value is not None and stat != "SampleCount" and _service_connect(target_group):
                value *= 1000  # Service Connect's TargetResponseTime is in milliseconds, ALB's in seconds
            return value
        counted = "RequestCount" if metric_name == PER_TARGET else metric_name
        requests = self._increase(counted, target_group, first, end)
        if not requests:
            return None
        if metric_name == PER_TARGET:
            hosts = _gauge_stat(self._samples("HealthyHostCount", target_group, start, end), "Average")
            if not hosts:
                return None
            requests /= hosts
        if metric_name in PER_REQUEST_COUNTS:
            # Each request is a sample of 1: "The most useful statistic is Sum.
            # Minimum, Maximum, and Average all return 1" (ALB's metrics page).
            return float(requests) if stat in ("Sum", "SampleCount") else 1.0
        return 1.0 if stat == "SampleCount" else float(requests)

    def _metrics(self, index: int, target_group: str | None) -> dict[str, Any] | None:
        snap = self._snaps[index]
        if target_group is None:
            return snap.get("total")
        if _service_connect(target_group):
            endpoint: dict[str, Any] | None = snap.get("serviceConnect", {}).get(
                target_group[len(serviceconnect.KEY_PREFIX):])
            return endpoint
        group: dict[str, Any] | None = snap.get("targetGroups", {}).get(target_group)
        return group

    def _intervals(self, first: int, end: float) -> Iterator[tuple[int, int]]:
        # Scrape intervals whose end falls in (start, end]: each belongs to one period only.
        k = first + 1
        while k < len(self._times) and self._times[k] <= end:
            yield k - 1, k
            k += 1

    def _increase(self, name: str, target_group: str | None, first: int, end: float) -> float:
        total = 0.0
        for a, b in self._intervals(first, end):
            before, after = self._metrics(a, target_group), self._metrics(b, target_group)
            new = after.get(name) if after else None
            if new is None:
                continue
            old = before.get(name) if before else None
            total += new if old is None or new < old else new - old
        return total

    def _histogram(self, target_group: str | None, first: int, end: float) -> _Histogram:
        hist = _Histogram()
        for a, b in self._intervals(first, end):
            before, after = self._metrics(a, target_group), self._metrics(b, target_group)
            new = after.get(RESPONSE_TIME) if after else None
            if not new:
                continue
            old = before.get(RESPONSE_TIME) if before else None
            hist.add_increase(self._snaps[b].get("responseTimeBuckets", []), old, new)
        return hist

    def _samples(self, name: str, target_group: str | None, start: float, end: float) -> list[float]:
        out = []
        for i in range(bisect_left(self._times, start), bisect_left(self._times, end)):
            m = self._metrics(i, target_group)
            if m and m.get(name) is not None:
                out.append(float(m[name]))
        return out


def _service_connect(target_group: str | None) -> bool:
    return target_group is not None and target_group.startswith(serviceconnect.KEY_PREFIX)


class _Histogram:
    """TargetResponseTime's increase over one period."""

    def __init__(self) -> None:
        self.bounds: list[float] = []
        self.buckets: list[int] = []
        self.count = 0
        self.sum = 0.0

    def add_increase(self, bounds: list[float], old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        new_buckets = list(new["buckets"])
        reset = (
            old is None
            or new["count"] < old["count"]
            or len(old["buckets"]) != len(new_buckets)
            or any(n < o for n, o in zip(new_buckets, old["buckets"], strict=True))
        )
        if reset:
            d_buckets, d_count, d_sum = new_buckets, new["count"], new["sum"]
        else:
            assert old is not None
            d_buckets = [n - o for n, o in zip(new_buckets, old["buckets"], strict=True)]
            d_count, d_sum = new["count"] - old["count"], new["sum"] - old["sum"]
        if not d_count:
            return
        if len(self.buckets) != len(d_buckets):
            # First increase, or the bounds changed mid-period (another proxy build): start over.
            self.buckets, self.count, self.sum = [0] * len(d_buckets), 0, 0.0
        self.bounds = list(bounds)
        self.buckets = [x + d for x, d in zip(self.buckets, d_buckets, strict=True)]
        self.count += d_count
        self.sum += d_sum

    def edges(self, i: int) -> tuple[float, float]:
        if i >= len(self.bounds):
            # The overflow bucket holds everything above the highest bound: that bound is all we know.
            return self.bounds[-1], self.bounds[-1]
        return (self.bounds[i - 1] if i > 0 else 0.0), self.bounds[i]

    def quantile(self, q: float) -> float:
        rank = q / 100 * self.count
        seen = 0
        for i, n in enumerate(self.buckets):
            if n and seen + n >= rank:
                lower, upper = self.edges(i)
                return lower + (upper - lower) * max(0.0, rank - seen) / n
            seen += n
        return self.bounds[-1]


def _histogram_stat(hist: _Histogram, stat: str) -> float | None:
    if hist.count <= 0 or not hist.bounds:
        return None
    if stat == "SampleCount":
        return float(hist.count)
    if stat == "Sum":
        return hist.sum
    if stat == "Average":
        return hist.sum / hist.count
    # The proxy's cumulative min/max cannot be split by period, so Minimum and
    # Maximum are approximated: the lower edge of the lowest non-empty bucket and
    # the upper edge of the highest one (buckets are ~10 % wide).
    if stat == "Minimum":
        return hist.quantile(0.0)
    if stat == "Maximum":
        return hist.quantile(100.0)
    q = percentile(stat)
    assert q is not None
    return hist.quantile(q)


def _gauge_stat(samples: list[float], stat: str) -> float | None:
    if not samples:
        return None
    if stat == "SampleCount":
        return float(len(samples))
    if stat == "Sum":
        return sum(samples)
    if stat == "Average":
        return sum(samples) / len(samples)
    if stat == "Minimum":
        return min(samples)
    if stat == "Maximum":
        return max(samples)
    q = percentile(stat)
    assert q is not None
    ordered = sorted(samples)
    pos = q / 100 * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# --- custom metrics (PutMetricData) ----------------------------------------

# A metric's identity in CloudWatch: namespace, name and its dimensions
# (sorted by name: their order in a call does not make another metric).
Dimensions = tuple[tuple[str, str], ...]
MetricKey = tuple[str, str, Dimensions]

MAX_SERIES = 10_000  # custom metrics (namespace, name, dimensions) the store holds at once
MAX_ENTRIES_PER_SERIES = 20_000  # datapoints one metric keeps within the retention; the oldest go first


def metric_key(namespace: str, name: str, dimensions: Iterable[tuple[str, str]]) -> MetricKey:
    return namespace, name, tuple(sorted(dimensions))


@dataclass(frozen=True)
class Entry:
    """One published datapoint: a value, values with counts, or a statistic set.
    `raw` holds (value, count) pairs when CloudWatch can compute percentiles
    from it; None for a statistic set with several distinct samples."""

    at: float  # on the store's clock
    unit: str
    count: float
    total: float
    low: float
    high: float
    raw: tuple[tuple[float, float], ...] | None


class CustomMetrics:
    """Datapoints published with PutMetricData, by metric, on the store's
    clock, kept for `retention_seconds` behind the newest put; at most
    `max_series` metrics (a put of a new metric beyond that is refused and
    counted in `refused`), each with at most `max_entries` datapoints (the
    oldest dropped first, counted in `dropped`).

    `minute`: CloudWatch's one minute on the store's clock (60 s divided by
    the time scale). A standard-resolution datapoint (StorageResolution 60)
    is stored at the start of its minute, as CloudWatch aggregates it; a
    high-resolution one (1) at its second."""

    def __init__(self, retention_seconds: float, minute: float = 60.0, max_series: int = MAX_SERIES,
                 max_entries: int = MAX_ENTRIES_PER_SERIES) -> None:
        self.retention = retention_seconds
        self.minute = minute
        self.max_series = max_series
        self.max_entries = max_entries
        self._series: dict[MetricKey, list[Entry]] = {}
        self._newest = -math.inf
        self._pruned = -math.inf  # newest put time at the last prune
        self.refused = 0  # datapoints of new metrics refused at the cap on series
        self.dropped = 0  # datapoints dropped at the cap on one metric's datapoints

    def __len__(self) -> int:
        return len(self._series)

    def metrics(self) -> list[MetricKey]:
        return list(self._series)

    def entries(self, key: MetricKey, unit: str | None = None) -> list[Entry]:
        """The datapoints held for a metric (of `unit`, when given), oldest first."""
        return [e for e in self._series.get(key, []) if unit is None or e.unit == unit]

    def place(self, at: float, resolution: int) -> float:
        """Where CloudWatch files a datapoint published at `at`: the start of its minute or second."""
        step = self.minute if resolution >= 60 else self.minute / 60
        return math.floor(at / step + 1e-9) * step

    def add(self, key: MetricKey, entry: Entry, now: float) -> bool:
        """Store one datapoint; False when refused (a new metric beyond the cap)."""
        self._newest = max(self._newest, now)
        entries = self._series.get(key)
        if entries is None:
            self._prune(force=len(self._series) >= self.max_series)
            if len(self._series) >= self.max_series:
                self.refused += 1
                return False
            entries = self._series[key] = []
        insort(entries, entry, key=lambda e: e.at)
        if len(entries) > self.max_entries:
            del entries[0]
            self.dropped += 1
        return True

    def _prune(self, force: bool = False) -> None:
        # Every series is looked at: at most ten times per retention, not at each read.
        if not force and self._newest - self._pruned < self.retention / 10:
            return
        self._pruned = self._newest
        horizon = self._newest - self.retention
        for key in list(self._series):
            entries = self._series[key]
            drop = bisect_left(entries, horizon, key=lambda e: e.at)
            if drop:
                del entries[:drop]
            if not entries:
                del self._series[key]

    def series(self, key: MetricKey, stat: str, unit: str | None, period: float, end: float,
               count: int) -> list[float | None]:
        """The last `count` complete periods ending at or before `end`, oldest first."""
        if not supports_statistic(stat):
            raise ValueError(f"{stat!r} is not a statistic shiftlab computes")
        self._prune()
        entries = self._series.get(key, [])
        out: list[float | None] = []
        for start in period_starts(period, end, count):
            lo = bisect_left(entries, start - 1e-9, key=lambda e: e.at)
            hi = bisect_left(entries, start + period - 1e-9, key=lambda e: e.at)
            out.append(custom_stat([e for e in entries[lo:hi] if unit is None or e.unit == unit], stat))
        return out


def custom_stat(entries: Sequence[Entry], stat: str) -> float | None:
    """One CloudWatch statistic over the datapoints of a period; None when
    it has none. Percentiles need the raw values: "you can only retrieve
    percentile statistics for this data if ... the SampleCount value of the
    statistic set is 1 [or] the Min and the Max value of the statistic set
    are equal", and none "when any of the metric values are negative numbers"
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#Percentiles).
    The percentile is the nearest rank over the values weighted by their counts."""
    if not entries:
        return None
    samples = sum(e.count for e in entries)
    if stat == "SampleCount":
        return samples
    if stat == "Sum":
        return sum(e.total for e in entries)
    if stat == "Average":
        return sum(e.total for e in entries) / samples if samples else None
    if stat == "Minimum":
        return min(e.low for e in entries)
    if stat == "Maximum":
        return max(e.high for e in entries)
    q = percentile(stat)
    assert q is not None
    weighted: list[tuple[float, float]] = []
    for e in entries:
        if e.raw is None:
            return None
        weighted += e.raw
    if not weighted or any(v < 0 for v, _ in weighted):
        return None
    weighted.sort()
    total = sum(c for _, c in weighted)
    rank, seen = q / 100 * total, 0.0
    for value, c in weighted:
        seen += c
        if seen >= rank - 1e-9:
            return value
    return weighted[-1][0]
