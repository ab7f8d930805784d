"""CloudWatch alarms: put-metric-alarm input accepted as is (the AWS
walkthrough's files included), every refusal naming its field, the M out of
N rule under each TreatMissingData, and one run over real snapshots."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.controller.alarms import (
    ALARM,
    EXTRA_RANGE_PERIODS,
    INSUFFICIENT_DATA,
    OK,
    AlarmEvaluator,
    MetricAlarm,
    low_sample_limit,
    parse_alarms,
    required_retention,
)
from shiftlab.controller.metricstore import Entry, MetricStore, metric_key
from shiftlab.proxy.stats import Stats
from tests.helpers import aws_walkthrough

WALKTHROUGH = aws_walkthrough()
GROUPS = ["blue", "green"]
N = None


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WALKTHROUGH / name).read_text())
    return data


def single(**changes: Any) -> dict[str, Any]:
    """A valid single-metric alarm, changed as a row of a table needs."""
    alarm: dict[str, Any] = {
        "AlarmName": "green-5xx",
        "MetricName": "HTTPCode_Target_5XX_Count",
        "Namespace": "AWS/ApplicationELB",
        "Dimensions": [{"Name": "TargetGroup", "Value": "targetgroup/green/abc"},
                       {"Name": "LoadBalancer", "Value": "app/my-lb/123"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 3,
        "Threshold": 5,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    for key, value in changes.items():
        if value is None:
            alarm.pop(key, None)
        else:
            alarm[key] = value
    return alarm


def problems_of(data: Any, groups: list[str] = GROUPS) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_alarms(data, groups)
    return err.value.problems


# --- the walkthrough's files, as is ----------------------------------------


@pytest.mark.parametrize(
    ("name", "returned", "queries"),
    [
        ("linear-5xx-alarm.json", "total5xx",
         [("blue5xx", "HTTPCode_Target_5XX_Count", "blue", "Sum"),
          ("green5xx", "HTTPCode_Target_5XX_Count", "green", "Sum")]),
        ("canary-errors-alarm.json", "total5xx",
         [("blue5xx", "HTTPCode_Target_5XX_Count", "blue", "Sum"),
          ("green5xx", "HTTPCode_Target_5XX_Count", "green", "Sum")]),
        ("linear-latency-alarm.json", "maxLatency",
         [("blueLatency", "TargetResponseTime", "blue", "Average"),
          ("greenLatency", "TargetResponseTime", "green", "Average")]),
    ],
)
def test_walkthrough_alarms_on_the_load_balancer_parse(name, returned, queries):
    (alarm,) = parse_alarms([load(name)], GROUPS)
    assert alarm.AlarmName == load(name)["AlarmName"]
    plan = alarm.plan
    assert plan.period == 60
    assert plan.returned == returned
    assert [(q.id, q.metric_name, q.target_group, q.stat) for q in plan.metrics] == queries
    assert [qid for qid, _ in plan.expressions] == [returned]


def test_every_walkthrough_alarm_file_is_covered():
    names = sorted(p.name for p in WALKTHROUGH.glob("*-alarm.json"))
    assert names == ["canary-business-alarm.json", "canary-errors-alarm.json",
                     "linear-5xx-alarm.json", "linear-latency-alarm.json"]


def test_walkthrough_business_alarm_is_accepted_as_a_custom_metric():
    """PutMetricAlarm accepts an alarm on any namespace; the metric exists
    once something publishes it with PutMetricData
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html)."""
    _, alarm = parse_alarms([load("canary-errors-alarm.json"), load("canary-business-alarm.json")], GROUPS)
    (query,) = alarm.plan.metrics
    assert (query.namespace, query.metric_name, query.dimensions, query.stat, query.custom) == (
        "CustomApp/Payments", "TransactionFailureRate", (), "Average", True)
    assert alarm.never_published() == []
    assert [q.describe() for q in alarm.custom_metrics()] == ["CustomApp/Payments TransactionFailureRate"]


def business_store(*puts: tuple[float, float]) -> MetricStore:
    """A store holding TransactionFailureRate datapoints (seconds before NOW, value), as PutMetricData puts them."""
    store = MetricStore(retention_seconds=3600, publish_seconds=1.0)
    key = metric_key("CustomApp/Payments", "TransactionFailureRate", ())
    for ago, value in puts:
        at = NOW + ago
        store.custom.add(key, Entry(store.custom.place(at, 60), "None", 1, value, value, value, ((value, 1),)), at)
    return store


@pytest.mark.parametrize(
    ("puts", "state"),
    [
        # Nothing published: CloudWatch has no datapoint, TreatMissingData missing keeps INSUFFICIENT_DATA.
        ((), INSUFFICIENT_DATA),
        (((-3, 0.1), (-2.5, 0.2)), OK),
        (((-3, 0.9), (-2.5, 0.7)), ALARM),
        (((-3, 0.9), (-2.5, 0.0)), OK),  # Average 0.45 is not greater than 0.5
    ],
)
def test_walkthrough_business_alarm_reads_what_put_metric_data_published(puts, state):
    (alarm,) = parse_alarms([load("canary-business-alarm.json")], GROUPS)
    ev = AlarmEvaluator(alarm, time_scale=60)  # Period 300 s: 5 s on the store's clock
    assert ev.evaluate(business_store(*puts), NOW).state == state


def test_a_custom_alarm_with_a_unit_reads_only_datapoints_of_that_unit():
    """"If you specify a unit, you must use a unit that is appropriate for the
    metric. Otherwise, the CloudWatch alarm can get stuck in the
    INSUFFICIENT DATA state" (PutMetricAlarm, Unit)."""
    data = {**load("canary-business-alarm.json"), "Unit": "Percent"}
    (alarm,) = parse_alarms([data], GROUPS)
    assert AlarmEvaluator(alarm, 60).evaluate(business_store((-3, 0.9)), NOW).state == INSUFFICIENT_DATA


