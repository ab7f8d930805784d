"""`shiftlab import cloudformation`: a template's ECS service, as a shiftlab config.

Read: the AWS::ECS::Service (its DeploymentConfiguration, LoadBalancers
with AdvancedConfiguration, ServiceConnectConfiguration, DesiredCount, ...;
an Application or a Network Load Balancer), its task definition (what
to run: a local answer), the ElasticLoadBalancingV2 TargetGroups, Listeners
and ListenerRules it uses, the CloudWatch alarms its deployment
configuration names, and the Lambda functions its lifecycle hooks call (a
local answer each). A service with neither LoadBalancers nor
ServiceConnectConfiguration (a queue consumer) is a headless service: no
loadBalancer section, and the Lambda function at PRODUCTION_TRAFFIC_SHIFT
(its activation mechanism) gets shiftlab's activation hook as stand-in.
CloudFormation's property names become ECS's API names
(`DeploymentConfiguration.BakeTimeInMinutes` -> `deploymentConfiguration.
bakeTimeInMinutes`); ELBv2's and CloudWatch's are the same in both. ARNs
the stack would create are synthesized (template.Resolver), so the config
keeps AWS's references as references.

Property names: https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ecs-service.html
and its DeploymentConfiguration page,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentconfiguration.html
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from shiftlab.interop.report import LOCAL_MARK, ImportProblem, Report
from shiftlab.interop.template import Resolver

SERVICE = "AWS::ECS::Service"
TARGET_GROUP = "AWS::ElasticLoadBalancingV2::TargetGroup"
LISTENER = "AWS::ElasticLoadBalancingV2::Listener"
RULE = "AWS::ElasticLoadBalancingV2::ListenerRule"
ALARM = "AWS::CloudWatch::Alarm"
NAMESPACES = ("AWS::ServiceDiscovery::HttpNamespace", "AWS::ServiceDiscovery::PrivateDnsNamespace",
              "AWS::ServiceDiscovery::PublicDnsNamespace")

PLACEHOLDER_COMMAND = ["{python}", "-m", "shiftlab.sample_service"]
# A headless service's stand-ins: shiftlab's sample queue consumer (on its work queue) and, for a
# Lambda hook at PRODUCTION_TRAFFIC_SHIFT, the shipped activation hook (controller/activation.py).
HEADLESS_PLACEHOLDER_COMMAND = ["{python}", "-m", "shiftlab.queue_consumer"]
LOCAL_QUEUE_URL = "http://127.0.0.1:9300"
ACTIVATION_HOOK = "command:{python} -m shiftlab.activation_hook"
SUCCEEDING_HOOK = "command:{python} -c \"print('{\\\"hookStatus\\\": \\\"SUCCEEDED\\\"}')\""

# What CloudFormation sets for a BLUE_GREEN, LINEAR or CANARY service's
# DeploymentConfiguration without BakeTimeInMinutes (the property's page:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentconfiguration.html).
CFN_DEFAULT_BAKE_MINUTES = 15

# The service's properties shiftlab has no use for, and why.
SERVICE_IGNORED = {
    "NetworkConfiguration": "subnets and security groups: the tasks run on this machine, reached on loopback",
    "LaunchType": "where tasks run on AWS (Fargate, EC2): here, local processes or containers",
    "CapacityProviderStrategy": "where tasks run on AWS: here, local processes or containers",
    "PlatformVersion": "Fargate's platform: here, local processes or containers",
    "Role": "an IAM role: nothing here checks permissions",
    "PlacementConstraints": "task placement across instances: one machine here",
    "PlacementStrategies": "task placement across instances: one machine here",
    "EnableECSManagedTags": "tags", "PropagateTags": "tags", "Tags": "tags",
    "EnableExecuteCommand": "ECS Exec: run a command in a local task directly",
    "ServiceRegistries": "Cloud Map service discovery is not rehearsed",
    "SchedulingStrategy": "REPLICA is what shiftlab runs",
    "VolumeConfigurations": "EBS volumes", "AvailabilityZoneRebalancing": "one machine, one zone",
    "ForceNewDeployment": "a deployment is started with shiftlab deploy",
    "VpcLatticeConfigurations": "VPC Lattice is not rehearsed",
    "MonitoringConfiguration": "not modelled by shiftlab",
}
TARGET_GROUP_IGNORED = {
    "VpcId": "no VPC: the groups live on this machine",
    "Targets": "the controller registers the service's tasks itself",
    "Tags": "tags", "IpAddressType": "loopback only", "ProtocolVersion": "HTTP/1.1 here",
    "HealthCheckProtocol": "health checks are HTTP here",
}
LISTENER_IGNORED = {
    "Certificates": "TLS: the local listener speaks plain HTTP", "SslPolicy": "TLS: plain HTTP here",
    "AlpnPolicy": "TLS: plain HTTP here", "MutualAuthentication": "TLS: plain HTTP here",
    "LoadBalancerArn": "the load balancer is shiftlab's proxy", "ListenerAttributes": "not modelled by shiftlab",
}
ALARM_KEYS = ("AlarmName", "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions",
              "InsufficientDataActions", "MetricName", "Namespace", "Dimensions", "Statistic", "ExtendedStatistic",
              "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ThresholdMetricId",
              "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics", "Tags")
TG_ATTRIBUTES = ("deregistration_delay.timeout_seconds", "load_balancing.algorithm.type",
                 "slow_start.duration_seconds")
LB_ATTRIBUTES = ("idle_timeout.timeout_seconds", "routing.http.desync_mitigation_mode")
# A network load balancer's (shiftlab.proxy.config's NLB_* tables): target group attributes
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/edit-target-group-attributes.html)
# and listener attributes (the Listener's ListenerAttributes:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-elasticloadbalancingv2-listener-listenerattribute.html).
NLB_TG_ATTRIBUTES = ("deregistration_delay.timeout_seconds", "deregistration_delay.connection_termination.enabled")
NLB_LISTENER_ATTRIBUTES = ("tcp.idle_timeout.seconds",)
TG_KEYS = ("Port", "TargetType", "HealthCheckEnabled", "HealthCheckPath", "HealthCheckPort",
           "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
           "UnhealthyThresholdCount")
INT_KEYS = {"Port", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
            "UnhealthyThresholdCount", "Priority", "Weight", "DurationSeconds", "Period", "EvaluationPeriods",
            "DatapointsToAlarm", "desiredCount", "bakeTimeInMinutes", "canaryBakeTimeInMinutes",
            "stepBakeTimeInMinutes", "maximumPercent", "minimumHealthyPercent", "timeoutInMinutes", "value",
            "healthCheckGracePeriodSeconds", "containerPort", "Order", "AccountId"}
FLOAT_KEYS = {"Threshold", "canaryPercent", "stepPercent"}
BOOL_KEYS = {"enable", "rollback", "resetOnHealthyTask", "Enabled", "HealthCheckEnabled", "ActionsEnabled",
             "ReturnData"}


@dataclass
class Options:
    service: str | None = None                  # the service's logical id, when the template has several
    parameters: dict[str, str] = field(default_factory=dict)
    import_values: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None
    image: str | None = None
    listener_ports: dict[int, int] = field(default_factory=dict)   # AWS port -> local port
    time_scale: float = 60


# The admin API's and the controller API's default ports.
RESERVED_PORTS = {9090, 9091}


def local_port(aws_port: int, given: dict[int, int], taken: set[int]) -> int:
    """The port a listener gets here: as given, else the AWS port if it
    needs no privileges, else 8000 + it (80 -> 8080, 443 -> 8443); the next
    one up if another listener (or an API) has it."""
    if aws_port in given:
        return given[aws_port]
    if aws_port >= 1024:
        return aws_port
    port = 8000 + aws_port
    while port in taken or port in RESERVED_PORTS or port in given.values():
        port += 1
    return port


def _lower_first(key: str) -> str:
    return key[:1].lower() + key[1:]


def _typed(key: str, value: Any, where: str) -> Any:
    """A resolved value of a known numeric or boolean field as AWS's API takes
    it (CloudFormation passes parameters, and templates often write numbers, as strings)."""
    try:
        if key in INT_KEYS and isinstance(value, str):
            return int(value)
        if key in FLOAT_KEYS and isinstance(value, str | int) and not isinstance(value, bool):
            number = float(value)
            return int(number) if number.is_integer() and key != "Threshold" else number
        if key in BOOL_KEYS and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise ValueError
            return value.lower() == "true"
    except ValueError:
        if isinstance(value, str) and "{{resolve:" in value:
            raise ImportProblem(where, f"{value!r}: a dynamic reference (SSM, Secrets Manager) CloudFormation "
                                "resolves when the stack is created; put its value in the template") from None
        raise ImportProblem(where, f"{value!r} is not a {'number' if key not in BOOL_KEYS else 'boolean'}") \
            from None
    return value


def _retype(node: Any, where: str, camel: bool = False) -> Any:
    """Resolved template data with numbers and booleans typed; `camel`:
    CloudFormation's PascalCase keys as ECS's API spells them."""
    if isinstance(node, list):
        return [_retype(v, f"{where}[{i}]", camel) for i, v in enumerate(node)]
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            key = _lower_first(k) if camel else k
            if key == "hookDetails":
                out[key] = json.loads(v) if isinstance(v, str) and v.strip().startswith("{") else v
                continue
            if key in ("RedirectConfig", "FixedResponseConfig"):
                out[key] = v  # strings in ELBv2's API ("#{port}", "404")
                continue
            out[key] = _typed(key, _retype(v, f"{where}.{k}", camel), f"{where}.{k}")
        return out
    return node


def _unless_unresolvable(fn: Any, *args: Any) -> Any:
    """`fn(*args)`, or None when it cannot be resolved: for the resources
    looked through to find the service's own (another listener, rule, group
    or alarm whose properties do not resolve is not the service's problem)."""
    try:
        return fn(*args)
    except ImportProblem:
        return None


