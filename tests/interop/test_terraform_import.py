"""`shiftlab import terraform DIR` on a module shaped as AWS's ECS blue/green
walkthrough (an ALB, two target groups, production and test listener rules,
alarms on the green group, a lifecycle hook), with the AWS provider's
arguments (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ecs_service,
.../lb_listener_rule, .../lb_target_group, .../cloudwatch_metric_alarm);
and what it refuses, naming the resource and the argument."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.interop.terraform import import_terraform
from shiftlab.settings import load_settings

MODULE = Path(__file__).parent / "data" / "tf_bluegreen"
VARS = str(MODULE / "prod.tfvars")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    d = tmp_path / "module"
    shutil.copytree(MODULE, d)
    return d


def edit(d: Path, old: str, new: str, name: str = "main.tf") -> None:
    text = (d / name).read_text()
    assert old in text
    (d / name).write_text(text.replace(old, new))


def test_the_walkthrough_module_becomes_a_valid_config() -> None:
    imported = import_terraform(MODULE, [VARS])
    c = imported.config
    settings = load_settings(c)
    assert settings.warnings() == []
    lb = c["loadBalancer"]
    assert lb["Name"] == "web-bg-alb"
    assert lb["LoadBalancerAttributes"] == [{"Key": "idle_timeout.timeout_seconds", "Value": "120"}]
    assert [tg["Name"] for tg in lb["TargetGroups"]] == ["web-bg-blue", "web-bg-green"]
    blue = lb["TargetGroups"][0]
    assert blue["HealthCheckPath"] == "/health" and blue["HealthCheckIntervalSeconds"] == 10
    assert blue["Matcher"] == {"HttpCode": "200-299"}
    assert blue["TargetGroupAttributes"] == [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
    prod, test = lb["Listeners"]
    assert prod["Name"] == "prod" and test["Name"] == "test"
    # AWS's port 80 needs root here: raised past the module's own 8080.
    assert prod["Port"] == 8081 and test["Port"] == 8080
    assert prod["TestTrafficRule"] == {"Enabled": False}
    assert prod["Rules"][0]["Actions"][0]["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": "web-bg-blue", "Weight": 100}, {"TargetGroupArn": "web-bg-green", "Weight": 0}]
    assert prod["Rules"][0]["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
    svc = c["service"]
    assert svc["serviceName"] == "web" and svc["clusterName"] == "web-bg-cluster" and svc["desiredCount"] == 2
    assert svc["taskDefinition"]["family"] == "web" and svc["taskDefinition"]["cpu"] == 256
    adv = svc["loadBalancers"][0]["advancedConfiguration"]
    assert svc["loadBalancers"][0]["targetGroupArn"] == "web-bg-blue"
    assert adv["alternateTargetGroupArn"] == "web-bg-green"
    assert adv["productionListenerRule"] == "prod/1" and adv["testListenerRule"] == ["test/1"]
    assert adv["roleArn"] == "arn:aws:iam::000000000000:role/web-bg-ecs-infrastructure"
    dc = c["deploymentConfiguration"]
    assert dc["strategy"] == "CANARY" and dc["bakeTimeInMinutes"] == 5
    assert dc["canaryConfiguration"] == {"canaryPercent": 10, "canaryBakeTimeInMinutes": 10}
    assert dc["lifecycleHooks"] == [{
        "hookTargetArn": "arn:aws:lambda:eu-west-1:123456789012:function:smoke-test",
        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
        "roleArn": "arn:aws:iam::000000000000:role/web-bg-ecs-infrastructure",
        "hookDetails": {"smokeTestPath": "/health"}}]
    assert dc["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert dc["alarms"] == {"alarmNames": ["web-bg-green-5xx", "web-bg-p99"], "enable": True, "rollback": True}
    five, p99 = c["alarms"]
    assert five["Dimensions"] == [{"Name": "TargetGroup", "Value": "targetgroup/web-bg-green/0123456789abcdef"},
                                  {"Name": "LoadBalancer", "Value": "app/web-bg-alb/0123456789abcdef"}]
    assert p99["Metrics"][0]["MetricStat"]["Stat"] == "p99"
    assert c["lambdaFunctions"] == {"smoke-test": "command:{python} -m shiftlab.demo_hook"}


def test_the_report_says_what_was_mapped_ignored_and_left_to_answer() -> None:
    report = import_terraform(MODULE, [VARS]).report
    mapped = {e.source: e.target for e in report.of("mapped")}
    assert mapped["aws_ecs_service.web.deployment_configuration.canary_configuration.canary_percent"] == \
        "deploymentConfiguration.canaryConfiguration.canaryPercent"
    assert mapped["aws_lb_listener_rule.prod.action.forward.target_group[1].weight"] == \
        "loadBalancer.Listeners[0].Rules[0].Actions[0].ForwardConfig.TargetGroups[1].Weight"
    ignored = {e.source: e.reason for e in report.of("ignored")}
    assert "networking" in ignored["aws_ecs_service.web.network_configuration"]
    assert "aws_lb_target_group.blue.vpc_id" in ignored
    assert "aws_iam_role.ecs_infrastructure" in ignored
    asked = {e.target: e.reason for e in report.of("local")}
    assert "service.taskDefinition.command" in asked and "lambdaFunctions.smoke-test" in asked
    assert "loadBalancer.Listeners[0].Port" in asked


def test_variables_from_flags_override_files(module: Path) -> None:
    c = import_terraform(module, [str(module / "prod.tfvars")], ["canary_percent=25", "name=shop"]).config
    assert c["deploymentConfiguration"]["canaryConfiguration"]["canaryPercent"] == 25
    assert c["service"]["serviceName"] == "shop" and c["loadBalancer"]["Name"] == "shop-bg-alb"


def test_terraform_tfvars_is_read_as_terraform_reads_it(module: Path) -> None:
    shutil.copy(module / "prod.tfvars", module / "terraform.tfvars")
    assert import_terraform(module).config["service"]["serviceName"] == "web"


def test_the_command_writes_a_config_that_validate_accepts(tmp_path: Path) -> None:
    out = tmp_path / "shiftlab.yaml"
    res = run("import", "terraform", str(MODULE), "--var-file", VARS, "-o", str(out), "--region", "eu-west-1",
              "--account-id", "123456789012")
    assert res.returncode == 0, res.stderr
    assert "Needs a local answer" in res.stdout and "Ignored" in res.stdout
    text = out.read_text()
    assert text.startswith("# SHIFTLAB-LOCAL")
    # Each placeholder's own line is marked too.
    assert "    Port: 8081  # SHIFTLAB-LOCAL\n" in text and "    command:  # SHIFTLAB-LOCAL\n" in text
    assert "arn:aws:iam::123456789012:role/web-bg-ecs-infrastructure" in text
    ok = run("validate", "-c", str(out))
    assert ok.returncode == 0, ok.stderr
    # An existing file is kept unless --force.
    again = run("import", "terraform", str(MODULE), "--var-file", VARS, "-o", str(out))
    assert again.returncode == 1 and "--force" in again.stderr
    report = tmp_path / "report.json"
    as_json = run("import", "terraform", str(MODULE), "--var-file", VARS, "-o", str(out), "--force",
                  "--report", str(report))
    assert as_json.returncode == 0
    assert {"mapped", "ignored", "local"} <= set(yaml.safe_load(report.read_text()))


@pytest.mark.parametrize(("change", "message"), [
    # No ECS service, two services.
    (lambda d: edit(d, 'resource "aws_ecs_service" "web"', 'resource "aws_ecs_cluster" "other"'),
     "aws_ecs_service: the module declares none"),
    (lambda d: (d / "second.tf").write_text('resource "aws_ecs_service" "api" {\n  name = "api"\n}\n'),
     "declares 2 (aws_ecs_service.web, aws_ecs_service.api)"),
    # Unresolvable references: a resource the module does not declare, a variable without a value.
    (lambda d: edit(d, "aws_lb_target_group.green.arn\n      production", "aws_lb_target_group.purple.arn\n"
                                                                          "      production"),
     "aws_ecs_service.web: load_balancer.advanced_configuration.alternate_target_group_arn: "
     "aws_lb_target_group.purple is not a resource of this module"),
    (lambda d: (d / "prod.tfvars").write_text('vpc_id = "vpc-1"\nsubnet_ids = []\n'),
     "deployment_configuration.lifecycle_hook.hook_target_arn: var.hook_function_arn has no value"),
    # An expression the reader does not evaluate.
    (lambda d: edit(d, "desired_count   = 2", "desired_count   = var.canary_percent > 5 ? 2 : 3"),
     "aws_ecs_service.web: desired_count: the expression"),
    (lambda d: edit(d, 'protocol          = "HTTP"\n\n  default_action {\n    type = "fixed-response"\n    '
                       'fixed_response {\n      content_type = "text/plain"\n      message_body',
                    'protocol          = "TCP"\n\n  default_action {\n    type = "fixed-response"\n    '
                    'fixed_response {\n      content_type = "text/plain"\n      message_body'),
     "aws_lb_listener.prod: protocol: 'TCP'"),
    (lambda d: edit(d, "aws_cloudwatch_metric_alarm.p99.alarm_name,", '"not-in-module",'),
     "aws_ecs_service.web: alarms.alarm_names: 'not-in-module' names no aws_cloudwatch_metric_alarm"),
    (lambda d: edit(d, "  desired_count   = 2\n", '  desired_count   = 2\n  deployment_controller {\n    type = '
                                        '"CODE_DEPLOY"\n  }\n'),
     "deployment_controller.type: 'CODE_DEPLOY'"),
    (lambda d: (d / "broken.tf").write_text('resource "aws_lb" "x" {\n  name = \n'), "broken.tf: not valid HCL"),
])
def test_bad_modules_are_refused_naming_the_resource_and_argument(module: Path, tmp_path: Path, change,
                                                                  message: str) -> None:
    change(module)
    with pytest.raises(ConfigError) as err:
        import_terraform(module, [str(module / "prod.tfvars")])
    assert message in str(err.value)
    # From the command line: exit 2, and nothing written.
    out = tmp_path / "out.yaml"
    res = run("import", "terraform", str(module), "--var-file", str(module / "prod.tfvars"), "-o", str(out))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not out.exists()


def test_a_config_validate_would_refuse_is_not_written(module: Path, tmp_path: Path) -> None:
    """canary_percent 0.05 is below ECS's 0.1: the import maps it as it is,
    and the check before writing refuses it with validate's words."""
    out = tmp_path / "out.yaml"
    res = run("import", "terraform", str(module), "--var-file", str(module / "prod.tfvars"), "--var",
              "canary_percent=0.05", "-o", str(out))
    assert res.returncode == 2
    assert "deploymentConfiguration.canaryConfiguration.canaryPercent: 0.05 is out of range" in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [module]


