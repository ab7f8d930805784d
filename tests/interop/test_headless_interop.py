"""A headless service (neither loadBalancers nor serviceConnectConfiguration)
in and out of AWS's formats.

An AWS::ECS::Service needs no LoadBalancers
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ecs-service.html:
LoadBalancers is "Required: No"; its entries, when given, are
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-loadbalancer.html),
and a queue consumer has none. `shiftlab import cloudformation` and `import
terraform` take such a service as a headless one: strategy, bake, hooks and
alarms as written (an alarm on AWS/SQS or on the workers' own metric), the
Lambda hook at PRODUCTION_TRAFFIC_SHIFT (the activation mechanism) stood in
for by shiftlab's activation hook and said to need a local answer; the
result passes `shiftlab validate`. `shiftlab export` writes it with no ELB
resources (update-service without loadBalancers, checked against botocore's
model; the template passes cfn-lint; the Terraform parses with python-hcl2),
and import(export(config)) keeps every AWS field.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from shiftlab.common.awsmodel import problems, service_shapes
from shiftlab.interop.cloudformation import ACTIVATION_HOOK, Options, import_template
from shiftlab.interop.exporter import cli_json, cloudformation
from shiftlab.interop.template import load_template
from shiftlab.interop.terraform import import_terraform
from shiftlab.interop.terraform_export import render
from shiftlab.settings import load_settings

TEMPLATE = Path(__file__).parent / "templates" / "queue-consumer.yaml"
MODULE = Path(__file__).parent / "data" / "tf_queueconsumer"
ROLE = {"HookRoleArn": "arn:aws:iam::123456789012:role/ecs-hooks"}
HOOK = "arn:aws:lambda:us-east-1:123456789012:function:order-worker-activate"


def example() -> dict[str, Any]:
    return yaml.safe_load(resources.files("shiftlab").joinpath("examples/headless.yaml").read_text())


def with_lambda_activation() -> dict[str, Any]:
    """The example as it would be on AWS: a Lambda function at
    PRODUCTION_TRAFFIC_SHIFT, which the activation hook stands in for here."""
    data = example()
    data["deploymentConfiguration"]["lifecycleHooks"] = [{
        "hookTargetArn": HOOK, "roleArn": ROLE["HookRoleArn"], "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"],
        "hookDetails": {"parameter": "/worker/active"}}]
    data["lambdaFunctions"] = {HOOK: ACTIVATION_HOOK}
    data["alarms"].append({"AlarmName": "orders-oldest-message", "Namespace": "AWS/SQS",
                           "MetricName": "ApproximateAgeOfOldestMessage",
                           "Dimensions": [{"Name": "QueueName", "Value": "orders"}], "Statistic": "Maximum",
                           "Period": 60, "EvaluationPeriods": 3, "Threshold": 300,
                           "ComparisonOperator": "GreaterThanThreshold"})
    data["deploymentConfiguration"]["alarms"]["alarmNames"].append("orders-oldest-message")
    return data


def imported_template() -> dict[str, Any]:
    return import_template(load_template(TEMPLATE), Options(parameters=dict(ROLE)))[0]


CONFIGS = {"the headless example": example, "a Lambda activation hook and an SQS alarm": with_lambda_activation,
           "the queue consumer template's import": imported_template,
           "the queue consumer module's import": lambda: import_terraform(MODULE).config}


def aws_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The AWS fields of a headless config (defaults filled in): the service
    but what runs, the deployment configuration without shiftlab's command
    hooks, the alarms."""
    s = load_settings(copy.deepcopy(data))
    assert s.service is not None and s.service.exposure == "headless"
    svc = s.service.model_dump()
    svc.pop("taskDefinition")
    dc = s.deployment.model_dump()
    dc["lifecycleHooks"] = [h for h in dc["lifecycleHooks"] if str(h["hookTargetArn"]).startswith("arn:")]
    return {"service": svc, "deploymentConfiguration": dc, "alarms": [a.model_dump() for a in s.alarms]}


