"""Import and export of the exposure kinds besides the ALB: a Network Load
Balancer and Service Connect.

What AWS and the provider take, as their pages give it:

- NLB in CloudFormation: the LoadBalancer's `Type: network`
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-elasticloadbalancingv2-loadbalancer.html),
  TCP listeners with `ListenerAttributes` (`tcp.idle_timeout.seconds`, 60-6000,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-elasticloadbalancingv2-listener-listenerattribute.html),
  TCP target groups with `HealthCheckProtocol` TCP or HTTP and the attribute
  `deregistration_delay.connection_termination.enabled`
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-elasticloadbalancingv2-targetgroup.html,
  https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html).
- NLB in Terraform: `aws_lb.load_balancer_type = "network"`,
  `aws_lb_listener.protocol = "TCP"` and `tcp_idle_timeout_seconds`
  (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_listener),
  `aws_lb_target_group.protocol = "TCP"`, `health_check.protocol` (the
  provider's default HTTP) and `connection_termination`
  (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/lb_target_group).
- Service Connect: AWS::ECS::Service `ServiceConnectConfiguration`
  (Enabled, Namespace, Services[].PortName/DiscoveryName/IngressPortOverride/
  Timeout/ClientAliases[].Port/DnsName/TestTrafficRules.Header.Name/Value.Exact,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-serviceconnectconfiguration.html,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-serviceconnectclientalias.html),
  the provider's `service_connect_configuration { service { client_alias {
  test_traffic_rules { header { value { exact } } } } } }`
  (https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/ecs_service#service_connect_configuration),
  and update-service's `serviceConnectConfiguration`
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceConnectConfiguration.html).

Each export is checked as test_export checks the ALB's: the cli-json files
against botocore's model of their call, the CloudFormation snippet with
cfn-lint, and import(export(config)) keeps every AWS field.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from shiftlab.common.awsmodel import problems, service_shapes
from shiftlab.common.configfile import ConfigError
from shiftlab.interop.cloudformation import Options, import_template
from shiftlab.interop.exporter import cli_json, cloudformation
from shiftlab.interop.report import ImportProblem
from shiftlab.interop.template import load_template
from shiftlab.interop.terraform import import_terraform
from shiftlab.interop.terraform_export import render
from shiftlab.settings import load_settings
from tests.interop.test_export import CALLS, aws_fields

TEMPLATES = Path(__file__).parent / "templates"
DATA = Path(__file__).parent / "data"
NLB_TEMPLATE = TEMPLATES / "nlb-bluegreen.yaml"
SC_TEMPLATE = TEMPLATES / "service-connect.yaml"
NLB_MODULE = DATA / "tf_nlb"
SC_MODULE = DATA / "tf_serviceconnect"
CFN_RULES = ManualArgs(regions=["us-east-1"])


def _example(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("shiftlab").joinpath(f"examples/{name}").read_text(encoding="utf-8"))


def nlb() -> dict[str, Any]:
    """shiftlab's NLB example with a listener attribute and an HTTP health check on green."""
    c = _example("nlb.yaml")
    c["loadBalancer"]["Listeners"][0]["ListenerAttributes"] = [{"Key": "tcp.idle_timeout.seconds", "Value": "900"}]
    green = c["loadBalancer"]["TargetGroups"][1]
    green.update({"HealthCheckProtocol": "HTTP", "HealthCheckPath": "/health", "Matcher": {"HttpCode": "200-299"}})
    green["TargetGroupAttributes"][1]["Value"] = "true"
    return c


