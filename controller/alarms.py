"""CloudWatch metric alarms over the load balancer's metrics and what tasks
publish with PutMetricData (controller.cloudwatch): config
models that take `aws cloudwatch put-metric-alarm --cli-input-json` input
as is, and a pure evaluator of CloudWatch's M-out-of-N rule.

Public API
----------
`parse_alarms(data, target_groups, prefix="alarms") -> list[MetricAlarm]`
  `data` is a list of put-metric-alarm inputs (single metric, or metric math
  with `Metrics`). Raises `ConfigError` listing every problem, each line
  naming its field path and value. Alarms shiftlab cannot evaluate (an
  anomaly-detection band, an unknown target group, an AWS/ApplicationELB
  metric it does not compute) are refused here, not at run time. Another
  namespace is accepted, as PutMetricAlarm accepts it: it reads the store's
  published datapoints (`MetricAlarm.custom_metrics()` lists them).

`MetricAlarm` (frozen pydantic model, AWS field names) has `.plan`: the
  metric queries and expressions to evaluate, with target groups resolved.

`AlarmEvaluator(alarm, time_scale=1.0)`
  - `evaluate(store, now) -> Evaluation`: reads the last EvaluationPeriods
    datapoints from a `controller.metricstore.MetricStore` and applies
    DatapointsToAlarm, Threshold, ComparisonOperator and TreatMissingData.
    Call it with `now` = the time of the latest scrape (the newest period
    is complete only once a scrape at or after its end was added).
  - `state`, `reason`, `since` (time of the last transition, None before
    the first): the alarm as it stands. New alarms are INSUFFICIENT_DATA.
  - `period`: seconds of the evaluator's clock per alarm period.

`Evaluation(state, reason, datapoints, breaching, changed, since)`:
  `datapoints` are (period start, value or None) oldest first; `breaching`
  counts the datapoints taken as breaching (after TreatMissingData).

`required_retention(alarms, time_scale)`: seconds of snapshots a
  MetricStore must keep for these alarms.

Accepted but without effect here: AlarmActions, OKActions,
InsufficientDataActions, ActionsEnabled, Tags, Label and AccountId.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, PrivateAttr

from shiftlab.common.configfile import ConfigError, Model, in_range, merge_problems, parse
from shiftlab.common.naming import target_group_name
from shiftlab.controller import serviceconnect
from shiftlab.controller.awsshapes import put_metric_alarm_problems
from shiftlab.controller.metricmath import Expression, MathError, parse_expression
from shiftlab.controller.metricstore import (
    LOAD_BALANCER_ONLY,
    METRIC_UNITS,
    METRICS,
    NLB_METRICS,
    NLB_TARGET_GROUP_ONLY,
    PER_TARGET,
    STATISTICS,
    TARGET_GROUP_ONLY,
    UNITS,
    CustomMetrics,
    Dimensions,
    MetricKey,
    metric_key,
    period_starts,
    supports_statistic,
)

NAMESPACE = "AWS/ApplicationELB"
NLB_NAMESPACE = "AWS/NetworkELB"
# The load balancer's namespaces: computed from the proxy's stats (an
# application load balancer's, or a network one's), never PutMetricData.
ELB_METRICS = {NAMESPACE: METRICS, NLB_NAMESPACE: NLB_METRICS}
MIN_PERIOD_SECONDS = 0.05

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"

THRESHOLD_OPERATORS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
ANOMALY_OPERATORS = (
    "LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold",
)
TREAT_MISSING_DATA = ("missing", "breaching", "notBreaching", "ignore")
_ID = re.compile(r"[a-z][A-Za-z0-9_]*\Z")
_STAT_HELP = f"(it computes {', '.join(STATISTICS)} and percentiles pNN such as p50, p99, p99.9)"


class Dimension(Model):
    Name: str
    Value: str


class Tag(Model):
    Key: str
    Value: str


class MetricSpec(Model):
    Namespace: str
    MetricName: str
    Dimensions: list[Dimension] = []


class MetricStatSpec(Model):
    Metric: MetricSpec
    Period: int
    Stat: str
    Unit: str | None = None


class MetricDataQuery(Model):
    Id: Annotated[str, Field(min_length=1, max_length=255)]
    MetricStat: MetricStatSpec | None = None
    Expression: str | None = None
    Label: str | None = None
    ReturnData: bool | None = None
    Period: int | None = None
    AccountId: str | None = None


@dataclass(frozen=True)
class MetricQuery:
    """One metric to fetch from the store."""

    id: str
    metric_name: str
    target_group: str | None  # None = the load balancer's totals
    stat: str
    # Why AWS never publishes this metric with these dimensions (an alarm on it
    # is accepted, as PutMetricAlarm accepts it, and never gets data).
    unpublished: str | None = None
    # Another namespace than the load balancer's: a metric published with
    # PutMetricData, found by namespace, name and dimensions (and Unit, when
    # the alarm gives one).
    namespace: str = "AWS/ApplicationELB"
    dimensions: Dimensions = ()
    unit: str | None = None
    # A Service Connect metric (AWS/ECS, per DiscoveryName or TargetDiscoveryName):
    # computed from the namespace proxy's stats, as the load balancer's are.
    service_connect: bool = False

    @property
    def custom(self) -> bool:
        return self.namespace not in ELB_METRICS and not self.service_connect

    @property
    def key(self) -> MetricKey:
        return metric_key(self.namespace, self.metric_name, self.dimensions)

    def describe(self) -> str:
        dims = ", ".join(f"{n}={v}" for n, v in self.dimensions)
        return f"{self.namespace} {self.metric_name}" + (f" ({dims})" if dims else "")


@dataclass(frozen=True)
class AlarmPlan:
    period: int  # AWS seconds
    metrics: tuple[MetricQuery, ...]
    expressions: tuple[tuple[str, Expression], ...]  # in dependency order
    returned: str  # the Id whose series is compared with the threshold


class MetricAlarm(Model):
    AlarmName: Annotated[str, Field(min_length=1, max_length=255)]
    AlarmDescription: str | None = None
    ActionsEnabled: bool = True
    AlarmActions: list[str] = []
    OKActions: list[str] = []
    InsufficientDataActions: list[str] = []
    MetricName: str | None = None
    Namespace: str | None = None
    Dimensions: list[Dimension] | None = None
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Period: int | None = None
    Unit: str | None = None
    EvaluationPeriods: Annotated[int, in_range(1, 100_000)]
    DatapointsToAlarm: Annotated[int | None, in_range(1, 100_000)] = None
    Threshold: float | None = None
    ThresholdMetricId: str | None = None
    ComparisonOperator: str
    TreatMissingData: str = "missing"
    EvaluateLowSampleCountPercentile: Literal["evaluate", "ignore"] | None = None
    Metrics: list[MetricDataQuery] | None = None
    Tags: list[Tag] = []

    # Values are checked by _compile, which reports every problem at once.
    _plan: AlarmPlan | None = PrivateAttr(default=None)

    @property
    def datapoints_to_alarm(self) -> int:
        return self.DatapointsToAlarm or self.EvaluationPeriods

    def never_published(self) -> list[str]:
        """Why this alarm would never fire on AWS: its metrics AWS never publishes."""
        return [q.unpublished for q in self.plan.metrics if q.unpublished]

    def custom_metrics(self) -> list[MetricQuery]:
        """The metrics of other namespaces than the load balancer's it reads
        (only PutMetricData can feed them)."""
        return [q for q in self.plan.metrics if q.custom]

    @property
    def plan(self) -> AlarmPlan:
        if self._plan is None:
            plan, problems = _compile(self, None, "alarm")
            if plan is None:
                raise ConfigError(problems)
            self._plan = plan
        return self._plan


# --- cross-field checks: collect every problem, build the plan -------------


def _metric_problems(
    path: str, namespace: str | None, name: str | None, dims: Sequence[Dimension], target_groups: Sequence[str] | None
) -> tuple[str | None, list[str]]:
    """Check one metric; return its target group (None = load balancer totals) and problems."""
    problems = []
    if serviceconnect.is_service_connect(namespace, name, (d.Name for d in dims)):
        return _service_connect_problems(path, dims)
    if namespace not in ELB_METRICS:
        return None, _custom_metric_problems(path, namespace, name, dims)
    known = ELB_METRICS[namespace]
    if name not in known:
        problems.append(f"{path}.MetricName: {name!r} is not an {namespace} metric shiftlab computes "
                        f"({', '.join(known)})")
    group: str | None = None
    problems += _repeated_dimensions(path, dims)
    for j, d in enumerate(dims):
        where = f"{path}.Dimensions[{j}]"
        if d.Name == "TargetGroup":
            group = target_group_name(d.Value)
            if target_groups is not None and group not in target_groups:
                problems.append(f"{where}.Value: {d.Value!r} names target group {group!r}, which is not configured "
                                f"(known: {', '.join(target_groups) or 'none'})")
        elif d.Name != "LoadBalancer":
            problems.append(f"{where}.Name: {d.Name!r} is not a dimension shiftlab computes "
                            f"(TargetGroup, LoadBalancer)")
    return group, problems


def _repeated_dimensions(path: str, dims: Sequence[Dimension]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for j, d in enumerate(dims):
        if d.Name in seen:
            problems.append(f"{path}.Dimensions[{j}].Name: {d.Name!r} is given twice")
        seen.add(d.Name)
    return problems


def _service_connect_problems(path: str, dims: Sequence[Dimension]) -> tuple[str | None, list[str]]:
    problems = _repeated_dimensions(path, dims)
    for j, d in enumerate(dims):
        where = f"{path}.Dimensions[{j}]"
        if d.Name not in serviceconnect.DIMENSIONS:
            problems.append(f"{where}.Name: {d.Name!r} is not a dimension of Service Connect's metrics "
                            f"({', '.join(sorted(serviceconnect.DIMENSIONS))})")
    return serviceconnect.query_key((d.Name, d.Value) for d in dims), problems


MAX_DIMENSIONS = 30


def _custom_metric_problems(path: str, namespace: str | None, name: str | None,
                            dims: Sequence[Dimension]) -> list[str]:
    """A metric of another namespace: accepted as PutMetricAlarm accepts it
    (within its limits: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html),
    fed only by what tasks publish with PutMetricData."""
    problems = []
    if not namespace or len(namespace) > 255 or namespace.startswith(":"):
        problems.append(f"{path}.Namespace: {namespace!r} is not a CloudWatch namespace "
                        f"(1 to 255 characters, not starting with ':')")
    if not name or len(name) > 255:
        problems.append(f"{path}.MetricName: {name!r} is not a CloudWatch metric name (1 to 255 characters)")
    if len(dims) > MAX_DIMENSIONS:
        problems.append(f"{path}.Dimensions: {len(dims)} dimensions; CloudWatch allows at most {MAX_DIMENSIONS}")
    seen: set[str] = set()
    for j, d in enumerate(dims):
        if d.Name in seen:
            problems.append(f"{path}.Dimensions[{j}].Name: {d.Name!r} is given twice")
        seen.add(d.Name)
    return problems


def _query(qid: str, namespace: str, name: str, dims: Sequence[Dimension], group: str | None, stat: str,
           unit: str | None) -> MetricQuery:
    if namespace == NAMESPACE:
        return MetricQuery(qid, name, group, stat, unpublished(name, {d.Name for d in dims}))
    if namespace == NLB_NAMESPACE:
        return MetricQuery(qid, name, group, stat, nlb_unpublished(name, {d.Name for d in dims}),
                           namespace=NLB_NAMESPACE)
    if serviceconnect.is_service_connect(namespace, name, (d.Name for d in dims)):
        return MetricQuery(qid, name, group, stat, serviceconnect.unpublished(name, (d.Name for d in dims)),
                           namespace=namespace, dimensions=tuple(sorted((d.Name, d.Value) for d in dims)),
                           unit=unit, service_connect=True)
    return MetricQuery(qid, name, None, stat, namespace=namespace,
                       dimensions=tuple(sorted((d.Name, d.Value) for d in dims)), unit=unit)


def unpublished(name: str, dimensions: set[str]) -> str | None:
    """Why ALB never publishes `name` with these dimensions, or None. The
    dimension sets are ALB's metrics page's (LoadBalancer; TargetGroup with
    LoadBalancer; RequestCountPerTarget also with TargetGroup alone)
    https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html"""
    if name in LOAD_BALANCER_ONLY and "TargetGroup" in dimensions:
        return f"ALB publishes {name} per load balancer only, never with a TargetGroup dimension"
    if name in TARGET_GROUP_ONLY and "TargetGroup" not in dimensions:
        return f"ALB publishes {name} per target group only: it needs a TargetGroup dimension"
    if "LoadBalancer" not in dimensions and name != PER_TARGET:
        return f"ALB publishes {name} only with a LoadBalancer dimension (TargetGroup alone is not published)"
    return None


def nlb_unpublished(name: str, dimensions: set[str]) -> str | None:
    """Why NLB never publishes `name` with these dimensions, or None. NLB's
    metrics page: the host counts per target group (LoadBalancer,
    TargetGroup), everything else per load balancer (LoadBalancer)
    https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-cloudwatch-metrics.html"""
    if name in NLB_TARGET_GROUP_ONLY:
        if "TargetGroup" not in dimensions or "LoadBalancer" not in dimensions:
            return f"NLB publishes {name} per target group only, with the LoadBalancer and TargetGroup dimensions"
        return None
    if "TargetGroup" in dimensions:
        return f"NLB publishes {name} per load balancer only, never with a TargetGroup dimension"
    if "LoadBalancer" not in dimensions:
        return f"NLB publishes {name} only with a LoadBalancer dimension"
    return None


def _period_problem(path: str, period: int | None) -> list[str]:
    if period is None or period in (10, 20, 30) or (period >= 60 and period % 60 == 0):
        return []
    return [f"{path}: {period} is not a CloudWatch period (10, 20, 30 or a multiple of 60 seconds)"]


def _unit_problem(path: str, name: str | None, unit: str | None, namespace: str | None = NAMESPACE) -> list[str]:
    if unit is not None and unit not in UNITS:
        return [f"{path}: {unit!r} is not a CloudWatch unit ({', '.join(UNITS)})"]
    units = METRIC_UNITS if namespace in ELB_METRICS else serviceconnect.UNITS \
        if namespace == serviceconnect.NAMESPACE else {}
    if unit is None or name not in units or unit == units[name]:
        return []
    return [f"{path}: {unit!r} is not the unit of {name} ({units[name]}): CloudWatch would find no data"]


def _stat_problem(path: str, stat: str) -> list[str]:
    if supports_statistic(stat):
        return []
    return [f"{path}: {stat!r} is not a statistic shiftlab computes {_STAT_HELP}"]


def _compile_single(
    alarm: MetricAlarm, target_groups: Sequence[str] | None, path: str
) -> tuple[AlarmPlan | None, list[str]]:
    problems = []
    for field in ("MetricName", "Namespace", "Period"):
        if getattr(alarm, field) is None:
            problems.append(f"{path}.{field}: is required (or give Metrics)")
    problems += _period_problem(f"{path}.Period", alarm.Period)
    if (alarm.Statistic is None) == (alarm.ExtendedStatistic is None):
        problems.append(f"{path}.Statistic: give exactly one of Statistic and ExtendedStatistic")
    if alarm.Statistic is not None and alarm.Statistic not in STATISTICS:
        problems.append(f"{path}.Statistic: {alarm.Statistic!r} is not one of {', '.join(STATISTICS)} "
                        f"(percentiles go in ExtendedStatistic)")
    if alarm.ExtendedStatistic is not None:
        problems += _stat_problem(f"{path}.ExtendedStatistic", alarm.ExtendedStatistic)
    group: str | None = None
    metric_problems: list[str] = []
    if alarm.Namespace is not None and alarm.MetricName is not None:
        group, metric_problems = _metric_problems(
            path, alarm.Namespace, alarm.MetricName, alarm.Dimensions or [], target_groups
        )
    problems += metric_problems + _unit_problem(f"{path}.Unit", alarm.MetricName, alarm.Unit, alarm.Namespace)
    if problems:
        return None, problems
    assert alarm.MetricName is not None and alarm.Period is not None and alarm.Namespace is not None
    stat = alarm.Statistic or alarm.ExtendedStatistic
    assert stat is not None
    query = _query("m1", alarm.Namespace, alarm.MetricName, alarm.Dimensions or [], group, stat, alarm.Unit)
    return AlarmPlan(alarm.Period, (query,), (), "m1"), []


def _compile_math(
    alarm: MetricAlarm, target_groups: Sequence[str] | None, path: str
) -> tuple[AlarmPlan | None, list[str]]:
    problems = []
    for field in ("MetricName", "Namespace", "Dimensions", "Statistic", "ExtendedStatistic", "Period", "Unit"):
        if getattr(alarm, field) is not None:
            problems.append(f"{path}.{field}: cannot be combined with Metrics (it belongs in Metrics[].MetricStat)")
    queries = alarm.Metrics or []
    if not queries:
        problems.append(f"{path}.Metrics: needs at least one metric")
    ids: dict[str, int] = {}
    for i, q in enumerate(queries):
        if not _ID.match(q.Id):
            problems.append(f"{path}.Metrics[{i}].Id: {q.Id!r} is not a CloudWatch Id "
                            f"(a lowercase letter, then letters, digits or _)")
        if q.Id in ids:
            problems.append(f"{path}.Metrics[{i}].Id: {q.Id!r} is already used by Metrics[{ids[q.Id]}]")
        ids.setdefault(q.Id, i)
    metrics: list[MetricQuery] = []
    expressions: dict[str, Expression] = {}
    periods: set[int] = set()
    for i, q in enumerate(queries):
        where = f"{path}.Metrics[{i}]"
        if (q.MetricStat is None) == (q.Expression is None):
            problems.append(f"{where}: give exactly one of MetricStat and Expression")
            continue
        if q.MetricStat is not None:
            ms = q.MetricStat
            problems += _stat_problem(f"{where}.MetricStat.Stat", ms.Stat)
            problems += _period_problem(f"{where}.MetricStat.Period", ms.Period)
            group, metric_problems = _metric_problems(
                f"{where}.MetricStat.Metric", ms.Metric.Namespace, ms.Metric.MetricName, ms.Metric.Dimensions,
                target_groups,
            )
            problems += metric_problems + _unit_problem(f"{where}.MetricStat.Unit", ms.Metric.MetricName, ms.Unit,
                                                        ms.Metric.Namespace)
            periods.add(ms.Period)
            metrics.append(_query(q.Id, ms.Metric.Namespace, ms.Metric.MetricName, ms.Metric.Dimensions, group,
                                  ms.Stat, ms.Unit))
            continue
        assert q.Expression is not None
        try:
            expr = parse_expression(q.Expression)
        except MathError as exc:
            problems.append(f"{where}.Expression: {exc}")
            continue
        unknown = sorted(expr.ids - ids.keys())
        if unknown:
            problems.append(f"{where}.Expression: {q.Expression!r} references unknown Id "
                            f"{', '.join(map(repr, unknown))} (known: {', '.join(ids)})")
        elif q.Id in expr.ids:
            problems.append(f"{where}.Expression: {q.Expression!r} references its own Id {q.Id!r}")
        expressions[q.Id] = expr
    if len(periods) > 1:
        problems.append(f"{path}.Metrics: every MetricStat needs the same Period (got {sorted(periods)})")
    if not metrics and queries:
        problems.append(f"{path}.Metrics: needs at least one MetricStat (an expression alone has no data)")
    # CloudWatch's default for ReturnData is true: an alarm must set it false on all queries but one.
    returning = [q for q in queries if q.ReturnData is not False]
    if len(returning) != 1 and queries:
        listed = ", ".join(q.Id for q in returning) or "none"
        problems.append(f"{path}.Metrics: exactly one query must have ReturnData true (returning data: {listed}; "
                        f"set ReturnData false on the others)")
    elif returning and returning[0].Id in expressions and not expressions[returning[0].Id].returns_series:
        i = ids[returning[0].Id]
        problems.append(f"{path}.Metrics[{i}].Expression: {returning[0].Expression!r} gives one number, "
                        f"an alarm needs a time series")
    order, cycle = _dependency_order(expressions)
    if cycle:
        problems.append(f"{path}.Metrics: expressions reference each other in a loop ({' -> '.join(cycle)})")
    if problems:
        return None, problems
    period = periods.pop()
    plan = AlarmPlan(period, tuple(metrics), tuple((i, expressions[i]) for i in order), returning[0].Id)
    return plan, []


def _dependency_order(expressions: dict[str, Expression]) -> tuple[list[str], list[str]]:
    """Expression Ids so that each comes after those it references; or a loop found."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str]:
        if state.get(node) == "done":
            return []
        if state.get(node) == "visiting":
            return [*trail[trail.index(node):], node]
        state[node] = "visiting"
        for dep in sorted(expressions[node].ids & expressions.keys()):
            loop = visit(dep, [*trail, node])
            if loop:
                return loop
        state[node] = "done"
        order.append(node)
        return []

    for node in expressions:
        loop = visit(node, [])
        if loop:
            return order, loop
    return order, []


