"""AWS/NetworkELB for alarms: which metrics with which dimensions NLB
publishes, the store's datapoints from a network load balancer's stats, and
lint's "AWS never publishes" rule across the two kinds of load balancer.

NLB's metrics page (names, dimensions, "Always reported" / statistics):
https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-cloudwatch-metrics.html
"""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.controller.alarms import nlb_unpublished, parse_alarms
from shiftlab.controller.metricstore import MetricStore
from shiftlab.lint import lint
from shiftlab.settings import load_settings

LB = {"Name": "LoadBalancer", "Value": "net/shiftlab/1"}
TG = {"Name": "TargetGroup", "Value": "targetgroup/green/1"}


@pytest.mark.parametrize(("name", "dims", "published"), [
    ("ActiveFlowCount", {"LoadBalancer"}, True),
    ("ActiveFlowCount", {"LoadBalancer", "TargetGroup"}, False),
    ("NewFlowCount", {"LoadBalancer"}, True),
    ("ProcessedBytes", {"LoadBalancer"}, True),
    ("TCP_Client_Reset_Count", {"LoadBalancer"}, True),
    ("TCP_Target_Reset_Count", {"LoadBalancer", "TargetGroup"}, False),
    ("TCP_ELB_Reset_Count", set(), False),
    ("HealthyHostCount", {"LoadBalancer", "TargetGroup"}, True),
    ("UnHealthyHostCount", {"TargetGroup"}, False),
    ("UnHealthyHostCount", {"LoadBalancer"}, False),
])
def test_dimensions_nlb_publishes(name: str, dims: set[str], published: bool) -> None:
    assert (nlb_unpublished(name, dims) is None) is published


def alarm(name: str, dims: list[dict[str, str]], **more: Any) -> dict[str, Any]:
    return {"AlarmName": f"a-{name}", "Namespace": "AWS/NetworkELB", "MetricName": name, "Dimensions": dims,
            "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold", **more}


def test_nlb_alarms_parse_and_refuse_what_is_not_computed() -> None:
    ok = parse_alarms([alarm("TCP_Target_Reset_Count", [LB]), alarm("UnHealthyHostCount", [LB, TG])],
                      ["blue", "green"])
    assert [a.plan.metrics[0].target_group for a in ok] == [None, "green"]
    assert not ok[0].plan.metrics[0].custom
    with pytest.raises(ConfigError) as info:
        parse_alarms([alarm("RequestCount", [LB]), alarm("ActiveFlowCount", [LB, {"Name": "AvailabilityZone",
                                                                                  "Value": "local"}])], ["blue"])
    assert info.value.problems[0].startswith("alarms[0].MetricName: 'RequestCount' is not an AWS/NetworkELB metric")
    assert "alarms[1].Dimensions[1].Name: 'AvailabilityZone' is not a dimension shiftlab computes" in \
        info.value.problems[1]


def test_store_reads_a_network_load_balancers_stats() -> None:
    store = MetricStore(3600)
    for t, (new, active, resets) in enumerate([(0, 0, 0), (5, 5, 0), (9, 3, 2)]):
        store.add({"namespace": "AWS/NetworkELB", "targetGroups": {"green": {"NewFlowCount": new,
                                                                               "ActiveFlowCount": active}},
                   "total": {"NewFlowCount": new, "ActiveFlowCount": active, "TCP_ELB_Reset_Count": resets}},
                  at=60.0 * t)
    assert store.series("NewFlowCount", None, "Sum", 60, 120, 2) == [5.0, 4.0]
    assert store.series("ActiveFlowCount", None, "Maximum", 60, 120, 2) == [0.0, 5.0]
    assert store.series("TCP_ELB_Reset_Count", None, "Sum", 60, 120, 2) == [None, 2.0]


def settings_with(lb_type: str, namespace: str) -> Any:
    listener: dict[str, Any] = {"Name": "prod", "Port": 18080, "DefaultActions": [{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": "blue", "Weight": 1}, {"TargetGroupArn": "green", "Weight": 0}]}}]}
    test = {**listener, "Name": "test", "Port": 18081}
    if lb_type == "application":
        test["TestTrafficRule"] = {"Enabled": False}
    name = "TCP_ELB_Reset_Count" if namespace == "AWS/NetworkELB" else "HTTPCode_ELB_5XX_Count"
    return load_settings({
        "loadBalancer": {"Type": lb_type, "Listeners": [listener, test],
                         "TargetGroups": [{"Name": "blue"}, {"Name": "green"}]},
        "service": {"taskDefinition": {"command": "true"}, "loadBalancers": [{
            "targetGroupArn": "blue", "advancedConfiguration": {
                "alternateTargetGroupArn": "green", "productionListenerRule": "prod/default",
                "testListenerRule": "test/default"}}]},
        "deploymentConfiguration": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0,
                                    "alarms": {"alarmNames": ["resets"], "enable": True, "rollback": True}},
        "alarms": [{**alarm(name, [LB]), "AlarmName": "resets", "Namespace": namespace}],
    })


@pytest.mark.parametrize(("lb_type", "namespace", "fires"), [
    ("network", "AWS/NetworkELB", True),
    ("application", "AWS/NetworkELB", False),
    ("network", "AWS/ApplicationELB", False),
    ("application", "AWS/ApplicationELB", True),
])
def test_lint_knows_which_namespace_the_load_balancer_publishes(lb_type: str, namespace: str, fires: bool) -> None:
    s = settings_with(lb_type, namespace)
    sl001 = [f for f in lint(s, 10.0) if f.rule == "SL001"]
    assert (sl001 == []) is fires, sl001
    if not fires:
        assert f"loadBalancer.Type is {lb_type}" in sl001[0].message
        assert ("network" in sl001[0].help_uri) is (namespace == "AWS/NetworkELB")
