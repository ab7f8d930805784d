"""The Terraform export: what it writes parses back with python-hcl2 as the
AWS provider's resources, and import(export(config)) keeps every AWS field
of the config (the local parts -- listener ports, shiftlab's header test
route, the command a task runs -- are the config's own and stay out)."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from shiftlab.common.naming import target_group_name
from shiftlab.interop.terraform import import_terraform
from shiftlab.interop.terraform_export import render
from shiftlab.settings import load_settings

MODULE = Path(__file__).parent / "data" / "tf_bluegreen"


def example() -> dict[str, Any]:
    return yaml.safe_load(resources.files("shiftlab").joinpath("examples/shiftlab.yaml").read_text())


def walkthrough() -> dict[str, Any]:
    return import_terraform(MODULE, [str(MODULE / "prod.tfvars")]).config


def with_lambda_hook() -> dict[str, Any]:
    data = example()
    data["deploymentConfiguration"]["lifecycleHooks"] = [{
        "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:check",
        "roleArn": "arn:aws:iam::123456789012:role/hooks",
        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"],
        "hookDetails": {"path": "/health", "retries": 3, "nested": {"on": True}}}]
    data["lambdaFunctions"] = {"check": "command:{python} -m shiftlab.demo_hook"}
    data["deploymentConfiguration"]["strategy"] = "LINEAR"
    data["deploymentConfiguration"]["linearConfiguration"] = {"stepPercent": 25, "stepBakeTimeInMinutes": 2}
    data["deploymentConfiguration"]["maximumPercent"] = 150
    data["loadBalancer"]["Listeners"][0]["Rules"] = [{
        "Priority": 10,
        "Conditions": [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Canary",
                                                                     "Values": ["yes"]}},
                       {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}]}}],
        "Actions": [{"Type": "forward", "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": "blue", "Weight": 100}, {"TargetGroupArn": "green", "Weight": 0}],
            "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300}}}]}]
    data["service"]["taskDefinition"]["cpu"] = 256
    data["service"]["taskDefinition"]["family"] = "web"
    return data


CONFIGS = {"the walkthrough module's import": walkthrough, "the annotated example": example,
           "hooks, linear, rules with conditions": with_lambda_hook}


def aws_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The config's AWS fields, as the models read them (defaults filled in),
    without what is local: listener ports and addresses, shiftlab's header
    test route, the admin API, the task's command; an alarm dimension's ARN
    suffix is compared by the name it holds (Terraform knows the id only
    after apply)."""
    s = load_settings(copy.deepcopy(data))
    lb = s.load_balancer.model_dump(exclude={"Admin"})
    for listener in lb["Listeners"]:
        for key in ("Port", "Address", "TestTrafficRule"):
            listener.pop(key)
    assert s.service is not None
    svc = s.service.model_dump()
    for key in ("command", "image", "environment", "containerPort", "stopTimeout"):
        svc["taskDefinition"].pop(key)
    adv = svc["loadBalancers"][0]["advancedConfiguration"]
    if adv is not None:
        adv["testListenerRule"] = [r for r in adv["testListenerRule"] if not r.endswith("/test")]
    alarms = [a.model_dump() for a in s.alarms]
    for a in alarms:
        dims = list(a["Dimensions"] or [])
        for q in a["Metrics"] or []:
            if q["MetricStat"]:
                dims += q["MetricStat"]["Metric"]["Dimensions"]
        for d in dims:
            if d["Name"] == "TargetGroup":
                d["Value"] = target_group_name(d["Value"])
            elif d["Name"] == "LoadBalancer":
                d["Value"] = d["Value"].split("/")[1]
    return {"loadBalancer": lb, "service": svc, "deploymentConfiguration": s.deployment.model_dump(),
            "alarms": alarms}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_export_parses_back_as_the_providers_resources(name: str) -> None:
    text = render(CONFIGS[name]())
    doc = hcl2.loads(text)
    types = {t.strip('"') for entry in doc["resource"] for t in entry}
    assert {"aws_lb", "aws_lb_target_group", "aws_lb_listener", "aws_cloudwatch_metric_alarm",
            "aws_ecs_service"} <= types


@pytest.mark.parametrize("name", CONFIGS)
def test_import_of_the_export_keeps_every_aws_field(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]()
    (tmp_path / "main.tf").write_text(render(config))
    back = import_terraform(tmp_path).config
    assert aws_fields(back) == aws_fields(config)


def test_what_has_no_terraform_equivalent_is_said_in_comments() -> None:
    data = example()
    data["deploymentConfiguration"]["lifecycleHooks"] = [
        {"hookTargetArn": "command:{python} -m shiftlab.demo_hook", "lifecycleStages": ["POST_SCALE_UP"]}]
    text = render(data)
    assert "header test route (TestTrafficRule) is shiftlab's own" in text
    assert "lifecycleHooks[0]: 'command:{python} -m shiftlab.demo_hook' has no lifecycle_hook" in text
    # A listener's default rule has no Terraform resource: a variable holds it.
    assert 'variable "prod_default_rule_arn"' in text
    assert "production_listener_rule   = var.prod_default_rule_arn" in text


def test_strings_are_escaped_for_hcl_templates() -> None:
    data = example()
    data["alarms"][0]["AlarmDescription"] = 'uses ${literal} and %{x} and "quotes"'
    (text,) = [render(data)]
    alarm = next(e for e in hcl2.loads(text)["resource"] if '"aws_cloudwatch_metric_alarm"' in e)
    body = next(iter(alarm['"aws_cloudwatch_metric_alarm"'].values()))
    assert body["alarm_description"] == '"uses $${literal} and %%{x} and \\"quotes\\""'


def test_files_checks_the_config_first() -> None:
    from shiftlab.common.configfile import ConfigError
    from shiftlab.interop.terraform_export import files

    assert set(files(example())) == {"main.tf"}
    bad = example()
    bad["deploymentConfiguration"]["canaryConfiguration"]["canaryPercent"] = 0
    with pytest.raises(ConfigError, match="canaryPercent: 0 is out of range"):
        files(bad)