# -- import --------------------------------------------------------------------------------

def test_the_queue_consumer_template_imports_as_a_headless_service() -> None:
    config, report = import_template(load_template(TEMPLATE), Options(parameters=dict(ROLE)))
    s = load_settings(json.loads(json.dumps(config)))  # as `shiftlab validate` reads it
    assert s.service is not None and s.service.exposure == "headless"
    assert "loadBalancer" not in config and "loadBalancers" not in config["service"]
    dc = config["deploymentConfiguration"]
    assert (dc["strategy"], dc["bakeTimeInMinutes"]) == ("BLUE_GREEN", 10)
    assert dc["alarms"] == {"alarmNames": ["orders-oldest-message", "order-worker-failures"], "enable": True,
                            "rollback": True}
    assert dc["lifecycleHooks"] == [{"hookTargetArn": HOOK, "roleArn": ROLE["HookRoleArn"],
                                     "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"],
                                     "hookDetails": {"parameter": "/order-worker/active-revision"}}]
    sqs = config["alarms"][0]
    assert (sqs["Namespace"], sqs["MetricName"], sqs["Dimensions"]) == (
        "AWS/SQS", "ApproximateAgeOfOldestMessage", [{"Name": "QueueName", "Value": "orders"}])
    assert config["lambdaFunctions"] == {HOOK: ACTIVATION_HOOK}
    local = {e.target: e.reason for e in report.of("local")}
    assert "the activation mechanism of this headless service" in local[f"lambdaFunctions.{HOOK}"]
    assert "shiftlab's activation hook stands in" in local[f"lambdaFunctions.{HOOK}"]
    assert config["service"]["taskDefinition"]["command"] == ["{python}", "-m", "shiftlab.queue_consumer"]
    # The template's SQS URL is not reached from here: the sample consumer reads shiftlab's work queue.
    assert config["service"]["taskDefinition"]["environment"]["QUEUE_URL"] == "http://127.0.0.1:9300"
    assert "https://sqs.us-east-1.amazonaws.com/123456789012/orders" in local[
        "service.taskDefinition.environment.QUEUE_URL"]


