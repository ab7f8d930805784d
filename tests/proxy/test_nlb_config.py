"""`loadBalancer.Type: network`: NLB's defaults, ranges and what it refuses.

Sources:
- CreateLoadBalancer's Type ("The default is application") and
  CreateTargetGroup's health check fields (defaults by protocol, Matcher
  200-599 for TCP target groups, 200-499 for HTTP ones; "The TCP protocol is
  not supported for health checks if the protocol of the target group is
  HTTP"): https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateTargetGroup.html
- NLB health check settings (TCP by default; timeout 10 s, 6 s for HTTP;
  matcher 200-399): https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-health-checks.html
- NLB target group attributes (deregistration delay 0-3600 s, connection
  termination): https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html
- NLB listeners (TCP; TLS passthrough is a TCP listener; idle timeout 350 s):
  https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-listeners.html
- An NLB's health check timeout may equal its interval, not exceed it (the
  2022 change that made NLB timeouts 2-120 s; AWS's CDK validates it so:
  https://github.com/aws/aws-cdk/pull/26031); an ALB's must be less.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.proxy.config import load_balancer_from_dict

BASE: dict[str, Any] = {
    "Type": "network",
    "Listeners": [{"Name": "prod", "Port": 9000, "DefaultActions": [{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": "blue", "Weight": 100}, {"TargetGroupArn": "green", "Weight": 0}]}}]}],
    "TargetGroups": [{"Name": "blue"}, {"Name": "green"}],
}
L0 = "loadBalancer.Listeners[0]"
T0 = "loadBalancer.TargetGroups[0]"


def changed(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        node: Any = d
        for k in head:
            node = node[int(k)] if k.isdigit() else node[k]
        node[int(last) if last.isdigit() else last] = value
    return apply


def test_network_defaults() -> None:
    lb = load_balancer_from_dict(copy.deepcopy(BASE))
    tg = lb.TargetGroups[0]
    assert (lb.network, lb.idle_timeout, lb.Listeners[0].Protocol) == (True, 350, "TCP")
    assert (tg.Protocol, tg.HealthCheckProtocol, tg.HealthCheckTimeoutSeconds, tg.HealthCheckIntervalSeconds,
            tg.HealthyThresholdCount, tg.UnhealthyThresholdCount, tg.deregistration_delay,
            tg.connection_termination) == ("TCP", "TCP", 10, 30, 5, 2, 300, False)
    assert "Matcher" not in tg.model_fields_set  # a TCP health check has none
    assert not lb.Listeners[0].TestTrafficRule.Enabled  # no header rule: the test listener carries test traffic
    assert lb.Listeners[0].tcp_idle_timeout == 350


def test_tcp_idle_timeout_listener_attribute() -> None:
    """ModifyListenerAttributes' tcp.idle_timeout.seconds: 60..6000, default 350 (ELBv2 API reference,
    https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_ListenerAttribute.html)."""
    d = copy.deepcopy(BASE)
    d["Listeners"][0]["ListenerAttributes"] = [{"Key": "tcp.idle_timeout.seconds", "Value": "6000"}]
    assert load_balancer_from_dict(d).Listeners[0].tcp_idle_timeout == 6000
    d["Type"] = "application"
    d["Listeners"][0]["Protocol"] = "HTTP"
    d["TargetGroups"] = [{"Name": "blue", "Protocol": "HTTP"}, {"Name": "green", "Protocol": "HTTP"}]
    with pytest.raises(ConfigError) as info:
        load_balancer_from_dict(d)
    assert info.value.problems == [f"{L0}.ListenerAttributes[0].Key: 'tcp.idle_timeout.seconds' is not supported "
                                   "(supported: none)"]


def test_http_health_check_defaults() -> None:
    d = copy.deepcopy(BASE)
    d["TargetGroups"][0]["HealthCheckProtocol"] = "HTTP"
    tg = load_balancer_from_dict(d).TargetGroups[0]
    assert (tg.HealthCheckTimeoutSeconds, tg.HealthCheckPath, tg.Matcher.HttpCode) == (6, "/", "200-399")
    assert max(tg.matcher_codes) == 399


def test_application_is_the_default_type() -> None:
    d = copy.deepcopy(BASE)
    del d["Type"]
    for ls in d["Listeners"]:
        ls["Protocol"] = "HTTP"
    lb = load_balancer_from_dict(d)
    assert (lb.Type, lb.TargetGroups[0].Protocol, lb.TargetGroups[0].HealthCheckProtocol) == \
        ("application", "HTTP", "HTTP")


@pytest.mark.parametrize(("label", "change", "problem"), [
    ("unknown type", changed("Type", "gateway"), "loadBalancer.Type: 'gateway' - Input should be 'application' "
     "or 'network'"),
    ("HTTP listener", changed("Listeners.0.Protocol", "HTTP"),
     f"{L0}.Protocol: HTTP is not a protocol of a network load balancer's listeners (TCP: TLS passes through as TCP)"),
    ("TLS listener (terminated)", changed("Listeners.0.Protocol", "TLS"),
     f"{L0}.Protocol: 'TLS' - Input should be 'HTTP' or 'TCP'"),
    ("rules", changed("Listeners.0.Rules", [{"Priority": 1, "Conditions": [
        {"Field": "path-pattern", "Values": ["/x"]}], "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}]),
     f"{L0}.Rules: a network load balancer's listener has no rules (it cannot read requests): only "
     "DefaultActions, as on ELBv2"),
    ("test header rule", changed("Listeners.0.TestTrafficRule", {"Enabled": True}),
     f"{L0}.TestTrafficRule: a network load balancer cannot match a test header"),
    ("fixed response", changed("Listeners.0.DefaultActions.0", {"Type": "fixed-response",
                                                               "FixedResponseConfig": {"StatusCode": "200"}}),
     f"{L0}.DefaultActions[0].Type: fixed-response is an application load balancer's action"),
    ("group stickiness", changed("Listeners.0.DefaultActions.0.ForwardConfig.TargetGroupStickinessConfig",
                                 {"Enabled": True, "DurationSeconds": 60}),
     f"{L0}.DefaultActions[0].ForwardConfig.TargetGroupStickinessConfig: target group stickiness is an "
     "application load balancer's"),
    ("HTTP target group", changed("TargetGroups.0.Protocol", "HTTP"),
     f"{T0}.Protocol: HTTP target groups cannot serve a network load balancer"),
    ("matcher of a TCP health check", changed("TargetGroups.0.Matcher", {"HttpCode": "200"}),
     f"{T0}.Matcher: a TCP health check passes when the connection opens: it has no matcher"),
    ("UDP health check", changed("TargetGroups.0.HealthCheckProtocol", "UDP"),
     f"{T0}.HealthCheckProtocol: 'UDP' - Input should be 'HTTP' or 'TCP'"),
    ("health check timeout", changed("TargetGroups.0.HealthCheckTimeoutSeconds", 121),
     f"{T0}.HealthCheckTimeoutSeconds: 121 is out of range 2..120"),
    ("health check interval", changed("TargetGroups.0.HealthCheckIntervalSeconds", 301),
     f"{T0}.HealthCheckIntervalSeconds: 301 is out of range 5..300"),
    ("healthy threshold", changed("TargetGroups.0.HealthyThresholdCount", 1),
     f"{T0}.HealthyThresholdCount: 1 is out of range 2..10"),
    ("matcher above 599", changed("TargetGroups.0.Matcher", {"HttpCode": "200-600"}),
     f"{T0}.Matcher.HttpCode: '200-600' is out of range 200..599"),
    ("ALB-only attribute", changed("TargetGroups.0.TargetGroupAttributes",
                                   [{"Key": "load_balancing.algorithm.type", "Value": "round_robin"}]),
     f"{T0}.TargetGroupAttributes[0].Key: 'load_balancing.algorithm.type' is not supported"),
    ("connection termination value", changed("TargetGroups.0.TargetGroupAttributes", [
        {"Key": "deregistration_delay.connection_termination.enabled", "Value": "yes"}]),
     f"{T0}.TargetGroupAttributes[0].Value: 'yes' is not one of true, false"),
    ("deregistration delay", changed("TargetGroups.0.TargetGroupAttributes", [
        {"Key": "deregistration_delay.timeout_seconds", "Value": "3601"}]),
     f"{T0}.TargetGroupAttributes[0].Value: 3601 is out of range 0..3600"),
    ("idle timeout below 60", changed("Listeners.0.ListenerAttributes", [{"Key": "tcp.idle_timeout.seconds",
                                                                          "Value": "59"}]),
     f"{L0}.ListenerAttributes[0].Value: 59 is out of range 60..6000 for tcp.idle_timeout.seconds"),
    ("ALB idle timeout", changed("LoadBalancerAttributes", [{"Key": "idle_timeout.timeout_seconds",
                                                             "Value": "60"}]),
     "loadBalancer.LoadBalancerAttributes[0].Key: 'idle_timeout.timeout_seconds' is not supported (supported: "
     "none)"),
])
def test_network_refusals(label: str, change: Callable[[dict[str, Any]], None], problem: str) -> None:
    d = copy.deepcopy(BASE)
    change(d)
    with pytest.raises(ConfigError) as info:
        load_balancer_from_dict(d)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_health_check_timeout_may_equal_the_interval_not_exceed_it() -> None:
    d = copy.deepcopy(BASE)
    d["TargetGroups"][0].update(HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=10)
    load_balancer_from_dict(copy.deepcopy(d))
    d["TargetGroups"][0]["HealthCheckTimeoutSeconds"] = 11
    with pytest.raises(ConfigError) as info:
        load_balancer_from_dict(d)
    assert info.value.problems == [
        f"{T0}.HealthCheckTimeoutSeconds: 11 must be at most HealthCheckIntervalSeconds (10)"]


def test_application_refuses_tcp() -> None:
    """An application load balancer: HTTP listeners and target groups; no TCP health check of an HTTP group."""
    d = copy.deepcopy(BASE)
    d["Type"] = "application"
    d["Listeners"][0]["Protocol"] = "TCP"
    d["TargetGroups"][1]["HealthCheckProtocol"] = "TCP"
    d["TargetGroups"][0]["Protocol"] = "TCP"
    with pytest.raises(ConfigError) as info:
        load_balancer_from_dict(d)
    assert info.value.problems == [
        f"{L0}.Protocol: TCP is not a protocol of an application load balancer's listeners (HTTP)",
        f"{T0}.Protocol: TCP target groups cannot serve an application load balancer (loadBalancer.Type "
        "application: HTTP)",
        "loadBalancer.TargetGroups[1].HealthCheckProtocol: TCP health checks are not supported for HTTP target "
        "groups, as ELBv2 says",
    ]