def _compile(
    alarm: MetricAlarm, target_groups: Sequence[str] | None, path: str
) -> tuple[AlarmPlan | None, list[str]]:
    problems = []
    op = alarm.ComparisonOperator
    if op in ANOMALY_OPERATORS:
        problems.append(f"{path}.ComparisonOperator: {op!r} needs an anomaly detection band, which shiftlab "
                        f"does not compute (use {', '.join(THRESHOLD_OPERATORS)})")
    elif op not in THRESHOLD_OPERATORS:
        problems.append(f"{path}.ComparisonOperator: {op!r} is not a comparison operator "
                        f"({', '.join(THRESHOLD_OPERATORS)})")
    if alarm.TreatMissingData not in TREAT_MISSING_DATA:
        problems.append(f"{path}.TreatMissingData: {alarm.TreatMissingData!r} is not one of "
                        f"{', '.join(TREAT_MISSING_DATA)}")
    if alarm.ThresholdMetricId is not None:
        problems.append(f"{path}.ThresholdMetricId: {alarm.ThresholdMetricId!r} is an anomaly detection band, "
                        f"which shiftlab does not compute (give a Threshold)")
    elif alarm.Threshold is None:
        problems.append(f"{path}.Threshold: is required")
    if alarm.DatapointsToAlarm is not None and alarm.DatapointsToAlarm > alarm.EvaluationPeriods:
        problems.append(f"{path}.DatapointsToAlarm: {alarm.DatapointsToAlarm} is more than "
                        f"EvaluationPeriods ({alarm.EvaluationPeriods})")
    compile_form = _compile_single if alarm.Metrics is None else _compile_math
    plan, form_problems = compile_form(alarm, target_groups, path)
    problems += form_problems
    if plan is not None and plan.period * alarm.EvaluationPeriods > MAX_EVALUATION_SECONDS:
        # PutMetricAlarm: "An alarm's total current evaluation period can be no
        # longer than one day, so this number multiplied by Period cannot be
        # more than 86,400 seconds."
        problems.append(f"{path}.EvaluationPeriods: {alarm.EvaluationPeriods} periods of {plan.period} s are "
                        f"{alarm.EvaluationPeriods * plan.period} s; CloudWatch evaluates at most one day "
                        f"(EvaluationPeriods x Period <= {MAX_EVALUATION_SECONDS})")
    return (plan, []) if not problems else (None, problems)


