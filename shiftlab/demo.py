"""`shiftlab demo`: a rehearsal with nothing to configure.

The embedded example config (shiftlab/examples/shiftlab.yaml) on free
ports, the sample service as blue, a bounded background load, and a green
revision chosen by the scenario. Each scenario says what should happen;
the demo's exit code says whether it did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from shiftlab.settings import Settings, load_settings, on_free_ports

P99_ALARM = {
    "AlarmName": "service-p99-latency",
    "Metrics": [
        {"Id": f"{c}p99", "ReturnData": False,
         "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
                                   "Dimensions": [{"Name": "TargetGroup", "Value": f"targetgroup/{c}/0123"}]},
                        "Period": 60, "Stat": "p99"}}
        for c in ("blue", "green")
    ] + [{"Id": "worst", "Expression": "MAX([bluep99, greenp99])", "ReturnData": True}],
    "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 0.25,
    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    expect: str  # the deployment status this scenario should end in
    env: dict[str, str]
    deployment: dict[str, Any]
    extra_alarms: list[dict[str, Any]] = field(default_factory=list)
    test_header_load: bool = False
    pause: bool = False


SCENARIOS = {
    s.name: s for s in [
        Scenario("good", "a linear rollout of a healthy revision, promoted", "SUCCESSFUL",
                 {"GREETING": "hello from green"},
                 {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 3},
                  "bakeTimeInMinutes": 2}),
        Scenario("bad-canary", "a canary whose green answers 5xx; the alarm trips; rollback",
                 "ROLLBACK_SUCCESSFUL", {"ERROR_RATE": "0.3"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 10},
                  "bakeTimeInMinutes": 2}),
        Scenario("slow", "a canary whose green is slow; the p99 latency alarm trips; rollback",
                 "ROLLBACK_SUCCESSFUL", {"LATENCY_MS": "400"},
                 {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 30, "canaryBakeTimeInMinutes": 10},
                  "alarms": {"alarmNames": ["service-5xx", "service-p99-latency"], "enable": True,
                             "rollback": True}},
                 extra_alarms=[P99_ALARM]),
        Scenario("manual", "blue/green waiting at a PAUSE hook for `shiftlab approve`", "SUCCESSFUL",
                 {"GREETING": "approved"},
                 {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2,
                  "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                                      "timeoutConfiguration": {"action": "ROLLBACK", "timeoutInMinutes": 30}}]},
                 pause=True),
        Scenario("blue-green", "blue/green: test traffic (the x-amzn-ecs-blue-green-test header) reaches green "
                               "before production does", "SUCCESSFUL", {"GREETING": "green"},
                 {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 3,
                  "lifecycleHooks": [{"hookTargetArn": "command:{python} -m shiftlab.demo_hook",
                                      "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                                      "hookDetails": {"waitSeconds": 3}}]},
                 test_header_load=True),
    ]
}


def example_config() -> dict[str, Any]:
    text = resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def demo_settings(scenario: Scenario, time_scale: float, backend: str, state_dir: str) -> Settings:
    data = on_free_ports(copy.deepcopy(example_config()))
    data["timeScale"] = time_scale
    dc = {**data["deploymentConfiguration"], **scenario.deployment}
    data["deploymentConfiguration"] = dc
    data["alarms"] = data["alarms"] + scenario.extra_alarms
    data["controller"] = {**data["controller"], "backend": backend, "stateDir": state_dir}
    return load_settings(data)
