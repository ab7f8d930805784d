"""The `loadBalancer` section checked against ELBv2's own API model
(shiftlab.common.awsmodel): its listeners as CreateListener's input, their
rules as CreateRule's, its target groups as CreateTargetGroup's, attributes
as ModifyTargetGroupAttributes' and ModifyLoadBalancerAttributes'.

Where shiftlab differs, and its model (proxy.config) checks instead:
the ARNs AWS assigns are optional here (a listener needs no
LoadBalancerArn, a rule no ListenerArn) and may be given (`ListenerArn`,
`RuleArn`, `TargetGroupArn`); a condition's `Values` may be one string;
shiftlab's own keys: `Admin`, a listener's `Name`, `Address`,
`TestTrafficRule`, a target group's `Targets` (RegisterTargets' ids, or
`host:port` strings).
"""

from __future__ import annotations

import functools
from typing import Any

from shiftlab.common.awsmodel import LOCAL, ONE_OR_MORE, Shapes, derive, overlay, problems, service_shapes


@functools.cache
def _elbv2() -> Shapes:
    aws = service_shapes("elbv2")
    return overlay(aws, {
        "shiftlab:LoadBalancer": {"type": "structure", "members": {
            "Name": {"shape": "LoadBalancerName"},
            "Type": {"shape": "LoadBalancerTypeEnum"},
            "Listeners": {"shape": "shiftlab:Listeners"},
            "TargetGroups": {"shape": "shiftlab:TargetGroups"},
            "LoadBalancerAttributes": {"shape": "LoadBalancerAttributes"},
            "Admin": {"shape": LOCAL},
        }},
        "shiftlab:Listeners": {"type": "list", "member": {"shape": "shiftlab:Listener"}},
        "shiftlab:Listener": derive(aws, "CreateListenerInput", required=["DefaultActions"], members={
            "Name": LOCAL, "Address": LOCAL, "TestTrafficRule": LOCAL,
            "Rules": "shiftlab:Rules", "ListenerArn": "ListenerArn", "ListenerAttributes": "ListenerAttributes",
        }),
        "shiftlab:Rules": {"type": "list", "member": {"shape": "shiftlab:Rule"}},
        "shiftlab:Rule": derive(aws, "CreateRuleInput", required=["Conditions", "Priority", "Actions"],
                                members={"RuleArn": "RuleArn"}),
        # Every condition's Values (and RegexValues, which shiftlab's model refuses).
        "ListOfString": {**aws["ListOfString"], ONE_OR_MORE: True},
        "shiftlab:TargetGroups": {"type": "list", "member": {"shape": "shiftlab:TargetGroup"}},
        "shiftlab:TargetGroup": derive(aws, "CreateTargetGroupInput", members={
            "Targets": LOCAL, "TargetGroupAttributes": "TargetGroupAttributes", "TargetGroupArn": "TargetGroupArn",
        }),
    })


def load_balancer_problems(data: Any, path: str = "loadBalancer") -> list[str]:
    return problems(_elbv2(), "shiftlab:LoadBalancer", data, path)


def rules_problems(data: Any, path: str) -> list[str]:
    """A listener's rules, as the admin API's PUT .../rules takes them."""
    return problems(_elbv2(), "shiftlab:Rules", data, path)


def forward_problems(data: Any, path: str) -> list[str]:
    """A forward action's config, as the admin API's PUT .../forward takes it."""
    return problems(_elbv2(), "ForwardActionConfig", data, path)