def parse_alarms(data: Any, target_groups: Sequence[str], prefix: str = "alarms") -> list[MetricAlarm]:
    if not isinstance(data, list):
        raise ConfigError([f"{prefix}: {type(data).__name__} given, expected a list of alarms"])
    problems: list[str] = []
    alarms: list[MetricAlarm] = []
    names: dict[str, int] = {}
    for i, item in enumerate(data):
        path = f"{prefix}[{i}]"
        # What PutMetricAlarm would refuse, where shiftlab's checks say nothing more precise.
        aws = put_metric_alarm_problems(item, path)
        try:
            alarm: MetricAlarm = parse(MetricAlarm, item, path)
        except ConfigError as exc:
            problems += merge_problems(exc.problems, aws)
            continue
        if alarm.AlarmName in names:
            first = names[alarm.AlarmName]
            problems.append(f"{path}.AlarmName: {alarm.AlarmName!r} is already used by {prefix}[{first}]")
        names.setdefault(alarm.AlarmName, i)
        plan, alarm_problems = _compile(alarm, target_groups, path)
        problems += merge_problems(alarm_problems, aws)
        alarm._plan = plan
        alarms.append(alarm)
    if problems:
        raise ConfigError(problems)
    return alarms


def required_retention(alarms: Sequence[MetricAlarm], time_scale: float = 1.0) -> float:
    """Seconds of snapshots to keep: every alarm's evaluation range plus the baseline period before it."""
    return max(
        ((a.EvaluationPeriods + EXTRA_RANGE_PERIODS + 2) * _scaled_period(a.plan.period, time_scale)
         for a in alarms), default=60.0
    )