def test_count_one_a_rule_without_priority_and_a_default_rule_by_variable(module: Path) -> None:
    """`count = 1` resources are read through `[0]`; a rule without a
    priority gets the next free one, as AWS gives it (reported); the
    production rule may be a listener's default rule, named through a
    variable as the export writes it."""
    edit(module, 'resource "aws_lb_target_group" "green" {\n', 'resource "aws_lb_target_group" "green" {\n'
                                                                 '  count = 1\n')
    text = (module / "main.tf").read_text().replace("aws_lb_target_group.green.", "aws_lb_target_group.green[0].")
    text = text.replace("  listener_arn = aws_lb_listener.test.arn\n  priority     = 1\n",
                        "  listener_arn = aws_lb_listener.test.arn\n")
    text = text.replace("production_listener_rule   = aws_lb_listener_rule.prod.arn",
                        "production_listener_rule   = var.prod_default_rule")
    (module / "main.tf").write_text(text + '\nvariable "prod_default_rule" {\n  default = "prod/default"\n}\n')
    imported = import_terraform(module, [str(module / "prod.tfvars")])
    c = imported.config
    load_settings(c)
    adv = c["service"]["loadBalancers"][0]["advancedConfiguration"]
    assert adv["alternateTargetGroupArn"] == "web-bg-green"
    assert adv["productionListenerRule"] == "prod/default"
    assert c["loadBalancer"]["Listeners"][1]["Rules"][0]["Priority"] == 1
    assert any("has none" in e.reason for e in imported.report.of("local"))


