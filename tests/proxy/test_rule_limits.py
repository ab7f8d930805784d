"""A listener rule's conditions as a whole, as ALB limits them.

https://docs.aws.amazon.com/elasticloadbalancing/latest/application/rule-condition-types.html,
"Condition basics": "Each rule can optionally include zero or one of each of
the following conditions: host-header, http-request-method, path-pattern,
and source-ip. Each rule can also optionally include one or more of each of
the following conditions: http-header and query-string." "You can specify up
to five match evaluations per rule." "You can include wildcard characters in
the match evaluations for the http-header, host-header, path-pattern, and
query-string conditions. There is a limit of five wildcard characters per
rule."

https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-limits.html,
"Rules": condition values per rule 5, condition wildcards per rule 5, match
evaluations per rule 5 (none adjustable).

The file (`loadBalancer`) and the admin API's PUT .../rules refuse alike.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.proxy.config import load_balancer_from_dict
from tests.proxy.conftest import StartProxy, group_conf, lb_conf, listener_conf

R = "loadBalancer.Listeners[0].Rules[0]"


def host(*values: str) -> dict[str, Any]:
    return {"Field": "host-header", "HostHeaderConfig": {"Values": list(values)}}


def path(*values: str) -> dict[str, Any]:
    return {"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}}


def method(*values: str) -> dict[str, Any]:
    return {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": list(values)}}


def source(*values: str) -> dict[str, Any]:
    return {"Field": "source-ip", "SourceIpConfig": {"Values": list(values)}}


def header(name: str, *values: str) -> dict[str, Any]:
    return {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": name, "Values": list(values)}}


def query(*pairs: tuple[str | None, str]) -> dict[str, Any]:
    return {"Field": "query-string", "QueryStringConfig": {"Values": [
        {"Value": v} if k is None else {"Key": k, "Value": v} for k, v in pairs]}}


def rule(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"Priority": 1, "Conditions": list(conditions), "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}


def lb(*rules: dict[str, Any]) -> dict[str, Any]:
    return lb_conf([listener_conf({"blue": 1}, rules=list(rules))], [group_conf("blue", ["127.0.0.1:9"])])


def problems_of(data: dict[str, Any]) -> list[str]:
    try:
        load_balancer_from_dict(data)
    except ConfigError as exc:
        return exc.problems
    return []


ONCE = "a rule takes one {} condition at most, as ALB does (another is Conditions[0])"


@pytest.mark.parametrize(("conditions", "expected"), [
    # Zero or one of each of host-header, http-request-method, path-pattern, source-ip.
    ([host("a.example.com"), path("/a"), method("GET"), source("10.0.0.0/8")], []),
    ([host("a.example.com"), host("b.example.com")], [f"{R}.Conditions[1].Field: " + ONCE.format("host-header")]),
    ([path("/a"), path("/b")], [f"{R}.Conditions[1].Field: " + ONCE.format("path-pattern")]),
    ([method("GET"), method("POST")], [f"{R}.Conditions[1].Field: " + ONCE.format("http-request-method")]),
    ([source("10.0.0.0/8"), source("192.168.0.0/16")], [f"{R}.Conditions[1].Field: " + ONCE.format("source-ip")]),
    # The legacy Values form is the same condition.
    ([path("/a"), {"Field": "path-pattern", "Values": ["/b"]}],
     [f"{R}.Conditions[1].Field: " + ONCE.format("path-pattern")]),
    # One or more of each of http-header and query-string.
    ([header("x-a", "1"), header("x-b", "2"), query(("k", "v")), query((None, "w"))], []),
    # Up to five match evaluations per rule: "a rule with five conditions where each has one".
    ([host("a.example.com"), path("/a"), method("GET"), source("10.0.0.0/8"), header("x-a", "1")], []),
    ([host("a.example.com", "b.example.com", "c.example.com"), path("/a", "/b")], []),
    ([host("a.example.com", "b.example.com", "c.example.com"), path("/a", "/b"), method("GET")],
     [f"{R}.Conditions: 6 match evaluations (condition values), ALB takes at most 5 per rule"]),
    ([header("x-a", "1", "2", "3"), query(("k", "v"), ("k", "w"), ("j", "x"))],
     [f"{R}.Conditions: 6 match evaluations (condition values), ALB takes at most 5 per rule"]),
    # Up to five wildcards (* and ?) per rule, in host-header, path-pattern, http-header and query-string.
    ([host("*.example.com"), path("/a/*", "/b?"), header("x-a", "*"), query(("k*", "v"))], []),
    ([host("*.example.com"), path("/a/*", "/b?"), header("x-a", "*"), query(("k*", "v?"))],
     [f"{R}.Conditions: 6 wildcards (* and ?), ALB takes at most 5 per rule"]),
    ([path("/*/*/*/*/*/*")], [f"{R}.Conditions: 6 wildcards (* and ?), ALB takes at most 5 per rule"]),
    # Both limits at once, and a repeated field: every problem is reported.
    ([path("/*/*/*"), path("/*/*/*", "/x", "/y"), host("a.example.com", "b.example.com")],
     [f"{R}.Conditions[1].Field: " + ONCE.format("path-pattern"),
      f"{R}.Conditions: 6 match evaluations (condition values), ALB takes at most 5 per rule",
      f"{R}.Conditions: 6 wildcards (* and ?), ALB takes at most 5 per rule"]),
])
def test_a_rules_conditions_as_alb_limits_them(conditions: list[dict[str, Any]], expected: list[str]) -> None:
    assert problems_of(lb(rule(*conditions))) == expected


async def test_the_admin_api_refuses_the_same_rules(start_proxy: StartProxy, client: aiohttp.ClientSession) -> None:
    px = await start_proxy(lb())
    url = f"{px.admin_url}/admin/listeners/{px.lb.conf.Listeners[0].name}/rules"
    async with client.put(url, json=[rule(path("/a"), path("/b"))]) as resp:
        assert resp.status == 400
        assert "Rules[0].Conditions[1].Field: a rule takes one path-pattern condition at most" in (await resp.json())[
            "error"]
    async with client.put(url, json=[{**rule(path("/a")), "Priority": "1"}]) as resp:
        assert resp.status == 400
        assert "Rules[0].Priority: '1' (a string) - AWS's API takes an integer here" in (await resp.json())["error"]
    async with client.put(url, json=[rule(path("/a"), host("a.example.com"))]) as resp:
        assert resp.status == 200, await resp.text()
