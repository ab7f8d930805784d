"""CloudWatch's API for the tasks: PutMetricData into the metric store the
alarms read, plus DescribeAlarms and GetMetricData answered from it. The
wire (CBOR, JSON, signatures) is controller.cloudwatch_http; this module
takes the operation's input as a dict of AWS field names and raises
`CloudWatchError` with AWS's error code.

PutMetricData's limits are the API reference's
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html):
at most 1000 metrics a call, 30 dimensions a metric, 150 values a metric,
values within -2^360..2^360 (no NaN or infinity), timestamps at most two
weeks old and two hours ahead; StorageResolution 1 or 60
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html);
a namespace may not start with "AWS/" (AWS's own) nor ":".

Time: a datapoint's Timestamp is the task's wall clock; it goes into the
store that far before the controller's now (real seconds: the task lives
in real time); without one, at the call's arrival. A standard-resolution
datapoint (60) is filed at the start of its minute (one minute divided by
the time scale), a high-resolution one (1) at its second.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.controller.alarms import MIN_PERIOD_SECONDS, Dimension, fetch, metric_query
from shiftlab.controller.cbor import Timestamp
from shiftlab.controller.metricstore import (
    UNITS,
    CustomMetrics,
    Entry,
    MetricKey,
    MetricStore,
    metric_key,
    period_starts,
)

MAX_METRICS = 1000
MAX_DIMENSIONS = 30
MAX_VALUES = 150
VALUE_LIMIT = 2.0 ** 360
MAX_AGE_SECONDS = 14 * 86_400
MAX_AHEAD_SECONDS = 2 * 3_600
RESOLUTIONS = (1, 60)

# AWS's error codes (as the query protocol and x-amzn-query-error name them), with their HTTP status.
INVALID_VALUE = "InvalidParameterValue"
INVALID_COMBINATION = "InvalidParameterCombination"
MISSING = "MissingParameter"
ERROR_TYPES = {
    INVALID_VALUE: "InvalidParameterValueException",
    INVALID_COMBINATION: "InvalidParameterCombinationException",
    MISSING: "MissingRequiredParameterException",
    "InvalidAction": "InvalidAction",
    "SignatureDoesNotMatch": "SignatureDoesNotMatch",
    "IncompleteSignature": "IncompleteSignature",
    "InternalServiceError": "InternalServiceFault",
}


class CloudWatchError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _invalid(param: str, value: Any, why: str = "") -> CloudWatchError:
    return CloudWatchError(INVALID_VALUE, f"The value {value} for parameter {param} is invalid." + (
        f" {why}" if why else ""))


def _text(param: str, value: Any, low: int, high: int, what: str) -> str:
    if not isinstance(value, str):
        raise _invalid(param, value, f"{what} must be a string.")
    if not low <= len(value) <= high:
        raise _invalid(param, value, f"{what} must be {low} to {high} characters long.")
    if not value.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _invalid(param, value, f"{what} must be ASCII without control characters.")
    return value


def _number(param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(param, value, "It must be a number.")
    try:
        x = float(value)
    except ValueError:
        raise _invalid(param, value, "It must be a number.") from None
    if not math.isfinite(x) or abs(x) > VALUE_LIMIT:
        raise _invalid(param, value, "Values must be in the range of -2^360 to 2^360; NaN and infinities are "
                                     "not supported.")
    return x


def _list(param: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(param, value, "It must be a list.")
    return value


def _timestamp(param: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(param, value, "It must be a time (ISO 8601 or epoch seconds).") from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
    return _number(param, value)


@dataclass(frozen=True)
class Datapoint:
    key: MetricKey
    entry: Entry


def parse_datum(i: int, datum: Any, namespace: str, wall_now: float, to_store: Callable[[float], float],
                place: Callable[[float, int], float], prefix: str = "MetricData") -> Datapoint:
    """One MetricDatum, checked; `to_store` maps a wall-clock time onto the store's clock."""
    p = f"{prefix}.member.{i}"
    if not isinstance(datum, dict):
        raise _invalid(p, datum, "A MetricDatum is a structure.")
    if datum.get("MetricName") is None:
        raise CloudWatchError(MISSING, f"The parameter {p}.MetricName is required.")
    name = _text(f"{p}.MetricName", datum["MetricName"], 1, 255, "A metric name")
    dims = _list(f"{p}.Dimensions", datum.get("Dimensions"))
    if len(dims) > MAX_DIMENSIONS:
        raise _invalid(f"{p}.Dimensions", f"of {len(dims)} dimensions",
                       f"A metric has at most {MAX_DIMENSIONS} dimensions.")
    pairs: dict[str, str] = {}
    for j, d in enumerate(dims, 1):
        dp = f"{p}.Dimensions.member.{j}"
        if not isinstance(d, dict) or d.get("Name") is None or d.get("Value") is None:
            raise CloudWatchError(MISSING, f"The parameters {dp}.Name and {dp}.Value are required.")
        dname = _text(f"{dp}.Name", d["Name"], 1, 255, "A dimension name")
        dvalue = _text(f"{dp}.Value", d["Value"], 1, 1024, "A dimension value")
        if dname.startswith(":") or not dname.strip():
            raise _invalid(f"{dp}.Name", dname, "A dimension name cannot start with ':' or be only whitespace.")
        if not dvalue.strip():
            raise _invalid(f"{dp}.Value", dvalue, "A dimension value must have a non-whitespace character.")
        if dname in pairs:
            raise _invalid(f"{dp}.Name", dname, "A dimension name may appear once per metric.")
        pairs[dname] = dvalue
    unit = datum.get("Unit") or "None"
    if unit not in UNITS:
        raise _invalid(f"{p}.Unit", unit, f"Units: {', '.join(UNITS)}.")
    resolution = datum.get("StorageResolution", 60)
    if isinstance(resolution, bool) or resolution not in RESOLUTIONS:
        raise _invalid(f"{p}.StorageResolution", resolution, "Valid values are 1 and 60.")
    at = wall_now
    if datum.get("Timestamp") is not None:
        at = _timestamp(f"{p}.Timestamp", datum["Timestamp"])
        if at < wall_now - MAX_AGE_SECONDS:
            raise _invalid(f"{p}.Timestamp", _iso(at), "A timestamp may be at most two weeks in the past.")
        if at > wall_now + MAX_AHEAD_SECONDS:
            raise _invalid(f"{p}.Timestamp", _iso(at), "A timestamp may be at most two hours in the future.")
    given = [f for f in ("Value", "StatisticValues", "Values") if datum.get(f) is not None]
    if len(given) > 1:
        raise CloudWatchError(INVALID_COMBINATION, f"The parameters {p}.{given[0]} and {p}.{given[1]} are "
                                                   "mutually exclusive and you have specified both.")
    if datum.get("Counts") is not None and "Values" not in given:
        raise CloudWatchError(INVALID_COMBINATION, f"The parameter {p}.Counts needs {p}.Values.")
    if not given:
        raise CloudWatchError(MISSING, f"One of the parameters {p}.Value, {p}.StatisticValues or {p}.Values "
                                       "is required.")
    entry_at = place(to_store(at), resolution)
    if given[0] == "Value":
        v = _number(f"{p}.Value", datum["Value"])
        entry = Entry(entry_at, unit, 1.0, v, v, v, ((v, 1.0),))
    elif given[0] == "StatisticValues":
        entry = _statistic_set(f"{p}.StatisticValues", datum["StatisticValues"], entry_at, unit)
    else:
        entry = _values(p, datum, entry_at, unit)
    return Datapoint(metric_key(namespace, name, pairs.items()), entry)