# --- what is accepted -------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "target_group", "stat"),
    [
        ({}, "green", "Sum"),
        ({"Dimensions": [{"Name": "TargetGroup", "Value": "green"}]}, "green", "Sum"),
        ({"Dimensions": [{"Name": "TargetGroup",
                          "Value": "arn:aws:elasticloadbalancing:us-east-1:123:targetgroup/blue/6d0ecf831eec9f09"}]},
         "blue", "Sum"),
        ({"Dimensions": [{"Name": "LoadBalancer", "Value": "app/my-lb/123"}]}, None, "Sum"),
        ({"Statistic": None, "ExtendedStatistic": "p99.9", "MetricName": "TargetResponseTime"}, "green", "p99.9"),
        ({"Statistic": "SampleCount", "Period": 10}, "green", "SampleCount"),
        ({"MetricName": "HealthyHostCount", "Statistic": "Minimum", "ComparisonOperator": "LessThanThreshold"},
         "green", "Minimum"),
        ({"MetricName": "ActiveConnectionCount", "Dimensions": [{"Name": "LoadBalancer", "Value": "x"}]}, None, "Sum"),
        ({"Unit": "Count", "TreatMissingData": "notBreaching", "DatapointsToAlarm": 2,
          "AlarmActions": ["arn:aws:sns:us-east-1:123:ops"], "ActionsEnabled": False,
          "Tags": [{"Key": "team", "Value": "payments"}], "EvaluateLowSampleCountPercentile": "ignore"},
         "green", "Sum"),
    ],
)
def test_single_metric_forms_accepted(changes, target_group, stat):
    (alarm,) = parse_alarms([single(**changes)], GROUPS)
    (query,) = alarm.plan.metrics
    assert (query.target_group, query.stat) == (target_group, stat)
    assert alarm.plan.returned == query.id


def test_return_data_defaults_to_true_as_in_cloudwatch():
    alarm = math_alarm()
    del alarm["Metrics"][2]["ReturnData"]
    (parsed,) = parse_alarms([alarm], GROUPS)
    assert parsed.plan.returned == "total5xx"


def test_datapoints_to_alarm_defaults_to_evaluation_periods():
    (alarm,) = parse_alarms([single(EvaluationPeriods=4)], GROUPS)
    assert alarm.datapoints_to_alarm == 4


