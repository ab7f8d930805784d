"""`shiftlab export`: a rehearsed config as AWS takes it.

- `--format cli-json`: each file is checked against botocore's model of the
  call it is for (ecs UpdateService, elbv2 ModifyListener, ModifyRule,
  ModifyTargetGroup, ModifyTargetGroupAttributes, ModifyLoadBalancer-
  Attributes, cloudwatch PutMetricAlarm), offline, with shiftlab.common.
  awsmodel: an unknown field, a wrong type, a missing required field or a
  value outside an enum or a range is a failure, as `aws ... --cli-input-json`
  would refuse it.
- `--format cloudformation`: the snippet passes cfn-lint (AWS's own
  CloudFormation linter, with its resource schemas: errors and warnings).
- Round trip: importing the snippet (`shiftlab import cloudformation`)
  gives back every AWS field of the config. ARNs and the ids AWS assigns
  when it creates a resource (the `/<id>` of a full name) are compared by
  the names they carry: a new stack gets new ones.

Inputs: shiftlab's example config, the configs imported from the
blue/green and CDK templates (tests/interop/templates), and AWS's
walkthrough files (shared/examples/aws-walkthrough) as they are: their
`--deployment-configuration` JSON comes back out of update-service's file
unchanged, their put-metric-alarm JSON out of put-metric-alarm's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from shiftlab.common.awsmodel import problems, service_shapes
from shiftlab.common.naming import target_group_name
from shiftlab.interop.cloudformation import Options, import_template
from shiftlab.interop.exporter import cli_json, cloudformation
from shiftlab.interop.template import load_template
from shiftlab.settings import Settings, load_settings
from tests.helpers import aws_walkthrough

HERE = Path(__file__).parent / "templates"
WALK = aws_walkthrough()
EXAMPLE: dict[str, Any] = yaml.safe_load(
    resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text(encoding="utf-8"))


def _walkthrough(kind: str, alarms: list[str]) -> dict[str, Any]:
    config = json.loads(json.dumps(EXAMPLE))
    config["deploymentConfiguration"] = json.loads((WALK / f"{kind}-deployment-configuration.json").read_text())
    config["alarms"] = [json.loads((WALK / a).read_text()) for a in alarms]
    return config


def _with_hooks() -> dict[str, Any]:
    config = json.loads(json.dumps(EXAMPLE))
    arn = "arn:aws:lambda:us-east-1:123456789012:function:smoke"
    config["deploymentConfiguration"]["lifecycleHooks"] = [
        {"hookTargetArn": arn, "roleArn": "arn:aws:iam::123456789012:role/ecs-hooks",
         "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"], "hookDetails": {"suite": "smoke"},
         "timeoutConfiguration": {"action": "CONTINUE", "timeoutInMinutes": 30}},
        {"targetType": "PAUSE", "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"]},
        {"hookTargetArn": "command:true", "lifecycleStages": ["POST_SCALE_UP"]},
    ]
    config["lambdaFunctions"] = {arn: "command:true"}
    config["loadBalancer"]["Listeners"][0]["Rules"] = [{
        "Priority": 10, "Conditions": [{"Field": "path-pattern", "Values": ["/api/*"]}],
        "Actions": [{"Type": "forward", "TargetGroupArn": "blue"}]}]
    config["loadBalancer"]["LoadBalancerAttributes"] = [{"Key": "idle_timeout.timeout_seconds", "Value": "120"}]
    return config


def _imported(name: str) -> dict[str, Any]:
    return import_template(load_template(HERE / name))[0]


CONFIGS = {
    "example": lambda: json.loads(json.dumps(EXAMPLE)),
    "hooks-and-rules": _with_hooks,
    "walkthrough-linear": lambda: _walkthrough("linear", ["linear-5xx-alarm.json", "linear-latency-alarm.json"]),
    "walkthrough-canary": lambda: _walkthrough("canary", ["canary-errors-alarm.json", "canary-business-alarm.json"]),
    "imported-blue-green": lambda: _imported("ecs-bluegreen.yaml"),
    "imported-cdk": lambda: _imported("WebStack.template.json"),
}

# The API call each file is the input of: (botocore service, input shape).
CALLS = {
    "ecs-update-service": ("ecs", "UpdateServiceRequest"),
    "elbv2-modify-listener": ("elbv2", "ModifyListenerInput"),
    "elbv2-modify-rule": ("elbv2", "ModifyRuleInput"),
    "elbv2-modify-target-group-attributes": ("elbv2", "ModifyTargetGroupAttributesInput"),
    "elbv2-modify-target-group": ("elbv2", "ModifyTargetGroupInput"),
    "elbv2-modify-load-balancer-attributes": ("elbv2", "ModifyLoadBalancerAttributesInput"),
    "cloudwatch-put-metric-alarm": ("cloudwatch", "PutMetricAlarmInput"),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_cli_json_is_what_the_api_takes(name: str) -> None:
    files = cli_json(CONFIGS[name]())
    calls = set()
    for filename, text in files.items():
        if filename == "README.txt":
            continue
        prefix = next(p for p in CALLS if filename.startswith(p + "-") or filename == p + ".json")
        service, shape = CALLS[prefix]
        calls.add(prefix)
        assert problems(service_shapes(service), shape, json.loads(text), "") == [], filename
        assert f"--cli-input-json file://{filename}" in files["README.txt"]
    assert {"ecs-update-service", "elbv2-modify-listener", "elbv2-modify-target-group",
            "cloudwatch-put-metric-alarm"} <= calls


def test_the_model_check_catches_a_bad_file() -> None:
    """The check above is not vacuous: what AWS's API refuses, it refuses."""
    update = json.loads(cli_json(EXAMPLE)["ecs-update-service.json"])
    update["deploymentConfiguration"]["strategy"] = "SIDEWAYS"
    update["deploymentConfiguration"]["bakeTime"] = 3
    found = problems(service_shapes("ecs"), "UpdateServiceRequest", update, "")
    assert any("deploymentConfiguration.strategy" in p for p in found)
    assert "deploymentConfiguration.bakeTime: unknown field" in found


