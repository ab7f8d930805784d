"""A service behind a network load balancer: ECS's rules, checked before anything starts.

- productionListenerRule / testListenerRule name listeners on an NLB (the
  ECS API reference's AdvancedConfiguration:
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_AdvancedConfiguration.html);
- the test listener is required, on its own port, and ECS adds its delay to
  TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT ("Network Load Balancer
  resources for Amazon ECS blue/green, linear and canary deployments":
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.settings import load_settings

ADV = "service.loadBalancers[0].advancedConfiguration"
FWD = {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "blue", "Weight": 1},
                                                              {"TargetGroupArn": "green", "Weight": 0}]}}
BASE: dict[str, Any] = {
    "loadBalancer": {"Type": "network",
                     "Listeners": [{"Name": "prod", "Port": 18080, "DefaultActions": [FWD]},
                                   {"Name": "test", "Port": 18081, "DefaultActions": [FWD],
                                    "ListenerArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/"
                                                   "net/shiftlab/1/test"}],
                     "TargetGroups": [{"Name": "blue"}, {"Name": "green"}]},
    "service": {"taskDefinition": {"command": "true"}, "loadBalancers": [{
        "targetGroupArn": "blue", "advancedConfiguration": {
            "alternateTargetGroupArn": "green", "productionListenerRule": "prod/default",
            "testListenerRule": "test/default"}}]},
    "deploymentConfiguration": {"strategy": "CANARY"},
}


def with_advanced(**fields: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    adv = d["service"]["loadBalancers"][0]["advancedConfiguration"]
    for k, v in fields.items():
        if v is None:
            adv.pop(k)
        else:
            adv[k] = v
    return d


@pytest.mark.parametrize(("label", "data", "problem"), [
    ("no test listener", with_advanced(testListenerRule=None),
     f"{ADV}.testListenerRule: is required with a network load balancer (loadBalancer.Type network)"),
    ("test on the production listener", with_advanced(testListenerRule="prod/default"),
     f"{ADV}.testListenerRule[0]: 'prod/default' is on the production listener 'prod'"),
    ("a header rule (none on an NLB)", with_advanced(testListenerRule="prod/test"),
     f"{ADV}.testListenerRule[0]: 'prod/test' is not a rule of the load balancer"),
])
def test_refused(label: str, data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(data)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("test_ref", ["test/default",
                                      "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/shiftlab/1/test"])
def test_accepted_with_a_test_listener(test_ref: str) -> None:
    s = load_settings(with_advanced(testListenerRule=test_ref))
    assert s.controller_settings().load_balancer_type == "network"


def test_rolling_in_one_group_needs_no_test_listener() -> None:
    d = copy.deepcopy(BASE)
    d["service"]["loadBalancers"][0].pop("advancedConfiguration")
    d["deploymentConfiguration"] = {"strategy": "ROLLING"}
    assert load_settings(d).load_balancer.network


def test_the_nlb_example_validates_and_lints_clean() -> None:
    from shiftlab.common.configfile import load_file
    from shiftlab.lint import ERROR, lint
    from tests.helpers import REPO

    s = load_settings(load_file(REPO / "shiftlab" / "examples" / "nlb.yaml"))
    assert s.load_balancer.network and s.warnings() == []
    findings = lint(s, 10.0)
    assert [f for f in findings if f.severity == ERROR] == []
    # A note on an NLB metric links NLB's metrics page, not ALB's.
    assert {f.help_uri for f in findings if f.rule == "SL004"} == {
        "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-cloudwatch-metrics.html"}


def test_the_nlb_example_exports_as_cloudformation_cfn_lint_takes() -> None:
    """`shiftlab export --format cloudformation` keeps the load balancer's
    Type, its listeners' TCP and ListenerAttributes, and leaves out what a TCP
    health check has not (cfn-lint's E3684: no Matcher)."""
    import yaml

    from shiftlab.common.configfile import load_file
    from shiftlab.interop.exporter import cloudformation
    from tests.helpers import REPO
    from tests.interop.test_export import CFN_RULES, lint

    data = load_file(REPO / "shiftlab" / "examples" / "nlb.yaml")
    data["loadBalancer"]["Listeners"][0]["ListenerAttributes"] = [{"Key": "tcp.idle_timeout.seconds",
                                                                   "Value": "600"}]
    text = cloudformation(data)["cloudformation.yaml"]
    assert [str(m) for m in lint(text, config=CFN_RULES)] == []
    res = yaml.safe_load(text)["Resources"]
    props = {v["Type"].rpartition("::")[2]: v["Properties"] for v in res.values()
             if v["Type"].startswith("AWS::ElasticLoadBalancingV2::")}
    assert props["LoadBalancer"]["Type"] == "network"
    assert props["TargetGroup"]["Protocol"] == "TCP" and "Matcher" not in props["TargetGroup"]
    listeners = [v["Properties"] for v in res.values() if v["Type"] == "AWS::ElasticLoadBalancingV2::Listener"]
    assert {ls["Protocol"] for ls in listeners} == {"TCP"}
    assert [ls.get("ListenerAttributes") for ls in listeners] == [
        [{"Key": "tcp.idle_timeout.seconds", "Value": "600"}], None]
