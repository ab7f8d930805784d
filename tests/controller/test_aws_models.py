"""The sections that copy AWS APIs are checked against AWS's own models
(botocore's service-2.json of ecs, elbv2 and cloudwatch), as the APIs check
their input: a field AWS does not have, a wrong type (no coercion: "5" is
not a number, "yes" not a boolean), a required field missing, a length or
count over the model's maximum. Each problem names its field path. Where
shiftlab spells a field its own way, or keeps a key of its own beside AWS's,
its section takes it as before.

- ECS: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html,
  API_CreateService.html
- ELBv2: https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_CreateListener.html,
  API_CreateRule.html, API_CreateTargetGroup.html
- CloudWatch: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.controller.awsshapes import deployment_configuration_problems, put_metric_alarm_problems
from shiftlab.settings import load_settings
from tests.controller.support import cli, config, green_alarm
from tests.helpers import REPO, aws_walkthrough

DC = "deploymentConfiguration"
BASE = {"strategy": "CANARY", "alarms": {"alarmNames": ["errors"], "enable": True, "rollback": True}}
Edit = Callable[[dict[str, Any]], None]


def base(tmp_path: Path) -> dict[str, Any]:
    data = config(tmp_path, BASE, [green_alarm("errors", "HTTPCode_Target_5XX_Count", 1)])
    return json.loads(json.dumps(data))  # no part shared: an edit changes one field


def put(path: str, value: Any) -> Edit:
    """Set `value` at a dotted path (list indexes as numbers) of the file."""
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return edit


def problems_of(data: dict[str, Any]) -> list[str]:
    try:
        load_settings(data)
    except ConfigError as exc:
        return exc.problems
    return []


REFUSED = [
    # ECS: update-service --deployment-configuration.
    (put(f"{DC}.canaryConfiguration", {"canaryPercent": "5"}),
     f"{DC}.canaryConfiguration.canaryPercent: '5' (a string) - AWS's API takes a number here"),
    (put(f"{DC}.canaryConfiguration", {"canaryBakeTimeInMinutes": 2.0}),
     f"{DC}.canaryConfiguration.canaryBakeTimeInMinutes: 2.0 (a number) - AWS's API takes an integer here"),
    (put(f"{DC}.maximumPercent", "200"), f"{DC}.maximumPercent: '200' (a string) - AWS's API takes an integer here"),
    (put(f"{DC}.deploymentCircuitBreaker", {"enable": True}), f"{DC}.deploymentCircuitBreaker.rollback: is required"),
    (put(f"{DC}.alarms", {"alarmNames": ["errors"], "rollback": True}), f"{DC}.alarms.enable: is required"),
    (put(f"{DC}.alarms.rollback", 1), f"{DC}.alarms.rollback: 1 (a number) - AWS's API takes true or false here"),
    # ECS: create-service.
    (put("service.desiredCount", "2"), "service.desiredCount: '2' (a string) - AWS's API takes an integer here"),
    (put("service.loadBalancers.0.containerPort", "8080"),
     "service.loadBalancers[0].containerPort: '8080' (a string) - AWS's API takes an integer here"),
    (put("service.healthCheckGracePeriodSeconds", 30.0),
     "service.healthCheckGracePeriodSeconds: 30.0 (a number) - AWS's API takes an integer here"),
    # ELBv2: create-listener, create-rule, create-target-group, the attributes.
    (put("loadBalancer.Listeners.0.Port", "8080"),
     "loadBalancer.Listeners[0].Port: '8080' (a string) - AWS's API takes an integer here"),
    (put("loadBalancer.Listeners.0.DefaultActions.0.ForwardConfig.TargetGroups.0.Weight", "100"),
     "loadBalancer.Listeners[0].DefaultActions[0].ForwardConfig.TargetGroups[0].Weight: '100' (a string) - "
     "AWS's API takes an integer here"),
    (put("loadBalancer.Listeners.0.DefaultActions",
         [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200", "ContentType": "x" * 33}}]),
     "loadBalancer.Listeners[0].DefaultActions[0].FixedResponseConfig.ContentType: 33 characters - AWS's API "
     "takes at most 32"),
    (put("loadBalancer.Listeners.0.DefaultActions",
         [{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Host": ""}}]),
     "loadBalancer.Listeners[0].DefaultActions[0].RedirectConfig.Host: 0 characters - AWS's API takes at least 1"),
    (put("loadBalancer.Listeners.0.Rules", [{"Priority": "10", "Conditions": [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a"]}}],
        "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}]),
     "loadBalancer.Listeners[0].Rules[0].Priority: '10' (a string) - AWS's API takes an integer here"),
    (put("loadBalancer.TargetGroups.0.HealthCheckEnabled", "false"),
     "loadBalancer.TargetGroups[0].HealthCheckEnabled: 'false' (a string) - AWS's API takes true or false here"),
    (put("loadBalancer.TargetGroups.0.HealthCheckIntervalSeconds", "10"),
     "loadBalancer.TargetGroups[0].HealthCheckIntervalSeconds: '10' (a string) - AWS's API takes an integer here"),
    (put("loadBalancer.TargetGroups.0.HealthCheckPath", "/" + "h" * 1024),
     "loadBalancer.TargetGroups[0].HealthCheckPath: 1025 characters - AWS's API takes at most 1024"),
    (put("loadBalancer.LoadBalancerAttributes", [{"Key": "idle_timeout.timeout_seconds", "Value": "60"}] * 21),
     "loadBalancer.LoadBalancerAttributes: 21 items - AWS's API takes at most 20"),
    # CloudWatch: put-metric-alarm.
    (put("alarms.0.Threshold", "1"), "alarms[0].Threshold: '1' (a string) - AWS's API takes a number here"),
    (put("alarms.0.Period", "60"), "alarms[0].Period: '60' (a string) - AWS's API takes an integer here"),
    (put("alarms.0.AlarmDescription", "d" * 1025),
     "alarms[0].AlarmDescription: 1025 characters - AWS's API takes at most 1024"),
    (put("alarms.0.AlarmActions", [f"arn:aws:sns:us-east-1:123456789012:t{i}" for i in range(6)]),
     "alarms[0].AlarmActions: 6 items - AWS's API takes at most 5"),
    (put("alarms.0.ActionsEnabled", "true"),
     "alarms[0].ActionsEnabled: 'true' (a string) - AWS's API takes true or false here"),
    (put("alarms.0.EvaluationPeriods", "1"),
     "alarms[0].EvaluationPeriods: '1' (a string) - AWS's API takes an integer here"),
]


@pytest.mark.parametrize(("edit", "problem"), REFUSED)
def test_what_the_aws_api_refuses_the_file_refuses(tmp_path: Path, edit: Edit, problem: str) -> None:
    data = base(tmp_path)
    assert problems_of(copy.deepcopy(data)) == []
    edit(data)
    assert problems_of(data) == [problem]


@pytest.mark.parametrize("edit", [
    # A hook's targetType and target as shiftlab spells them (URL, COMMAND).
    put(f"{DC}.lifecycleHooks", [{"targetType": "URL", "hookTargetArn": "http://127.0.0.1:9/h",
                                  "lifecycleStages": ["POST_SCALE_UP"], "hookDetails": {"any": ["json"]}}]),
    # ECS takes one testListenerRule; shiftlab a list too.
    put("service.loadBalancers.0.advancedConfiguration.testListenerRule", "prod/test"),
    # `clusterName` (ECS: cluster) and `taskDefinition` (what to run) are shiftlab's.
    put("service.clusterName", "local"),
    # One string for a condition's Values; a listener's Name, Address, TestTrafficRule; Targets as host:port.
    put("loadBalancer.Listeners.0.Rules", [{"Priority": 10, "RuleArn": "arn:rule/1", "Conditions": [
        {"Field": "path-pattern", "Values": "/a"}], "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}]),
    put("loadBalancer.Listeners.0.Address", "127.0.0.1"),
    put("loadBalancer.TargetGroups.0.Targets", ["127.0.0.1:9"]),
    put("loadBalancer.Admin", {"Port": 0, "Address": "127.0.0.1"}),
])
def test_shiftlabs_own_spellings_are_taken_as_before(tmp_path: Path, edit: Edit) -> None:
    data = base(tmp_path)
    edit(data)
    assert problems_of(data) == []


def test_the_examples_and_awss_walkthrough_pass_as_they_are(tmp_path: Path) -> None:
    walkthrough = aws_walkthrough()
    for name in ("canary-deployment-configuration.json", "linear-deployment-configuration.json"):
        assert deployment_configuration_problems(json.loads((walkthrough / name).read_text())) == [], name
    for path in sorted(walkthrough.glob("*-alarm.json")):
        # The business alarm too: AWS takes it (shiftlab refuses its namespace, for its own reason).
        assert put_metric_alarm_problems(json.loads(path.read_text()), "alarm") == [], path.name
    example = yaml.safe_load((REPO / "shiftlab" / "examples" / "shiftlab.yaml").read_text())
    assert problems_of(example) == []


async def test_shiftlab_validate_names_the_field_aws_would_refuse(tmp_path: Path) -> None:
    data = base(tmp_path)
    data[DC]["canaryConfiguration"] = {"canaryPercent": "5"}
    data["loadBalancer"]["TargetGroups"][1]["HealthyThresholdCount"] = "2"
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(data))
    rc, _, err = await cli("validate", "-c", str(path))
    assert rc == 2
    assert "  loadBalancer.TargetGroups[1].HealthyThresholdCount: '2' (a string) - AWS's API takes an integer here" \
        in err.splitlines()
    assert f"  {DC}.canaryConfiguration.canaryPercent: '5' (a string) - AWS's API takes a number here" \
        in err.splitlines()
