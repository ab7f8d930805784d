"""serviceConnectConfiguration as ECS's API takes it: what ECS refuses is
refused before anything starts, each problem naming its field; what is
valid builds the namespace's listener (the alias's port, the test rule's
header) and the names the controller moves.

AWS pages (the row cites its own):
- API_ServiceConnectConfiguration: `enabled` is required.
- API_ServiceConnectService: `portName` is required; "The maximum number of
  client aliases that you can have in this list is 1"; "For each
  ServiceConnectService, you must provide at least one clientAlias with one
  port"; discoveryName: "up to 64 characters ... lowercase letters, numbers,
  underscores (_), and hyphens (-). The name can't start with a hyphen".
- API_ServiceConnectClientAlias: `port` is required; dnsName defaults to
  discoveryName.namespace.
- API_ServiceConnectTestTrafficRules: `header` required;
  API_ServiceConnectTestTrafficHeaderRules: `name` required;
  API_ServiceConnectTestTrafficHeaderMatchRules: `exact` required.
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/<page>.html)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shiftlab.common.configfile import ConfigError
from shiftlab.serviceconnect import client_env
from shiftlab.settings import load_settings
from tests.controller.sc_support import sc_config
from tests.controller.support import config

API = "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/"
SC = "service.serviceConnectConfiguration"
CANARY = {"strategy": "CANARY"}


def _sc(data: dict[str, Any]) -> dict[str, Any]:
    sc: dict[str, Any] = data["service"]["serviceConnectConfiguration"]
    return sc


def _alias(data: dict[str, Any]) -> dict[str, Any]:
    alias: dict[str, Any] = _sc(data)["services"][0]["clientAliases"][0]
    return alias


REFUSED: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("API_ServiceConnectConfiguration", lambda d: _sc(d).pop("enabled"), f"{SC}.enabled", "is required"),
    ("API_ServiceConnectService", lambda d: _sc(d)["services"][0].pop("portName"), f"{SC}.services[0].portName",
     "required"),
    ("API_ServiceConnectService", lambda d: _sc(d)["services"][0]["clientAliases"].append({"port": 9}),
     f"{SC}.services[0].clientAliases", "at most 1"),
    ("API_ServiceConnectService", lambda d: _sc(d)["services"][0].update(clientAliases=[]),
     f"{SC}.services[0].clientAliases", "at least 1"),
    ("API_ServiceConnectService", lambda d: _sc(d)["services"][0].update(discoveryName="-catalog"),
     f"{SC}.services[0].discoveryName", "not starting with a hyphen"),
    ("API_ServiceConnectService", lambda d: _sc(d)["services"][0].update(discoveryName="Catalog"),
     f"{SC}.services[0].discoveryName", "lowercase"),
    ("API_ServiceConnectClientAlias", lambda d: _alias(d).pop("port"), f"{SC}.services[0].clientAliases[0].port",
     "required"),
    ("API_ServiceConnectTestTrafficRules", lambda d: _alias(d).update(testTrafficRules={}),
     f"{SC}.services[0].clientAliases[0].testTrafficRules.header", "required"),
    ("API_ServiceConnectTestTrafficHeaderRules",
     lambda d: _alias(d).update(testTrafficRules={"header": {"value": {"exact": "yes"}}}),
     f"{SC}.services[0].clientAliases[0].testTrafficRules.header.name", "required"),
    ("API_ServiceConnectTestTrafficHeaderMatchRules",
     lambda d: _alias(d).update(testTrafficRules={"header": {"name": "x-canary", "value": {}}}),
     f"{SC}.services[0].clientAliases[0].testTrafficRules.header.value.exact", "required"),
    ("API_ServiceConnectTestTrafficHeaderRules",
     lambda d: _alias(d).update(testTrafficRules={"header": {"name": "x-canary", "values": ["yes"]}}),
     f"{SC}.services[0].clientAliases[0].testTrafficRules.header.values", "unknown field"),
]


@pytest.mark.parametrize(("page", "change", "field", "words"), REFUSED,
                         ids=[f"{r[0]}:{r[2].rsplit('.', 1)[-1]}-{i}" for i, r in enumerate(REFUSED)])
def test_what_ecs_refuses_is_refused_naming_the_field(tmp_path: Path, page: str, change: Any, field: str,
                                                      words: str) -> None:
    """Each row: the API reference page (API + page + .html) and the field it makes required or bounds."""
    data = sc_config(tmp_path, CANARY)
    change(data)
    with pytest.raises(ConfigError) as exc:
        load_settings(data)
    hits = [p for p in exc.value.problems if p.startswith(field) and words in p]
    assert hits, (API + page + ".html", exc.value.problems)


def _both(tmp_path: Path) -> dict[str, Any]:
    data = config(tmp_path, CANARY)
    data["service"]["serviceConnectConfiguration"] = copy.deepcopy(
        sc_config(tmp_path, CANARY)["service"]["serviceConnectConfiguration"])
    return data


def _neither(tmp_path: Path) -> dict[str, Any]:
    data = sc_config(tmp_path, CANARY)
    _sc(data)["services"] = []
    del data["service"]["serviceConnectClients"]
    return data


def _clients_without_namespace(tmp_path: Path) -> dict[str, Any]:
    data = config(tmp_path, CANARY)
    data["service"]["serviceConnectClients"] = sc_config(tmp_path, CANARY)["service"]["serviceConnectClients"]
    return data


def _docker_bridge(tmp_path: Path) -> dict[str, Any]:
    data = sc_config(tmp_path, CANARY)
    data["controller"]["backend"] = "docker"
    data["controller"]["docker"] = {"network": "my-net"}
    return data


def _port_taken(tmp_path: Path) -> dict[str, Any]:
    data = _both(tmp_path)
    data["service"]["loadBalancers"] = []
    _alias(data)["port"] = data["loadBalancer"]["Listeners"][0]["Port"]
    return data


COMBINATIONS = [
    # Blue/green shifts traffic through Elastic Load Balancing or Service Connect
    # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-deployment-implementation.html).
    (_both, f"{SC}.services", "not both"),
    # Neither loadBalancers nor a service in the namespace: a headless service,
    # which ECS deploys with BLUE_GREEN (or ROLLING) but not CANARY (tests/controller/test_headless.py).
    (_neither, "deploymentConfiguration.strategy", "a headless service"),
    (_clients_without_namespace, "service.serviceConnectClients", "need a namespace"),
    (_docker_bridge, "controller.docker.network", "host networking"),
    (_port_taken, f"{SC}.services[0].clientAliases[0].port", "is also loadBalancer.Listeners[0].Port"),
]


@pytest.mark.parametrize(("build", "field", "words"), COMBINATIONS, ids=[c[0].__name__ for c in COMBINATIONS])
def test_combinations_are_refused_naming_the_field(tmp_path: Path, build: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(build(tmp_path))
    assert any(p.startswith(field) and words in p for p in exc.value.problems), exc.value.problems


def test_a_valid_namespace_builds_the_alias_listener_and_its_test_rule(tmp_path: Path) -> None:
    rules = {"header": {"name": "x-canary", "value": {"exact": "yes"}}}
    data = sc_config(tmp_path, CANARY, test_rules=rules, port=18080)
    s = load_settings(data)
    (ls,) = s.load_balancer.Listeners
    assert (ls.name, ls.Address, ls.Port) == ("sc-catalog", "127.0.0.1", 18080)
    assert ls.TestTrafficRule.header_names() == ("x-canary",)
    assert ls.TestTrafficRule.header.value is not None and ls.TestTrafficRule.header.value.exact == "yes"
    assert [tg.Name for tg in s.load_balancer.TargetGroups] == ["sc-catalog-blue", "sc-catalog-green"]
    assert s.service is not None
    lb = s.service.lb
    assert lb.targetGroupArn == "sc-catalog-blue" and lb.advancedConfiguration is not None
    assert lb.advancedConfiguration.productionListenerRule == "sc-catalog/default"
    assert lb.advancedConfiguration.testListenerRule == ["sc-catalog/test"]


def test_without_test_traffic_rules_both_spellings_of_the_default_header_match(tmp_path: Path) -> None:
    """service-connect-blue-green.html: x-amzn-ecs-blue-green-test by default
    (AWS's talk spells it X-Amazon-ECS-blue-green-test; both are accepted)."""
    s = load_settings(sc_config(tmp_path, CANARY))
    (ls,) = s.load_balancer.Listeners
    assert ls.TestTrafficRule.header_names() == ("x-amzn-ecs-blue-green-test", "x-amazon-ecs-blue-green-test")
    assert ls.TestTrafficRule.header.value is None  # presence is enough


def test_the_alias_name_defaults_to_discovery_name_dot_namespace(tmp_path: Path) -> None:
    """API_ServiceConnectClientAlias: dnsName "If this parameter isn't
    specified, the default value of discoveryName.namespace is used"; and
    without a discoveryName, the port name is used (API_ServiceConnectService)."""
    data = sc_config(tmp_path, CANARY)
    del _alias(data)["dnsName"]
    del _sc(data)["services"][0]["discoveryName"]
    s = load_settings(data)
    assert s.service is not None
    env = client_env(s.service)
    port = _alias(data)["port"]
    assert env["SHIFTLAB_SC_ENDPOINTS"] == f"http.shop:{port}=127.0.0.1:{port}"
    assert env["SHIFTLAB_SC_HTTP_SHOP"] == f"http://127.0.0.1:{port}"


def test_a_production_alb_beside_the_namespace_keeps_its_own_rules(tmp_path: Path) -> None:
    """The namespace's listener joins the file's load balancer; the ALB's
    listeners are left as written (test routing for Service Connect lives on
    the namespace's listener only)."""
    data = _both(tmp_path)
    data["service"]["loadBalancers"] = []
    s = load_settings(data)
    names = [ls.name for ls in s.load_balancer.Listeners]
    assert names == ["prod", "test", "sc-catalog"]
    assert s.service is not None and s.service.lb.advancedConfiguration is not None
    assert s.service.lb.advancedConfiguration.productionListenerRule == "sc-catalog/default"


def test_a_load_balancer_section_without_listeners_sets_the_namespace_proxys_admin_api(tmp_path: Path) -> None:
    """Only the namespace's proxy, but its admin API where the file says
    (what `shiftlab up` and `shiftlab proxy` need to meet)."""
    data = sc_config(tmp_path, CANARY)
    data["loadBalancer"] = {"Name": "shop-mesh", "Admin": {"Port": 19090}}
    s = load_settings(data)
    assert (s.load_balancer.Name, s.load_balancer.Admin.Port) == ("shop-mesh", 19090)
    assert [ls.name for ls in s.load_balancer.Listeners] == ["sc-catalog"]
    assert [tg.Name for tg in s.load_balancer.TargetGroups] == ["sc-catalog-blue", "sc-catalog-green"]


def test_ecs_fields_shiftlab_does_not_emulate_are_accepted_as_ecs_takes_them(tmp_path: Path) -> None:
    """A user's real serviceConnectConfiguration works unchanged: timeout, tls
    (API_ServiceConnectService) and logConfiguration
    (API_ServiceConnectConfiguration) pass botocore's shape check and are
    ignored; a wrong shape is still refused naming the field."""
    data = sc_config(tmp_path, CANARY)
    svc = _sc(data)["services"][0]
    svc["timeout"] = {"idleTimeoutSeconds": 60, "perRequestTimeoutSeconds": 10}
    _sc(data)["logConfiguration"] = {"logDriver": "awslogs", "options": {"awslogs-group": "sc"}}
    load_settings(data)
    svc["timeout"] = {"idleTimeoutSeconds": "sixty"}
    with pytest.raises(ConfigError) as exc:
        load_settings(data)
    assert any(p.startswith(f"{SC}.services[0].timeout.idleTimeoutSeconds") for p in exc.value.problems), \
        exc.value.problems