# --- evaluation -----------------------------------------------------------


class SeriesSource(Protocol):
    """What the evaluator reads: controller.metricstore.MetricStore (its
    `custom` attribute, a CustomMetrics, holds what PutMetricData put; a
    source without one has no custom metric)."""

    def series(
        self, metric_name: str, target_group: str | None, stat: str, period: float, end: float, count: int
    ) -> list[float | None]: ...


def metric_query(qid: str, namespace: str | None, name: str | None, dims: Sequence[Dimension], stat: str,
                 unit: str | None, path: str) -> tuple[MetricQuery | None, list[str]]:
    """One metric and statistic as a query of the store (GetMetricData's
    MetricStat), or the problems with it."""
    group, problems = _metric_problems(path, namespace, name, dims, None)
    problems += _stat_problem(f"{path}.Stat", stat) + _unit_problem(f"{path}.Unit", name, unit, namespace)
    if problems or namespace is None or name is None:
        return None, problems or [f"{path}: Namespace and MetricName are required"]
    return _query(qid, namespace, name, dims, group, stat, unit), []


def fetch(store: SeriesSource, q: MetricQuery, stat: str, period: float, now: float,
          n: int) -> list[float | None]:
    """The last `n` datapoints of `q` (with `stat`) ending at or before `now`, oldest first."""
    return _fetch(store, q, stat, period, now, n)