def service_connect() -> dict[str, Any]:
    """The README's Service Connect example, with a timeout, an ingress port, TLS and the proxy's logs (kept as
    ECS takes them, not rehearsed)."""
    return {
        "timeScale": 60,
        "service": {
            "serviceName": "catalog", "clusterName": "shop", "desiredCount": 2,
            "taskDefinition": {"command": ["{python}", "-m", "shiftlab.sample_service"]},
            "serviceConnectConfiguration": {
                "enabled": True, "namespace": "shop",
                "services": [{"portName": "http", "discoveryName": "catalog", "ingressPortOverride": 18080,
                              "timeout": {"idleTimeoutSeconds": 120, "perRequestTimeoutSeconds": 15},
                              "tls": {"issuerCertificateAuthority": {
                                  "awsPcaAuthorityArn": "arn:aws:acm-pca:us-east-1:123456789012:"
                                                        "certificate-authority/0123abcd"},
                                      "kmsKey": "alias/service-connect",
                                      "roleArn": "arn:aws:iam::123456789012:role/service-connect-tls"},
                              "clientAliases": [{"port": 8080, "dnsName": "catalog", "testTrafficRules": {
                                  "header": {"name": "x-canary", "value": {"exact": "yes"}}}}]}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/shop/sc"},
                                     "secretOptions": [{"name": "token", "valueFrom": "arn:aws:ssm:us-east-1:"
                                                        "123456789012:parameter/sc-token"}]},
                "accessLogConfiguration": {"format": "JSON", "includeQueryParameters": "ENABLED"}},
            "serviceConnectClients": [{"name": "frontend", "taskDefinition": {
                "command": ["{python}", "-m", "shiftlab.sample_frontend"]}}]},
        "deploymentConfiguration": {"strategy": "CANARY", "bakeTimeInMinutes": 2,
                                    "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 5},
                                    "alarms": {"alarmNames": ["catalog-5xx"], "enable": True, "rollback": True}},
        "alarms": [{"AlarmName": "catalog-5xx", "Namespace": "AWS/ECS", "MetricName": "HTTPCode_Target_5XX_Count",
                    "Dimensions": [{"Name": "TargetDiscoveryName", "Value": "catalog"}], "Statistic": "Sum",
                    "Period": 60, "EvaluationPeriods": 1, "Threshold": 2.0,
                    "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}],
    }


def service_connect_defaults() -> dict[str, Any]:
    """Service Connect with ECS's defaults: no namespace (the cluster's), no dnsName, no test rules (ECS's header)."""
    c = service_connect()
    sc = c["service"]["serviceConnectConfiguration"]
    del sc["namespace"], sc["logConfiguration"], sc["accessLogConfiguration"]
    sc["services"] = [{"portName": "http", "clientAliases": [{"port": 9000}]}]
    del c["service"]["serviceConnectClients"]
    return c


CONFIGS: dict[str, Callable[[], dict[str, Any]]] = {
    "nlb": nlb,
    "service-connect": service_connect,
    "service-connect-defaults": service_connect_defaults,
    "imported-nlb-template": lambda: import_template(load_template(NLB_TEMPLATE))[0],
    "imported-sc-template": lambda: import_template(load_template(SC_TEMPLATE))[0],
    "imported-nlb-module": lambda: import_terraform(NLB_MODULE).config,
    "imported-sc-module": lambda: import_terraform(SC_MODULE).config,
}


def fields(config: dict[str, Any]) -> dict[str, Any]:
    """test_export's AWS fields, less the client tasks (shiftlab's own: on ECS each is a service of its own)."""
    return {k: v for k, v in aws_fields(load_settings(copy.deepcopy(config))).items()
            if ".serviceConnectClients" not in k}


# -- export: what AWS takes ------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_cli_json_is_what_the_api_takes(name: str) -> None:
    config = CONFIGS[name]()
    files = cli_json(config)
    calls = {**CALLS, "elbv2-modify-listener-attributes": ("elbv2", "ModifyListenerAttributesInput")}
    for filename, text in files.items():
        if filename == "README.txt":
            continue
        prefix = max((p for p in calls if filename.startswith(p + "-") or filename == p + ".json"), key=len)
        service, shape = calls[prefix]
        assert problems(service_shapes(service), shape, json.loads(text), "") == [], filename
    update = json.loads(files["ecs-update-service.json"])
    sc = config["service"].get("serviceConnectConfiguration")
    if sc is not None:
        # As the config gives it, and no ELB call for the namespace's proxy (ECS's own on AWS).
        assert update["serviceConnectConfiguration"] == sc
        assert "loadBalancers" not in update
        assert not [f for f in files if f.startswith("elbv2-")]
        assert "stand-in for the Service Connect proxy" in files["README.txt"]
    else:
        listeners = [json.loads(files[f]) for f in files if f.startswith("elbv2-modify-listener-")
                     and not f.startswith("elbv2-modify-listener-attributes")]
        assert listeners and {ls["Protocol"] for ls in listeners} == {"TCP"}
        checks = {f: json.loads(files[f]) for f in files if f.startswith("elbv2-modify-target-group-")
                  and "attributes" not in f}
        for check in checks.values():
            # A TCP health check has neither a path nor a matcher (ELBv2 refuses them).
            assert ("Matcher" in check) == (check["HealthCheckProtocol"] == "HTTP")


def test_listener_attributes_have_their_own_call() -> None:
    files = cli_json(nlb())
    assert json.loads(files["elbv2-modify-listener-attributes-prod.json"]) == {
        "ListenerArn": "<ListenerArn of prod>", "Attributes": [{"Key": "tcp.idle_timeout.seconds", "Value": "900"}]}
    assert "aws elbv2 modify-listener-attributes --cli-input-json file://elbv2-modify-listener-attributes-prod.json" \
        in files["README.txt"]
    # Behind an NLB ECS shifts the listeners themselves: the update names their ARNs.
    adv = json.loads(files["ecs-update-service.json"])["loadBalancers"][0]["advancedConfiguration"]
    assert adv["productionListenerRule"] == "<ListenerArn of prod>"
    assert adv["testListenerRule"] == "<ListenerArn of test>"


@pytest.mark.parametrize("name", CONFIGS)
def test_cloudformation_snippet_passes_cfn_lint(name: str) -> None:
    text = cloudformation(CONFIGS[name]())["cloudformation.yaml"]
    assert [str(m) for m in lint(text, config=CFN_RULES)] == []


def test_cfn_lint_catches_a_bad_service_connect_snippet() -> None:
    text = cloudformation(service_connect())["cloudformation.yaml"].replace("DiscoveryName", "DiscoverName")
    assert any("DiscoverName" in str(m) for m in lint(text, config=CFN_RULES))


def test_a_service_connect_snippet_has_no_load_balancer() -> None:
    template = yaml.safe_load(cloudformation(service_connect())["cloudformation.yaml"])
    assert {r["Type"] for r in template["Resources"].values()} == {"AWS::ECS::Service", "AWS::CloudWatch::Alarm"}
    props = next(r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::Service")["Properties"]
    alias = props["ServiceConnectConfiguration"]["Services"][0]["ClientAliases"][0]
    assert alias == {"Port": 8080, "DnsName": "catalog",
                     "TestTrafficRules": {"Header": {"Name": "x-canary", "Value": {"Exact": "yes"}}}}
    # A log driver's options are the driver's own keys, as written.
    assert props["ServiceConnectConfiguration"]["LogConfiguration"]["Options"] == {"awslogs-group": "/ecs/shop/sc"}
    assert props["ServiceConnectConfiguration"]["Services"][0]["Tls"]["IssuerCertificateAuthority"] == {
        "AwsPcaAuthorityArn": "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/0123abcd"}
    assert "LoadBalancers" not in props


@pytest.mark.parametrize("name", CONFIGS)
def test_terraform_export_parses_as_the_providers_resources(name: str) -> None:
    config = CONFIGS[name]()
    doc = hcl2.loads(render(config))
    resources_ = {t.strip('"'): body for entry in doc["resource"] for t, body in entry.items()}
    service = next(iter(resources_["aws_ecs_service"].values()))
    if "serviceConnectConfiguration" in config["service"]:
        assert "aws_lb" not in resources_ and "load_balancer" not in service
        assert service["service_connect_configuration"][0]["enabled"] is True
    else:
        lb = next(iter(resources_["aws_lb"].values()))
        assert lb["load_balancer_type"] == '"network"'
        assert {ls["protocol"] for ls in resources_["aws_lb_listener"].values()} == {'"TCP"'}
        assert {tg["protocol"] for tg in resources_["aws_lb_target_group"].values()} == {'"TCP"'}
        adv = service["load_balancer"][0]["advanced_configuration"][0]
        assert adv["production_listener_rule"].startswith("${aws_lb_listener.")


# -- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_cloudformation_round_trip_keeps_every_aws_field(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]()
    path = tmp_path / "cloudformation.yaml"
    path.write_text(cloudformation(config)["cloudformation.yaml"])
    back, _ = import_template(load_template(path), Options(), str(path))
    before, after = fields(config), fields(back)
    assert {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v} == {}
    assert len(before) > 40


@pytest.mark.parametrize("name", CONFIGS)
def test_terraform_round_trip_keeps_every_aws_field(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]()
    (tmp_path / "main.tf").write_text(render(config))
    back = import_terraform(tmp_path).config
    # A group's own ARN: Terraform knows it only after apply (the module names the group).
    before = {k: v for k, v in fields(config).items() if not (k.startswith(".loadBalancer.TargetGroups[")
                                                                and k.endswith("].TargetGroupArn"))}
    after = fields(back)
    assert {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v} == {}
    assert len(before) > 40


# -- import: realistic inputs ----------------------------------------------------------------

def test_nlb_template_imports() -> None:
    config, report = import_template(load_template(NLB_TEMPLATE))
    lb = config["loadBalancer"]
    assert lb["Type"] == "network" and lb["Name"] == "ledger-nlb"
    prod, test = lb["Listeners"]
    assert prod["Protocol"] == test["Protocol"] == "TCP"
    assert prod["ListenerAttributes"] == [{"Key": "tcp.idle_timeout.seconds", "Value": "600"}]  # !Ref IdleTimeout
    assert ":listener/net/ledger-nlb/" in prod["ListenerArn"]
    blue, green = lb["TargetGroups"]
    assert (blue["Protocol"], blue["HealthCheckProtocol"], green["HealthCheckProtocol"]) == ("TCP", "TCP", "HTTP")
    assert {"Key": "deregistration_delay.connection_termination.enabled", "Value": "true"} \
        in blue["TargetGroupAttributes"]
    adv = config["service"]["loadBalancers"][0]["advancedConfiguration"]
    assert adv["productionListenerRule"] == prod["ListenerArn"] and adv["testListenerRule"] == test["ListenerArn"]
    settings = load_settings(config)
    assert settings.load_balancer.network and settings.load_balancer.Listeners[0].tcp_idle_timeout == 600
    ignored = {e.source for e in report.of("ignored")}
    assert "BlueTargetGroup.Properties.TargetGroupAttributes.preserve_client_ip.enabled" in ignored
    assert "NetworkLoadBalancer.Properties.LoadBalancerAttributes.load_balancing.cross_zone.enabled" in ignored


def test_service_connect_template_imports() -> None:
    config, _ = import_template(load_template(SC_TEMPLATE))
    assert "loadBalancer" not in config and "loadBalancers" not in config["service"]
    sc = config["service"]["serviceConnectConfiguration"]
    assert sc["services"][0]["clientAliases"] == [
        {"port": 8080, "dnsName": "catalog", "testTrafficRules": {"header": {"name": "x-canary",
                                                                             "value": {"exact": "yes"}}}}]
    assert sc["services"][0]["ingressPortOverride"] == 18080
    # The port mapping PortName names (its container's, where the task listens).
    assert config["service"]["taskDefinition"]["containerPort"] == 8080
    assert sc["logConfiguration"]["options"]["awslogs-group"] == "/ecs/shop/service-connect"
    service = load_settings(config).service
    assert service is not None and service.service_connect is not None
    assert service.lb.advancedConfiguration is not None  # the namespace's listener rehearses the canary


def test_terraform_modules_import() -> None:
    config = import_terraform(NLB_MODULE).config
    lb = config["loadBalancer"]
    assert lb["Type"] == "network"
    assert lb["Listeners"][0]["ListenerAttributes"] == [{"Key": "tcp.idle_timeout.seconds", "Value": "600"}]
    assert [tg["HealthCheckProtocol"] for tg in lb["TargetGroups"]] == ["TCP", "HTTP"]
    adv = config["service"]["loadBalancers"][0]["advancedConfiguration"]
    assert (adv["productionListenerRule"], adv["testListenerRule"]) == ("prod/default", ["test/default"])
    sc = import_terraform(SC_MODULE).config
    assert "loadBalancer" not in sc
    assert sc["service"]["serviceConnectConfiguration"]["namespace"] == "shop"  # the namespace resource's name
    load_settings(config)
    load_settings(sc)


def test_a_health_check_block_without_protocol_is_the_providers_http(tmp_path: Path) -> None:
    """lb_target_group's health_check.protocol: "Default is HTTP" (the provider's page, above)."""
    d = tmp_path / "m"
    shutil.copytree(NLB_MODULE, d)
    text = (d / "main.tf").read_text().replace('    protocol            = "TCP"\n', "")
    (d / "main.tf").write_text(text)
    assert import_terraform(d).config["loadBalancer"]["TargetGroups"][0]["HealthCheckProtocol"] == "HTTP"


# -- import: what is refused, named ------------------------------------------------------------

CFN_REFUSED = [
    ("ProductionListener", "Protocol", "TLS", "ProductionListener.Properties.Protocol: TLS: shiftlab's network "
                                              "listeners are TCP"),
    ("TestListener", "Protocol", "UDP", "TestListener.Properties.Protocol: UDP"),
    ("BlueTargetGroup", "Protocol", "UDP", "BlueTargetGroup.Properties.Protocol: UDP: a network load balancer's"),
    ("GreenTargetGroup", "Protocol", "TLS", "GreenTargetGroup.Properties.Protocol: TLS"),
    ("GreenTargetGroup", "HealthCheckProtocol", "HTTPS", "GreenTargetGroup.Properties.HealthCheckProtocol: HTTPS"),
    ("NetworkLoadBalancer", "Type", "gateway", "NetworkLoadBalancer.Properties.Type: gateway"),
]


@pytest.mark.parametrize(("logical", "prop", "value", "message"), CFN_REFUSED)
def test_cloudformation_refuses_naming_the_property(logical: str, prop: str, value: str, message: str) -> None:
    template = load_template(NLB_TEMPLATE)
    template["Resources"][logical]["Properties"][prop] = value
    with pytest.raises(ImportProblem) as exc:
        import_template(template)
    assert message in str(exc.value)


TF_REFUSED = [
    ('  port                     = 443\n  protocol                 = "TCP"',
     '  port                     = 443\n  protocol                 = "TLS"',
     'aws_lb_listener.prod: protocol: \'TLS\': shiftlab\'s network listeners are TCP'),
    ('  port              = 8443\n  protocol          = "TCP"',
     '  port              = 8443\n  protocol          = "UDP"', "aws_lb_listener.test: protocol: 'UDP'"),
    ('  name                 = "${local.name}-blue"\n  port                 = 7000\n  protocol             = "TCP"',
     '  name                 = "${local.name}-blue"\n  port                 = 7000\n  protocol             = "TCP_UDP"',
     "aws_lb_target_group.blue: protocol: 'TCP_UDP'"),
    ('    protocol = "HTTP"', '    protocol = "HTTPS"', "aws_lb_target_group.green: health_check.protocol: 'HTTPS'"),
    ('load_balancer_type = "network"', 'load_balancer_type = "gateway"', "aws_lb.nlb: load_balancer_type: 'gateway'"),
]


@pytest.mark.parametrize(("old", "new", "message"), TF_REFUSED)
def test_terraform_refuses_naming_the_argument(old: str, new: str, message: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(NLB_MODULE, d)
    text = (d / "main.tf").read_text()
    assert old in text
    (d / "main.tf").write_text(text.replace(old, new))
    with pytest.raises(ConfigError) as exc:
        import_terraform(d)
    assert message in str(exc.value)


def test_terraform_service_connect_without_enabled_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(SC_MODULE, d)
    (d / "main.tf").write_text((d / "main.tf").read_text().replace("    enabled   = true\n", ""))
    with pytest.raises(ConfigError) as exc:
        import_terraform(d)
    assert "aws_ecs_service.catalog: service_connect_configuration.enabled: is required" in str(exc.value)


# -- the CLI ---------------------------------------------------------------------------------

def _shiftlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shiftlab", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, check=False)


def test_cli_imports_and_exports_both_kinds(tmp_path: Path) -> None:
    out = _shiftlab("import", "cloudformation", str(NLB_TEMPLATE), "-o", "nlb.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = _shiftlab("import", "terraform", str(SC_MODULE), "-o", "sc.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for config in ("nlb.yaml", "sc.yaml"):
        for fmt in ("cli-json", "cloudformation", "terraform"):
            out = _shiftlab("export", "-c", config, "--format", fmt, "-o", f"{config}-{fmt}", cwd=tmp_path)
            assert out.returncode == 0, out.stderr
    assert "serviceConnectConfiguration" in (tmp_path / "sc.yaml-cli-json" / "ecs-update-service.json").read_text()
    assert "tcp_idle_timeout_seconds = 600" in (tmp_path / "nlb.yaml-terraform" / "main.tf").read_text()
    bad = load_template(NLB_TEMPLATE)
    bad["Resources"]["TestListener"]["Properties"]["Protocol"] = "TLS"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = _shiftlab("import", "cloudformation", "bad.json", "-o", "bad.yaml", cwd=tmp_path)
    assert out.returncode != 0 and "TestListener.Properties.Protocol: TLS" in out.stderr
    assert not (tmp_path / "bad.yaml").exists()


def test_imported_nlb_template_rehearses(tmp_path: Path) -> None:
    """The NLB template, imported, drives a real BLUE_GREEN deployment behind shiftlab's network load balancer
    (the listeners on free ports: AWS's 443 and 8443)."""
    from shiftlab.common.ports import free_port

    out = _shiftlab("import", "cloudformation", str(NLB_TEMPLATE), "--listener-port", f"443={free_port()}",
                    "--listener-port", f"8443={free_port()}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = subprocess.run([sys.executable, "-m", "shiftlab", "rehearse", "-c", "shiftlab.yaml", "--time-scale", "60",
                          "--load-rps", "20", "--timeout", "100", "-q", "--json"], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["status"] == "SUCCESSFUL"
    assert "PRODUCTION_TRAFFIC_SHIFT" in outcome["stages"] and outcome["load"]["connectionErrors"] == 0


def test_the_readme_example(tmp_path: Path) -> None:
    """README's "Network Load Balancer and Service Connect" example is the commands' real output."""
    from tests.interop.test_readme_examples import readme_block

    assert _shiftlab("import", "terraform", str(SC_MODULE), "-o", "sc.yaml", cwd=tmp_path).returncode == 0
    out = _shiftlab("export", "-c", "sc.yaml", "-o", "sc-out", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    shown = readme_block("`tests/interop/data/tf_nlb`, `tf_serviceconnect`:", "console").splitlines()
    start = shown.index("Exported by shiftlab export --format cli-json. Run each file as AWS's CLI takes it:")
    lines = (tmp_path / "sc-out" / "README.txt").read_text().splitlines()
    assert [line for line in shown[start:] if line != "..."] == lines[:len(shown[start:]) - 1]


def test_a_namespace_named_by_its_arn_is_named_by_its_name(tmp_path: Path) -> None:
    """ServiceConnectConfiguration.Namespace (and the provider's namespace) take "the namespace name or full
    Amazon Resource Name (ARN)": a namespace the template or module creates, referenced by its ARN, is named by
    its Name."""
    template = load_template(SC_TEMPLATE)
    template["Resources"]["CatalogService"]["Properties"]["ServiceConnectConfiguration"]["Namespace"] = {
        "Fn::GetAtt": ["Namespace", "Arn"]}
    assert import_template(template)[0]["service"]["serviceConnectConfiguration"]["namespace"] == "shop"
    d = tmp_path / "m"
    shutil.copytree(SC_MODULE, d)
    text = (d / "main.tf").read_text()
    (d / "main.tf").write_text(text.replace("aws_service_discovery_http_namespace.shop.name",
                                            "aws_service_discovery_http_namespace.shop.arn"))
    imported = import_terraform(d)
    assert imported.config["service"]["serviceConnectConfiguration"]["namespace"] == "shop"


def test_a_listener_of_a_load_balancer_defined_elsewhere_says_its_kind() -> None:
    """A template whose listeners name a load balancer it does not create (an imported value): TCP listeners
    are a network load balancer's."""
    template = load_template(NLB_TEMPLATE)
    del template["Resources"]["NetworkLoadBalancer"]
    for listener in ("ProductionListener", "TestListener"):
        template["Resources"][listener]["Properties"]["LoadBalancerArn"] = {"Fn::ImportValue": "shared-nlb-arn"}
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/shared/0123456789abcdef"
    config, _ = import_template(template, Options(import_values={"shared-nlb-arn": arn}))
    assert config["loadBalancer"]["Type"] == "network"
    assert {ls["Protocol"] for ls in config["loadBalancer"]["Listeners"]} == {"TCP"}


def test_a_client_only_service_connect_service_is_refused(tmp_path: Path) -> None:
    """A service that is only a client of its namespace (no Services) offers nothing to deploy traffic to."""
    template = load_template(SC_TEMPLATE)
    del template["Resources"]["CatalogService"]["Properties"]["ServiceConnectConfiguration"]["Services"]
    with pytest.raises(ImportProblem, match=r"CatalogService\.Properties\.LoadBalancers: the service has no load "):
        import_template(template)
    d = tmp_path / "m"
    shutil.copytree(SC_MODULE, d)
    text = (d / "main.tf").read_text()
    start, end = text.index("    service {"), text.index("    log_configuration {")
    (d / "main.tf").write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError) as exc:
        import_terraform(d)
    assert "aws_ecs_service.catalog: load_balancer: is required" in str(exc.value)


def test_imported_service_connect_template_rehearses(tmp_path: Path) -> None:
    """The Service Connect template, imported, drives a real CANARY deployment through the namespace's proxy
    (rehearse moves the alias's port to a free one): both revisions answered, nothing refused."""
    out = _shiftlab("import", "cloudformation", str(SC_TEMPLATE), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = subprocess.run([sys.executable, "-m", "shiftlab", "rehearse", "-c", "shiftlab.yaml", "--time-scale", "60",
                          "--load-rps", "20", "--timeout", "100", "-q", "--json"], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["status"] == "SUCCESSFUL" and outcome["load"]["connectionErrors"] == 0
    assert set(outcome["load"]["byGroup"]) == {"sc-catalog-blue", "sc-catalog-green"}