def _statistic_set(p: str, stats: Any, at: float, unit: str) -> Entry:
    if not isinstance(stats, dict):
        raise _invalid(p, stats, "A StatisticSet is a structure.")
    missing = [f for f in ("SampleCount", "Sum", "Minimum", "Maximum") if stats.get(f) is None]
    if missing:
        raise CloudWatchError(MISSING, f"The parameter {p}.{missing[0]} is required.")
    count = _number(f"{p}.SampleCount", stats["SampleCount"])
    total = _number(f"{p}.Sum", stats["Sum"])
    low, high = _number(f"{p}.Minimum", stats["Minimum"]), _number(f"{p}.Maximum", stats["Maximum"])
    if count <= 0:
        raise _invalid(f"{p}.SampleCount", stats["SampleCount"], "It must be greater than 0.")
    if low > high:
        raise _invalid(f"{p}.Minimum", stats["Minimum"], "It must not be greater than the Maximum.")
    # Percentiles: only from a set whose samples are all one value.
    raw = ((low, count),) if count == 1 or low == high else None
    return Entry(at, unit, count, total, low, high, raw)


def _values(p: str, datum: dict[str, Any], at: float, unit: str) -> Entry:
    values = [_number(f"{p}.Values.member.{k}", v) for k, v in enumerate(_list(f"{p}.Values", datum["Values"]), 1)]
    if not values:
        raise _invalid(f"{p}.Values", "[]", "Give at least one value.")
    if len(values) > MAX_VALUES:
        raise _invalid(f"{p}.Values", f"of {len(values)} values", f"At most {MAX_VALUES} values a metric.")
    raw_counts = datum.get("Counts")
    counts = [1.0] * len(values) if raw_counts is None else [
        _number(f"{p}.Counts.member.{k}", c) for k, c in enumerate(_list(f"{p}.Counts", raw_counts), 1)]
    if len(counts) != len(values):
        raise CloudWatchError(INVALID_VALUE, f"The parameters {p}.Values and {p}.Counts must be of the same "
                                             f"size ({len(values)} values, {len(counts)} counts).")
    for k, c in enumerate(counts, 1):
        if c < 0:
            raise _invalid(f"{p}.Counts.member.{k}", c, "A count may not be negative.")
    pairs = tuple((v, c) for v, c in zip(values, counts, strict=True) if c > 0)
    total = sum(c for _, c in pairs)
    if not total:
        raise _invalid(f"{p}.Counts", counts, "At least one count must be greater than 0.")
    return Entry(at, unit, total, sum(v * c for v, c in pairs), min(v for v, _ in pairs), max(v for v, _ in pairs),
                 pairs)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")