def _fetch(store: SeriesSource, q: MetricQuery, stat: str, period: float, now: float,
           n: int) -> list[float | None]:
    if q.unpublished:
        return [None] * n
    if q.custom:
        custom: CustomMetrics | None = getattr(store, "custom", None)
        return [None] * n if custom is None else custom.series(q.key, stat, q.unit, period, now, n)
    return store.series(q.metric_name, q.target_group, stat, period, now, n)


@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    datapoints: tuple[tuple[float, float | None], ...]
    breaching: int
    changed: bool
    since: float | None


MAX_EVALUATION_SECONDS = 86_400


def low_sample_limit(stat: str) -> float | None:
    """For a percentile statistic, the sample count below which CloudWatch
    calls a datapoint statistically insignificant: 10/(1-p) for p from 0.5 up,
    10/p below (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/percentiles-with-low-samples.html)."""
    if not stat.startswith("p"):
        return None
    p = float(stat[1:]) / 100
    if p >= 1.0:
        return None
    return 10 / (1 - p) if p >= 0.5 else (10 / p if p > 0 else None)


# CloudWatch fetches more datapoints than EvaluationPeriods (the "evaluation
# range"); its documented examples, for N = 3, use 5. The exact range depends
# on the period and resolution and is not published: shiftlab uses N + 2.
EXTRA_RANGE_PERIODS = 2


