"""CodeDeploy blue/green for ECS migrated to ECS's own deployments, per AWS's
"Migrate CodeDeploy blue/green deployments to Amazon ECS blue/green
deployments"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-codedeploy-to-ecs-bluegreen.html)
and its procedure ("You must create new lifecycle hooks",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-code-deploy-to-ecs-blue-green.html).
Inputs shaped as AWS's: the AppSpec example for ECS
(https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-example.html#appspec-file-example-ecs),
the predefined configurations' table
(https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html),
create-deployment-config's and get-deployment-group's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.interop.codedeploy import HOOK_STAGES, PREDEFINED, merge, migrate, read_document, strategy_of
from shiftlab.settings import load_settings
from tests.controller.support import config as stack_config
from tests.controller.support import green_alarm

DATA = Path(__file__).parent / "data" / "codedeploy"
APPSPEC = str(DATA / "appspec.yaml")
GROUP = str(DATA / "deployment-group.json")


def appspec(path: str = APPSPEC) -> dict[str, Any]:
    return read_document(path, "an AppSpec")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True,
                          timeout=timeout)


# The predefined ECS configurations' table, and what each is in ECS.
@pytest.mark.parametrize(("name", "expected"), [
    ("CodeDeployDefault.ECSAllAtOnce", {"strategy": "BLUE_GREEN"}),
    ("CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
     {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 1}}),
    ("CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
     {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 3}}),
    ("CodeDeployDefault.ECSCanary10Percent5Minutes",
     {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 5}}),
    ("CodeDeployDefault.ECSCanary10Percent15Minutes",
     {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 15}}),
])
def test_predefined_configurations(name: str, expected: dict[str, Any]) -> None:
    assert strategy_of(PREDEFINED[name]) == expected
    dc = migrate(appspec(), name).deployment
    assert {k: dc[k] for k in expected} == expected
    assert set(PREDEFINED) >= {name}


# Custom configurations, as `aws deploy create-deployment-config --traffic-routing-config` takes them.
@pytest.mark.parametrize(("routing", "expected"), [
    ({"type": "AllAtOnce"}, {"strategy": "BLUE_GREEN"}),
    ({"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 25, "canaryInterval": 2}},
     {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 25, "canaryBakeTimeInMinutes": 2}}),
    ({"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 20, "linearInterval": 4}},
     {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 20, "stepBakeTimeInMinutes": 4}}),
])
def test_custom_configurations(routing: dict[str, Any], expected: dict[str, Any], tmp_path: Path) -> None:
    assert strategy_of(routing) == expected
    f = tmp_path / "config.json"
    f.write_text(json.dumps({"deploymentConfigName": "Custom", "computePlatform": "ECS",
                             "trafficRoutingConfig": routing}))
    assert migrate(appspec(), str(f)).deployment["strategy"] == expected["strategy"]
    # get-deployment-config's output reads the same.
    f.write_text(json.dumps({"deploymentConfigInfo": {"deploymentConfigName": "Custom", "computePlatform": "ECS",
                                                      "trafficRoutingConfig": routing}}))
    assert migrate(appspec(), str(f)).deployment["strategy"] == expected["strategy"]


# AppSpec hooks at the ECS lifecycle stages of the same moment.
@pytest.mark.parametrize(("event", "stage"), [
    ("BeforeInstall", "PRE_SCALE_UP"),
    ("AfterInstall", "POST_SCALE_UP"),
    ("AfterAllowTestTraffic", "POST_TEST_TRAFFIC_SHIFT"),
    ("BeforeAllowTraffic", "PRE_PRODUCTION_TRAFFIC_SHIFT"),
    ("AfterAllowTraffic", "POST_PRODUCTION_TRAFFIC_SHIFT"),
])
def test_hooks_at_the_matching_stages(event: str, stage: str) -> None:
    assert HOOK_STAGES[event] == stage
    spec = appspec()
    spec["Hooks"] = [{event: "arn:aws:lambda:us-east-1:111222333444:function:check"}]
    dc = migrate(spec, "CodeDeployDefault.ECSAllAtOnce", region="us-east-1", account="111222333444").deployment
    assert dc["lifecycleHooks"] == [{"hookTargetArn": "arn:aws:lambda:us-east-1:111222333444:function:check",
                                     "lifecycleStages": [stage]}]


def test_the_appspec_example_migrates_with_its_report() -> None:
    m = migrate(appspec(), "CodeDeployDefault.ECSCanary10Percent5Minutes", region="us-east-1",
                account="111222333444", hook_role="arn:aws:iam::111222333444:role/ecs-hooks")
    stages = [h["lifecycleStages"][0] for h in m.deployment["lifecycleHooks"]]
    assert stages == ["PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT",
                      "POST_PRODUCTION_TRAFFIC_SHIFT"]
    first = m.deployment["lifecycleHooks"][0]
    assert first["hookTargetArn"] == \
        "arn:aws:lambda:us-east-1:111222333444:function:LambdaFunctionToValidateBeforeInstall"
    assert first["roleArn"] == "arn:aws:iam::111222333444:role/ecs-hooks"
    assert m.deployment["bakeTimeInMinutes"] == 0
    assert m.service == {"taskDefinition.family": "web", "loadBalancers[0].containerName": "web",
                         "loadBalancers[0].containerPort": 8080}
    ignored = {e.source: e.reason for e in m.report.of("ignored")}
    assert "networking" in ignored["Resources[0].TargetService.Properties.NetworkConfiguration"]
    assert "before every traffic step" in ignored["Hooks.BeforeAllowTraffic (runs once)"]
    assert "does not roll back" in ignored["Hooks.BeforeInstall (its failure)"]
    asked = {e.target: e.reason for e in m.report.of("local")}
    assert "PutLifecycleEventHookExecutionStatus" in asked["Hooks.AfterInstall (LambdaFunctionToValidateAfterInstall)"]


def test_the_deployment_group_gives_the_bake_alarms_rollback_and_target_groups() -> None:
    m = migrate(appspec(), None, read_document(GROUP, "a deployment group"))
    dc = m.deployment
    # Its deploymentConfigName, since none was given.
    assert dc["strategy"] == "LINEAR" and dc["linearConfiguration"] == {"stepPercent": 10, "stepBakeTimeInMinutes": 1}
    # terminationWaitTimeInMinutes -> bakeTimeInMinutes.
    assert dc["bakeTimeInMinutes"] == 5
    assert dc["alarms"] == {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}
    assert dc["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert m.service["serviceName"] == "web" and m.service["clusterName"] == "prod"
    assert m.service["loadBalancers[0].targetGroupArn"] == "blue"
    assert m.service["loadBalancers[0].advancedConfiguration.alternateTargetGroupArn"] == "green"
    ignored = {e.source: e.reason for e in m.report.of("ignored")}
    assert "serviceRoleArn" in ignored and "deploymentStyle" in ignored
    asked = {e.target: e.reason for e in m.report.of("local")}
    assert "default rule" in asked["service.loadBalancers[0].advancedConfiguration.productionListenerRule"]


@pytest.mark.parametrize(("change", "expected", "reported"), [
    ({"terminateBlueInstancesOnDeploymentSuccess": {"action": "KEEP_ALIVE"}}, {},
     "KEEP_ALIVE has no ECS equivalent"),
    ({"deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 30}},
     {"lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"],
                          "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "ROLLBACK"}}]},
     None),
])
def test_blue_green_options(change: dict[str, Any], expected: dict[str, Any], reported: str | None) -> None:
    group = {"computePlatform": "ECS", "blueGreenDeploymentConfiguration": change}
    spec = appspec()
    spec["Hooks"] = []
    m = migrate(spec, "CodeDeployDefault.ECSAllAtOnce", group)
    for key, value in expected.items():
        assert m.deployment[key] == value
    if reported:
        assert any(reported in e.reason for e in m.report.of("ignored"))


@pytest.mark.parametrize(("spec_change", "config", "message"), [
    (None, "CodeDeployDefault.LambdaCanary10Percent5Minutes", "is not one of CodeDeploy's predefined ECS"),
    (None, "NoSuchConfig", "neither a predefined ECS configuration"),
    (None, {"computePlatform": "Lambda", "trafficRoutingConfig": {"type": "AllAtOnce"}},
     "computePlatform: 'Lambda'"),
    (None, {"trafficRoutingConfig": {"type": "TimeBasedLinear",
                                     "timeBasedLinear": {"linearPercentage": 2, "linearInterval": 1}}},
     "linearPercentage: 2 has no ECS equivalent: ECS's stepPercent is 3..100"),
    (None, {"trafficRoutingConfig": {"type": "TimeBasedCanary",
                                     "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 2000}}},
     "canaryInterval: 2000 has no ECS equivalent: ECS's canaryBakeTimeInMinutes is 0..1440"),
    (None, {"trafficRoutingConfig": {"type": "TimeBasedCanary"}}, "timeBasedCanary: is required"),
    (None, {"trafficRoutingConfig": {"type": "Gradual"}}, "type: 'Gradual' is not AllAtOnce"),
    ({"Resources": []}, "CodeDeployDefault.ECSAllAtOnce", "Resources: an ECS AppSpec holds exactly one"),
    ({"Resources": [{"TargetService": {"Type": "AWS::Lambda::Function", "Properties": {}}}]},
     "CodeDeployDefault.ECSAllAtOnce", "Type: 'AWS::Lambda::Function'"),
    ({"Hooks": [{"ApplicationStart": "fn"}]}, "CodeDeployDefault.ECSAllAtOnce",
     "Hooks[0].ApplicationStart: not a lifecycle event of an ECS deployment"),
    ({"Hooks": [{"AfterInstall": "not a name!"}]}, "CodeDeployDefault.ECSAllAtOnce",
     "Hooks.AfterInstall: 'not a name!' is neither"),
])
def test_bad_input_is_refused_naming_the_field(spec_change: dict[str, Any] | None, config: Any, message: str,
                                               tmp_path: Path) -> None:
    spec = appspec()
    spec.update(spec_change or {})
    if isinstance(config, dict):
        f = tmp_path / "config.json"
        f.write_text(json.dumps(config))
        config = str(f)
    with pytest.raises(ConfigError) as err:
        migrate(spec, config)
    assert message in str(err.value)
    f = tmp_path / "appspec.yaml"
    f.write_text(yaml.safe_dump(spec))
    res = run("import", "codedeploy", str(f), "--deployment-config", config)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_group_waits_longer_than_ecs_bakes_are_refused() -> None:
    group = {"blueGreenDeploymentConfiguration": {"terminateBlueInstancesOnDeploymentSuccess": {
        "action": "TERMINATE", "terminationWaitTimeInMinutes": 2880}}}
    with pytest.raises(ConfigError, match="terminationWaitTimeInMinutes: 2880 has no ECS equivalent"):
        migrate(appspec(), "CodeDeployDefault.ECSAllAtOnce", group)


def test_printed_without_a_config() -> None:
    res = run("import", "codedeploy", str(DATA / "appspec.json"), "--deployment-config",
              "CodeDeployDefault.ECSCanary10Percent15Minutes")
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    assert doc["deploymentConfiguration"]["canaryConfiguration"] == {"canaryPercent": 10,
                                                                     "canaryBakeTimeInMinutes": 15}
    assert doc["deploymentConfiguration"]["lifecycleHooks"] == [
        {"hookTargetArn": "arn:aws:lambda:us-east-1:111222333444:function:smoke-test",
         "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
    assert doc["lambdaFunctions"] == {"smoke-test": "command:{python} -m shiftlab.demo_hook"}
    assert "Needs a local answer" in res.stderr


def test_merged_into_a_config_it_validates_and_a_short_rehearsal_runs(tmp_path: Path) -> None:
    """The AppSpec example's five hooks, a custom canary (25 %, 1 minute) and
    the group's termination wait (1 minute) and alarm, merged into a
    rehearsal's config: `shiftlab validate` accepts it and `shiftlab
    rehearse` runs it to SUCCESSFUL through every hook's stage."""
    base = stack_config(tmp_path, {"strategy": "ROLLING"},
                        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)])
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(base))
    routing = tmp_path / "canary.json"
    routing.write_text(json.dumps({"deploymentConfigName": "Canary25Percent1Minute", "computePlatform": "ECS",
                                   "trafficRoutingConfig": {"type": "TimeBasedCanary", "timeBasedCanary": {
                                       "canaryPercentage": 25, "canaryInterval": 1}}}))
    group = json.loads(Path(GROUP).read_text())
    group["deploymentGroupInfo"]["blueGreenDeploymentConfiguration"]["terminateBlueInstancesOnDeploymentSuccess"][
        "terminationWaitTimeInMinutes"] = 1
    group_file = tmp_path / "group.json"
    group_file.write_text(json.dumps(group))
    res = run("import", "codedeploy", APPSPEC, "--deployment-config", str(routing), "--deployment-group",
              str(group_file), "-c", str(path), "--region", "us-east-1", "--account-id", "111222333444")
    assert res.returncode == 0, res.stderr
    merged = yaml.safe_load(path.read_text())
    dc = merged["deploymentConfiguration"]
    assert dc["strategy"] == "CANARY" and dc["bakeTimeInMinutes"] == 1
    assert dc["canaryConfiguration"] == {"canaryPercent": 25, "canaryBakeTimeInMinutes": 1}
    assert len(dc["lifecycleHooks"]) == 5 and dc["alarms"]["alarmNames"] == ["green-5xx"]
    # The group's names for the service and the target groups are the config's.
    assert merged["service"]["serviceName"] == "web"
    assert merged["service"]["loadBalancers"][0]["targetGroupArn"] == "blue"
    load_settings(merged)
    assert run("validate", "-c", str(path)).returncode == 0
    out = run("rehearse", "-c", str(path), "--env", "GREETING=v2", "--json", "--load-rps", "5", timeout=180)
    assert out.returncode == 0, (out.stdout, out.stderr)
    outcome = json.loads(out.stdout)
    assert outcome["status"] == "SUCCESSFUL", outcome
    for stage in HOOK_STAGES.values():
        assert stage in outcome["stages"]


def test_merge_keeps_the_configs_other_fields() -> None:
    config = {"deploymentConfiguration": {"strategy": "ROLLING", "maximumPercent": 150,
                                          "linearConfiguration": {"stepPercent": 50}},
              "lambdaFunctions": {"arn:aws:lambda:us-east-1:111222333444:function:smoke-test": "command:true"}}
    spec = appspec(str(DATA / "appspec.json"))
    out = merge(config, migrate(spec, "CodeDeployDefault.ECSAllAtOnce"))
    assert out["deploymentConfiguration"]["maximumPercent"] == 150
    assert "linearConfiguration" not in out["deploymentConfiguration"]
    assert out["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    # A function the config already maps keeps its mapping.
    assert out["lambdaFunctions"] == config["lambdaFunctions"]
