"""`shiftlab import cloudformation`: a template's ECS service as a shiftlab
config that `shiftlab validate` accepts, AWS's fields unchanged, and a
report of what was mapped, ignored (and why), and what needs a local answer.

Inputs: `templates/ecs-bluegreen.yaml`, shaped like the ECS-native target
template of AWS's "Migrating an AWS CloudFormation CodeDeploy blue/green
deployment template to an Amazon ECS blue/green AWS CloudFormation template"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-codedeploy-to-ecs-bluegreen-cloudformation-template.html:
an ALB, two target groups, a production and a test listener rule, the
service's AdvancedConfiguration), with CloudWatch alarms and a Lambda
lifecycle hook; `templates/WebStack.template.json`, as `cdk synth` writes
one (long forms, `aws:cdk:path` metadata, generated names); AWS's
walkthrough alarms (shared/examples/aws-walkthrough) as alarm properties as
they are. The service's property names are AWS::ECS::Service's
DeploymentConfiguration's
(https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentconfiguration.html).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.interop.cloudformation import Options, import_template
from shiftlab.interop.report import ImportProblem
from shiftlab.interop.template import find_template, load_template
from shiftlab.settings import load_settings
from tests.helpers import aws_walkthrough

HERE = Path(__file__).parent / "templates"
BLUE_GREEN = HERE / "ecs-bluegreen.yaml"
CDK = HERE / "WebStack.template.json"
REPO = Path(__file__).resolve().parents[2]


def imported(path: Path, **opts: Any) -> tuple[dict[str, Any], Any]:
    return import_template(load_template(path), Options(**opts), str(path))


def test_blue_green_template() -> None:
    config, report = imported(BLUE_GREEN)
    s = load_settings(config)
    svc = s.service
    assert svc is not None
    assert (svc.serviceName, svc.clusterName, svc.desiredCount, svc.healthCheckGracePeriodSeconds) == \
        ("web", "demo", 4, 30)  # DesiredCount through Fn::FindInMap
    dc = config["deploymentConfiguration"]
    assert dc == {
        "strategy": "CANARY", "bakeTimeInMinutes": 5,  # a Number parameter's Default
        "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 10},  # FindInMap, Fn::If
        "maximumPercent": 200, "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "alarms": {"alarmNames": ["prod-web-5xx", "prod-web-latency"], "enable": True, "rollback": True},
        "lifecycleHooks": [{
            "hookTargetArn": "arn:aws:lambda:us-east-1:123456789012:function:shiftlab-import-pre-shift",
            "roleArn": dc["lifecycleHooks"][0]["roleArn"], "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "hookDetails": {"checks": ["smoke"]}},
            {"targetType": "PAUSE", "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
             "timeoutConfiguration": {"action": "CONTINUE", "timeoutInMinutes": 60}}],
    }
    assert dc["lifecycleHooks"][0]["roleArn"].startswith("arn:aws:iam::123456789012:role/")
    adv = svc.lb.advancedConfiguration
    assert adv is not None
    lb = s.load_balancer
    assert lb.Name == "prod-web-alb"
    assert [tg.Name for tg in lb.TargetGroups] == ["prod-web-blue", "prod-web-green"]
    blue = lb.TargetGroups[0]
    assert (blue.HealthCheckPath, blue.HealthCheckIntervalSeconds, blue.UnhealthyThresholdCount,
            blue.Matcher.HttpCode, blue.deregistration_delay) == ("/health", 10, 3, "200-299", 30)
    assert svc.lb.targetGroupArn == blue.TargetGroupArn
    assert adv.alternateTargetGroupArn == lb.TargetGroups[1].TargetGroupArn
    prod, test = lb.Listeners
    assert adv.productionListenerRule == prod.Rules[0].RuleArn
    assert adv.testListenerRule == [test.Rules[0].RuleArn]
    assert (prod.Port, test.Port) == (8081, 8080)  # 80 -> 8080 is the test listener's: the next one up
    assert not prod.TestTrafficRule.Enabled and not test.TestTrafficRule.Enabled
    # The alarms the service names, with their dimensions resolved; not the billing alarm.
    assert [a.AlarmName for a in s.alarms] == ["prod-web-5xx", "prod-web-latency"]
    dims = {d.Name: d.Value for d in s.alarms[0].Dimensions or []}
    assert dims["TargetGroup"].startswith("targetgroup/prod-web-green/")
    assert dims["LoadBalancer"].startswith("app/prod-web-alb/")
    assert s.alarms[1].Metrics is not None and s.alarms[1].Metrics[2].Expression == "MAX([blue, green])"
    assert s.alarms[1].Threshold == 1.5
    assert svc.taskDefinition.environment == {"GREETING": "hello", "REGION": "us-east-1"}
    assert (svc.taskDefinition.family, svc.taskDefinition.cpu, svc.taskDefinition.memory) == ("web", 256, 512)

    r = report.as_dict()
    ignored = {e["source"]: e["reason"] for e in r["ignored"]}
    assert "subnets" in ignored["ECSDemoService.Properties.NetworkConfiguration"]
    assert "IAM" in ignored["ECSTaskDefinition.Properties.ExecutionRoleArn"]
    assert "does not name" in ignored["UnrelatedAlarm"]
    assert "not modelled" in ignored["ALBTargetGroupBlue.Properties.TargetGroupAttributes.stickiness.enabled"]
    local = {e["target"] for e in r["local"]}
    assert {"service.taskDefinition.command", "listener ALBListenerProdTraffic.Port",
            f"lambdaFunctions.{dc['lifecycleHooks'][0]['hookTargetArn']}", "timeScale"} == local
    mapped = {e["source"] for e in r["mapped"]}
    assert "ECSDemoService.Properties.DeploymentConfiguration.LifecycleHooks" in mapped
    assert "ECSDemoService.Properties.LoadBalancers[0].AdvancedConfiguration.ProductionListenerRule" in mapped


def test_parameters_from_the_command_line_change_the_config() -> None:
    config, _ = imported(BLUE_GREEN, parameters={"Environment": "staging", "BakeMinutes": "1"},
                         command=["{python}", "-m", "http.server"], listener_ports={80: 9000})
    assert config["service"]["desiredCount"] == 2
    assert config["deploymentConfiguration"]["canaryConfiguration"] == {"canaryPercent": 50,
                                                                         "canaryBakeTimeInMinutes": 2}
    assert config["deploymentConfiguration"]["bakeTimeInMinutes"] == 1
    assert [tg["Name"] for tg in config["loadBalancer"]["TargetGroups"]] == ["staging-web-blue", "staging-web-green"]
    assert config["service"]["taskDefinition"]["command"] == ["{python}", "-m", "http.server"]
    assert config["loadBalancer"]["Listeners"][0]["Port"] == 9000
    load_settings(config)


@pytest.mark.parametrize(("strategy", "bake"), [("CANARY", 15), ("LINEAR", 15), ("BLUE_GREEN", 15), ("ROLLING", 0)])
def test_bake_time_cloudformation_sets(strategy: str, bake: int) -> None:
    """AWS::ECS::Service DeploymentConfiguration, BakeTimeInMinutes: "For blue/green, linear, and canary
    deployments, the value is set to 15 minutes" when the template does not say
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentconfiguration.html)."""
    template = load_template(BLUE_GREEN)
    dc = template["Resources"]["ECSDemoService"]["Properties"]["DeploymentConfiguration"]
    dc.pop("BakeTimeInMinutes")
    dc["Strategy"] = strategy
    if strategy == "ROLLING":
        dc.pop("LifecycleHooks")  # ECS runs hooks only for the others
    config, report = import_template(template)
    assert load_settings(config).deployment.bakeTimeInMinutes == bake
    notes = [e.reason for e in report.of("mapped") if e.target == "deploymentConfiguration.bakeTimeInMinutes"]
    assert notes == ([f"not given: CloudFormation sets 15 for {strategy}"] if bake else [])


def test_cdk_synthesized_template() -> None:
    """Long forms, generated names (no Name, no AlarmName), metadata and
    CDK's own resources and parameters, which nothing mapped reads."""
    config, report = imported(CDK)
    s = load_settings(config)
    assert s.service is not None
    assert s.deployment.strategy == "LINEAR"
    assert (s.deployment.linearConfiguration.stepPercent, s.deployment.bakeTimeInMinutes) == (25, 3)  # "3": a number
    names = [tg.Name for tg in s.load_balancer.TargetGroups]
    assert all(len(n) <= 32 for n in names) and names[0].startswith("shiftlab-BlueTG")
    (listener,) = s.load_balancer.Listeners
    assert [r.Priority for r in listener.Rules] == [5, 10]
    assert s.service.lb.advancedConfiguration is not None
    assert s.service.lb.advancedConfiguration.testListenerRule == [listener.Rules[0].RuleArn]
    (alarm,) = s.alarms
    assert alarm.AlarmName == s.deployment.alarms.alarmNames[0]  # the generated name, through Ref
    assert alarm.Metrics is not None
    dims = {d.Name: d.Value for d in alarm.Metrics[0].MetricStat.Metric.Dimensions}  # type: ignore[union-attr]
    assert dims["TargetGroup"] == f"targetgroup/{names[0]}/" + dims["TargetGroup"].rsplit("/", 1)[1]
    generated = [e for e in report.of("mapped") if "(generated name)" in e.source]
    assert len(generated) == 2