def put_metric_data(params: Mapping[str, Any], store: CustomMetrics, wall_now: float, store_now: float) -> int:
    """Check the whole call first (all or nothing, as CloudWatch does), then
    store it. Returns how many datapoints were stored; those of new metrics
    beyond the store's cap are not (the store counts them)."""
    namespace = params.get("Namespace")
    if namespace is None:
        raise CloudWatchError(MISSING, "The parameter Namespace is required.")
    namespace = _text("Namespace", namespace, 1, 255, "A namespace")
    if namespace.startswith(":"):
        raise _invalid("Namespace", namespace, "A namespace cannot start with ':'.")
    if namespace.startswith("AWS/"):
        raise _invalid("Namespace", namespace, "The AWS/ namespaces are reserved for AWS's own metrics.")
    data = _list("MetricData", params.get("MetricData"))
    entity_data = _list("EntityMetricData", params.get("EntityMetricData"))
    groups: list[tuple[str, list[Any]]] = [("MetricData", data)]
    for k, item in enumerate(entity_data, 1):
        if not isinstance(item, dict):
            raise _invalid(f"EntityMetricData.member.{k}", item, "An EntityMetricData is a structure.")
        groups.append((f"EntityMetricData.member.{k}.MetricData", _list(f"EntityMetricData.member.{k}.MetricData",
                                                                        item.get("MetricData"))))
    total = sum(len(g) for _, g in groups)
    if total > MAX_METRICS:
        raise _invalid("MetricData", f"of {total} metrics",
                       f"A call holds at most {MAX_METRICS} metrics (MetricData and EntityMetricData together).")
    if total == 0:
        raise CloudWatchError(MISSING, "The parameter MetricData is required.")

    def to_store(t: float) -> float:
        return store_now - (wall_now - t)

    points = [parse_datum(i, datum, namespace, wall_now, to_store, store.place, prefix)
              for prefix, group in groups for i, datum in enumerate(group, 1)]
    return sum(store.add(pt.key, pt.entry, store_now) for pt in points)