@dataclass(frozen=True)
class Judgement:
    """What CloudWatch's evaluation of one range of datapoints says."""

    state: str | None  # None: keep the current state (TreatMissingData ignore)
    window: tuple[int, ...]  # indices into the range of the datapoints judged, oldest first
    flags: tuple[bool, ...]  # breaching or not, for each of `window` (filled ones included)
    filled: int  # how many of `window` are missing datapoints filled by TreatMissingData
    premature: bool  # ALARM (or kept, with ignore) by the rule against premature alarms


def judge(breaching: Sequence[bool | None], n: int, m: int, treat: str) -> Judgement:
    """CloudWatch's evaluation of an evaluation range (oldest first; None is a
    missing datapoint), as "How alarm state is evaluated when data is missing"
    documents it (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html):
    - with at least N real datapoints in the range, the most recent N decide
      and TreatMissingData is not used;
    - with fewer, every real one is judged and the most recent missing ones
      are filled by TreatMissingData (`breaching`, `notBreaching`), as few as
      make N; `missing` judges the real ones alone (none at all:
      INSUFFICIENT_DATA), and `ignore` likewise but keeps the state when it
      has nothing to go on;
    - with fewer than M real ones, "alarms are designed to always go into
      ALARM state when the oldest available breaching datapoint during the
      Evaluation Periods number of data points is at least as old as the value
      of Datapoints to Alarm, and all other more recent data points are
      breaching or missing" (with `ignore`, the state is kept instead)."""
    real = [i for i, f in enumerate(breaching) if f is not None]
    if len(real) >= n:
        window = tuple(real[-n:])
        flags = tuple(bool(breaching[i]) for i in window)
        return Judgement(ALARM if sum(flags) >= m else OK, window, flags, 0, False)
    if treat in ("breaching", "notBreaching"):
        missing = [i for i, f in enumerate(breaching) if f is None]
        fills = missing[len(missing) - (n - len(real)):]
        window = tuple(sorted(real + fills))
        flags = tuple(bool(breaching[i]) if breaching[i] is not None else treat == "breaching" for i in window)
        return Judgement(ALARM if sum(flags) >= m else OK, window, flags, len(fills), False)
    window = tuple(real)
    flags = tuple(bool(breaching[i]) for i in window)
    if not real:
        return Judgement(INSUFFICIENT_DATA if treat == "missing" else None, (), (), 0, False)
    if len(real) >= m:
        return Judgement(ALARM if sum(flags) >= m else OK, window, flags, 0, False)
    last_n = breaching[-n:]
    oldest = next((i for i, f in enumerate(last_n) if f), None)
    premature = oldest is not None and len(last_n) - oldest >= m and all(
        f is None or f for f in last_n[oldest + 1:])
    if premature:
        return Judgement(ALARM if treat == "missing" else None, window, flags, 0, True)
    return Judgement(OK, window, flags, 0, False)