def test_a_rolling_service_without_advanced_configuration(module: Path) -> None:
    text = (module / "main.tf").read_text()
    start = text.index("    advanced_configuration {")
    end = text.index("    }\n", start) + len("    }\n")
    text = text[:start] + text[end:]
    text = text.replace('strategy             = "CANARY"', 'strategy             = "ROLLING"')
    start = text.index("    canary_configuration {")
    end = text.index("    lifecycle_hook {")
    text = text[:start] + text[end:]
    start = text.index("    lifecycle_hook {")
    end = text.index("  deployment_circuit_breaker")
    text = text[:start] + "  }\n\n" + text[end:]
    (module / "main.tf").write_text(text)
    # The service's listener is the one forwarding to its target group.
    edit(module, 'default_action {\n    type = "fixed-response"\n    fixed_response {\n      content_type = '
                 '"text/plain"\n      message_body = "not found"\n      status_code  = "404"\n    }\n  }',
         'default_action {\n    type             = "forward"\n    target_group_arn = aws_lb_target_group.blue.arn\n'
         '  }')
    c = import_terraform(module, [str(module / "prod.tfvars")]).config
    load_settings(c)
    assert c["deploymentConfiguration"]["strategy"] == "ROLLING"
    assert "advancedConfiguration" not in c["service"]["loadBalancers"][0]
    assert c["loadBalancer"]["Listeners"][0]["DefaultActions"] == [{"Type": "forward",
                                                                    "TargetGroupArn": "web-bg-blue"}]