def test_cdk_out_directory(tmp_path: Path) -> None:
    """`cdk synth` writes a template per stack in cdk.out: the one with a service is read."""
    out = tmp_path / "cdk.out"
    out.mkdir()
    (out / "WebStack.template.json").write_text(CDK.read_text())
    (out / "NetworkStack.template.json").write_text(json.dumps({"Resources": {"Vpc": {"Type": "AWS::EC2::VPC"}}}))
    (out / "manifest.json").write_text("{}")
    assert find_template(out) == out / "WebStack.template.json"
    (out / "OtherStack.template.json").write_text(CDK.read_text())
    with pytest.raises(ImportProblem, match="several stacks have an AWS::ECS::Service"):
        find_template(out)
    with pytest.raises(ImportProblem, match=r"no \*\.template\.json with an AWS::ECS::Service"):
        find_template(tmp_path)


def test_a_dynamic_reference_is_named() -> None:
    template = load_template(BLUE_GREEN)
    _service(template)["Properties"]["DesiredCount"] = "{{resolve:ssm:/web/desired}}"
    with pytest.raises(ImportProblem) as info:
        import_template(template)
    assert info.value.where == "ECSDemoService.Properties.DesiredCount"
    assert "dynamic reference" in info.value.message


def test_aws_walkthrough_alarms_as_template_properties() -> None:
    """put-metric-alarm's JSON (AWS's walkthrough) is an AWS::CloudWatch::Alarm's Properties as is."""
    walk = aws_walkthrough()
    template = load_template(CDK)
    files = {}
    for name in ("linear-5xx-alarm.json", "linear-latency-alarm.json"):
        props = json.loads((walk / name).read_text())
        files[props["AlarmName"]] = props
        template["Resources"][props["AlarmName"]] = {"Type": "AWS::CloudWatch::Alarm", "Properties": props}
    dc = json.loads((walk / "linear-deployment-configuration.json").read_text())
    names = dc["alarms"]["alarmNames"]
    svc = template["Resources"]["ServiceD69D759B"]["Properties"]
    svc["DeploymentConfiguration"]["Alarms"]["AlarmNames"] = [{"Ref": n} for n in names]
    # The walkthrough's dimensions name groups blue and green.
    template["Resources"]["BlueTG1A2B3C4D"]["Properties"]["Name"] = "blue"
    template["Resources"]["GreenTG5E6F7A8B"]["Properties"]["Name"] = "green"
    config, _ = import_template(template)
    s = load_settings(config)
    assert [a.AlarmName for a in s.alarms] == names
    for a in config["alarms"]:
        given = files[a["AlarmName"]]
        assert a == {**given, "Threshold": float(given["Threshold"])}  # PutMetricAlarm's Threshold is a double


