"""CodeDeploy blue/green for ECS, migrated to ECS's own deployments: an
AppSpec, a deployment configuration and (optionally) the deployment group
become a `deploymentConfiguration` (strategy, percentages, bakes, lifecycle
hooks, alarms) and the service's fields they name.

AWS's migration guide, "Migrate CodeDeploy blue/green deployments to Amazon
ECS blue/green deployments":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-codedeploy-to-ecs-bluegreen.html
and its procedure page ("You must create new lifecycle hooks for your Amazon
ECS blue/green deployment"):
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/migrate-code-deploy-to-ecs-blue-green.html

The tables below are the mapping; what has no ECS equivalent is reported,
never silently dropped, and what ECS cannot express at all (a linear step
under ECS's 3 %, a wait over its 1,440 minutes) is refused naming the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shiftlab.common.configfile import ConfigError, load_file
from shiftlab.interop import notes
from shiftlab.interop.report import Report

# CodeDeploy's predefined ECS configurations ("Predefined deployment
# configurations for an Amazon ECS compute platform",
# https://docs.aws.amazon.com/codedeploy/latest/userguide/deployment-configurations.html),
# as the trafficRoutingConfig `aws deploy create-deployment-config` would take.
PREDEFINED: dict[str, dict[str, Any]] = {
    "CodeDeployDefault.ECSAllAtOnce": {"type": "AllAtOnce"},
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes":
        {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 1}},
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes":
        {"type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 3}},
    "CodeDeployDefault.ECSCanary10Percent5Minutes":
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 5}},
    "CodeDeployDefault.ECSCanary10Percent15Minutes":
        {"type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 15}},
}

# CodeDeploy's traffic routing -> ECS's strategy and the fields it sets.
ROUTING = {
    "AllAtOnce": ("BLUE_GREEN", None, {}),
    "TimeBasedCanary": ("CANARY", "canaryConfiguration",
                        {"canaryPercentage": "canaryPercent", "canaryInterval": "canaryBakeTimeInMinutes"}),
    "TimeBasedLinear": ("LINEAR", "linearConfiguration",
                        {"linearPercentage": "stepPercent", "linearInterval": "stepBakeTimeInMinutes"}),
}

# An AppSpec hook (CodeDeploy's lifecycle event) -> the ECS lifecycle stage
# at the same point of the rollout, by the two services' own descriptions:
# BeforeInstall "before the replacement task set is created" / PRE_SCALE_UP
# "the green service revision has not started"; AfterInstall "after the
# replacement task set is created" / POST_SCALE_UP "the green service
# revision has started"; AfterAllowTestTraffic "after the test listener
# serves traffic to the replacement task set" / POST_TEST_TRAFFIC_SHIFT "the
# test traffic shift is complete"; BeforeAllowTraffic "before traffic is
# shifted to the replacement task set" / PRE_PRODUCTION_TRAFFIC_SHIFT
# "occurs before production traffic shift"; AfterAllowTraffic "after the
# second target group serves traffic" / POST_PRODUCTION_TRAFFIC_SHIFT "the
# production traffic shift is complete". (AppSpec 'hooks' section:
# https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-hooks.html;
# ECS's stages: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentLifecycleHook.html)
HOOK_STAGES = {
    "BeforeInstall": "PRE_SCALE_UP",
    "AfterInstall": "POST_SCALE_UP",
    "AfterAllowTestTraffic": "POST_TEST_TRAFFIC_SHIFT",
    "BeforeAllowTraffic": "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "AfterAllowTraffic": "POST_PRODUCTION_TRAFFIC_SHIFT",
}

# ECS's ranges (CanaryConfiguration, LinearConfiguration, DeploymentConfiguration).
ECS_RANGES = {"canaryPercent": (0.1, 100), "stepPercent": (3, 100), "canaryBakeTimeInMinutes": (0, 1440),
              "stepBakeTimeInMinutes": (0, 1440), "bakeTimeInMinutes": (0, 1440)}

PLACEHOLDER_HOOK = "command:{python} -m shiftlab.demo_hook"
PLACEHOLDER_REGION = "us-east-1"
PLACEHOLDER_ACCOUNT = "000000000000"
_ARN = re.compile(r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:([a-zA-Z0-9_-]{1,64})(?::[\w$-]+)?")
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}(?::[\w$-]+)?")


@dataclass
class Migration:
    deployment: dict[str, Any]  # a deploymentConfiguration
    service: dict[str, Any]  # service fields the AppSpec and the group name (dotted paths -> values)
    lambda_functions: dict[str, str]  # placeholder stand-ins for the hooks' functions
    report: Report


def read_document(path: str, what: str) -> dict[str, Any]:
    """An AppSpec, deployment configuration or deployment group file (JSON or YAML)."""
    return load_file(path, what)


def traffic_routing(spec: str) -> tuple[str, dict[str, Any]]:
    """`--deployment-config`: a predefined name, or a file as `aws deploy
    create-deployment-config --cli-input-json` takes it (or
    get-deployment-config's output, or a bare trafficRoutingConfig).
    Returns (its name, the trafficRoutingConfig)."""
    if spec in PREDEFINED:
        return spec, PREDEFINED[spec]
    if spec.startswith("CodeDeployDefault."):
        raise ConfigError([f"--deployment-config: {spec!r} is not one of CodeDeploy's predefined ECS "
                           f"configurations ({', '.join(PREDEFINED)})"])
    if not Path(spec).is_file():
        raise ConfigError([f"--deployment-config: {spec!r} is neither a predefined ECS configuration "
                           f"({', '.join(PREDEFINED)}) nor a file"])
    data = read_document(spec, "a deployment configuration")
    data = data.get("deploymentConfigInfo", data)
    platform = data.get("computePlatform")
    if platform not in (None, "ECS"):
        raise ConfigError([f"{spec}: computePlatform: {platform!r}: only an ECS deployment configuration "
                           "migrates to ECS's deployments"])
    routing = data.get("trafficRoutingConfig", data if "type" in data else None)
    if not isinstance(routing, dict):
        raise ConfigError([f"{spec}: trafficRoutingConfig: is required (type AllAtOnce, TimeBasedCanary or "
                           "TimeBasedLinear)"])
    return str(data.get("deploymentConfigName") or spec), routing


def strategy_of(routing: dict[str, Any], where: str = "trafficRoutingConfig") -> dict[str, Any]:
    """CodeDeploy's trafficRoutingConfig as ECS's strategy and its configuration."""
    rtype = routing.get("type")
    if rtype not in ROUTING:
        raise ConfigError([f"{where}.type: {rtype!r} is not AllAtOnce, TimeBasedCanary or TimeBasedLinear"])
    strategy, section, fields = ROUTING[rtype]
    out: dict[str, Any] = {"strategy": strategy}
    if section is None:
        return out
    key = "timeBasedCanary" if rtype == "TimeBasedCanary" else "timeBasedLinear"
    body = routing.get(key)
    if not isinstance(body, dict):
        raise ConfigError([f"{where}.{key}: is required with type {rtype}"])
    sub: dict[str, Any] = {}
    problems = []
    for cd_name, ecs_name in fields.items():
        value = body.get(cd_name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}.{key}.{cd_name}: is required (a number)")
            continue
        lo, hi = ECS_RANGES[ecs_name]
        if not lo <= value <= hi:
            problems.append(f"{where}.{key}.{cd_name}: {value:g} has no ECS equivalent: ECS's {ecs_name} is "
                            f"{lo:g}..{hi:g}")
            continue
        sub[ecs_name] = value
    if problems:
        raise ConfigError(problems)
    out[section] = sub
    return out


def _function(value: Any, hook: str, region: str | None, account: str | None, report: Report) -> tuple[str, str]:
    """(the hook's Lambda function ARN, its name)."""
    if not isinstance(value, str) or not value:
        raise ConfigError([f"Hooks.{hook}: must name a Lambda function"])
    m = _ARN.fullmatch(value)
    if m:
        return value, m.group(1)
    if not _NAME.fullmatch(value):
        raise ConfigError([f"Hooks.{hook}: {value!r} is neither a Lambda function name nor its ARN"])
    if region is None or account is None:
        notes.local(report, f"Hooks.{hook}", f"the ARN of {value} is built with region {region or PLACEHOLDER_REGION} "
                    f"and account {account or PLACEHOLDER_ACCOUNT} (give --region and --account-id)")
    name, _, qualifier = value.partition(":")
    arn = (f"arn:aws:lambda:{region or PLACEHOLDER_REGION}:{account or PLACEHOLDER_ACCOUNT}:function:{name}"
           + (f":{qualifier}" if qualifier else ""))
    return arn, name


def appspec_parts(appspec: dict[str, Any], report: Report, region: str | None,
                  account: str | None, hook_role: str | None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                        dict[str, str]]:
    """(service fields, lifecycle hooks, lambdaFunctions placeholders) of an
    ECS AppSpec (https://docs.aws.amazon.com/codedeploy/latest/userguide/reference-appspec-file-structure-resources.html)."""
    resources = appspec.get("Resources")
    if not isinstance(resources, list) or len(resources) != 1 or not isinstance(resources[0], dict) \
            or len(resources[0]) != 1:
        raise ConfigError(["Resources: an ECS AppSpec holds exactly one resource (TargetService)"])
    (rname, resource), = resources[0].items()
    where = f"Resources[0].{rname}"
    if not isinstance(resource, dict) or resource.get("Type") != "AWS::ECS::Service":
        got = resource.get("Type") if isinstance(resource, dict) else resource
        raise ConfigError([f"{where}.Type: {got!r}: an ECS AppSpec's resource is AWS::ECS::Service"])
    props = resource.get("Properties")
    if not isinstance(props, dict):
        raise ConfigError([f"{where}.Properties: is required"])
    service: dict[str, Any] = {}
    task = props.get("TaskDefinition")
    if not isinstance(task, str) or not task:
        raise ConfigError([f"{where}.Properties.TaskDefinition: is required"])
    family = task.rsplit("/", 1)[-1].split(":", 1)[0]
    service["taskDefinition.family"] = family
    notes.mapped(report, f"{where}.Properties.TaskDefinition", "service.taskDefinition.family")
    notes.local(report, "service.taskDefinition", f"the revision AppSpec deploys ({task}) runs here as the config's "
                "command or image (shiftlab rehearse --command/--image/--env)")
    lbi = props.get("LoadBalancerInfo")
    if not isinstance(lbi, dict):
        raise ConfigError([f"{where}.Properties.LoadBalancerInfo: is required (ContainerName, ContainerPort)"])
    for cd, key in (("ContainerName", "containerName"), ("ContainerPort", "containerPort")):
        value = lbi.get(cd)
        if value is None:
            raise ConfigError([f"{where}.Properties.LoadBalancerInfo.{cd}: is required"])
        if cd == "ContainerPort" and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 1 <= value <= 65535):
            raise ConfigError([f"{where}.Properties.LoadBalancerInfo.ContainerPort: {value!r} is not a port"])
        service[f"loadBalancers[0].{key}"] = value
        notes.mapped(report, f"{where}.Properties.LoadBalancerInfo.{cd}", f"service.loadBalancers[0].{key}")
    for prop, why in (("PlatformVersion", "Fargate's platform version: not rehearsed"),
                      ("NetworkConfiguration", "networking (subnets, security groups): tasks run on this machine"),
                      ("CapacityProviderStrategy", "where tasks run on AWS: here they run as local processes or "
                                                   "containers")):
        if prop in props:
            notes.ignored(report, f"{where}.Properties.{prop}", why)
    hooks: list[dict[str, Any]] = []
    functions: dict[str, str] = {}
    raw_hooks = appspec.get("Hooks") or []
    if isinstance(raw_hooks, dict):
        raw_hooks = [{k: v} for k, v in raw_hooks.items()]
    if not isinstance(raw_hooks, list):
        raise ConfigError(["Hooks: must be a list of {event: function}"])
    seen: set[str] = set()
    for i, entry in enumerate(raw_hooks):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError([f"Hooks[{i}]: must be one {{event: Lambda function}}"])
        (event, fn), = entry.items()
        if event not in HOOK_STAGES:
            raise ConfigError([f"Hooks[{i}].{event}: not a lifecycle event of an ECS deployment "
                               f"({', '.join(HOOK_STAGES)})"])
        if event in seen:
            raise ConfigError([f"Hooks[{i}].{event}: given twice"])
        seen.add(event)
        arn, name = _function(fn, event, region, account, report)
        hook: dict[str, Any] = {"hookTargetArn": arn, "lifecycleStages": [HOOK_STAGES[event]]}
        if hook_role:
            hook["roleArn"] = hook_role
        hooks.append(hook)
        functions.setdefault(name, PLACEHOLDER_HOOK)
        notes.mapped(report, f"Hooks.{event}", f"deploymentConfiguration.lifecycleHooks[{len(hooks) - 1}] "
                     f"({HOOK_STAGES[event]})")
        notes.local(report, f"Hooks.{event} ({name})", "rewrite the function for ECS: it answers {\"hookStatus\": "
                    "SUCCEEDED|FAILED|IN_PROGRESS} instead of calling CodeDeploy's "
                    "PutLifecycleEventHookExecutionStatus")
    if hooks and not hook_role:
        notes.local(report,
                    "deploymentConfiguration.lifecycleHooks[].roleArn", "the role ECS invokes the functions with "
                    "(give --hook-role-arn)")
    if "BeforeInstall" in seen:
        notes.ignored(report, "Hooks.BeforeInstall (its failure)", "CodeDeploy does not roll back when BeforeInstall "
                      "fails; ECS rolls back on a failed PRE_SCALE_UP hook")
    # The stages in the order a deployment passes them: hooks listed as ECS runs them.
    order = list(HOOK_STAGES.values())
    hooks.sort(key=lambda h: order.index(h["lifecycleStages"][0]))
    return service, hooks, functions


def group_parts(group: dict[str, Any], report: Report) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(deploymentConfiguration fields, service fields, its deploymentConfigName) of a deployment group as
    `aws deploy get-deployment-group` prints it (or create-deployment-group's input)."""
    g = group.get("deploymentGroupInfo", group)
    if not isinstance(g, dict):
        raise ConfigError(["deploymentGroupInfo: must be a mapping"])
    dc: dict[str, Any] = {}
    service: dict[str, Any] = {}
    platform = g.get("computePlatform")
    if platform not in (None, "ECS"):
        raise ConfigError([f"computePlatform: {platform!r}: only an ECS deployment group migrates to ECS"])
    bg = g.get("blueGreenDeploymentConfiguration") or {}
    term = bg.get("terminateBlueInstancesOnDeploymentSuccess") or {}
    if "terminationWaitTimeInMinutes" in term:
        wait = term["terminationWaitTimeInMinutes"]
        lo, hi = ECS_RANGES["bakeTimeInMinutes"]
        if isinstance(wait, bool) or not isinstance(wait, int) or not lo <= wait <= hi:
            raise ConfigError([f"blueGreenDeploymentConfiguration.terminateBlueInstancesOnDeploymentSuccess."
                               f"terminationWaitTimeInMinutes: {wait!r} has no ECS equivalent: ECS's "
                               f"bakeTimeInMinutes is {lo}..{hi}"])
        dc["bakeTimeInMinutes"] = wait
        notes.mapped(report, "blueGreenDeploymentConfiguration.terminateBlueInstancesOnDeploymentSuccess."
                     "terminationWaitTimeInMinutes", "deploymentConfiguration.bakeTimeInMinutes")
    if term.get("action") == "KEEP_ALIVE":
        notes.ignored(report, "blueGreenDeploymentConfiguration.terminateBlueInstancesOnDeploymentSuccess.action",
                      "KEEP_ALIVE has no ECS equivalent: ECS stops the old revision once the bake time ends")
    ready = bg.get("deploymentReadyOption") or {}
    if ready.get("actionOnTimeout") == "STOP_DEPLOYMENT":
        minutes = ready.get("waitTimeInMinutes", 0)
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 20160:
            raise ConfigError([f"blueGreenDeploymentConfiguration.deploymentReadyOption.waitTimeInMinutes: "
                               f"{minutes!r}: a PAUSE hook's timeout is 1..20160 minutes"])
        dc["lifecycleHooks"] = [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"],
                                 "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": "ROLLBACK"}}]
        notes.mapped(report, "blueGreenDeploymentConfiguration.deploymentReadyOption",
                     "deploymentConfiguration.lifecycleHooks (a PAUSE hook at POST_SCALE_UP: continue it by hand, "
                     "else it rolls back after waitTimeInMinutes)")
    elif ready:
        notes.mapped(report, "blueGreenDeploymentConfiguration.deploymentReadyOption (CONTINUE_DEPLOYMENT)",
                     "deploymentConfiguration (ECS shifts traffic without waiting)")
    alarms = g.get("alarmConfiguration") or {}
    rollback = g.get("autoRollbackConfiguration") or {}
    events = rollback.get("events") or [] if rollback.get("enabled") else []
    if alarms:
        names = [a.get("name") for a in alarms.get("alarms") or [] if isinstance(a, dict)]
        dc["alarms"] = {"alarmNames": names, "enable": bool(alarms.get("enabled")),
                        "rollback": "DEPLOYMENT_STOP_ON_ALARM" in events}
        notes.mapped(report, "alarmConfiguration.alarms", "deploymentConfiguration.alarms.alarmNames")
        notes.mapped(report, "alarmConfiguration.enabled", "deploymentConfiguration.alarms.enable")
        notes.mapped(report,
                     "autoRollbackConfiguration (DEPLOYMENT_STOP_ON_ALARM)", "deploymentConfiguration.alarms.rollback")
        if alarms.get("ignorePollAlarmFailure"):
            notes.ignored(report, "alarmConfiguration.ignorePollAlarmFailure", "no ECS equivalent")
        for n in names:
            notes.local(report,
                        f"alarms ({n})", "define the alarm in the config's alarms[] as put-metric-alarm takes it "
                        "(CodeDeploy's group names it only)")
    if "DEPLOYMENT_FAILURE" in events:
        dc["deploymentCircuitBreaker"] = {"enable": True, "rollback": True}
        notes.mapped(report, "autoRollbackConfiguration (DEPLOYMENT_FAILURE)",
                     "deploymentConfiguration.deploymentCircuitBreaker (tasks that fail roll back; a failed hook "
                     "rolls back in ECS anyway)")
    if "DEPLOYMENT_STOP_ON_REQUEST" in events:
        notes.ignored(report, "autoRollbackConfiguration (DEPLOYMENT_STOP_ON_REQUEST)",
                      "a setting in ECS neither: stop a deployment with rollback (shiftlab stop --rollback, "
                      "aws ecs stop-service-deployment --stop-type ROLLBACK)")
    services = g.get("ecsServices") or []
    if len(services) == 1 and isinstance(services[0], dict):
        if services[0].get("serviceName"):
            service["serviceName"] = services[0]["serviceName"]
            notes.mapped(report, "ecsServices[0].serviceName", "service.serviceName")
        if services[0].get("clusterName"):
            service["clusterName"] = services[0]["clusterName"]
            notes.mapped(report, "ecsServices[0].clusterName", "service.clusterName")
    lbi = g.get("loadBalancerInfo") or {}
    pairs = lbi.get("targetGroupPairInfoList") or []
    if pairs:
        tgs = [t.get("name") for t in pairs[0].get("targetGroups") or [] if isinstance(t, dict)]
        if len(tgs) == 2:
            service["loadBalancers[0].targetGroupArn"] = tgs[0]
            service["loadBalancers[0].advancedConfiguration.alternateTargetGroupArn"] = tgs[1]
            notes.mapped(report, "loadBalancerInfo.targetGroupPairInfoList[0].targetGroups",
                         "service.loadBalancers[0].targetGroupArn, advancedConfiguration.alternateTargetGroupArn")
        for route, key in (("prodTrafficRoute", "productionListenerRule"), ("testTrafficRoute", "testListenerRule")):
            arns = (pairs[0].get(route) or {}).get("listenerArns") or []
            if arns:
                notes.local(report, f"service.loadBalancers[0].advancedConfiguration.{key}",
                            f"CodeDeploy moved the default rule of {arns[0]}: ECS needs that rule's ARN (the "
                            "config's <listener>/default)")
    for key, why in (("serviceRoleArn", "IAM: ECS uses its infrastructure role (advancedConfiguration.roleArn)"),
                     ("triggerConfigurations", "CodeDeploy's SNS triggers: ECS sends EventBridge events "
                                               "(controller.eventTargets)"),
                     ("deploymentStyle", "ECS's blue/green, canary and linear deployments always shift traffic"),
                     ("outdatedInstancesStrategy", "EC2 only")):
        if key in g:
            notes.ignored(report, key, why)
    return dc, service, g.get("deploymentConfigName")