def test_a_percentage_of_errors_parses_and_evaluates():
    alarm = {
        "AlarmName": "green-error-rate",
        "Metrics": [
            {"Id": "errors", "ReturnData": False, "MetricStat": {"Period": 60, "Stat": "Sum", "Metric": {
                "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
                "Dimensions": [{"Name": "TargetGroup", "Value": "targetgroup/green/1"}, LB]}}},
            {"Id": "requests", "ReturnData": False, "MetricStat": {"Period": 60, "Stat": "Sum", "Metric": {
                "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                "Dimensions": [{"Name": "TargetGroup", "Value": "targetgroup/green/1"}, LB]}}},
            {"Id": "rate", "Expression": "FILL(errors, 0)/requests*100", "Label": "5XX %"},
        ],
        "EvaluationPeriods": 2, "Threshold": 5, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    }
    (parsed,) = parse_alarms([alarm], GROUPS)
    stub = Datapoints({("HTTPCode_Target_5XX_Count", "green", "Sum"): [N, N, N, 5.0],
                       ("RequestCount", "green", "Sum"): [N, N, 200.0, 100.0]})
    result = AlarmEvaluator(parsed).evaluate(stub, NOW)
    assert [v for _, v in result.datapoints] == [0.0, 5.0]
    assert (result.state, result.breaching) == (OK, 1)


def test_expressions_may_use_other_expressions_in_any_order():
    alarm = {
        "AlarmName": "x",
        "Metrics": [
            {"Id": "pct", "Expression": "ratio * 100"},
            {"Id": "ratio", "Expression": "e / r", "ReturnData": False},
            {"Id": "e", "ReturnData": False, "MetricStat": {"Period": 60, "Stat": "Sum", "Metric": {
                "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_ELB_5XX_Count",
                "Dimensions": [{"Name": "LoadBalancer", "Value": "app/lb/1"}]}}},
            {"Id": "r", "ReturnData": False, "MetricStat": {"Period": 60, "Stat": "Sum", "Metric": {
                "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
                "Dimensions": [{"Name": "LoadBalancer", "Value": "app/lb/1"}]}}},
        ],
        "EvaluationPeriods": 1, "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold",
    }
    (parsed,) = parse_alarms([alarm], GROUPS)
    assert [qid for qid, _ in parsed.plan.expressions] == ["ratio", "pct"]
    stub = Datapoints({("HTTPCode_ELB_5XX_Count", None, "Sum"): [N, N, 3.0],
                       ("RequestCount", None, "Sum"): [N, N, 150.0]})
    assert AlarmEvaluator(parsed).evaluate(stub, NOW).datapoints[0][1] == 2.0


LB = {"Name": "LoadBalancer", "Value": "app/my-lb/123"}
TG = {"Name": "TargetGroup", "Value": "targetgroup/green/1"}


# ALB's metrics page gives each metric's dimensions: LoadBalancer; TargetGroup
# with LoadBalancer; RequestCountPerTarget with TargetGroup alone too. An alarm
# on another combination is accepted by PutMetricAlarm and never gets data.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
@pytest.mark.parametrize(("metric", "dims", "never"), [
    ("HTTPCode_Target_5XX_Count", [TG, LB], None),
    ("HTTPCode_Target_5XX_Count", [LB], None),
    ("HTTPCode_Target_5XX_Count", [TG], "only with a LoadBalancer dimension"),
    ("HTTPCode_Target_5XX_Count", [], "only with a LoadBalancer dimension"),
    ("HTTPCode_ELB_5XX_Count", [LB], None),
    ("HTTPCode_ELB_5XX_Count", [TG, LB], "per load balancer only"),
    ("ProcessedBytes", [TG, LB], "per load balancer only"),
    ("ActiveConnectionCount", [TG, LB], "per load balancer only"),
    ("HealthyHostCount", [LB], "per target group only"),
    ("HealthyHostCount", [TG, LB], None),
    ("RequestCountPerTarget", [TG], None),
    ("TargetResponseTime", [TG], "only with a LoadBalancer dimension"),
])
def test_combinations_alb_never_publishes_are_accepted_and_get_no_data(metric: str, dims: list[Any],
                                                                        never: str | None) -> None:
    (alarm,) = parse_alarms([single(MetricName=metric, Dimensions=dims)], GROUPS)
    reasons = alarm.never_published()
    assert reasons == [] if never is None else (len(reasons) == 1 and never in reasons[0]), reasons
    if never is not None:
        ev = AlarmEvaluator(alarm, time_scale=60)
        # The store has data for it (the proxy counts more than ALB publishes); the alarm never sees it.
        store = Datapoints({(metric, "green" if TG in dims else None, "Sum"): [9.0] * 5})
        assert ev.evaluate(store, NOW).state == INSUFFICIENT_DATA
        assert store.asked == []


# --- what is refused, and how it is said -------------------------------------


def math_alarm(**changes: Any) -> dict[str, Any]:
    alarm = copy.deepcopy(load("linear-5xx-alarm.json"))
    alarm.update(changes)
    return alarm


def with_query(index: int, **changes: Any) -> dict[str, Any]:
    alarm = math_alarm()
    alarm["Metrics"][index].update(changes)
    return alarm


def with_metric(index: int, **changes: Any) -> dict[str, Any]:
    alarm = math_alarm()
    alarm["Metrics"][index]["MetricStat"]["Metric"].update(changes)
    return alarm


@pytest.mark.parametrize(
    ("alarm", "problem"),
    [
        (single(Period=45), "alarms[0].Period: 45 is not a CloudWatch period (10, 20, 30 or a multiple of 60 seconds)"),
        (single(Period=90), "alarms[0].Period: 90 is not a CloudWatch period"),
        (single(EvaluationPeriods=0), "alarms[0].EvaluationPeriods: 0 is out of range 1..100000"),
        (single(DatapointsToAlarm=4), "alarms[0].DatapointsToAlarm: 4 is more than EvaluationPeriods (3)"),
        (single(ExtendedStatistic="p99"),
         "alarms[0].Statistic: give exactly one of Statistic and ExtendedStatistic"),
        (single(Statistic=None), "alarms[0].Statistic: give exactly one of Statistic and ExtendedStatistic"),
        (single(Statistic="p99"),
         "alarms[0].Statistic: 'p99' is not one of SampleCount, Average, Sum, Minimum, Maximum "
         "(percentiles go in ExtendedStatistic)"),
        (single(Statistic=None, ExtendedStatistic="tm99"),
         "alarms[0].ExtendedStatistic: 'tm99' is not a statistic shiftlab computes (it computes SampleCount, "
         "Average, Sum, Minimum, Maximum and percentiles pNN such as p50, p99, p99.9)"),
        (single(ComparisonOperator="GreaterThanUpperThreshold"),
         "alarms[0].ComparisonOperator: 'GreaterThanUpperThreshold' needs an anomaly detection band, which shiftlab "
         "does not compute (use GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold, "
         "LessThanOrEqualToThreshold)"),
        (single(ComparisonOperator="Above"), "alarms[0].ComparisonOperator: 'Above' is not a comparison operator"),
        (single(TreatMissingData="zero"),
         "alarms[0].TreatMissingData: 'zero' is not one of missing, breaching, notBreaching, ignore"),
        (single(Threshold=None), "alarms[0].Threshold: is required"),
        (single(ThresholdMetricId="ad1"),
         "alarms[0].ThresholdMetricId: 'ad1' is an anomaly detection band, which shiftlab does not compute"),
        (single(Unit="Percents"), "alarms[0].Unit: 'Percents' is not a CloudWatch unit"),
        (single(Namespace=None), "alarms[0].Namespace: is required (or give Metrics)"),
        (single(MetricName="SurgeQueueLength"),
         "alarms[0].MetricName: 'SurgeQueueLength' is not an AWS/ApplicationELB metric shiftlab computes "
         "(RequestCount, "),
        (single(Unit="Seconds"),
         "alarms[0].Unit: 'Seconds' is not the unit of HTTPCode_Target_5XX_Count (Count): "
         "CloudWatch would find no data"),
        (single(Dimensions=[{"Name": "TargetGroup", "Value": "targetgroup/red/1"}]),
         "alarms[0].Dimensions[0].Value: 'targetgroup/red/1' names target group 'red', which is not configured "
         "(known: blue, green)"),
        (single(Dimensions=[{"Name": "LoadBalancer", "Value": "a"}, {"Name": "AvailabilityZone", "Value": "b"}]),
         "alarms[0].Dimensions[1].Name: 'AvailabilityZone' is not a dimension shiftlab computes"),
        (single(Dimensions=[{"Name": "LoadBalancer", "Value": "a"}, {"Name": "LoadBalancer", "Value": "b"}]),
         "alarms[0].Dimensions[1].Name: 'LoadBalancer' is given twice"),
        (single(Bogus=1), "alarms[0].Bogus: unknown field"),
        (single(Threshold="high"), "alarms[0].Threshold: 'high' - Input should be a valid number"),
        ("not an alarm", "alarms[0]: 'not an alarm' - Input should be a valid dictionary"),
        # metric math
        (math_alarm(MetricName="RequestCount"),
         "alarms[0].MetricName: cannot be combined with Metrics (it belongs in Metrics[].MetricStat)"),
        (math_alarm(Metrics=[]), "alarms[0].Metrics: needs at least one metric"),
        (with_query(0, ReturnData=None),
         "alarms[0].Metrics: exactly one query must have ReturnData true (returning data: blue5xx, total5xx; "
         "set ReturnData false on the others)"),
        (with_query(2, ReturnData=False),
         "alarms[0].Metrics: exactly one query must have ReturnData true (returning data: none;"),
        (with_query(0, Id="Blue5xx"),
         "alarms[0].Metrics[0].Id: 'Blue5xx' is not a CloudWatch Id (a lowercase letter, then letters, digits or _)"),
        (with_query(1, Id="blue5xx"), "alarms[0].Metrics[1].Id: 'blue5xx' is already used by Metrics[0]"),
        (with_query(2, Expression="SUM([blue5xx, red5xx])"),
         "alarms[0].Metrics[2].Expression: 'SUM([blue5xx, red5xx])' references unknown Id 'red5xx' "
         "(known: blue5xx, green5xx, total5xx)"),
        (with_query(2, Expression="SUM([blue5xx, green5xx]"),
         "alarms[0].Metrics[2].Expression: 'SUM([blue5xx, green5xx]': expected ')', found nothing at the end"),
        (with_query(2, Expression="total5xx + 1"),
         "alarms[0].Metrics[2].Expression: 'total5xx + 1' references its own Id 'total5xx'"),
        (with_query(2, Expression="MAX(blue5xx)"),
         "alarms[0].Metrics[2].Expression: 'MAX(blue5xx)' gives one number, an alarm needs a time series"),
        (with_query(2, MetricStat={"Period": 60, "Stat": "Sum", "Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"}}),
         "alarms[0].Metrics[2]: give exactly one of MetricStat and Expression"),
        (with_metric(1, Namespace=":Payments"),
         "alarms[0].Metrics[1].MetricStat.Metric.Namespace: ':Payments' is not a CloudWatch namespace"),
        (with_metric(1, Namespace="CustomApp/Payments",
                     Dimensions=[{"Name": f"d{i}", "Value": "v"} for i in range(31)]),
         "alarms[0].Metrics[1].MetricStat.Metric.Dimensions: 31 dimensions; CloudWatch allows at most 30"),
        (with_metric(1, Namespace="CustomApp/Payments",
                     Dimensions=[{"Name": "Service", "Value": "a"}, {"Name": "Service", "Value": "b"}]),
         "alarms[0].Metrics[1].MetricStat.Metric.Dimensions[1].Name: 'Service' is given twice"),
        (with_metric(1, Dimensions=[{"Name": "TargetGroup", "Value": "targetgroup/purple/1"}]),
         "alarms[0].Metrics[1].MetricStat.Metric.Dimensions[0].Value: 'targetgroup/purple/1' names target group "
         "'purple', which is not configured"),
        (math_alarm(Metrics=[{"Id": "e", "Expression": "2 * 3"}]),
         "alarms[0].Metrics: needs at least one MetricStat (an expression alone has no data)"),
    ],
)
def test_refusals_name_the_field_and_the_value(alarm, problem):
    problems = problems_of([alarm])
    assert any(p.startswith(problem) for p in problems), problems


def test_metric_math_refusals_that_need_whole_alarms():
    periods = math_alarm()
    periods["Metrics"][1]["MetricStat"]["Period"] = 300
    assert problems_of([periods]) == ["alarms[0].Metrics: every MetricStat needs the same Period (got [60, 300])"]

    stat = math_alarm()
    stat["Metrics"][0]["MetricStat"]["Stat"] = "IQM"
    stat["Metrics"][1]["MetricStat"]["Period"] = 45
    stat["Metrics"][1]["MetricStat"]["Unit"] = "Bytes"
    assert problems_of([stat]) == [
        "alarms[0].Metrics[0].MetricStat.Stat: 'IQM' is not a statistic shiftlab computes (it computes "
        "SampleCount, Average, Sum, Minimum, Maximum and percentiles pNN such as p50, p99, p99.9)",
        "alarms[0].Metrics[1].MetricStat.Period: 45 is not a CloudWatch period (10, 20, 30 or a multiple of 60 "
        "seconds)",
        "alarms[0].Metrics[1].MetricStat.Unit: 'Bytes' is not the unit of HTTPCode_Target_5XX_Count (Count): "
        "CloudWatch would find no data",
        "alarms[0].Metrics: every MetricStat needs the same Period (got [45, 60])",
    ]

    loop = math_alarm()
    loop["Metrics"] += [{"Id": "a", "Expression": "b + 1", "ReturnData": False},
                        {"Id": "b", "Expression": "a * 2", "ReturnData": False}]
    assert problems_of([loop]) == ["alarms[0].Metrics: expressions reference each other in a loop (a -> b -> a)"]


def test_every_problem_of_every_alarm_is_reported_at_once():
    problems = problems_of([
        single(Period=45, DatapointsToAlarm=9, ComparisonOperator="LessThanLowerThreshold",
               Dimensions=[{"Name": "TargetGroup", "Value": "targetgroup/red/1"}]),
        load("linear-5xx-alarm.json"),
        single(AlarmName="my-service-5xx-errors", TreatMissingData="maybe"),
        {"AlarmName": "no-operator", "EvaluationPeriods": 1},
    ])
    assert [p.split(":")[0] for p in problems] == [
        "alarms[0].ComparisonOperator",
        "alarms[0].DatapointsToAlarm",
        "alarms[0].Period",
        "alarms[0].Dimensions[0].Value",
        "alarms[2].AlarmName",
        "alarms[2].TreatMissingData",
        "alarms[3].ComparisonOperator",
    ]
    assert problems[4] == "alarms[2].AlarmName: 'my-service-5xx-errors' is already used by alarms[1]"
    assert problems[6] == "alarms[3].ComparisonOperator: is required"


def test_alarms_must_be_a_list():
    with pytest.raises(ConfigError) as err:
        parse_alarms({"AlarmName": "x"}, GROUPS, prefix="cloudwatch.alarms")
    assert err.value.problems == ["cloudwatch.alarms: dict given, expected a list of alarms"]


def test_an_alarm_built_without_parse_alarms_checks_itself_when_planned():
    alarm = MetricAlarm.model_validate(single(Period=45))
    with pytest.raises(ConfigError, match=r"alarm\.Period: 45 is not a CloudWatch period"):
        AlarmEvaluator(alarm)


# --- evaluation ------------------------------------------------------------

NOW = dt.datetime(2025, 11, 26, 17, 1, 1, tzinfo=dt.UTC).timestamp()


class Datapoints:
    """Stands in for the MetricStore: fixed datapoints per (metric, target group, stat)."""

    def __init__(self, data: dict[tuple[str, str | None, str], list[float | None]]) -> None:
        self.data = data
        self.asked: list[tuple[Any, ...]] = []

    def series(
        self, metric_name: str, target_group: str | None, stat: str, period: float, end: float, count: int
    ) -> list[float | None]:
        self.asked.append((metric_name, target_group, stat, period, end, count))
        values = self.data[(metric_name, target_group, stat)]
        assert len(values) == count
        return list(values)


def evaluator(values: list[float | None], prior: str | None = None, **changes: Any) -> tuple[AlarmEvaluator, Any]:
    """An alarm over `values`: its whole evaluation range (EvaluationPeriods + 2 datapoints), oldest first."""
    changes.setdefault("EvaluationPeriods", len(values) - EXTRA_RANGE_PERIODS)
    (alarm,) = parse_alarms([single(**changes)], GROUPS)
    ev = AlarmEvaluator(alarm, time_scale=60)
    if prior in (ALARM, OK):  # walk the alarm into the prior state; INSUFFICIENT_DATA is where it starts
        lead: list[float | None] = [100.0 if prior == ALARM else 0.0] * len(values)
        ev.evaluate(Datapoints({("HTTPCode_Target_5XX_Count", "green", "Sum"): lead}), NOW - 60)
    assert ev.state == (prior or INSUFFICIENT_DATA)
    return ev, Datapoints({("HTTPCode_Target_5XX_Count", "green", "Sum"): values})


# Threshold 5, GreaterThanThreshold. B = breaching value, o = not breaching.
B, o = 9.0, 1.0
KEEP = "retain current state"
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


def datapoints(row: str) -> list[float | None]:
    """The documentation's notation: 0 not breaching, X breaching, - missing; oldest first."""
    return [{"0": o, "X": B, "-": N}[c] for c in row.split()]


# "How alarm state is evaluated when data is missing", both tables, every row
# and every setting: EvaluationPeriods 3, evaluation range 5, the most recent
# datapoint on the right; columns MISSING, IGNORE, BREACHING, NOT BREACHING.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html
CLOUDWATCH_TABLES = [
    # Datapoints to Alarm 3
    (3, "0 - X - X", (OK, OK, OK, OK)),
    (3, "0 - - - -", (OK, OK, OK, OK)),
    (3, "- - - - -", (INSUFFICIENT_DATA, KEEP, ALARM, OK)),
    (3, "0 X X - X", (ALARM, ALARM, ALARM, ALARM)),
    (3, "- - X - -", (ALARM, KEEP, ALARM, OK)),
    # Datapoints to Alarm 2 (2 out of 3)
    (2, "0 - X - X", (ALARM, ALARM, ALARM, ALARM)),
    (2, "0 0 X 0 X", (ALARM, ALARM, ALARM, ALARM)),
    (2, "0 - X - -", (OK, OK, ALARM, OK)),
    (2, "- - - - 0", (OK, OK, ALARM, OK)),
    (2, "- - - X -", (ALARM, KEEP, ALARM, OK)),
]


@pytest.mark.parametrize(("m", "row", "states"), CLOUDWATCH_TABLES,
                         ids=[f"{m}of3 {r}" for m, r, _ in CLOUDWATCH_TABLES])
@pytest.mark.parametrize("prior", [OK, ALARM])
def test_cloudwatch_tables_of_missing_data(m: int, row: str, states: tuple[str, ...], prior: str) -> None:
    for treat, expected in zip(TREATMENTS, states, strict=True):
        ev, store = evaluator(datapoints(row), prior, DatapointsToAlarm=m, TreatMissingData=treat)
        result = ev.evaluate(store, NOW)
        assert result.state == (prior if expected == KEEP else expected), (row, treat)


@pytest.mark.parametrize(("row", "m", "state"), [
    # The documentation's own examples of the rule against premature alarms
    # (3 of 3, range 5): a lone breaching point too recent to be M periods old
    # waits, one that is old enough with nothing but missing after it alarms.
    ("- - - - X", 3, OK),
    ("- - - X -", 3, OK),
    ("- - - X 0", 3, OK),
    ("- - X - 0", 3, OK),
    ("- - X - -", 3, ALARM),
    # With at least N real datapoints the most recent N decide, however far back.
    ("X - X - X", 3, ALARM),
    ("X 0 X - X", 3, OK),
    ("X - 0 - -", 1, ALARM),  # fewer than N, at least M: the real ones decide
])
def test_evaluation_range_as_documented(row: str, m: int, state: str) -> None:
    ev, store = evaluator(datapoints(row), DatapointsToAlarm=m)
    assert ev.evaluate(store, NOW).state == state


def test_the_range_is_two_periods_longer_than_evaluation_periods() -> None:
    ev, store = evaluator(datapoints("0 0 0 0 0 0"), EvaluationPeriods=4)
    ev.evaluate(store, NOW)
    assert [a[-1] for a in store.asked] == [6]


@pytest.mark.parametrize(
    ("values", "m", "treat", "prior", "state", "breaching"),
    [
        # M of N with every point present
        ([o, o, B, B, B], 3, "missing", None, ALARM, 3),
        ([o, o, o, B, B], 3, "missing", None, OK, 2),
        ([o, o, o, B, B], 2, "missing", None, ALARM, 2),
        ([o, o, B, o, B], 2, "missing", None, ALARM, 2),
        ([o, o, o, o, o], 1, "missing", None, OK, 0),
        ([N, N, N, N, N], 3, "missing", ALARM, INSUFFICIENT_DATA, 0),
        ([N, N, N, N, N], 3, "ignore", ALARM, ALARM, 0),
        ([N, N, N, N, N], 3, "ignore", INSUFFICIENT_DATA, INSUFFICIENT_DATA, 0),
        ([N, N, N, N, N], 3, "breaching", None, ALARM, 3),
        ([N, N, N, o, B], 2, "breaching", None, ALARM, 2),  # one missing filled as breaching
        ([N, N, N, o, o], 2, "breaching", None, OK, 1),
        ([N, N, N, N, N], 1, "notBreaching", ALARM, OK, 0),
        ([N, N, N, B, B], 3, "notBreaching", None, OK, 2),
        ([N, N, N, B, B], 2, "notBreaching", None, ALARM, 2),
    ],
)
def test_m_out_of_n_under_each_treatment_of_missing_data(values, m, treat, prior, state, breaching):
    ev, store = evaluator(values, prior, DatapointsToAlarm=m, TreatMissingData=treat)
    result = ev.evaluate(store, NOW)
    assert (result.state, result.breaching) == (state, breaching)
    assert ev.state == state


@pytest.mark.parametrize(("period", "periods", "allowed"), [
    (60, 1440, True), (60, 1441, False), (3600, 24, True), (3600, 25, False), (10, 8640, True), (10, 8641, False)])
def test_evaluation_lasts_at_most_a_day(period: int, periods: int, allowed: bool) -> None:
    # PutMetricAlarm: "An alarm's total current evaluation period can be no
    # longer than one day, so this number multiplied by Period cannot be more
    # than 86,400 seconds."
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    alarm = single(Period=period, EvaluationPeriods=periods, DatapointsToAlarm=1)
    if allowed:
        parse_alarms([alarm], GROUPS)
        return
    with pytest.raises(ConfigError) as info:
        parse_alarms([alarm], GROUPS)
    assert info.value.problems == [
        f"alarms[0].EvaluationPeriods: {periods} periods of {period} s are {period * periods} s; CloudWatch "
        f"evaluates at most one day (EvaluationPeriods x Period <= 86400)"]


@pytest.mark.parametrize(("stat", "limit"), [("p99", 1000), ("p50", 20), ("p90", 100), ("p99.9", 10000),
                                             ("p10", 100), ("p25", 40), ("Average", None), ("p100", None)])
def test_low_sample_limits_as_documented(stat: str, limit: float | None) -> None:
    # "For percentiles between 0.5 (inclusive) and 1.00 (exclusive), this setting is used when there are fewer than
    # 10/(1-percentile) data points ... For percentiles between 0 and 0.5 (exclusive), ... fewer than
    # 10/percentile data points."
    # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/percentiles-with-low-samples.html
    got = low_sample_limit(stat)
    assert (got is None) if limit is None else got == pytest.approx(limit)


@pytest.mark.parametrize(("setting", "samples", "state"), [
    ("ignore", [N, N, 10.0, 12.0, 40.0], OK),  # p99 of 40 requests means little: the state is kept
    ("ignore", [N, N, 1000.0, 1200.0, 4000.0], ALARM),
    ("evaluate", [N, N, 10.0, 12.0, 40.0], ALARM),
    (None, [N, N, 10.0, 12.0, 40.0], ALARM),  # evaluate is the default
])
def test_percentiles_with_low_samples(setting: str | None, samples: list[float | None], state: str) -> None:
    changes: dict[str, Any] = {"MetricName": "TargetResponseTime", "Statistic": None, "ExtendedStatistic": "p99",
                               "Threshold": 0.25}
    if setting is not None:
        changes["EvaluateLowSampleCountPercentile"] = setting
    (alarm,) = parse_alarms([single(**changes)], GROUPS)
    ev = AlarmEvaluator(alarm, time_scale=60)
    ev.evaluate(Datapoints({("TargetResponseTime", "green", "p99"): [0.1] * 5,
                            ("TargetResponseTime", "green", "SampleCount"): [5000.0] * 5}), NOW - 60)
    assert ev.state == OK
    slow = Datapoints({("TargetResponseTime", "green", "p99"): [N, N, 0.4, 0.5, 0.6],
                       ("TargetResponseTime", "green", "SampleCount"): samples})
    result = ev.evaluate(slow, NOW)
    assert result.state == state
    if setting == "ignore" and state == OK:
        assert result.reason == ("Too few samples for p99 (10 in a period, 1000 needed): state kept "
                                 "(EvaluateLowSampleCountPercentile ignore)")


@pytest.mark.parametrize(
    ("operator", "value", "breaching"),
    [
        ("GreaterThanThreshold", 5.5, True),
        ("GreaterThanThreshold", 5.0, False),
        ("GreaterThanThreshold", 4.5, False),
        ("GreaterThanOrEqualToThreshold", 5.5, True),
        ("GreaterThanOrEqualToThreshold", 5.0, True),
        ("GreaterThanOrEqualToThreshold", 4.5, False),
        ("LessThanThreshold", 4.5, True),
        ("LessThanThreshold", 5.0, False),
        ("LessThanThreshold", 5.5, False),
        ("LessThanOrEqualToThreshold", 4.5, True),
        ("LessThanOrEqualToThreshold", 5.0, True),
        ("LessThanOrEqualToThreshold", 5.5, False),
    ],
)
def test_comparison_operators(operator, value, breaching):
    ev, store = evaluator([N, N, value], ComparisonOperator=operator)
    assert ev.evaluate(store, NOW).state == (ALARM if breaching else OK)


def test_reason_reads_like_cloudwatch():
    ev, store = evaluator([N, N, 9.0, 12.0], DatapointsToAlarm=2)
    result = ev.evaluate(store, NOW)
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 2 datapoints [12.0 (17:01:00), 9.0 (17:00:59)] were greater than "
        "the threshold (5.0) (minimum 2 datapoints for ALARM)."
    )
    ev, store = evaluator([N, N, 3.0, N, 7.0], DatapointsToAlarm=2)
    assert ev.evaluate(store, NOW).reason == (
        "Threshold Crossed: 1 out of the last 2 datapoints [3.0 (17:00:58)] was not greater than the threshold (5.0) "
        "(1 breaching, 2 needed for ALARM)."
    )
    ev, store = evaluator([N, N, N, N])
    assert ev.evaluate(store, NOW).reason == "Insufficient Data: 2 datapoints were unknown."
    ev, store = evaluator([N, N, N, 8.0], TreatMissingData="breaching")
    reason = ev.evaluate(store, NOW).reason
    assert "[8.0 (17:01:00), missing (17:00:59)]" in reason and "1 missing filled as breaching" in reason


def test_sub_second_periods_show_milliseconds_in_the_reason():
    (alarm,) = parse_alarms([single(EvaluationPeriods=1)], GROUPS)
    ev = AlarmEvaluator(alarm, time_scale=240)  # 60 s -> 0.25 s
    store = Datapoints({("HTTPCode_Target_5XX_Count", "green", "Sum"): [N, N, 9.0]})
    assert "[9.0 (17:01:00.750)]" in ev.evaluate(store, NOW).reason


def test_transitions_are_timed_and_flagged():
    ev, _ = evaluator([N, N, N])
    assert (ev.state, ev.since) == (INSUFFICIENT_DATA, None)
    key = ("HTTPCode_Target_5XX_Count", "green", "Sum")
    first = ev.evaluate(Datapoints({key: [N, N, 1.0]}), NOW)
    assert (first.state, first.changed, first.since) == (OK, True, NOW)
    again = ev.evaluate(Datapoints({key: [N, 1.0, 2.0]}), NOW + 1)
    assert (again.state, again.changed, again.since) == (OK, False, NOW)
    fired = ev.evaluate(Datapoints({key: [1.0, 2.0, 6.0]}), NOW + 2)
    assert (fired.state, fired.changed, fired.since) == (ALARM, True, NOW + 2)
    assert (ev.state, ev.since, ev.reason) == (ALARM, NOW + 2, fired.reason)


@pytest.mark.parametrize(
    ("period", "time_scale", "scaled"),
    [(60, 1, 60.0), (60, 60, 1.0), (300, 60, 5.0), (10, 100, 0.1), (10, 3600, 0.05), (60, 3600, 0.05)],
)
def test_period_on_the_evaluators_clock_is_scaled_and_floored(period, time_scale, scaled):
    (alarm,) = parse_alarms([single(Period=period, EvaluationPeriods=2)], GROUPS)
    ev = AlarmEvaluator(alarm, time_scale=time_scale)
    assert ev.period == pytest.approx(scaled)
    store = Datapoints({("HTTPCode_Target_5XX_Count", "green", "Sum"): [0.5, 0.7, 1.0, 2.0]})
    result = ev.evaluate(store, NOW)
    assert store.asked == [("HTTPCode_Target_5XX_Count", "green", "Sum", ev.period, NOW, 4)]
    starts = [start for start, _ in result.datapoints]
    assert starts[1] - starts[0] == pytest.approx(scaled)
    assert starts[1] + scaled <= NOW < starts[1] + 2 * scaled


def test_required_retention_covers_the_longest_alarm():
    alarms = parse_alarms([single(EvaluationPeriods=3), single(AlarmName="b", Period=300, EvaluationPeriods=2)],
                          GROUPS)
    # The evaluation range (N + 2) and the baseline period before it: (2 + 2 + 2) * 5 s.
    assert required_retention(alarms, time_scale=60) == pytest.approx(30.0)
    assert required_retention(alarms) == pytest.approx(1800.0)


# --- end to end over real snapshots ---------------------------------------------


def test_linear_5xx_alarm_fires_when_green_errors_cross_the_threshold():
    """The walkthrough's linear-5xx alarm (SUM of both groups' 5XX > 10, 2 of 2
    periods of 60 s) at timeScale 60: one period per second, scraped 4 times a
    second. Periods 0-2 have no errors (no datapoint: INSUFFICIENT_DATA),
    periods 3-4 have 8 (OK), then 20 a period (green 16 + blue 4)."""
    (alarm,) = parse_alarms([load("linear-5xx-alarm.json")], GROUPS)
    ev = AlarmEvaluator(alarm, time_scale=60)
    stats = Stats("my-load-balancer")
    health = {"blue": (2, 0), "green": (2, 0)}
    store = MetricStore(retention_seconds=10)
    green, blue = stats.counters("prod", "green"), stats.counters("prod", "blue")
    t0 = 1_700_000_040.0
    transitions: list[tuple[float, str]] = []
    for k in range(4 * 9 + 1):  # 9 periods, a scrape every 0.25 s
        now = t0 + k * 0.25
        second = (k - 1) // 4  # the period this scrape interval ends in
        if k and 3 <= second < 5:
            green.target[5] += 2
        elif k and second >= 5:
            green.target[5] += 4
            blue.target[5] += 1
        store.add(stats.snapshot(health), now)
        result = ev.evaluate(store, now)
        if result.changed:
            transitions.append((now - t0, result.state))
    assert transitions == [(4.0, OK), (7.0, ALARM)]
    assert ev.since == t0 + 7.0
    assert [v for _, v in result.datapoints] == [20.0, 20.0]
    assert ev.reason.startswith("Threshold Crossed: 2 out of the last 2 datapoints [20.0 (")
    assert "were greater than the threshold (10.0)" in ev.reason