def test_the_queue_consumer_module_imports_as_a_headless_service() -> None:
    imported = import_terraform(MODULE)
    config = imported.config
    s = load_settings(json.loads(json.dumps(config)))
    assert s.service is not None and s.service.exposure == "headless" and "loadBalancer" not in config
    dc = config["deploymentConfiguration"]
    assert (dc["strategy"], dc["bakeTimeInMinutes"]) == ("BLUE_GREEN", 10)
    assert dc["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert [a["AlarmName"] for a in config["alarms"]] == ["orders-oldest-message", "order-worker-failures"]
    assert config["lambdaFunctions"] == {"order-worker-activate": ACTIVATION_HOOK}
    assert "the activation mechanism of this headless service" in imported.text()


@pytest.mark.parametrize("importer", ["cloudformation", "terraform"])
def test_without_an_activation_hook_the_import_says_so(importer: str, tmp_path: Path) -> None:
    if importer == "cloudformation":
        text = TEMPLATE.read_text()
        start = text.index("        LifecycleHooks:")
        (tmp_path / "t.yaml").write_text(text[:start])
        config, report = import_template(load_template(tmp_path / "t.yaml"), Options(parameters=dict(ROLE)))
        local = {e.target: e.reason for e in report.of("local")}
    else:
        text = (MODULE / "main.tf").read_text()
        start, end = text.index("    lifecycle_hook {"), text.index("  deployment_circuit_breaker")
        (tmp_path / "main.tf").write_text(text[:start] + "  }\n\n" + text[end:])
        imported = import_terraform(tmp_path)
        config = imported.config
        local = {e.target: e.reason for e in imported.report.of("local")}
    assert "nothing activates green here" in local["deploymentConfiguration.lifecycleHooks"]
    assert "shiftlab.activation_hook" in local["deploymentConfiguration.lifecycleHooks"]
    load_settings(json.loads(json.dumps(config)))


@pytest.mark.parametrize("importer", ["cloudformation", "terraform"])
def test_the_import_command_writes_a_file_validate_accepts(importer: str, tmp_path: Path) -> None:
    out = tmp_path / "shiftlab.yaml"
    source = [str(TEMPLATE), "--parameter", f"HookRoleArn={ROLE['HookRoleArn']}"] if importer == "cloudformation" \
        else [str(MODULE)]
    res = subprocess.run([sys.executable, "-m", "shiftlab", "import", importer, *source, "-o", str(out)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    ok = subprocess.run([sys.executable, "-m", "shiftlab", "validate", "-c", str(out)],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr + ok.stdout


# -- export --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_cli_json_is_update_service_without_load_balancers(name: str) -> None:
    files = cli_json(CONFIGS[name]())
    assert not [f for f in files if f.startswith("elbv2-")]
    update = json.loads(files["ecs-update-service.json"])
    assert "loadBalancers" not in update
    assert problems(service_shapes("ecs"), "UpdateServiceRequest", update, "") == []
    for f, text in files.items():
        if f.startswith("cloudwatch-put-metric-alarm-"):
            assert problems(service_shapes("cloudwatch"), "PutMetricAlarmInput", json.loads(text), "") == [], f
    assert "headless" in files["README.txt"]


def test_the_export_says_what_activates_green_on_aws() -> None:
    readme = cli_json(example())["README.txt"]  # the example activates with the command hook, shiftlab's own
    assert "no Lambda hook at PRODUCTION_TRAFFIC_SHIFT" in readme
    assert "no Lambda hook" not in cli_json(with_lambda_activation())["README.txt"]


@pytest.mark.parametrize("name", CONFIGS)
def test_the_cloudformation_export_has_no_elb_resources_and_passes_cfn_lint(name: str) -> None:
    text = cloudformation(CONFIGS[name]())["cloudformation.yaml"]
    assert [str(m) for m in lint(text, config=ManualArgs(regions=["us-east-1"]))] == []
    types = {r["Type"] for r in yaml.safe_load(text)["Resources"].values()}
    assert types <= {"AWS::ECS::Service", "AWS::CloudWatch::Alarm"}
    assert "LoadBalancers" not in yaml.safe_load(text)["Resources"][next(
        k for k, r in yaml.safe_load(text)["Resources"].items() if r["Type"] == "AWS::ECS::Service")]["Properties"]


@pytest.mark.parametrize("name", CONFIGS)
def test_the_terraform_export_parses_with_no_load_balancer(name: str) -> None:
    text = render(CONFIGS[name]())
    types = {t.strip('"') for entry in hcl2.loads(text)["resource"] for t in entry}
    assert types <= {"aws_ecs_service", "aws_cloudwatch_metric_alarm", "aws_ecs_task_definition"}
    assert "load_balancer {" not in text


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_through_cloudformation_keeps_every_aws_field(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]()
    path = tmp_path / "cloudformation.yaml"
    path.write_text(cloudformation(config)["cloudformation.yaml"])
    back, _ = import_template(load_template(path), Options(), str(path))
    assert aws_fields(back) == aws_fields(config)


@pytest.mark.parametrize("name", CONFIGS)
def test_round_trip_through_terraform_keeps_every_aws_field(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]()
    (tmp_path / "main.tf").write_text(render(config))
    back = import_terraform(tmp_path).config
    assert aws_fields(back) == aws_fields(config)


def test_the_export_command_writes_a_headless_service(tmp_path: Path) -> None:
    (tmp_path / "shiftlab.yaml").write_text(yaml.safe_dump(with_lambda_activation()))
    for fmt in ("cli-json", "cloudformation", "terraform"):
        out = subprocess.run([sys.executable, "-m", "shiftlab", "export", "-c", "shiftlab.yaml", "--format", fmt,
                              "-o", fmt], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
        assert out.returncode == 0, out.stderr