def migrate(appspec: dict[str, Any], deployment_config: str | None, group: dict[str, Any] | None = None,
            region: str | None = None, account: str | None = None, hook_role: str | None = None) -> Migration:
    report = Report()
    dc_from_group: dict[str, Any] = {}
    svc_from_group: dict[str, Any] = {}
    group_config = None
    if group is not None:
        dc_from_group, svc_from_group, group_config = group_parts(group, report)
    spec = deployment_config or group_config or "CodeDeployDefault.ECSAllAtOnce"
    name, routing = traffic_routing(spec)
    dc = strategy_of(routing, f"{name}: trafficRoutingConfig")
    notes.mapped(report, f"deployment configuration {name}", f"deploymentConfiguration.strategy {dc['strategy']}")
    if dc["strategy"] != "BLUE_GREEN":
        section = "canaryConfiguration" if dc["strategy"] == "CANARY" else "linearConfiguration"
        notes.mapped(report, f"{name} ({routing['type']})", f"deploymentConfiguration.{section}")
    if deployment_config is None and group_config is None:
        notes.local(report,
                    "deploymentConfiguration.strategy", "BLUE_GREEN: CodeDeploy's default for an ECS deployment "
                    "group (CodeDeployDefault.ECSAllAtOnce)")
    service, hooks, functions = appspec_parts(appspec, report, region, account, hook_role)
    dc.update({k: v for k, v in dc_from_group.items() if k != "lifecycleHooks"})
    all_hooks = hooks + dc_from_group.get("lifecycleHooks", [])
    order = ["PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT",
             "POST_PRODUCTION_TRAFFIC_SHIFT"]
    all_hooks.sort(key=lambda h: order.index(h["lifecycleStages"][0]))
    if all_hooks:
        dc["lifecycleHooks"] = all_hooks
    if "bakeTimeInMinutes" not in dc:
        # CodeDeploy's default wait before terminating the original task set is none (0).
        dc["bakeTimeInMinutes"] = 0
    if dc["strategy"] != "BLUE_GREEN" and any(h["lifecycleStages"] == ["PRE_PRODUCTION_TRAFFIC_SHIFT"]
                                              for h in hooks):
        notes.ignored(report, "Hooks.BeforeAllowTraffic (runs once)", f"with {dc['strategy']} ECS runs a "
                      "PRE_PRODUCTION_TRAFFIC_SHIFT hook before every traffic step, CodeDeploy ran "
                      "BeforeAllowTraffic once")
    return Migration(dc, {**service, **svc_from_group}, functions, report)


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """`a.b[0].c` set in nested dicts and lists (made when absent)."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", dotted)
    cur: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt_list = not last and parts[i + 1].startswith("[")
        if part.startswith("["):
            idx = int(part[1:-1])
            while len(cur) <= idx:
                cur.append({})
            if last:
                cur[idx] = value
            else:
                if not isinstance(cur[idx], dict | list):
                    cur[idx] = [] if nxt_list else {}
                cur = cur[idx]
        elif last:
            cur[part] = value
        else:
            if not isinstance(cur.get(part), dict | list):
                cur[part] = [] if nxt_list else {}
            cur = cur[part]


def merge(config: dict[str, Any], m: Migration) -> dict[str, Any]:
    """The config with the migration's deploymentConfiguration (its strategy,
    percentages, bakes, hooks and alarms replace the file's; other fields,
    such as maximumPercent, stay), the service fields it names, and a
    stand-in for each hook's function the file does not map yet."""
    out = json.loads(json.dumps(config))
    dc = dict(out.get("deploymentConfiguration") or {})
    for key in ("strategy", "canaryConfiguration", "linearConfiguration", "bakeTimeInMinutes", "lifecycleHooks"):
        dc.pop(key, None)
    dc.update(m.deployment)
    out["deploymentConfiguration"] = dc
    service = out.setdefault("service", {})
    for path, value in m.service.items():
        set_path(service, path, value)
    functions = dict(out.get("lambdaFunctions") or {})
    for name, target in m.lambda_functions.items():
        if not any(k == name or k.endswith(f":function:{name}") for k in functions):
            functions[name] = target
            notes.local(m.report, f"lambdaFunctions.{name}", "a stand-in that succeeds runs in place of the function "
                        "(what runs here instead)")
    if functions:
        out["lambdaFunctions"] = functions
    return out
