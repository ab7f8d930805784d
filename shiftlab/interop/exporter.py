"""A rehearsed config as AWS takes it. Each format is a function from the
config file's dict to files: name -> text. `FORMATS` lists them for
`shiftlab export --format`; another format (Terraform) registers itself here.

- `cli-json`: one `--cli-input-json` file per call: `aws ecs update-service`
  (the service's deploymentConfiguration, loadBalancers, desiredCount),
  `aws elbv2 modify-listener` (default actions), `modify-rule` (conditions,
  actions), `modify-target-group` (health checks), `modify-target-group-
  attributes`, `aws cloudwatch put-metric-alarm`; a README.txt with the
  commands and the placeholders to fill.
- `cloudformation`: a template snippet (the service, its load balancer,
  target groups, listeners, rules and alarms), what it cannot know (VPC,
  subnets, security groups, task definition) as Parameters.

What only shiftlab has is left out and said so in README.txt: shiftlab's
own header test rule (`<listener>/test`), URL and command hooks, the
listeners' local ports in the CLI files, and the listener and target groups
that stand in for a Service Connect namespace's proxy (the service's
serviceConnectConfiguration is exported instead). A network load balancer's
listeners keep their Protocol and ListenerAttributes (`modify-listener-
attributes`), and a TCP health check has no path and no matcher. A headless
service (neither loadBalancers nor serviceConnectConfiguration) is written
with no ELB resources at all: update-service without loadBalancers, a
template of the service and its alarms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from shiftlab.common.naming import target_group_name

Exporter = Callable[[dict[str, Any]], dict[str, str]]

FORMATS: dict[str, Exporter] = {}


def _settings(data: dict[str, Any]) -> Any:
    from shiftlab.common.configfile import ConfigError
    from shiftlab.settings import load_settings

    settings = load_settings(json.loads(json.dumps(data)))
    if settings.service is None:
        raise ConfigError(["service: export needs a service (a proxy-only config has no deployment to export)"])
    return settings


def _load_balancer(settings: Any) -> Any:
    """The config's loadBalancer section, or None: a headless service
    (neither loadBalancers nor serviceConnectConfiguration) has no ELB
    resources to export, and a loadBalancer section its file may still have
    runs nothing (`shiftlab validate` warns)."""
    if settings.service.exposure == "headless":
        return None
    return settings.load_balancer


def _headless_notes(settings: Any) -> list[str]:
    """What an export of a headless service says of its activation: the
    shipped activation hook (a command hook, shiftlab's own) is left out; on
    AWS a Lambda function at PRODUCTION_TRAFFIC_SHIFT flips what says which
    revision consumes (AWS's queue-consumer example keeps a parameter)."""
    if settings.service.exposure != "headless":
        return []
    out = ["service: headless (neither loadBalancers nor serviceConnectConfiguration): no ELB resources; ECS "
           "shifts no traffic, the lifecycle hooks decide which revision works"]
    if settings.deployment.strategy != "ROLLING" and not any(
            h.kind not in ("URL", "COMMAND") and "PRODUCTION_TRAFFIC_SHIFT" in h.lifecycleStages
            for h in settings.deployment.lifecycleHooks):
        out.append("deploymentConfiguration.lifecycleHooks: no Lambda hook at PRODUCTION_TRAFFIC_SHIFT: on AWS, "
                   "add one that activates the new revision and deactivates the old (as shiftlab's activation "
                   "hook, shiftlab.activation_hook, did in the rehearsal)")
    return out


def _service_connect_parts(settings: Any) -> tuple[set[str], set[str]]:
    """The listener and target groups shiftlab builds for a Service Connect
    endpoint (shiftlab.serviceconnect): the namespace's proxy is ECS's own on
    AWS (a sidecar in each task), not an ELB resource, so no export writes them;
    the service's serviceConnectConfiguration carries the endpoint."""
    from shiftlab.controller.config import service_connect_names

    svc = settings.service
    sc = svc.service_connect if svc is not None else None
    if sc is None:
        return set(), set()
    names = service_connect_names(sc, svc.namespace)
    return {names.listener}, {names.blue, names.green}


def _service_connect(svc: Any) -> dict[str, Any] | None:
    """ECS's ServiceConnectConfiguration as the config gives it (update-service's field)."""
    sc = svc.serviceConnectConfiguration
    return None if sc is None else sc.model_dump(mode="json", exclude_none=True, exclude_unset=True)


def _health_check(tg: Any) -> dict[str, Any]:
    """ModifyTargetGroup's health check fields of a group: a TCP check (an
    NLB's default) has no path and no matcher."""
    out = {"HealthCheckProtocol": tg.HealthCheckProtocol, "HealthCheckEnabled": tg.HealthCheckEnabled,
           "HealthCheckPath": tg.HealthCheckPath, "HealthCheckPort": tg.HealthCheckPort,
           "HealthCheckIntervalSeconds": tg.HealthCheckIntervalSeconds,
           "HealthCheckTimeoutSeconds": tg.HealthCheckTimeoutSeconds,
           "HealthyThresholdCount": tg.HealthyThresholdCount,
           "UnhealthyThresholdCount": tg.UnhealthyThresholdCount, "Matcher": {"HttpCode": tg.Matcher.HttpCode}}
    if tg.HealthCheckProtocol == "TCP":
        del out["HealthCheckPath"], out["Matcher"]
    return out


def _placeholder(kind: str, name: str) -> str:
    return f"<{kind} of {name}>"


class _Refs:
    """ARNs of the config's target groups, listeners and rules: as the config
    gives them, else a marked placeholder."""

    def __init__(self, settings: Any):
        self.lb = _load_balancer(settings)
        self.groups = {tg.Name: tg.TargetGroupArn for tg in self.lb.TargetGroups} if self.lb is not None else {}
        self.placeholders: list[str] = []

    def _hole(self, text: str) -> str:
        if text not in self.placeholders:
            self.placeholders.append(text)
        return text

    def group(self, ref: str) -> str:
        if ref.startswith("arn:"):
            return ref
        name = target_group_name(ref)
        return self.groups.get(name) or self._hole(_placeholder("TargetGroupArn", name))

    def rule(self, ref: str) -> str | None:
        """A rule id (`<listener>/<priority|default>`) as an ARN; None for shiftlab's own `<listener>/test`."""
        if ref.startswith("arn:"):
            return ref
        listener_name, _, which = ref.rpartition("/")
        for ls in self.lb.Listeners if self.lb is not None else []:
            if ls.name != listener_name:
                continue
            if which == "test":
                return None
            if which == "default":
                return ls.ListenerArn or self._hole(_placeholder("ListenerArn", ls.name))
            for r in ls.Rules:
                if str(r.Priority) == which:
                    return r.RuleArn or self._hole(_placeholder("RuleArn", ref))
        return self._hole(_placeholder("ARN", ref))


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


def _actions(actions: list[Any], refs: _Refs) -> list[dict[str, Any]]:
    out = []
    for a in actions:
        d = _dump(a)
        if "TargetGroupArn" in d:
            d["TargetGroupArn"] = refs.group(d["TargetGroupArn"])
        for t in (d.get("ForwardConfig") or {}).get("TargetGroups", []):
            t["TargetGroupArn"] = refs.group(t["TargetGroupArn"])
        out.append(d)
    return out


def _deployment(settings: Any, notes: list[str]) -> dict[str, Any]:
    # As written (ECS applies the same defaults), so that a strategy's
    # configuration goes only with that strategy.
    dc: dict[str, Any] = settings.deployment.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    if settings.deployment.strategy != "ROLLING" and "bakeTimeInMinutes" not in dc:
        # As rehearsed: ECS's API wants it for BLUE_GREEN, and CloudFormation would set 15 minutes.
        dc["bakeTimeInMinutes"] = settings.deployment.bakeTimeInMinutes
        notes.append(f"deploymentConfiguration.bakeTimeInMinutes: not in the config; {dc['bakeTimeInMinutes']}, "
                     "as rehearsed, is written (CloudFormation would set 15 for this strategy)")
    if "lifecycleHooks" not in dc:
        return dc
    hooks = []
    for i, (hook, model) in enumerate(zip(dc.get("lifecycleHooks", []), settings.deployment.lifecycleHooks,
                                          strict=True)):
        if model.kind in ("URL", "COMMAND"):
            notes.append(f"deploymentConfiguration.lifecycleHooks[{i}] ({model.hookTargetArn}): a {model.kind} hook "
                         "is shiftlab's own; ECS calls a Lambda function (AWS_LAMBDA) or pauses (PAUSE): left out")
            continue
        if hook.get("targetType") == "LAMBDA":
            hook["targetType"] = "AWS_LAMBDA"
        hooks.append(hook)
    dc["lifecycleHooks"] = hooks
    return dc


def _service_lb(settings: Any, refs: _Refs, notes: list[str]) -> dict[str, Any]:
    svc = settings.service
    sl = svc.lb
    out: dict[str, Any] = {"targetGroupArn": refs.group(sl.targetGroupArn),
                           "containerName": sl.containerName or svc.taskDefinition.family or svc.serviceName,
                           "containerPort": sl.containerPort or svc.taskDefinition.containerPort}
    notes += _container_notes(svc, out["containerName"], out["containerPort"])
    adv = sl.advancedConfiguration
    if adv is not None:
        a: dict[str, Any] = {"alternateTargetGroupArn": refs.group(adv.alternateTargetGroupArn)}
        prod = refs.rule(adv.productionListenerRule)
        if prod is not None:
            a["productionListenerRule"] = prod
        tests = [(r, refs.rule(r)) for r in adv.testListenerRule]
        kept = [arn for _, arn in tests if arn is not None]
        for r, arn in tests:
            if arn is None:
                notes.append(f"testListenerRule {r}: shiftlab's own header rule (TestTrafficRule), which an ALB "
                             "does not have: left out")
        if kept:
            a["testListenerRule"] = kept[0]
            for extra in kept[1:]:
                notes.append(f"testListenerRule {extra}: ECS takes one test listener rule: left out")
        if adv.roleArn:
            a["roleArn"] = adv.roleArn
        else:
            notes.append("advancedConfiguration.roleArn: ECS needs the role that lets it modify the listener "
                         "rules; add it")
        out["advancedConfiguration"] = a
    return out


def _container_notes(svc: Any, name: str, port: int) -> list[str]:
    """What ECS needs of a load balancer entry that the config leaves unsaid."""
    out = []
    if svc.lb.containerName is None:
        out.append(f"loadBalancers[0].containerName: not in the config; {name!r} stands for the container's name")
    if svc.lb.containerPort is None:
        out.append(f"loadBalancers[0].containerPort: not in the config; taskDefinition.containerPort ({port}) "
                   "stands for it")
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def cli_json(data: dict[str, Any]) -> dict[str, str]:
    """The `--cli-input-json` files, by name."""
    settings = _settings(data)
    refs = _Refs(settings)
    notes: list[str] = []
    svc = settings.service
    files: dict[str, Any] = {}
    own_listeners, own_groups = _service_connect_parts(settings)
    update: dict[str, Any] = {"cluster": svc.clusterName, "service": svc.serviceName,
                              "desiredCount": svc.desiredCount,
                              "deploymentConfiguration": _deployment(settings, notes)}
    if svc.loadBalancers:
        update["loadBalancers"] = [_service_lb(settings, refs, notes)]
    if svc.serviceConnectConfiguration is not None:
        update["serviceConnectConfiguration"] = _service_connect(svc)
    update["healthCheckGracePeriodSeconds"] = svc.healthCheckGracePeriodSeconds
    files["ecs-update-service.json"] = update
    notes += _headless_notes(settings)
    lb = _load_balancer(settings)
    network = lb is not None and lb.network
    for ls in lb.Listeners if lb is not None else []:
        if ls.name in own_listeners:
            continue
        arn = ls.ListenerArn or refs._hole(_placeholder("ListenerArn", ls.name))
        files[f"elbv2-modify-listener-{_safe(ls.name)}.json"] = {
            "ListenerArn": arn, **({"Protocol": ls.Protocol} if network else {}),
            "DefaultActions": _actions(ls.DefaultActions, refs)}
        if ls.ListenerAttributes:
            files[f"elbv2-modify-listener-attributes-{_safe(ls.name)}.json"] = {
                "ListenerArn": arn, "Attributes": [_dump(a) for a in ls.ListenerAttributes]}
        for r in ls.Rules:
            files[f"elbv2-modify-rule-{_safe(ls.name)}-{r.Priority}.json"] = {
                "RuleArn": r.RuleArn or refs._hole(_placeholder("RuleArn", f"{ls.name}/{r.Priority}")),
                "Conditions": [_dump(c) for c in r.Conditions], "Actions": _actions(r.Actions, refs)}
        if ls.TestTrafficRule.Enabled:
            notes.append(f"listener {ls.name}: TestTrafficRule (requests with the test header follow green) is "
                         "shiftlab's own; on AWS a listener rule with an http-header condition does it: left out")
    for tg in lb.TargetGroups if lb is not None else []:
        if tg.Name in own_groups:
            continue
        arn = refs.group(tg.Name)
        health = _health_check(tg)
        if not network:  # as before: an ALB's checks are HTTP
            health.pop("HealthCheckProtocol")
        files[f"elbv2-modify-target-group-{_safe(tg.Name)}.json"] = {"TargetGroupArn": arn, **health}
        if tg.TargetGroupAttributes:
            files[f"elbv2-modify-target-group-attributes-{_safe(tg.Name)}.json"] = {
                "TargetGroupArn": arn, "Attributes": [_dump(a) for a in tg.TargetGroupAttributes]}
    if own_listeners:
        notes.append(f"listener {', '.join(own_listeners)} and target groups {', '.join(sorted(own_groups))}: "
                     "shiftlab's stand-in for the Service Connect proxy (ECS runs it in each task): "
                     "serviceConnectConfiguration carries the endpoint")
    if lb is not None and lb.LoadBalancerAttributes:
        files["elbv2-modify-load-balancer-attributes.json"] = {
            "LoadBalancerArn": refs._hole(_placeholder("LoadBalancerArn", lb.Name)),
            "Attributes": [_dump(a) for a in lb.LoadBalancerAttributes]}
    for alarm in data.get("alarms") or []:
        files[f"cloudwatch-put-metric-alarm-{_safe(alarm['AlarmName'])}.json"] = alarm
    out = {name: _json(value) for name, value in files.items()}
    out["README.txt"] = _readme(files, refs.placeholders, notes)
    return out


_COMMANDS = (("ecs-update-service", "aws ecs update-service"),
             ("elbv2-modify-listener-attributes", "aws elbv2 modify-listener-attributes"),
             ("elbv2-modify-listener", "aws elbv2 modify-listener"),
             ("elbv2-modify-load-balancer-attributes", "aws elbv2 modify-load-balancer-attributes"),
             ("elbv2-modify-rule", "aws elbv2 modify-rule"),
             ("elbv2-modify-target-group-attributes", "aws elbv2 modify-target-group-attributes"),
             ("elbv2-modify-target-group", "aws elbv2 modify-target-group"),
             ("cloudwatch-put-metric-alarm", "aws cloudwatch put-metric-alarm"))


def _readme(files: dict[str, Any], placeholders: list[str], notes: list[str]) -> str:
    lines = ["Exported by shiftlab export --format cli-json. Run each file as AWS's CLI takes it:", ""]
    tail = ["", "The ARNs are the config's as they are: a config imported from a template holds ARNs in AWS's "
            "formats made up by the import; use your stack's (aws cloudformation describe-stack-resources)."]
    for name in files:
        command = next(c for prefix, c in _COMMANDS if name.startswith(prefix))
        lines.append(f"  {command} --cli-input-json file://{name}")
    if placeholders:
        lines += ["", "Fill in these placeholders (the config does not hold the ARNs):", ""]
        lines += [f"  {p}" for p in placeholders]
    if notes:
        lines += ["", "Not exported:", ""] + [f"  {n}" for n in notes]
    return "\n".join(lines + tail) + "\n"


FORMATS["cli-json"] = cli_json


# -- CloudFormation ----------------------------------------------------------------------

def _logical(prefix: str, name: str) -> str:
    return prefix + "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _pascal(node: Any) -> Any:
    """ECS's API spelling as CloudFormation's (bakeTimeInMinutes -> BakeTimeInMinutes); hookDetails kept as is."""
    if isinstance(node, list):
        return [_pascal(v) for v in node]
    if isinstance(node, dict):
        # hookDetails and a log driver's options are the user's own keys.
        return {k[:1].upper() + k[1:]: (v if k in ("hookDetails", "options") else _pascal(v)) for k, v in node.items()}
    return node


def cloudformation(data: dict[str, Any]) -> dict[str, str]:
    """`cloudformation.yaml`: the service, its target groups, listeners,
    rules and alarms as CloudFormation resources (long-form intrinsics, so
    it reads as JSON too), and README.txt with what was left out."""
    settings = _settings(data)
    notes: list[str] = []
    svc = settings.service
    own_listeners, own_groups = _service_connect_parts(settings)
    notes += _headless_notes(settings)
    given = _load_balancer(settings)
    if given is None:  # headless: no ELB resources (the model's fields only: nothing is validated)
        from shiftlab.proxy.config import LoadBalancer

        lb = LoadBalancer.model_construct(Name="none", Type="application", Listeners=[], TargetGroups=[],
                                          LoadBalancerAttributes=[])
    else:
        lb = given.model_copy(update={
            "Listeners": [ls for ls in given.Listeners if ls.name not in own_listeners],
            "TargetGroups": [tg for tg in given.TargetGroups if tg.Name not in own_groups]})
    if own_listeners:
        notes.append(f"listener {', '.join(own_listeners)} and target groups {', '.join(sorted(own_groups))}: "
                     "shiftlab's stand-in for the Service Connect proxy (ECS runs it in each task): "
                     "ServiceConnectConfiguration carries the endpoint")
    tg_ids = {tg.Name: _logical("TargetGroup", tg.Name) for tg in lb.TargetGroups}
    ls_ids = {ls.name: _logical("Listener", ls.name) for ls in lb.Listeners}
    rule_ids = {f"{ls.name}/{r.Priority}": _logical("Rule", f"{ls.name}-{r.Priority}")
                for ls in lb.Listeners for r in ls.Rules}
    arns = {ls.ListenerArn: f"{ls.name}/default" for ls in lb.Listeners if ls.ListenerArn}
    arns.update({r.RuleArn: f"{ls.name}/{r.Priority}" for ls in lb.Listeners for r in ls.Rules if r.RuleArn})

    def group(ref: str) -> Any:
        name = target_group_name(ref)
        return {"Ref": tg_ids[name]} if name in tg_ids else ref

    def rule(ref: str) -> Any:
        ref = arns.get(ref, ref)
        listener, _, which = ref.rpartition("/")
        if which == "default" and listener in ls_ids and lb.network:
            return {"Ref": ls_ids[listener]}  # behind an NLB, ECS takes the listener's ARN
        if which == "default" and listener in ls_ids:
            notes.append(f"{ref}: the listener's default action is the rule here; for an ALB, ECS takes a listener "
                         "rule's ARN: add a rule (path /*) and name it")
            return {"Ref": ls_ids[listener]}
        if ref in rule_ids:
            return {"Ref": rule_ids[ref]}
        return None if which == "test" else ref

    def actions(items: list[Any]) -> list[Any]:
        out = []
        for a in items:
            d = _dump(a)
            if "TargetGroupArn" in d:
                d["TargetGroupArn"] = group(d["TargetGroupArn"])
            for t in (d.get("ForwardConfig") or {}).get("TargetGroups", []):
                t["TargetGroupArn"] = group(t["TargetGroupArn"])
            out.append(d)
        return out

    resources: dict[str, Any] = {}
    lb_id = _logical("LoadBalancer", lb.Name)
    parameters: dict[str, Any] = {
        "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC of the target groups."},
        "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>", "Description": "The load balancer's subnets."},
        "SecurityGroups": {"Type": "List<AWS::EC2::SecurityGroup::Id>",
                           "Description": "The load balancer's security groups."},
        "TaskDefinitionArn": {"Type": "String", "Description": "The task definition the service runs."},
    }
    if lb.Listeners:  # none: a Service Connect service without a load balancer
        lb_props: dict[str, Any] = {"Name": lb.Name, "Type": lb.Type, "Subnets": {"Ref": "Subnets"},
                                    "SecurityGroups": {"Ref": "SecurityGroups"}}
        if lb.LoadBalancerAttributes:
            lb_props["LoadBalancerAttributes"] = [_dump(a) for a in lb.LoadBalancerAttributes]
        resources[lb_id] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": lb_props}
    else:
        for unused in ("VpcId", "Subnets", "SecurityGroups"):
            parameters.pop(unused)
    for tg in lb.TargetGroups:
        props = _dump(tg)
        props.pop("Targets", None)
        props.pop("TargetGroupArn", None)
        if not props.get("TargetGroupAttributes"):
            props.pop("TargetGroupAttributes", None)
        if tg.HealthCheckProtocol == "TCP":  # a TCP health check has neither (an NLB's default)
            props.pop("Matcher", None)
            props.pop("HealthCheckPath", None)
        props.setdefault("Port", svc.taskDefinition.containerPort)
        props["VpcId"] = {"Ref": "VpcId"}
        resources[tg_ids[tg.Name]] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": props}
    for ls in lb.Listeners:
        resources[ls_ids[ls.name]] = {
            "Type": "AWS::ElasticLoadBalancingV2::Listener", "Metadata": {"shiftlab": {"Name": ls.name}},
            "Properties": {"LoadBalancerArn": {"Ref": lb_id}, "Port": ls.Port, "Protocol": ls.Protocol,
                           "DefaultActions": actions(ls.DefaultActions),
                           **({"ListenerAttributes": [_dump(a) for a in ls.ListenerAttributes]}
                              if ls.ListenerAttributes else {})}}
        for r in ls.Rules:
            resources[rule_ids[f"{ls.name}/{r.Priority}"]] = {
                "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
                "Properties": {"ListenerArn": {"Ref": ls_ids[ls.name]}, "Priority": r.Priority,
                               "Conditions": [_dump(c) for c in r.Conditions], "Actions": actions(r.Actions)}}
        if ls.TestTrafficRule.Enabled:
            notes.append(f"listener {ls.name}: TestTrafficRule is shiftlab's own header rule: left out")
    # The alarms' dimensions: the exported groups' and load balancer's full names.
    lb_full = {"Fn::GetAtt": [lb_id, "LoadBalancerFullName"]}

    def dimensions(dims: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for d in dims:
            value: Any = d["Value"]
            if d["Name"] == "TargetGroup" and target_group_name(value) in tg_ids:
                value = {"Fn::GetAtt": [tg_ids[target_group_name(value)], "TargetGroupFullName"]}
            elif d["Name"] == "LoadBalancer" and lb.Listeners:
                value = lb_full
            out.append({"Name": d["Name"], "Value": value})
        return out

    alarm_ids = {}
    for alarm in data.get("alarms") or []:
        props = json.loads(json.dumps(alarm))
        if props.get("Dimensions"):
            props["Dimensions"] = dimensions(props["Dimensions"])
        for m in props.get("Metrics") or []:
            metric = (m.get("MetricStat") or {}).get("Metric") or {}
            if metric.get("Dimensions"):
                metric["Dimensions"] = dimensions(metric["Dimensions"])
        alarm_ids[alarm["AlarmName"]] = _logical("Alarm", alarm["AlarmName"])
        resources[alarm_ids[alarm["AlarmName"]]] = {"Type": "AWS::CloudWatch::Alarm", "Properties": props}

    dc = _deployment(settings, notes)
    if "alarms" in dc:
        dc["alarms"]["alarmNames"] = [{"Ref": alarm_ids[n]} if n in alarm_ids else n
                                      for n in dc["alarms"].get("alarmNames", [])]
    service_props: dict[str, Any] = {
        "ServiceName": svc.serviceName, "Cluster": svc.clusterName, "DesiredCount": svc.desiredCount,
        "TaskDefinition": {"Ref": "TaskDefinitionArn"},
        "HealthCheckGracePeriodSeconds": svc.healthCheckGracePeriodSeconds,
        "DeploymentController": {"Type": "ECS"},
        "DeploymentConfiguration": _pascal(dc)}
    if svc.serviceConnectConfiguration is not None:
        service_props["ServiceConnectConfiguration"] = _pascal(_service_connect(svc))
    if svc.loadBalancers:
        service_props["LoadBalancers"] = [_cfn_service_lb(svc, group, rule, notes)]
    resources[_logical("Service", svc.serviceName)] = {
        "Type": "AWS::ECS::Service", "Properties": service_props}
    template = {"AWSTemplateFormatVersion": "2010-09-09",
                "Description": f"The ECS service {svc.serviceName} as rehearsed with shiftlab (shiftlab export)",
                "Parameters": parameters, "Resources": resources}
    # Through JSON: no YAML aliases for the values used twice (CloudFormation refuses them).
    text = yaml.safe_dump(json.loads(json.dumps(template)), sort_keys=False, width=120)
    readme = ("Exported by shiftlab export --format cloudformation: cloudformation.yaml holds the service, its "
              "load balancer, target groups, listeners, rules and alarms.\n"
              "The listeners' Port is the config's (local) port: set AWS's.\n") if given is not None else (
        "Exported by shiftlab export --format cloudformation: cloudformation.yaml holds the headless service "
        "(no load balancer) and its alarms.\n")
    if notes:
        readme += "\nNot exported, or to check:\n\n" + "\n".join(f"  {n}" for n in dict.fromkeys(notes)) + "\n"
    return {"cloudformation.yaml": text, "README.txt": readme}


def _cfn_service_lb(svc: Any, group: Callable[[str], Any], rule: Callable[[str], Any],
                    notes: list[str]) -> dict[str, Any]:
    """The service's LoadBalancers entry, its references as the template's."""
    sl = svc.lb
    lb_entry: dict[str, Any] = {"TargetGroupArn": group(sl.targetGroupArn),
                                "ContainerName": sl.containerName or svc.taskDefinition.family or svc.serviceName,
                                "ContainerPort": sl.containerPort or svc.taskDefinition.containerPort}
    notes += _container_notes(svc, lb_entry["ContainerName"], lb_entry["ContainerPort"])
    adv = sl.advancedConfiguration
    if adv is not None:
        a: dict[str, Any] = {"AlternateTargetGroupArn": group(adv.alternateTargetGroupArn),
                             "ProductionListenerRule": rule(adv.productionListenerRule)}
        tests = [t for t in (rule(r) for r in adv.testListenerRule) if t is not None]
        if tests:
            a["TestListenerRule"] = tests[0]
        if len(tests) > 1 or len(tests) < len(adv.testListenerRule):
            notes.append("testListenerRule: ECS takes one test listener rule (and no shiftlab header rule): "
                         f"{len(adv.testListenerRule) - 1 if tests else len(adv.testListenerRule)} left out")
        if adv.roleArn:
            a["RoleArn"] = adv.roleArn
        lb_entry["AdvancedConfiguration"] = a
    return lb_entry


FORMATS["cloudformation"] = cloudformation

# Imported last: terraform_export checks the config through shiftlab.settings.
from shiftlab.interop import terraform_export  # noqa: E402

FORMATS["terraform"] = terraform_export.files