def _scaled_period(period: int, time_scale: float) -> float:
    return max(period / time_scale, MIN_PERIOD_SECONDS)


def _number(v: float) -> str:
    return str(round(float(v), 6))


class AlarmEvaluator:
    """One alarm's state over time. The period on the evaluator's clock is
    `Period / time_scale`, floored at 0.05 s: below that, scrapes could not
    keep every period complete and the alarm would sit in INSUFFICIENT_DATA."""

    def __init__(self, alarm: MetricAlarm, time_scale: float = 1.0) -> None:
        self.alarm = alarm
        self.plan = alarm.plan
        self.period = _scaled_period(self.plan.period, time_scale)
        self.compare, self.phrase = THRESHOLD_OPERATORS[alarm.ComparisonOperator]
        assert alarm.Threshold is not None
        self.threshold = alarm.Threshold
        self.state = INSUFFICIENT_DATA
        self.reason = "Unchecked: Initial alarm creation"
        self.since: float | None = None

    def values(self, store: SeriesSource, now: float) -> list[float | None]:
        """The alarm's datapoints over its evaluation range, oldest first."""
        n = self.alarm.EvaluationPeriods + EXTRA_RANGE_PERIODS
        env: dict[str, list[float | None]] = {
            q.id: _fetch(store, q, q.stat, self.period, now, n) for q in self.plan.metrics
        }
        for qid, expr in self.plan.expressions:
            env[qid] = expr.evaluate(env, n)
        return env[self.plan.returned]

    def evaluate(self, store: SeriesSource, now: float) -> Evaluation:
        alarm = self.alarm
        n, m = alarm.EvaluationPeriods, alarm.datapoints_to_alarm
        values = self.values(store, now)
        starts = period_starts(self.period, now, len(values))
        verdict = judge([None if v is None else self.compare(v, self.threshold) for v in values], n, m,
                        alarm.TreatMissingData)
        points = tuple((starts[i], values[i]) for i in verdict.window)
        flags = verdict.flags
        breaching = sum(flags)
        too_few = self._too_few_samples(store, now, verdict.window)
        if too_few is not None:
            verdict = Judgement(None, verdict.window, flags, verdict.filled, False)
        state = self.state if verdict.state is None else verdict.state
        filled = f", {verdict.filled} missing filled as {alarm.TreatMissingData}" if verdict.filled else ""
        if too_few is not None:
            reason = too_few
        elif verdict.state is None:
            reason = (f"Too few datapoints in the evaluation range ({len(points)} of {n}): state kept "
                      f"(TreatMissingData ignore)")
        elif state == INSUFFICIENT_DATA:
            reason = f"Insufficient Data: {n} datapoint{'s were' if n > 1 else ' was'} unknown."
        elif verdict.premature:
            shown = self._listing(points, flags, want=True)
            reason = (f"Threshold Crossed: the oldest breaching datapoint of the last {n} [{shown}] is at least "
                      f"{m} periods old and nothing newer is below the threshold ({_number(self.threshold)}).")
        elif state == ALARM:
            shown = self._listing(points, flags, want=True)
            reason = (f"Threshold Crossed: {breaching} out of the last {len(flags)} datapoints [{shown}] "
                      f"{'were' if breaching > 1 else 'was'} {self.phrase} the threshold ({_number(self.threshold)}) "
                      f"(minimum {m} datapoint{'s' if m > 1 else ''} for ALARM{filled}).")
        else:
            calm = len(flags) - breaching
            shown = self._listing(points, flags, want=False)
            reason = (f"Threshold Crossed: {calm} out of the last {len(flags)} datapoints [{shown}] "
                      f"{'were' if calm > 1 else 'was'} not {self.phrase} the threshold ({_number(self.threshold)}) "
                      f"({breaching} breaching, {m} needed for ALARM{filled}).")
        changed = state != self.state
        if changed:
            self.state, self.since = state, now
        self.reason = reason
        return Evaluation(state, reason, points, breaching, changed, self.since)

    def _too_few_samples(self, store: SeriesSource, now: float, window: Sequence[int]) -> str | None:
        """With EvaluateLowSampleCountPercentile ignore, why the state is kept:
        a judged percentile datapoint had too few samples to mean anything."""
        if self.alarm.EvaluateLowSampleCountPercentile != "ignore" or len(self.plan.metrics) != 1:
            return None
        q = self.plan.metrics[0]
        limit = low_sample_limit(q.stat)
        if limit is None or q.id != self.plan.returned:
            return None
        counts = _fetch(store, q, "SampleCount", self.period, now, self.alarm.EvaluationPeriods + EXTRA_RANGE_PERIODS)
        low = [counts[i] or 0 for i in window if (counts[i] or 0) < limit]
        if not low:
            return None
        return (f"Too few samples for {q.stat} ({int(min(low))} in a period, {limit:g} needed): state kept "
                f"(EvaluateLowSampleCountPercentile ignore)")

    def _listing(self, points: Sequence[tuple[float, float | None]], flags: Sequence[bool | None], want: bool) -> str:
        # Newest first, as CloudWatch writes its reasons.
        fmt = "%H:%M:%S" if self.period >= 1 and float(self.period).is_integer() else "%H:%M:%S.%f"
        out = []
        for (start, value), flag in reversed(list(zip(points, flags, strict=True))):
            if flag is want:
                stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime(fmt)
                if fmt.endswith("%f"):
                    stamp = stamp[:-3]
                out.append(f"{'missing' if value is None else _number(value)} ({stamp})")
        return ", ".join(out)