@pytest.mark.parametrize("kind", ["linear", "canary"])
def test_walkthrough_files_come_back_as_they_are(kind: str) -> None:
    alarms = {"linear": ["linear-5xx-alarm.json", "linear-latency-alarm.json"],
              "canary": ["canary-errors-alarm.json", "canary-business-alarm.json"]}[kind]
    files = cli_json(_walkthrough(kind, alarms))
    update = json.loads(files["ecs-update-service.json"])
    # As it went in, with the bake the rehearsal ran (the file has none: CloudFormation would set 15 minutes).
    assert update["deploymentConfiguration"] == {
        **json.loads((WALK / f"{kind}-deployment-configuration.json").read_text()), "bakeTimeInMinutes": 0}
    assert "bakeTimeInMinutes: not in the config; 0, as rehearsed, is written" in files["README.txt"]
    for a in alarms:
        given = json.loads((WALK / a).read_text())
        assert json.loads(files[f"cloudwatch-put-metric-alarm-{given['AlarmName']}.json"]) == given


def test_what_aws_has_no_place_for_is_said() -> None:
    files = cli_json(_with_hooks())
    hooks = json.loads(files["ecs-update-service.json"])["deploymentConfiguration"]["lifecycleHooks"]
    assert [h.get("hookTargetArn") for h in hooks] == ["arn:aws:lambda:us-east-1:123456789012:function:smoke", None]
    readme = files["README.txt"]
    assert "a COMMAND hook is shiftlab's own" in readme
    assert "testListenerRule prod/test: shiftlab's own header rule" in readme
    assert "<TargetGroupArn of blue>" in readme  # the example names its groups, not their ARNs
    adv = json.loads(files["ecs-update-service.json"])["loadBalancers"][0]["advancedConfiguration"]
    assert adv["testListenerRule"] == "<ListenerArn of test>"  # ECS takes one: the real rule, not the header one


def test_imported_arns_are_exported_as_they_are() -> None:
    config = _imported("ecs-bluegreen.yaml")
    files = cli_json(config)
    lb = json.loads(files["ecs-update-service.json"])["loadBalancers"][0]
    assert lb == config["service"]["loadBalancers"][0]
    readme = files["README.txt"]
    assert "<TargetGroupArn" not in readme and "<ListenerArn" not in readme and "<RuleArn" not in readme
    assert "<LoadBalancerArn of prod-web-alb>" in readme  # the config names its load balancer, not its ARN


CFN_RULES = ManualArgs(regions=["us-east-1"])