class _Import:
    def __init__(self, template: dict[str, Any], opts: Options, report: Report):
        self.r = Resolver(template, opts.parameters, opts.import_values)
        self.opts = opts
        self.report = report
        self.by_value: dict[str, str] = {}  # a synthesized ARN or name -> its logical id
        self.ports_taken: set[int] = set()
        self.used_alarms: set[str] = set()  # the alarms the service names
        self.network = False  # the service's load balancer is a network one
        self.headless = False  # neither LoadBalancers nor ServiceConnectConfiguration

    def _ref_if_created(self, logical: str) -> Any:
        """What Ref of the resource gives, if the stack creates it (its Condition holds)."""
        return self.r.ref_of_resource(logical, logical) if self.r.exists(logical) else None

    def logical_of(self, value: Any, kinds: tuple[str, ...], where: str, what: str) -> str:
        if not self.by_value:
            for logical in self.r.resources:
                if self.r.type_of(logical) in (TARGET_GROUP, LISTENER, RULE, ALARM):
                    ref = _unless_unresolvable(self._ref_if_created, logical)
                    if ref:
                        self.by_value[str(ref)] = logical
        found = self.by_value.get(str(value))
        if found is None or self.r.type_of(found) not in kinds:
            raise ImportProblem(where, f"{value!r} is not a {what} of the template: shiftlab needs its definition "
                                "(import the template that defines it, or the processed template)")
        return found

    # -- the service ---------------------------------------------------------------
    def find_service(self) -> str:
        services = [k for k in self.r.resources if self.r.type_of(k) == SERVICE and self.r.exists(k)]
        if self.opts.service is not None:
            if self.opts.service not in services:
                raise ImportProblem(f"--service {self.opts.service}",
                                    f"not an {SERVICE} of the template (services: {', '.join(services) or 'none'})")
            return self.opts.service
        if not services:
            raise ImportProblem("Resources", f"no {SERVICE}: shiftlab imports a service and what it uses")
        if len(services) > 1:
            raise ImportProblem("Resources", f"{len(services)} {SERVICE} resources ({', '.join(services)}): "
                                "choose one with --service LOGICAL_ID")
        return services[0]

    def run(self) -> dict[str, Any]:
        svc = self.find_service()
        rep = self.report
        props = self.r.props(svc)
        base = f"{svc}.Properties"
        controller = self.r.prop(svc, "DeploymentController") or {}
        kind = controller.get("Type", "ECS") if isinstance(controller, dict) else "ECS"
        if kind != "ECS":
            raise ImportProblem(f"{base}.DeploymentController.Type", f"{kind}: shiftlab rehearses ECS's own "
                                "deployment controller (ECS); for CODE_DEPLOY see shiftlab import codedeploy")
        for key in props:
            if key in SERVICE_IGNORED:
                rep.ignored(f"{base}.{key}", SERVICE_IGNORED[key])

        service: dict[str, Any] = {}
        name = self.r.prop(svc, "ServiceName")
        if name is None:
            name = re.sub(r"[^A-Za-z0-9_-]", "-", svc)[:255]
            rep.mapped(f"{svc} (logical id)", "service.serviceName", "no ServiceName: CloudFormation would generate "
                       "one; the logical id stands for it")
        else:
            rep.mapped(f"{base}.ServiceName", "service.serviceName")
        service["serviceName"] = str(name)
        cluster = self.r.prop(svc, "Cluster")
        service["clusterName"] = str(cluster).rsplit("/", 1)[-1] if cluster is not None else "default"
        rep.mapped(f"{base}.Cluster", "service.clusterName",
                   "" if cluster is not None else "not given: ECS's default cluster, default")
        desired = _typed("desiredCount", self.r.prop(svc, "DesiredCount", 1), f"{base}.DesiredCount")
        if not 1 <= desired <= 50:
            rep.local(f"{base}.DesiredCount", "service.desiredCount",
                      f"{desired} tasks: shiftlab runs 1..50 on one machine; set to {min(max(desired, 1), 50)}")
            desired = min(max(desired, 1), 50)
        else:
            rep.mapped(f"{base}.DesiredCount", "service.desiredCount",
                       "" if "DesiredCount" in props else "not given: CloudFormation's default, 1")
        service["desiredCount"] = desired
        grace = self.r.prop(svc, "HealthCheckGracePeriodSeconds")
        if grace is not None:
            service["healthCheckGracePeriodSeconds"] = _typed("healthCheckGracePeriodSeconds", grace,
                                                              f"{base}.HealthCheckGracePeriodSeconds")
            rep.mapped(f"{base}.HealthCheckGracePeriodSeconds", "service.healthCheckGracePeriodSeconds")

        connect = self.service_connect(svc)
        if connect is not None:
            service["serviceConnectConfiguration"] = connect
        offered = bool(connect and connect.get("enabled") and connect.get("services"))
        # Neither LoadBalancers nor ServiceConnectConfiguration: headless. (A client-only Service Connect
        # service without a load balancer is still refused: shiftlab.settings takes neither half-way.)
        self.headless = connect is None and not self.r.prop(svc, "LoadBalancers")
        if (offered or self.headless) and not self.r.prop(svc, "LoadBalancers"):
            # Service Connect: the namespace's endpoint is the service's only traffic path. Headless
            # (neither): no traffic at all; hooks decide which revision works (README: Headless services).
            lb_entry: dict[str, Any] = {}
            groups: list[str] = []
            rules: list[str] = []
            if self.headless:
                rep.mapped(f"{base}.LoadBalancers", "service (headless)", "neither LoadBalancers nor "
                           "ServiceConnectConfiguration: a headless service, no loadBalancer section")
        else:
            lb_entry, groups, rules = self.load_balancers(svc)
        service["taskDefinition"] = self.task_definition(svc, lb_entry)
        if lb_entry:
            service["loadBalancers"] = [lb_entry]
        deployment = self.deployment_configuration(svc)
        alarms = self.alarms(svc, deployment)
        functions = self.hook_functions(svc, deployment)
        config: dict[str, Any] = {"timeScale": self.opts.time_scale}
        if lb_entry:
            config["loadBalancer"] = self.load_balancer(groups, rules, svc)
        config.update({"service": service, "deploymentConfiguration": deployment})
        rep.local("", "timeScale", f"{self.opts.time_scale:g}: an AWS minute lasts 60/timeScale seconds here "
                  "(--time-scale)")
        if alarms:
            config["alarms"] = alarms
        if functions:
            config["lambdaFunctions"] = functions
        for logical in self.r.resources:
            if self.r.type_of(logical) == ALARM and logical not in self.used_alarms and self.r.exists(logical):
                rep.ignored(logical, "an alarm the service's DeploymentConfiguration.Alarms does not name")
        return config

    # -- Service Connect --------------------------------------------------------------
    def _service_connect_port_name(self, svc: str) -> str | None:
        sc = _unless_unresolvable(self.r.prop, svc, "ServiceConnectConfiguration")
        services = sc.get("Services") if isinstance(sc, dict) else None
        first = services[0] if isinstance(services, list) and services else None
        return str(first["PortName"]) if isinstance(first, dict) and "PortName" in first else None

    def service_connect(self, svc: str) -> dict[str, Any] | None:
        """ServiceConnectConfiguration as ECS's API spells it (Enabled ->
        enabled, ClientAliases[].TestTrafficRules.Header.Value.Exact ->
        clientAliases[].testTrafficRules.header.value.exact), a log driver's
        Options as written. Property names:
        https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-serviceconnectconfiguration.html"""
        where = f"{svc}.Properties.ServiceConnectConfiguration"
        given = self.r.props(svc).get("ServiceConnectConfiguration")
        if given is None:
            return None
        namespace = self.r.logical_named(given.get("Namespace")) if isinstance(given, dict) else None
        if namespace is not None and self.r.type_of(namespace) in NAMESPACES:
            # The ARN or id of a Cloud Map namespace the template creates: named by its Name, as ECS takes either.
            given = {**given, "Namespace": self.r.prop(namespace, "Name")}
            self.report.mapped(f"{namespace}.Properties.Name", "service.serviceConnectConfiguration.namespace")
        raw = self.r.value(given, where)
        if not isinstance(raw, dict):
            raise ImportProblem(where, "must be an object")
        options = (raw.get("LogConfiguration") or {}).get("Options") if isinstance(raw.get("LogConfiguration"),
                                                                                   dict) else None
        out = _retype(raw, where, camel=True)
        if options is not None:
            out["logConfiguration"]["options"] = options
        for key in ("enabled",):
            if key in out and not isinstance(out[key], bool):
                out[key] = _typed("Enabled", out[key], f"{where}.Enabled")
        for i, service in enumerate(out.get("services") or []):
            for j, alias in enumerate(service.get("clientAliases") or [] if isinstance(service, dict) else []):
                if isinstance(alias, dict) and isinstance(alias.get("port"), str):
                    alias["port"] = _typed("Port", alias["port"], f"{where}.Services[{i}].ClientAliases[{j}].Port")
            if isinstance(service, dict) and isinstance(service.get("ingressPortOverride"), str):
                service["ingressPortOverride"] = _typed(
                    "Port", service["ingressPortOverride"], f"{where}.Services[{i}].IngressPortOverride")
        self.report.mapped(where, "service.serviceConnectConfiguration",
                           "the namespace's proxy is shiftlab's load balancer (README: Service Connect)")
        for key in ("LogConfiguration", "AccessLogConfiguration"):
            if key in raw:
                self.report.ignored(f"{where}.{key}", "kept as ECS takes it; the proxy's logs are not rehearsed")
        return out

    # -- load balancers ------------------------------------------------------------
    def load_balancers(self, svc: str) -> tuple[dict[str, Any], list[str], list[str]]:
        base = f"{svc}.Properties.LoadBalancers"
        lbs = self.r.prop(svc, "LoadBalancers") or []
        if not isinstance(lbs, list) or not lbs:
            raise ImportProblem(base, "the service has no load balancer: shiftlab rehearses a service behind an "
                                "Application or Network Load Balancer, or one offered in a Service Connect "
                                "namespace (ServiceConnectConfiguration with Services)")
        for i in range(1, len(lbs)):
            self.report.ignored(f"{base}[{i}]", "shiftlab rehearses one load balancer entry (the first)")
        raw = lbs[0]
        where = f"{base}[0]"
        if not isinstance(raw, dict) or "TargetGroupArn" not in raw:
            raise ImportProblem(f"{where}.TargetGroupArn", "is required (a Classic Load Balancer's "
                                "LoadBalancerName is not rehearsed)")
        primary = self.logical_of(raw["TargetGroupArn"], (TARGET_GROUP,), f"{where}.TargetGroupArn",
                                  "target group")
        entry: dict[str, Any] = {"targetGroupArn": raw["TargetGroupArn"]}
        self.report.mapped(f"{where}.TargetGroupArn", "service.loadBalancers[0].targetGroupArn")
        for key in ("ContainerName", "ContainerPort"):
            if key in raw:
                entry[_lower_first(key)] = _typed(_lower_first(key), raw[key], f"{where}.{key}")
                self.report.mapped(f"{where}.{key}", f"service.loadBalancers[0].{_lower_first(key)}")
        groups = [primary]
        rules: list[str] = []
        adv = raw.get("AdvancedConfiguration")
        if isinstance(adv, dict):
            aw = f"{where}.AdvancedConfiguration"
            out: dict[str, Any] = {}
            if "AlternateTargetGroupArn" not in adv:
                raise ImportProblem(f"{aw}.AlternateTargetGroupArn", "is required")
            groups.append(self.logical_of(adv["AlternateTargetGroupArn"], (TARGET_GROUP,),
                                          f"{aw}.AlternateTargetGroupArn", "target group"))
            out["alternateTargetGroupArn"] = adv["AlternateTargetGroupArn"]
            for key in ("ProductionListenerRule", "TestListenerRule"):
                if key in adv:
                    rules.append(self.logical_of(adv[key], (RULE, LISTENER), f"{aw}.{key}",
                                                 "listener rule or listener"))
                    out[_lower_first(key)] = adv[key]
            if "productionListenerRule" not in out:
                raise ImportProblem(f"{aw}.ProductionListenerRule", "shiftlab needs the production listener rule "
                                    "to shift traffic")
            if "RoleArn" in adv:
                out["roleArn"] = adv["RoleArn"]
            for key in adv:
                self.report.mapped(f"{aw}.{key}", f"service.loadBalancers[0].advancedConfiguration."
                                   f"{_lower_first(key)}", "kept: nothing here checks IAM" if key == "RoleArn" else "")
            entry["advancedConfiguration"] = out
        return entry, groups, rules

    # -- the task definition ---------------------------------------------------------
    def task_definition(self, svc: str, lb_entry: dict[str, Any]) -> dict[str, Any]:
        rep = self.report
        out: dict[str, Any] = {}
        ref = self.r.props(svc).get("TaskDefinition")
        logical = ref.get("Ref") if isinstance(ref, dict) else None
        container: dict[str, Any] = {}
        if isinstance(logical, str) and self.r.type_of(logical) == "AWS::ECS::TaskDefinition":
            td = f"{logical}.Properties"
            family = self.r.prop(logical, "Family")
            if family is not None:
                out["family"] = str(family)
                rep.mapped(f"{td}.Family", "service.taskDefinition.family")
            for key in ("Cpu", "Memory"):
                value = self.r.prop(logical, key)
                if value is not None:
                    out[key.lower()] = value
                    rep.mapped(f"{td}.{key}", f"service.taskDefinition.{key.lower()}",
                               "applied by the docker backend only")
            defs = self.r.prop(logical, "ContainerDefinitions") or []
            wanted = lb_entry.get("containerName")
            port_name = self._service_connect_port_name(svc) if wanted is None else None

            def names_port(c: dict[str, Any]) -> bool:  # the container with Service Connect's port mapping
                return any(isinstance(pm, dict) and pm.get("Name") == port_name for pm in c.get("PortMappings") or [])

            for i, c in enumerate(defs if isinstance(defs, list) else []):
                if isinstance(c, dict) and (c.get("Name") == wanted if wanted is not None
                                            else port_name is None or names_port(c)):
                    container = c
                    cw = f"{td}.ContainerDefinitions[{i}]"
                    break
            for key in ("ExecutionRoleArn", "TaskRoleArn"):
                if key in self.r.props(logical):
                    rep.ignored(f"{td}.{key}", "an IAM role: nothing here checks permissions")
            for key in ("NetworkMode", "RequiresCompatibilities", "Volumes", "RuntimePlatform"):
                if key in self.r.props(logical):
                    rep.ignored(f"{td}.{key}", "how ECS runs the task on AWS: here, a local process or container")
        elif ref is not None:
            try:
                value = self.r.prop(svc, "TaskDefinition")
            except ImportProblem as exc:  # what runs is a local answer anyway
                value = None
                rep.ignored(f"{svc}.Properties.TaskDefinition", f"not resolved ({exc.message}); what runs here is "
                            "the command or image")
            if isinstance(value, str) and ":task-definition/" in value:
                out["family"] = value.split(":task-definition/", 1)[1].split(":", 1)[0]
                rep.mapped(f"{svc}.Properties.TaskDefinition", "service.taskDefinition.family",
                           "the family of a task definition defined elsewhere")
        if container:
            env = container.get("Environment")
            if isinstance(env, list) and env:
                out["environment"] = {str(e.get("Name")): str(e.get("Value", "")) for e in env if isinstance(e, dict)}
                rep.mapped(f"{cw}.Environment", "service.taskDefinition.environment")
            if container.get("Secrets"):
                rep.local(f"{cw}.Secrets", "service.taskDefinition.environment",
                          "secrets from Secrets Manager or SSM: give the task local values")
            if "StopTimeout" in container:
                out["stopTimeout"] = int(container["StopTimeout"])
                rep.mapped(f"{cw}.StopTimeout", "service.taskDefinition.stopTimeout")
            if "Image" in container and self.opts.image is None:
                rep.ignored(f"{cw}.Image", f"{container['Image']}: an image in a registry; --image to run one "
                            "locally with the docker backend")
        port_name = self._service_connect_port_name(svc)
        if container and port_name and "containerPort" not in lb_entry:
            for k, pm in enumerate(container.get("PortMappings") or []):
                if isinstance(pm, dict) and pm.get("Name") == port_name and "ContainerPort" in pm:
                    out["containerPort"] = _typed("Port", pm["ContainerPort"], f"{cw}.PortMappings[{k}].ContainerPort")
                    rep.mapped(f"{cw}.PortMappings[{k}].ContainerPort", "service.taskDefinition.containerPort",
                               f"the port mapping Service Connect's portName {port_name!r} names")
        if "containerPort" in lb_entry:
            out["containerPort"] = lb_entry["containerPort"]
            rep.mapped(f"{svc}.Properties.LoadBalancers[0].ContainerPort", "service.taskDefinition.containerPort",
                       "the port the task listens on (docker backend; a process gets $PORT)")
        if self.opts.image is not None:
            out["image"] = self.opts.image
            rep.mapped("--image", "service.taskDefinition.image")
        if self.opts.command is not None:
            out["command"] = self.opts.command
            rep.mapped("--command", "service.taskDefinition.command")
        elif self.opts.image is None and self.headless:
            out["command"] = list(HEADLESS_PLACEHOLDER_COMMAND)
            rep.local(f"{svc}.Properties.TaskDefinition", "service.taskDefinition.command",
                      f"{LOCAL_MARK}: what runs the service here (--command or --image); shiftlab's sample "
                      "queue consumer stands in (it reads shiftlab's work queue at QUEUE_URL)")
            env = out.setdefault("environment", {})
            given_url = env.get("QUEUE_URL")
            if given_url is None or not str(given_url).startswith("http://127.0.0.1"):
                env["QUEUE_URL"] = LOCAL_QUEUE_URL
                rep.local("", "service.taskDefinition.environment.QUEUE_URL",
                          f"{LOCAL_MARK}: the sample consumer's queue, shiftlab's work queue: shiftlab queue serve "
                          "--port 9300 (or shiftlab rehearse --queue-rate N, which serves one)"
                          + (f"; the template's {given_url} is not reached from here" if given_url else ""))
        elif self.opts.image is None:
            out["command"] = list(PLACEHOLDER_COMMAND)
            rep.local(f"{svc}.Properties.TaskDefinition", "service.taskDefinition.command",
                      f"{LOCAL_MARK}: what runs the service here (--command or --image); a sample service "
                      "stands in")
        return out

    # -- the deployment configuration --------------------------------------------------
    def deployment_configuration(self, svc: str) -> dict[str, Any]:
        from shiftlab.controller.config import DeploymentConfiguration

        where = f"{svc}.Properties.DeploymentConfiguration"
        raw = self.r.prop(svc, "DeploymentConfiguration") or {}
        if not isinstance(raw, dict):
            raise ImportProblem(where, "must be a mapping")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            name = _lower_first(key)
            if name not in DeploymentConfiguration.model_fields:
                self.report.ignored(f"{where}.{key}", "not modelled by shiftlab")
                continue
            out[name] = _typed(name, _retype(value, f"{where}.{key}", camel=True), f"{where}.{key}")
            self.report.mapped(f"{where}.{key}", f"deploymentConfiguration.{name}")
        if out.get("strategy", "ROLLING") != "ROLLING" and "bakeTimeInMinutes" not in out:
            # AWS::ECS::Service DeploymentConfiguration, BakeTimeInMinutes: "For blue/green, linear, and
            # canary deployments, the value is set to 15 minutes" when not specified.
            out["bakeTimeInMinutes"] = CFN_DEFAULT_BAKE_MINUTES
            self.report.mapped(f"{where}.BakeTimeInMinutes", "deploymentConfiguration.bakeTimeInMinutes",
                               f"not given: CloudFormation sets {CFN_DEFAULT_BAKE_MINUTES} for "
                               f"{out['strategy']}")
        for i, hook in enumerate(out.get("lifecycleHooks", [])):
            if isinstance(hook, dict) and hook.get("roleArn"):
                self.report.mapped(f"{where}.LifecycleHooks[{i}].RoleArn",
                                   f"deploymentConfiguration.lifecycleHooks[{i}].roleArn",
                                   "kept: nothing here checks IAM")
        return out

    # -- alarms -----------------------------------------------------------------------
    def alarms(self, svc: str, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        names = (deployment.get("alarms") or {}).get("alarmNames") or []
        by_name = {}
        for k in self.r.resources:
            if self.r.type_of(k) == ALARM:
                ref = _unless_unresolvable(self._ref_if_created, k)
                if ref:
                    by_name[str(ref)] = k
        out = []
        for i, name in enumerate(names):
            where = f"{svc}.Properties.DeploymentConfiguration.Alarms.AlarmNames[{i}]"
            logical = by_name.get(str(name))
            if logical is None:
                raise ImportProblem(where, f"{name!r} is not an {ALARM} of the template: shiftlab needs the "
                                    "alarm's definition to evaluate it")
            self.used_alarms.add(logical)
            alarm: dict[str, Any] = {"AlarmName": str(name)}
            for key, raw in self.r.props(logical).items():
                w = f"{logical}.Properties.{key}"
                if key not in ALARM_KEYS:
                    self.report.ignored(w, "not a PutMetricAlarm field")
                    continue
                value = self.r.value(raw, w)
                alarm[key] = _retype(value, w)
                if key in INT_KEYS | FLOAT_KEYS:
                    alarm[key] = _typed(key, alarm[key], w)
            if "Threshold" in alarm:
                alarm["Threshold"] = float(alarm["Threshold"])
            self.report.mapped(logical, f"alarms[{i}]", "put-metric-alarm's fields as written")
            out.append(alarm)
        return out

    def hook_functions(self, svc: str, deployment: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        where = f"{svc}.Properties.DeploymentConfiguration.LifecycleHooks"
        activates = False
        for i, hook in enumerate(deployment.get("lifecycleHooks") or []):
            arn = hook.get("hookTargetArn") if isinstance(hook, dict) else None
            if not arn or hook.get("targetType") == "PAUSE" or arn in out:
                continue
            if self.headless and "PRODUCTION_TRAFFIC_SHIFT" in (hook.get("lifecycleStages") or []):
                # Headless: this function is what makes green work and blue stand by on AWS.
                out[arn] = ACTIVATION_HOOK
                activates = True
                self.report.local(f"{where}[{i}].HookTargetArn", f"lambdaFunctions.{arn}",
                                  f"{LOCAL_MARK}: the activation mechanism of this headless service (this "
                                  "function, at PRODUCTION_TRAFFIC_SHIFT, decides which revision consumes); "
                                  "shiftlab's activation hook stands in: it flips per-revision flags the tasks "
                                  "poll at SHIFTLAB_ACTIVATION_URL (README: Headless services)")
                continue
            out[arn] = SUCCEEDING_HOOK
            self.report.local(f"{where}[{i}].HookTargetArn",
                              f"lambdaFunctions.{arn}", f"{LOCAL_MARK}: the command or URL that stands in for "
                              "this Lambda function; a stand-in that always answers SUCCEEDED is written")
        if self.headless and not activates and deployment.get("strategy", "ROLLING") != "ROLLING":
            self.report.local(where, "deploymentConfiguration.lifecycleHooks",
                              f"{LOCAL_MARK}: the activation mechanism of this headless service: no Lambda hook "
                              "at PRODUCTION_TRAFFIC_SHIFT, so nothing activates green here; add shiftlab's "
                              f"activation hook ({ACTIVATION_HOOK}) at that stage (README: Headless services)")
        return out

    # -- the load balancer ------------------------------------------------------------
    def load_balancer(self, groups: list[str], rules: list[str], svc: str) -> dict[str, Any]:
        # The listeners: those of the service's rules, and those forwarding to its groups.
        listeners: list[str] = []
        for logical in rules:
            if self.r.type_of(logical) == LISTENER:
                listeners.append(logical)
            else:
                ref = self.r.props(logical).get("ListenerArn")
                listeners.append(self.logical_of(self.r.value(ref, f"{logical}.Properties.ListenerArn"), (LISTENER,),
                                                 f"{logical}.Properties.ListenerArn", "listener"))
        group_arns = {str(self.r.ref_of_resource(g, g)) for g in groups}
        for logical in self.r.resources:
            if self.r.type_of(logical) == LISTENER and self.r.exists(logical) and logical not in listeners:
                actions = json.dumps(_unless_unresolvable(self.r.prop, logical, "DefaultActions") or [])
                if any(arn in actions for arn in group_arns):
                    listeners.append(logical)
        listeners = list(dict.fromkeys(listeners))
        if not listeners:
            raise ImportProblem(f"{svc}.Properties.LoadBalancers[0]", "no listener of the template forwards to the "
                                "service's target groups")
        lb_logical = self._lb_of(listeners[0])
        if lb_logical is not None:
            kind = self.r.prop(lb_logical, "Type", "application")
        else:  # the load balancer is not the template's: its listeners' protocol says which kind it is
            protocol = _unless_unresolvable(self.r.prop, listeners[0], "Protocol")
            kind = "network" if protocol in ("TCP", "TLS", "UDP", "TCP_UDP") else "application"
        if kind not in ("application", "network"):
            raise ImportProblem(f"{lb_logical}.Properties.Type", f"{kind}: shiftlab plays an Application or a "
                                "Network Load Balancer")
        self.network = kind == "network"
        # AWS ports that need no privileges keep theirs before the others move up.
        for logical in listeners:
            port = self.r.prop(logical, "Port")
            if str(port).isdigit() and int(port) >= 1024 and int(port) not in self.opts.listener_ports:
                self.ports_taken.add(int(port))
        out_listeners = [self.listener(logical) for logical in listeners]
        for tg_ref in self._forwarded(out_listeners):
            logical = self.logical_of(tg_ref, (TARGET_GROUP,), "a listener's actions", "target group")
            if logical not in groups:
                groups.append(logical)
        lb: dict[str, Any] = {"Name": "shiftlab", "Listeners": out_listeners,
                              "TargetGroups": [self.target_group(g) for g in groups]}
        if self.network:
            lb["Type"] = "network"
        if lb_logical is not None:
            lw = f"{lb_logical}.Properties"
            if self.network:
                self.report.mapped(f"{lw}.Type", "loadBalancer.Type")
            lb["Name"] = self.r.name_of(lb_logical, "Name", 32)
            self.report.mapped(f"{lw}.Name", "loadBalancer.Name")
            attrs = []
            for a in self.r.prop(lb_logical, "LoadBalancerAttributes") or []:
                if a.get("Key") in LB_ATTRIBUTES and not self.network:
                    attrs.append({"Key": a["Key"], "Value": str(a["Value"])})
                    self.report.mapped(f"{lw}.LoadBalancerAttributes.{a['Key']}", "loadBalancer.LoadBalancerAttributes")
                else:
                    self.report.ignored(f"{lw}.LoadBalancerAttributes.{a.get('Key')}", "not modelled by shiftlab")
            if attrs:
                lb["LoadBalancerAttributes"] = attrs
            for key in ("Subnets", "SubnetMappings", "SecurityGroups", "Scheme", "IpAddressType"):
                if key in self.r.props(lb_logical):
                    self.report.ignored(f"{lw}.{key}", "networking: the proxy listens on loopback")
        return lb

    def _lb_of(self, listener: str) -> str | None:
        lb = self.r.logical_named(self.r.props(listener).get("LoadBalancerArn"))
        return lb if isinstance(lb, str) and self.r.type_of(lb).endswith("::LoadBalancer") else None

    @staticmethod
    def _forwarded(listeners: list[dict[str, Any]]) -> list[str]:
        out = []
        actions = [a for ls in listeners for a in ls["DefaultActions"]]
        actions += [a for ls in listeners for r in ls.get("Rules", []) for a in r["Actions"]]
        for a in actions:
            if a.get("TargetGroupArn"):
                out.append(a["TargetGroupArn"])
            for t in (a.get("ForwardConfig") or {}).get("TargetGroups", []):
                out.append(t["TargetGroupArn"])
        return list(dict.fromkeys(out))

    def _actions(self, raw: Any, where: str) -> list[dict[str, Any]]:
        actions = []
        for i, a in enumerate(_retype(raw or [], where)):
            if a.get("Type") not in ("forward", "redirect", "fixed-response"):
                self.report.ignored(f"{where}[{i}]", f"a {a.get('Type')} action is not rehearsed")
                continue
            fwd = a.get("ForwardConfig")
            if isinstance(fwd, dict) and a.get("TargetGroupArn"):
                a.pop("TargetGroupArn")  # both given: ELBv2 takes them when they agree
            if isinstance(fwd, dict) and "TargetGroupStickinessConfig" in fwd:
                fwd["TargetGroupStickinessConfig"] = {k: v for k, v in fwd["TargetGroupStickinessConfig"].items()}
            actions.append(a)
        if not actions:
            raise ImportProblem(where, "no forward, redirect or fixed-response action")
        return actions

    def listener(self, logical: str) -> dict[str, Any]:
        p = f"{logical}.Properties"
        meta = (self.r.resources[logical].get("Metadata") or {}).get("shiftlab") or {}
        name = meta.get("Name") or logical
        port = _typed("Port", self.r.prop(logical, "Port"), f"{p}.Port")
        if port is None:
            raise ImportProblem(f"{p}.Port", "is required")
        local = local_port(port, self.opts.listener_ports, self.ports_taken)
        self.ports_taken.add(local)
        out: dict[str, Any] = {"Name": name, "Port": local,
                               "DefaultActions": self._actions(self.r.prop(logical, "DefaultActions"),
                                                               f"{p}.DefaultActions"),
                               "TestTrafficRule": {"Enabled": False},
                               "ListenerArn": self.r.ref_of_resource(logical, p)}
        if local == port:
            self.report.mapped(f"{p}.Port", f"listener {name}.Port")
        else:
            self.report.local(f"{p}.Port", f"listener {name}.Port", f"AWS's port {port} needs privileges here: "
                              f"{local} (--listener-port {port}=PORT)")
        protocol = self.r.prop(logical, "Protocol", "TCP" if self.network else "HTTP")
        if self.network:
            # A network listener: TCP (TLS to the targets passes through it as TCP). TLS termination and
            # UDP are not rehearsed: https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-elasticloadbalancingv2-listener.html
            if protocol != "TCP":
                raise ImportProblem(f"{p}.Protocol", f"{protocol}: shiftlab's network listeners are TCP "
                                    "(TLS passes through a TCP listener; TLS termination, UDP and TCP_UDP are "
                                    "not rehearsed)")
            out["Protocol"] = "TCP"
            self.report.mapped(f"{p}.Protocol", f"listener {name}.Protocol")
            attrs = []
            for a in _retype(self.r.prop(logical, "ListenerAttributes") or [], f"{p}.ListenerAttributes"):
                if isinstance(a, dict) and a.get("Key") in NLB_LISTENER_ATTRIBUTES:
                    attrs.append({"Key": a["Key"], "Value": str(a["Value"])})
                    self.report.mapped(f"{p}.ListenerAttributes.{a['Key']}", f"listener {name}.ListenerAttributes")
                else:
                    self.report.ignored(f"{p}.ListenerAttributes.{a.get('Key')}", "not modelled by shiftlab")
            if attrs:
                out["ListenerAttributes"] = attrs
        elif protocol != "HTTP":
            self.report.ignored(f"{p}.Protocol", f"{protocol}: the local listener speaks plain HTTP")
        for key, why in LISTENER_IGNORED.items():
            if key in self.r.props(logical) and not (self.network and key == "ListenerAttributes"):
                self.report.ignored(f"{p}.{key}", why)
        self.report.mapped(f"{p}.DefaultActions", f"listener {name}.DefaultActions")
        self.report.mapped(logical, f"listener {name}.TestTrafficRule",
                           "Enabled: false (shiftlab's own header rule; the template's rules carry test traffic)")
        rules = []
        arn = out["ListenerArn"]
        for rl in self.r.resources:
            if self.r.type_of(rl) != RULE or not self.r.exists(rl):
                continue
            rp = f"{rl}.Properties"
            if _unless_unresolvable(self.r.prop, rl, "ListenerArn") != arn:
                continue
            rule = {"Priority": _typed("Priority", self.r.prop(rl, "Priority"), f"{rp}.Priority"),
                    "Conditions": _retype(self.r.prop(rl, "Conditions") or [], f"{rp}.Conditions"),
                    "Actions": self._actions(self.r.prop(rl, "Actions"), f"{rp}.Actions"),
                    "RuleArn": self.r.ref_of_resource(rl, rp)}
            rules.append(rule)
            self.report.mapped(rl, f"listener {name}.Rules (Priority {rule['Priority']})")
        if rules:
            out["Rules"] = sorted(rules, key=lambda r: r["Priority"])
        return out

    def target_group(self, logical: str) -> dict[str, Any]:
        p = f"{logical}.Properties"
        given = self.r.prop(logical, "Name")
        name = str(given) if given is not None else self.r.name_of(logical, "Name", 32)
        self.report.mapped(f"{p}.Name" if given is not None else f"{logical} (generated name)",
                           f"target group {name}")
        out: dict[str, Any] = {"Name": name, "TargetGroupArn": self.r.ref_of_resource(logical, p)}
        for key in TG_KEYS:
            value = self.r.prop(logical, key)
            if value is not None:
                out[key] = _typed(key, value, f"{p}.{key}")
                self.report.mapped(f"{p}.{key}", f"target group {name}.{key}")
        if out.get("TargetType") not in (None, "ip", "instance"):
            raise ImportProblem(f"{p}.TargetType", f"{out['TargetType']}: shiftlab's groups hold ip or instance "
                                "targets")
        protocol = self.r.prop(logical, "Protocol", "TCP" if self.network else "HTTP")
        if self.network:
            if protocol != "TCP":
                raise ImportProblem(f"{p}.Protocol", f"{protocol}: a network load balancer's target groups are "
                                    "TCP here (TLS, UDP and TCP_UDP are not rehearsed)")
            out["Protocol"] = "TCP"
            self.report.mapped(f"{p}.Protocol", f"target group {name}.Protocol")
            check = self.r.prop(logical, "HealthCheckProtocol", "TCP")
            if check not in ("TCP", "HTTP"):
                raise ImportProblem(f"{p}.HealthCheckProtocol", f"{check}: shiftlab's health checks are TCP or "
                                    "HTTP (HTTPS is not rehearsed)")
            out["HealthCheckProtocol"] = check
            self.report.mapped(f"{p}.HealthCheckProtocol", f"target group {name}.HealthCheckProtocol")
        elif protocol != "HTTP":
            self.report.ignored(f"{p}.Protocol", f"{protocol}: the tasks are reached over plain HTTP here")
        matcher = self.r.prop(logical, "Matcher")
        if isinstance(matcher, dict) and "HttpCode" in matcher:
            out["Matcher"] = {"HttpCode": str(matcher["HttpCode"])}
            self.report.mapped(f"{p}.Matcher", f"target group {name}.Matcher")
        attrs = []
        for a in self.r.prop(logical, "TargetGroupAttributes") or []:
            if a.get("Key") in (NLB_TG_ATTRIBUTES if self.network else TG_ATTRIBUTES):
                attrs.append({"Key": a["Key"], "Value": str(a["Value"])})
                self.report.mapped(f"{p}.TargetGroupAttributes.{a['Key']}",
                                   f"target group {name}.TargetGroupAttributes")
            else:
                self.report.ignored(f"{p}.TargetGroupAttributes.{a.get('Key')}", "not modelled by shiftlab")
        if attrs:
            out["TargetGroupAttributes"] = attrs
        for key, why in TARGET_GROUP_IGNORED.items():
            if key in self.r.props(logical) and not (self.network and key == "HealthCheckProtocol"):
                self.report.ignored(f"{p}.{key}", why)
        return out


def import_template(template: dict[str, Any], opts: Options | None = None,
                    source: str = "") -> tuple[dict[str, Any], Report]:
    """The shiftlab config of `template`'s service and the report of the
    import. The config is checked as `shiftlab validate` checks a file;
    ImportProblem names what cannot be imported."""
    from shiftlab.common.configfile import ConfigError
    from shiftlab.settings import load_settings

    report = Report(source)
    config = _Import(template, opts or Options(), report).run()
    try:
        load_settings(json.loads(json.dumps(config)))
    except ConfigError as exc:
        raise ImportProblem(source or "template", "the imported config is not valid:\n  "
                            + "\n  ".join(exc.problems)) from None
    return config, report


def render(config: dict[str, Any], report: Report) -> str:
    """The config as YAML, headed by what needs a local answer."""
    import yaml

    head = [f"# shiftlab.yaml imported from {report.source or 'a CloudFormation template'} "
            "by shiftlab import cloudformation.",
            "# AWS's fields are as the template gives them (ARNs the stack would create are synthesized).",
            f"# {LOCAL_MARK} marks what only you can answer for this machine:"]
    for e in report.of("local"):
        head.append(f"#   {e.target}: {e.reason}")
    return "\n".join(head) + "\n\n" + yaml.safe_dump(config, sort_keys=False, width=120)