def describe_alarms(params: Mapping[str, Any], alarms: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """DescribeAlarms over the file's alarms (`alarms`: each the put-metric-alarm
    input plus StateValue, StateReason), filtered by AlarmNames, AlarmNamePrefix
    and StateValue; metric alarms only."""
    names = params.get("AlarmNames")
    prefix = params.get("AlarmNamePrefix")
    state = params.get("StateValue")
    if names is not None and prefix is not None:
        raise CloudWatchError(INVALID_COMBINATION, "The parameters AlarmNames and AlarmNamePrefix are mutually "
                                                   "exclusive and you have specified both.")
    if state is not None and state not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
        raise _invalid("StateValue", state, "Valid values are OK, ALARM and INSUFFICIENT_DATA.")
    out = [a for a in alarms
           if (names is None or a["AlarmName"] in names)
           and (prefix is None or str(a["AlarmName"]).startswith(prefix))
           and (state is None or a["StateValue"] == state)]
    return {"MetricAlarms": out, "CompositeAlarms": []}


MAX_RESULT_DATAPOINTS = 100_800  # GetMetricData: "A single GetMetricData call can ... return up to 100,800 data points"


def get_metric_data(params: Mapping[str, Any], store: MetricStore, time_scale: float) -> dict[str, Any]:
    """GetMetricData for MetricStat queries (not Expression) over what the
    store holds: the load balancer's metrics and published ones. Periods are
    AWS seconds divided by the time scale, and so are the timestamps' steps."""
    queries = _list("MetricDataQueries", params.get("MetricDataQueries"))
    if not queries:
        raise CloudWatchError(MISSING, "The parameter MetricDataQueries is required.")
    for field in ("StartTime", "EndTime"):
        if params.get(field) is None:
            raise CloudWatchError(MISSING, f"The parameter {field} is required.")
    start, end = _timestamp("StartTime", params["StartTime"]), _timestamp("EndTime", params["EndTime"])
    if end <= start:
        raise _invalid("EndTime", _iso(end), "The EndTime must be after the StartTime.")
    descending = params.get("ScanBy", "TimestampDescending") != "TimestampAscending"
    results = []
    for i, raw in enumerate(queries, 1):
        p = f"MetricDataQueries.member.{i}"
        if not isinstance(raw, dict) or not raw.get("Id"):
            raise CloudWatchError(MISSING, f"The parameter {p}.Id is required.")
        if raw.get("Expression") is not None:
            raise _invalid(f"{p}.Expression", raw["Expression"], "shiftlab answers MetricStat queries only.")
        ms = raw.get("MetricStat")
        if not isinstance(ms, dict) or not isinstance(ms.get("Metric"), dict):
            raise CloudWatchError(MISSING, f"The parameter {p}.MetricStat is required.")
        for field in ("Period", "Stat"):
            if ms.get(field) is None:
                raise CloudWatchError(MISSING, f"The parameter {p}.MetricStat.{field} is required.")
        metric = ms["Metric"]
        try:
            dims = [parse(Dimension, d, f"{p}.MetricStat.Metric.Dimensions.member.{j}")
                    for j, d in enumerate(_list(f"{p}.MetricStat.Metric.Dimensions", metric.get("Dimensions")), 1)]
        except ConfigError as exc:
            raise CloudWatchError(INVALID_VALUE, "; ".join(exc.problems)) from None
        period = ms["Period"]
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise _invalid(f"{p}.MetricStat.Period", period, "A period is a whole number of seconds.")
        query, problems = metric_query(str(raw["Id"]), metric.get("Namespace"), metric.get("MetricName"), dims,
                                       str(ms["Stat"]), ms.get("Unit"), f"{p}.MetricStat.Metric")
        if query is None:
            raise CloudWatchError(INVALID_VALUE, "; ".join(problems))
        scaled = max(period / time_scale, MIN_PERIOD_SECONDS)
        # Nothing older than the store keeps can have data: no need to ask for it.
        count = min(int((end - start) / scaled), int(store.retention / scaled) + 2, MAX_RESULT_DATAPOINTS)
        values = fetch(store, query, query.stat, scaled, end, count) if count > 0 else []
        points = [(t, v) for t, v in zip(period_starts(scaled, end, count), values, strict=True)
                  if v is not None and t >= start - 1e-9]
        if descending:
            points.reverse()
        if raw.get("ReturnData") is False:
            continue
        results.append({"Id": raw["Id"], "Label": raw.get("Label") or query.metric_name,
                        "Timestamps": [Timestamp(t) for t, _ in points], "Values": [v for _, v in points],
                        "StatusCode": "Complete"})
    return {"MetricDataResults": results, "Messages": []}
