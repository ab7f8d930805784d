"""A Service Connect stack for the tests: a catalog service (the sample
service) offered in a namespace as catalog:<port>, and a frontend client task
(the sample frontend) that calls it by its alias."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shiftlab.controller.serviceconnect import OUTBOUND
from shiftlab.stack import Stack
from tests.helpers import free_port

SAMPLE = ["{python}", "-m", "shiftlab.sample_service"]
FRONTEND = ["{python}", "-m", "shiftlab.sample_frontend"]
BLUE, GREEN = "sc-catalog-blue", "sc-catalog-green"
TEST_HEADER = "x-amzn-ecs-blue-green-test"


def sc_config(tmp_path: Path, deployment: dict[str, Any], alarms: list[dict[str, Any]] | None = None,
              test_rules: dict[str, Any] | None = None, port: int | None = None,
              propagate: str | None = None) -> dict[str, Any]:
    alias: dict[str, Any] = {"port": port or free_port(), "dnsName": "catalog"}
    if test_rules is not None:
        alias["testTrafficRules"] = test_rules
    frontend_env = {"CATALOG_URL": f"http://catalog:{alias['port']}"}
    if propagate:
        frontend_env["PROPAGATE_HEADERS"] = propagate
    return {
        "timeScale": 60,
        # Only the namespace's proxy; its admin API on a free port.
        "loadBalancer": {"Admin": {"Port": 0}},
        "service": {
            "serviceName": "catalog", "clusterName": "shop", "desiredCount": 2,
            "taskDefinition": {"command": SAMPLE, "stopTimeout": 5},
            "serviceConnectConfiguration": {"enabled": True, "namespace": "shop", "services": [
                {"portName": "http", "discoveryName": "catalog", "clientAliases": [alias]}]},
            "serviceConnectClients": [{"name": "frontend", "taskDefinition": {"command": FRONTEND,
                                                                              "environment": frontend_env}}],
        },
        "deploymentConfiguration": deployment,
        "alarms": alarms or [],
        "controller": {"port": 0, "stateDir": str(tmp_path / "state"), "taskStartTimeoutSeconds": 20},
    }


def frontend_url(stack: Stack) -> str:
    assert stack.clients is not None
    task = stack.clients.tasks["frontend"]
    return f"http://{task.host}:{task.port}/"


def call(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One request (blocking: run it in a thread from async tests)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def served_by(doc: dict[str, Any]) -> str | None:
    """The catalog's target group that answered a frontend's request."""
    catalog = doc.get("catalog")
    return catalog.get("targetGroup") if isinstance(catalog, dict) else None


def sc_alarm(name: str, metric: str, threshold: float, stat: str = "Sum") -> dict[str, Any]:
    """An alarm on a Service Connect metric of the catalog, as it is written on
    AWS: RequestCount and the other metrics of the catalog's own proxies per
    ClusterName, ServiceName and DiscoveryName; the HTTP codes, response time
    and the rest of what the catalog answered its clients per TargetDiscoveryName."""
    dims = [{"Name": "TargetDiscoveryName", "Value": "catalog"}] if metric in OUTBOUND else \
        [{"Name": "ClusterName", "Value": "shop"}, {"Name": "ServiceName", "Value": "catalog"},
         {"Name": "DiscoveryName", "Value": "catalog"}]
    return {
        "AlarmName": name, "Namespace": "AWS/ECS", "MetricName": metric,
        "Dimensions": dims,
        "Statistic": stat, "Period": 60, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
    }