def test_https_listener_and_redirect_rule() -> None:
    """An HTTPS production listener (certificates, port 443) and an HTTP-to-HTTPS redirect rule, as
    templates often have them: plain HTTP on 8443 here, the redirect kept as ELBv2 spells it."""
    template = load_template(BLUE_GREEN)
    prod = template["Resources"]["ALBListenerProdTraffic"]["Properties"]
    prod.update({"Port": 443, "Protocol": "HTTPS", "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                 "Certificates": [{"CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"}]})
    template["Resources"]["RedirectRule"] = {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
        "ListenerArn": {"Ref": "ALBListenerProdTraffic"}, "Priority": 5,
        "Conditions": [{"Field": "host-header", "HostHeaderConfig": {"Values": ["old.example.com"]}}],
        "Actions": [{"Type": "redirect", "RedirectConfig": {"Host": "new.example.com", "Port": "443",
                                                            "Protocol": "HTTPS", "StatusCode": "HTTP_301"}}]}}
    config, report = import_template(template)
    s = load_settings(config)
    listener = s.load_balancer.Listeners[0]
    assert listener.Port == 8443
    assert [r.Priority for r in listener.Rules] == [1, 5]
    assert listener.Rules[1].Actions[0].RedirectConfig is not None
    assert listener.Rules[1].Actions[0].RedirectConfig.Port == "443"
    ignored = {e.source: e.reason for e in report.of("ignored")}
    assert "plain HTTP" in ignored["ALBListenerProdTraffic.Properties.Protocol"]
    assert "TLS" in ignored["ALBListenerProdTraffic.Properties.Certificates"]
    assert "TLS" in ignored["ALBListenerProdTraffic.Properties.SslPolicy"]


def test_production_listener_rule_may_be_a_listener() -> None:
    """ProductionListenerRule names "the production listener rule (in the case of an Application Load
    Balancer) or listener (in the case for a Network Load Balancer)" (AWS::ECS::Service
    AdvancedConfiguration): a listener is its default action's rule here."""
    template = load_template(CDK)
    adv = template["Resources"]["ServiceD69D759B"]["Properties"]["LoadBalancers"][0]["AdvancedConfiguration"]
    adv["ProductionListenerRule"] = {"Ref": "WebAlbListenerF1A2B3C4"}
    config, _ = import_template(template)
    s = load_settings(config)
    assert s.service is not None and s.service.lb.advancedConfiguration is not None
    assert s.service.lb.advancedConfiguration.productionListenerRule == s.load_balancer.Listeners[0].ListenerArn


def _service(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["ECSDemoService"]


BAD = [
    # (id, change to the blue/green template, where, what)
    ("no-service", lambda t: t["Resources"].pop("ECSDemoService"), "Resources", "no AWS::ECS::Service"),
    ("two-services", lambda t: t["Resources"].__setitem__("Other", copy.deepcopy(_service(t))), "Resources",
     "2 AWS::ECS::Service resources (ECSDemoService, Other): choose one with --service"),
    ("unresolvable-ref", lambda t: _service(t)["Properties"]["DeploymentConfiguration"].__setitem__(
        "BakeTimeInMinutes", {"Ref": "Missing"}), "ECSDemoService.Properties.DeploymentConfiguration.BakeTimeInMinutes",
     "Ref Missing: neither a parameter nor a resource"),
    ("unsupported-intrinsic", lambda t: _service(t)["Properties"].__setitem__(
        "DesiredCount", {"Fn::Cidr": ["10.0.0.0/16", 1, 8]}), "ECSDemoService.Properties.DesiredCount",
     "Fn::Cidr: an intrinsic function shiftlab does not evaluate"),
    ("alarm-not-in-template", lambda t: _service(t)["Properties"]["DeploymentConfiguration"]["Alarms"].__setitem__(
        "AlarmNames", ["elsewhere"]), "ECSDemoService.Properties.DeploymentConfiguration.Alarms.AlarmNames[0]",
     "'elsewhere' is not an AWS::CloudWatch::Alarm of the template"),
    ("target-group-elsewhere", lambda t: _service(t)["Properties"]["LoadBalancers"][0].__setitem__(
        "TargetGroupArn", "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/1"),
     "ECSDemoService.Properties.LoadBalancers[0].TargetGroupArn", "is not a target group of the template"),
    ("codedeploy", lambda t: _service(t)["Properties"].__setitem__("DeploymentController", {"Type": "CODE_DEPLOY"}),
     "ECSDemoService.Properties.DeploymentController.Type", "shiftlab import codedeploy"),
    ("bad-number", lambda t: _service(t)["Properties"]["DeploymentConfiguration"].__setitem__(
        "BakeTimeInMinutes", "soon"), "ECSDemoService.Properties.DeploymentConfiguration.BakeTimeInMinutes",
     "'soon' is not a number"),
    ("invalid-for-shiftlab", lambda t: _service(t)["Properties"]["DeploymentConfiguration"].__setitem__(
        "BakeTimeInMinutes", 5000), "", "deploymentConfiguration.bakeTimeInMinutes: 5000 is out of range 0..1440"),
]


@pytest.mark.parametrize(("change", "where", "what"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_names_the_resource_and_property(change: Any, where: str, what: str) -> None:
    template = load_template(BLUE_GREEN)
    change(template)
    with pytest.raises(ImportProblem) as info:
        import_template(template, source="t.yaml")
    assert info.value.where == (where or "t.yaml")
    assert what in info.value.message


def test_what_the_service_does_not_use_need_not_resolve() -> None:
    """A group, listener, rule or alarm the service does not use may name a parameter without a Default."""
    template = load_template(BLUE_GREEN)
    template["Parameters"]["OtherName"] = {"Type": "String"}
    res = template["Resources"]
    res["OtherGroup"] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                         "Properties": {"Name": {"Ref": "OtherName"}}}
    res["OtherAlarm"] = copy.deepcopy(res["UnrelatedAlarm"])
    res["OtherAlarm"]["Properties"]["AlarmName"] = {"Ref": "OtherName"}
    res["OtherListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "Port": 9000, "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "OtherName"}}]}}
    res["OtherRule"] = {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
        "ListenerArn": {"Ref": "OtherName"}, "Priority": 3, "Conditions": [], "Actions": []}}
    config, _ = import_template(template)
    assert [tg["Name"] for tg in config["loadBalancer"]["TargetGroups"]] == ["prod-web-blue", "prod-web-green"]
    assert len(config["loadBalancer"]["Listeners"]) == 2
    # What the service does use still must resolve, and says where it does not.
    res["ALBTargetGroupGreen"]["Properties"]["Name"] = {"Ref": "OtherName"}
    with pytest.raises(ImportProblem) as info:
        import_template(template)
    assert info.value.where == "ALBTargetGroupGreen.Properties.Name"
    assert "--parameter OtherName=VALUE" in info.value.message