@pytest.mark.parametrize("name", CONFIGS)
def test_cloudformation_snippet_passes_cfn_lint(name: str) -> None:
    text = cloudformation(CONFIGS[name]())["cloudformation.yaml"]
    assert [str(m) for m in lint(text, config=CFN_RULES)] == []


def test_cfn_lint_catches_a_bad_snippet() -> None:
    text = cloudformation(EXAMPLE)["cloudformation.yaml"].replace("BakeTimeInMinutes", "BakeTime")
    assert any("BakeTime" in str(m) for m in lint(text, config=CFN_RULES))


# -- the round trip ------------------------------------------------------------------------

def _leaves(node: Any, path: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            _leaves(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _leaves(v, f"{path}[{i}]", out)
    elif node is not None:
        out[path] = node
    return out


def aws_fields(s: Settings) -> dict[str, Any]:
    """Every AWS field of the settings (defaults included), references by the
    names they carry; shiftlab's own fields (the admin API, test header rules,
    URL and command hooks, what runs, the controller) left out."""
    lb = s.load_balancer
    ids: dict[str, str] = {}
    for ls in lb.Listeners:
        if ls.ListenerArn:
            ids[ls.ListenerArn] = f"{ls.name}/default"
        ids.update({r.RuleArn: f"{ls.name}/{r.Priority}" for r in ls.Rules if r.RuleArn})

    def norm(node: Any) -> Any:
        if isinstance(node, list):
            return [norm(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k in ("ListenerArn", "RuleArn", "TestTrafficRule", "Admin", "taskDefinition"):
                continue
            if k in ("TargetGroupArn", "targetGroupArn", "alternateTargetGroupArn") and isinstance(v, str):
                v = target_group_name(v)
            elif k == "lifecycleHooks":  # URL and command hooks are shiftlab's own
                v = [h for h in v if not str(h.get("hookTargetArn") or "").startswith(("command:", "http"))]
            elif k == "productionListenerRule":
                v = ids.get(v, v)
            elif k == "testListenerRule":
                v = [ids.get(r, r) for r in v if not ids.get(r, r).endswith("/test")]
            elif k == "Dimensions" and isinstance(v, list):
                v = [{**d, "Value": d["Value"].split("/")[1] if d["Name"] in ("TargetGroup", "LoadBalancer")
                      else d["Value"]} for d in v]
            out[k] = norm(v)
        return out

    dump = {"loadBalancer": lb.model_dump(), "service": s.service.model_dump() if s.service else None,
            "deploymentConfiguration": s.deployment.model_dump(), "alarms": [a.model_dump() for a in s.alarms]}
    return _leaves(norm(dump), "", {})


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_keeps_every_aws_field(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]()
    path = tmp_path / "cloudformation.yaml"
    path.write_text(cloudformation(config)["cloudformation.yaml"])
    back, _ = import_template(load_template(path), Options(), str(path))
    before, after = aws_fields(load_settings(config)), aws_fields(load_settings(back))
    assert {k: v for k, v in before.items() if after.get(k) != v} == {}
    assert len(before) > 60  # every listener, group, alarm and deployment field


def test_cli_export(tmp_path: Path) -> None:
    (tmp_path / "shiftlab.yaml").write_text(yaml.safe_dump(_with_hooks()))
    for fmt, expected in (("cli-json", "ecs-update-service.json"), ("cloudformation", "cloudformation.yaml"),
                          ("terraform", "main.tf")):
        out = subprocess.run([sys.executable, "-m", "shiftlab", "export", "-c", "shiftlab.yaml", "--format", fmt,
                              "-o", fmt], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
        assert out.returncode == 0, out.stderr
        assert (tmp_path / fmt / expected).is_file()
        if fmt != "terraform":  # the Terraform snippet says what it left out in its own comments
            assert (tmp_path / fmt / "README.txt").is_file()
    assert 'resource "aws_ecs_service"' in (tmp_path / "terraform" / "main.tf").read_text()
    (tmp_path / "bad.yaml").write_text("loadBalancer: {}\n")
    out = subprocess.run([sys.executable, "-m", "shiftlab", "export", "-c", "bad.yaml", "-o", "x"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert out.returncode == 2 and "loadBalancer.Listeners: is required" in out.stderr
    assert not (tmp_path / "x").exists()