def test_service_chooses_among_several() -> None:
    template = load_template(BLUE_GREEN)
    other = copy.deepcopy(_service(template))
    other["Properties"]["ServiceName"] = "other"
    template["Resources"]["Other"] = other
    config, _ = import_template(template, Options(service="Other"))
    assert config["service"]["serviceName"] == "other"
    with pytest.raises(ImportProblem, match="not an AWS::ECS::Service"):
        import_template(template, Options(service="ExampleALB"))


def test_a_condition_false_service_is_not_there() -> None:
    template = load_template(BLUE_GREEN)
    template["Resources"]["Other"] = {**copy.deepcopy(_service(template)), "Condition": "IsProd"}
    with pytest.raises(ImportProblem, match="2 AWS::ECS::Service"):
        import_template(template)
    config, _ = import_template(template, Options(parameters={"Environment": "staging"}))
    assert config["service"]["serviceName"] == "web"


# -- the command, as a user runs it ------------------------------------------------------

def shiftlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


def test_cli_writes_a_config_that_validates(tmp_path: Path) -> None:
    out = shiftlab("import", "cloudformation", str(BLUE_GREEN), "-o", "shiftlab.yaml", "--report", "report.json",
                   "--parameter", "Environment=staging", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Needs a local answer (4):" in out.stdout and "Ignored (" in out.stdout
    text = (tmp_path / "shiftlab.yaml").read_text()
    assert text.startswith("# shiftlab.yaml imported from") and "SHIFTLAB-LOCAL" in text
    assert yaml.safe_load(text)["service"]["desiredCount"] == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert {"source", "mapped", "ignored", "local"} <= set(report)
    check = shiftlab("validate", "-c", "shiftlab.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stderr


def test_cli_refuses_without_writing_anything(tmp_path: Path) -> None:
    """A refused template leaves no file, and an existing one untouched (--force included)."""
    template = load_template(BLUE_GREEN)
    template["Resources"]["ECSDemoService"]["Properties"]["DesiredCount"] = {"Ref": "Nope"}
    (tmp_path / "bad.json").write_text(json.dumps(template))
    out = shiftlab("import", "cloudformation", "bad.json", "-o", "new.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "ECSDemoService.Properties.DesiredCount: Ref Nope" in out.stderr
    assert not (tmp_path / "new.yaml").exists()
    (tmp_path / "old.yaml").write_text("kept\n")
    out = shiftlab("import", "cloudformation", "bad.json", "-o", "old.yaml", "--force", cwd=tmp_path)
    assert out.returncode == 2
    assert (tmp_path / "old.yaml").read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "old.yaml"]  # no temporary file left
    out = shiftlab("import", "cloudformation", str(BLUE_GREEN), "-o", "old.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "--force" in out.stderr
    out = shiftlab("import", "cloudformation", str(BLUE_GREEN), "--parameter", "Nope=1", cwd=tmp_path)
    assert out.returncode == 2 and "--parameter Nope: the template has no such parameter" in out.stderr


def _console_block(readme: str, command: str) -> list[str]:
    """The lines README.md shows after `$ <command>`, up to the next prompt or fence."""
    lines = readme.split(f"$ {command}\n", 1)[1].split("\n")
    out = []
    for line in lines:
        if line.startswith(("$ ", "```")):
            break
        out.append(line)
    return out


def test_readme_example_is_real_output(tmp_path: Path) -> None:
    """README's "From AWS and back": its import and export examples are what the commands print."""
    readme = (REPO / "README.md").read_text(encoding="utf-8").split("\n## From AWS and back\n", 1)[1]
    (tmp_path / "readme.yaml").write_text((HERE / "readme.yaml").read_text())
    command = ('import cloudformation readme.yaml --parameter Canary=20 --command "{python} -m '
               'shiftlab.sample_service"')
    out = shiftlab("import", "cloudformation", "readme.yaml", "--parameter", "Canary=20", "--command",
                   "{python} -m shiftlab.sample_service", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    shown = _console_block(readme, "shiftlab " + command)
    assert len(shown) > 5
    for line in shown:
        if line.strip() != "...":
            assert line in out.stdout.splitlines(), line
    check = shiftlab("validate", "-c", "shiftlab.yaml", cwd=tmp_path)
    assert check.stdout.strip() == _console_block(readme, "shiftlab validate -c shiftlab.yaml")[0]
    export = shiftlab("export", "-c", "shiftlab.yaml", "-o", "to-aws", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    text = (tmp_path / "to-aws" / "README.txt").read_text()
    for line in _console_block(readme, "cat to-aws/README.txt"):
        assert line in text.splitlines(), line
