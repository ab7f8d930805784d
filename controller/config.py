"""The controller's sections of shiftlab.yaml, with ECS's own field names.

`service` reads like `aws ecs create-service` input (serviceName,
desiredCount, loadBalancers[].advancedConfiguration); `deploymentConfiguration`
is exactly what `aws ecs update-service --deployment-configuration` takes;
`controller` holds what only a local emulator needs (where its API listens,
where it keeps its records, how the docker backend runs containers). Ranges
and defaults are ECS's.
"""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shiftlab.common.configfile import ConfigError, Model, in_range, parse
from shiftlab.controller.backends.docker_options import DockerRuntime
from shiftlab.controller.eventbridge import EventTarget
from shiftlab.controller.vocabulary import (
    HOOKABLE_STAGES,
    NO_PAUSE_STAGES,
    UNHOOKABLE_STAGES,
    Backend,
    Stage,
    Strategy,
)

Minutes = Annotated[int, in_range(0, 1440)]


class LinearConfiguration(Model):
    stepPercent: Annotated[float, in_range(3, 100)] = 10.0
    stepBakeTimeInMinutes: Minutes = 6


class CanaryConfiguration(Model):
    canaryPercent: Annotated[float, in_range(0.1, 100)] = 5.0
    canaryBakeTimeInMinutes: Minutes = 10


class DeploymentAlarms(Model):
    alarmNames: list[str] = []
    enable: bool = False
    rollback: bool = False


class ThresholdConfiguration(Model):
    """ECS's ThresholdConfiguration: `value` is the threshold itself (COUNT)
    or a percentage of the desired count (BOUNDED_PERCENT: kept within 3..200;
    UNBOUNDED_PERCENT: not)."""

    type: Literal["COUNT", "BOUNDED_PERCENT", "UNBOUNDED_PERCENT"] = "BOUNDED_PERCENT"
    value: Annotated[int, in_range(0, 2147483647)] = 50


class CircuitBreaker(Model):
    enable: bool = False
    rollback: bool = False
    # ECS: a task that reaches a healthy state resets the failure count to 0.
    resetOnHealthyTask: bool = True
    thresholdConfiguration: ThresholdConfiguration = ThresholdConfiguration()

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Written only when given: a deployment's configuration is recorded
        # as it was read, and records from before these fields still match.
        out = handler(self)
        for name in ("resetOnHealthyTask", "thresholdConfiguration"):
            if name not in self.model_fields_set:
                out.pop(name, None)
        return out


# A hook's timeoutConfiguration as ECS documents it: every hook, Lambda or
# PAUSE, waits 1,440 minutes (24 hours) unless told otherwise; a Lambda hook
# 1..1,440 minutes, a PAUSE hook 1..20,160 (14 days). Sources: the Lambda
# hooks page ("Timeout configuration",
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html)
# and the pause hooks page ("Configuration fields",
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html).
HOOK_TIMEOUT_MINUTES = 1440
LAMBDA_HOOK_MAX_MINUTES = 1440
PAUSE_HOOK_MAX_MINUTES = 20160


class TimeoutConfiguration(Model):
    action: Literal["ROLLBACK", "CONTINUE"] = "ROLLBACK"
    timeoutInMinutes: Annotated[int, in_range(1, PAUSE_HOOK_MAX_MINUTES)] = HOOK_TIMEOUT_MINUTES


def _hookable(stage: Any) -> Any:
    if not isinstance(stage, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if stage in UNHOOKABLE_STAGES:
        raise ValueError(f"{stage} is a stage a deployment passes through but cannot hook "
                         f"(hookable: {', '.join(HOOKABLE_STAGES)})")
    if stage not in HOOKABLE_STAGES:
        raise ValueError(f"{stage!r} is not a lifecycle stage (hookable: {', '.join(HOOKABLE_STAGES)})")
    return stage


# A Lambda function's ARN, as Lambda's API patterns it (an unqualified ARN or
# one with a version or an alias): group 1 the function's name.
LAMBDA_ARN = re.compile(r"arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:([a-zA-Z0-9_-]{1,64})"
                        r"(?::(?:\$LATEST|[a-zA-Z0-9_-]+))?")
FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}(?::(?:\$LATEST|[a-zA-Z0-9_-]+))?")
LOCAL_TARGETS = ("http://", "https://", "command:")


class LifecycleHook(Model):
    hookTargetArn: str | None = None
    # Before lifecycleStages and timeoutConfiguration, whose checks read it.
    # ECS's values are AWS_LAMBDA (the default) and PAUSE; LAMBDA, URL and
    # COMMAND are older shiftlab spellings, still read.
    targetType: Literal["AWS_LAMBDA", "PAUSE", "LAMBDA", "URL", "COMMAND"] | None = None
    lifecycleStages: Annotated[list[Annotated[Stage, BeforeValidator(_hookable)]], Field(min_length=1)]
    hookDetails: Any = None
    timeoutConfiguration: TimeoutConfiguration | None = None
    roleArn: str | None = None

    @field_validator("lifecycleStages")
    @classmethod
    def _pause_stages(cls, v: list[Stage], info: ValidationInfo) -> list[Stage]:
        if info.data.get("targetType") == "PAUSE":
            bad = [s for s in v if s in NO_PAUSE_STAGES]
            if bad:
                raise ValueError(f"a PAUSE hook cannot run at {', '.join(bad)}, as in ECS")
        return v

    @field_validator("timeoutConfiguration")
    @classmethod
    def _lambda_timeout(cls, v: TimeoutConfiguration | None, info: ValidationInfo) -> TimeoutConfiguration | None:
        if v is not None and info.data.get("targetType") != "PAUSE" and v.timeoutInMinutes > LAMBDA_HOOK_MAX_MINUTES:
            raise ValueError(f"timeoutInMinutes {v.timeoutInMinutes} is out of range 1..{LAMBDA_HOOK_MAX_MINUTES} "
                             f"for a Lambda hook (a PAUSE hook may wait up to {PAUSE_HOOK_MAX_MINUTES}), as in ECS")
        return v

    @model_validator(mode="after")
    def _target(self) -> LifecycleHook:
        if self.kind == "PAUSE":
            return self
        if not self.hookTargetArn:
            raise ValueError("hookTargetArn is required (a Lambda function ARN mapped in lambdaFunctions, an "
                             "http(s) URL or command:...), unless targetType is PAUSE")
        if not self.hookTargetArn.startswith(LOCAL_TARGETS) and not LAMBDA_ARN.fullmatch(self.hookTargetArn):
            # Refused here rather than when the hook runs: a rehearsal would
            # roll back on it, and CI could not tell that from a real failure.
            raise ValueError(f"hookTargetArn {self.hookTargetArn!r} is not a Lambda function ARN "
                             "(arn:aws:lambda:<region>:<account>:function:<name>), an http(s) URL nor command:...")
        return self

    @property
    def kind(self) -> str:
        """PAUSE; LAMBDA (a function ARN, called through its lambdaFunctions
        mapping); URL (http/https); or COMMAND (`command:` followed by a
        shell-like command line)."""
        if self.targetType == "PAUSE":
            return "PAUSE"
        arn = self.hookTargetArn or ""
        if arn.startswith("command:"):
            return "COMMAND"
        return "URL" if arn.startswith(("http://", "https://")) else "LAMBDA"

    @property
    def timeout_minutes(self) -> int:
        """How long ECS waits for this hook before its timeout action (AWS minutes)."""
        tc = self.timeoutConfiguration
        return tc.timeoutInMinutes if tc is not None else HOOK_TIMEOUT_MINUTES

    @property
    def timeout_action(self) -> str:
        tc = self.timeoutConfiguration
        return tc.action if tc is not None else "ROLLBACK"


# Lambda's own limit of one invocation: 900 seconds (15 minutes) at most
# (Lambda's Timeout, 1..900 s; https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
LAMBDA_MAX_SECONDS = 900


def _function_target(v: Any) -> Any:
    return {"target": v} if isinstance(v, str) else v


def _local_target(v: str) -> str:
    if not v.startswith(LOCAL_TARGETS):
        raise ValueError(f"{v!r} is neither command:<command line> nor an http(s) URL")
    return v


class LambdaFunction(Model):
    """shiftlab's stand-in for one Lambda function (`lambdaFunctions:`): the
    command or URL called in its place, and how long one invocation may run
    (seconds of the controller's clock, not scaled: Lambda's Timeout, at most
    900; the function's own runtime is real time)."""

    target: Annotated[str, AfterValidator(_local_target)]
    timeout: Annotated[int, in_range(1, LAMBDA_MAX_SECONDS)] = LAMBDA_MAX_SECONDS


LambdaFunctions = dict[str, LambdaFunction]


def parse_lambda_functions(data: Any, section: str = "lambdaFunctions") -> LambdaFunctions:
    """The `lambdaFunctions` section: function ARN or name -> `command:...`,
    `http(s)://...` or {target, timeout}. A ConfigError names each bad entry."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{section}: must be a mapping of Lambda function ARN or name to command:... or "
                           "an http(s) URL"])
    problems: list[str] = []
    out: LambdaFunctions = {}
    for key, value in data.items():
        path = f"{section}.{key}"
        if not isinstance(key, str) or not (LAMBDA_ARN.fullmatch(key) or FUNCTION_NAME.fullmatch(key)):
            problems.append(f"{path}: {key!r} is neither a Lambda function ARN nor a function name")
            continue
        try:
            out[key] = parse(LambdaFunction, _function_target(value), path)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return out


def lambda_function(arn: str, functions: LambdaFunctions) -> LambdaFunction | None:
    """The mapping that stands in for the function `arn`: by the ARN as
    written, the ARN without its version or alias, the name with that
    qualifier, or the name."""
    match = LAMBDA_ARN.fullmatch(arn)
    if match is None:
        return None
    name = match.group(1)
    qualifier = arn[match.end(1):]  # ":alias" or ""
    unqualified = arn[:match.end(1)]
    for key in (arn, unqualified, name + qualifier, name):
        if key in functions:
            return functions[key]
    return None


class DeploymentConfiguration(Model):
    strategy: Strategy = Strategy.ROLLING
    bakeTimeInMinutes: Minutes = 0
    linearConfiguration: LinearConfiguration = LinearConfiguration()
    canaryConfiguration: CanaryConfiguration = CanaryConfiguration()
    lifecycleHooks: list[LifecycleHook] = []
    alarms: DeploymentAlarms = DeploymentAlarms()
    deploymentCircuitBreaker: CircuitBreaker = CircuitBreaker()
    maximumPercent: Annotated[int, in_range(100, 2000)] = 200
    minimumHealthyPercent: Annotated[int, in_range(0, 100)] = 100


def _command(v: Any) -> Any:
    return shlex.split(v) if isinstance(v, str) else v


def _environment(v: Any) -> Any:
    # ECS's [{name, value}] list, or a plain mapping.
    if isinstance(v, list):
        out = {}
        for i, item in enumerate(v):
            if not isinstance(item, dict) or "name" not in item:
                raise ValueError(f"environment[{i}] must be {{name, value}}")
            out[str(item["name"])] = str(item.get("value", ""))
        return out
    if isinstance(v, dict):
        return {str(k): str(val) for k, val in v.items()}
    return v


# ECS's task-level limits (EC2 launch type): CPU units, 1024 to a vCPU,
# 128 (0.125 vCPU) .. 196608 (192 vCPUs); memory in MiB, at least the 6 MiB
# Docker reserves for a container.
CPU_UNITS = (128, 196608)
MEMORY_MIB = (6, 16 * 1024 * 1024)


def _ecs_amount(v: Any, unit: str, not_amount: str, not_integer: str) -> Any:
    """ECS's forms of a task limit: an integer, its digits as a string, or an
    amount of the larger `unit` (1024 plain units each), e.g. "0.5 vCPU"."""
    if isinstance(v, str):
        text = v.strip()
        m = re.fullmatch(rf"(\d+(?:\.\d+)?)\s*{unit}", text, re.IGNORECASE)
        if m:
            return round(float(m.group(1)) * 1024)
        if text.isdigit():
            return int(text)
        raise ValueError(f"{v!r} is not {not_amount}")
    if isinstance(v, bool) or (v is not None and not isinstance(v, int)):
        raise ValueError(f"{v!r} is not {not_integer}")
    return v


def _cpu_units(v: Any) -> Any:
    """1024, "1024", "1 vCPU", "0.5 vcpu": CPU units as an int."""
    return _ecs_amount(v, "vcpu", "CPU units (1024 = one vCPU) nor vCPUs such as '0.5 vCPU'",
                       "CPU units (an integer, 1024 = one vCPU)")


def _memory_mib(v: Any) -> Any:
    """512, "512", "1GB", "1 GB": MiB as an int."""
    return _ecs_amount(v, "gb", "MiB (an integer) nor GB such as '1 GB'", "MiB (an integer)")


class TaskDefinitionSpec(Model):
    """A revision: what to run. `command` for local processes; `image` for Docker.
    `cpu` and `memory` are the task-level limits as ECS spells them (only the
    docker backend applies them)."""

    command: Annotated[list[str], BeforeValidator(_command)] = []
    environment: Annotated[dict[str, str], BeforeValidator(_environment)] = {}
    image: str | None = None
    containerPort: Annotated[int, in_range(1, 65535)] = 8080
    stopTimeout: Annotated[int, in_range(0, 120)] = 30
    cpu: Annotated[int | None, BeforeValidator(_cpu_units), in_range(*CPU_UNITS)] = None
    memory: Annotated[int | None, BeforeValidator(_memory_mib), in_range(*MEMORY_MIB)] = None
    family: str | None = None

    @model_validator(mode="after")
    def _something(self) -> TaskDefinitionSpec:
        if not self.command and not self.image:
            raise ValueError("needs a command (process backend) or an image (docker backend)")
        return self


class AdvancedConfiguration(Model):
    alternateTargetGroupArn: str
    productionListenerRule: str
    # ECS takes one test rule; a list is accepted too, so that the header rule
    # and a separate test listener can both follow test traffic.
    testListenerRule: Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = []
    roleArn: str | None = None


class ServiceLoadBalancer(Model):
    targetGroupArn: str
    containerName: str | None = None
    containerPort: int | None = None
    # BLUE_GREEN, CANARY and LINEAR need it (controller.validation); ROLLING
    # runs old and new tasks side by side in the one target group without it.
    advancedConfiguration: AdvancedConfiguration | None = None


# Service Connect (ECS's ServiceConnectConfiguration, as create-service takes
# it). shiftlab plays the namespace's proxy with its own load balancer: each
# client alias becomes a listener (shiftlab.serviceconnect builds it) whose
# default rule holds the production weights and whose test rule matches the
# test header; the service's `lb` below names them, so the controller moves
# them as it moves an ALB's rules.
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceConnectConfiguration.html
DISCOVERY_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,63}")


class ServiceConnectHeaderValue(Model):
    exact: str


class ServiceConnectHeader(Model):
    name: Annotated[str, Field(min_length=1)]
    value: ServiceConnectHeaderValue | None = None

    @field_validator("name")
    @classmethod
    def _header(cls, v: str) -> str:
        if any(c in v for c in " :\t") or v.lower() == "host":
            raise ValueError(f"{v!r} is not a header name a test rule can match")
        return v


class ServiceConnectTestTrafficRules(Model):
    header: ServiceConnectHeader


class ServiceConnectClientAlias(Model):
    port: Annotated[int, in_range(1, 65535)]
    dnsName: str | None = None
    testTrafficRules: ServiceConnectTestTrafficRules | None = None


class ServiceConnectService(Model):
    portName: Annotated[str, Field(min_length=1)]
    discoveryName: str | None = None
    # ServiceConnectService: "The maximum number of client aliases that you
    # can have in this list is 1" and "you must provide at least one clientAlias".
    clientAliases: Annotated[list[ServiceConnectClientAlias], Field(min_length=1, max_length=1)]
    ingressPortOverride: Annotated[int, in_range(1, 65535)] | None = None
    # Accepted as ECS takes them (botocore's model checks their shape), not
    # emulated: shiftlab's proxy has no per-endpoint timeouts and no TLS.
    timeout: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None

    @field_validator("discoveryName")
    @classmethod
    def _discovery(cls, v: str | None) -> str | None:
        if v is not None and not DISCOVERY_NAME.fullmatch(v):
            raise ValueError(f"{v!r} must be up to 64 lowercase letters, digits, underscores or hyphens, not "
                             "starting with a hyphen, as ECS requires of a discoveryName")
        return v

    @property
    def discovery(self) -> str:
        """ECS: without a discoveryName, the port mapping's name is used."""
        return self.discoveryName or self.portName


class ServiceConnectConfiguration(Model):
    enabled: bool
    # The Cloud Map namespace; without one, the cluster's default namespace
    # (shiftlab: a namespace named as the cluster).
    namespace: str | None = None
    # One entry: shiftlab's task definitions have one container port.
    services: Annotated[list[ServiceConnectService], Field(max_length=1)] = []
    # Accepted as ECS takes them (botocore's model checks their shape), ignored: the proxy's logs.
    logConfiguration: dict[str, Any] | None = None
    accessLogConfiguration: dict[str, Any] | None = None
    containerConfigurations: list[Any] | None = None


def _ecs_name(v: str) -> str:
    """A service's (or client task's) name as ECS takes it."""
    if not v or len(v) > 255 or not all(c.isalnum() or c in "-_" for c in v):
        raise ValueError(f"{v!r} must be 1..255 letters, digits, hyphens or underscores")
    return v


EcsName = Annotated[str, AfterValidator(_ecs_name)]


class ServiceConnectClient(Model):
    """A task that runs in the namespace as a client (shiftlab's own: ECS
    would run it as a service of its own). Started beside the service with
    the namespace's endpoints in its environment; never deployed."""

    name: EcsName
    taskDefinition: TaskDefinitionSpec



Exposure = Literal["loadBalancer", "serviceConnect", "headless"]


class ServiceConfig(Model):
    serviceName: EcsName = "shiftlab-service"
    clusterName: str = "local"
    desiredCount: Annotated[int, in_range(1, 50)] = 2
    taskDefinition: TaskDefinitionSpec
    # Neither loadBalancers nor serviceConnectConfiguration: a headless
    # service, e.g. a queue consumer. ECS runs its blue/green deployments with
    # no traffic to shift (see `exposure`).
    loadBalancers: Annotated[list[ServiceLoadBalancer], Field(max_length=1)] = []
    serviceConnectConfiguration: ServiceConnectConfiguration | None = None
    serviceConnectClients: list[ServiceConnectClient] = []
    healthCheckGracePeriodSeconds: Annotated[int, in_range(0, 2147483647)] = 0


    @property
    def service_connect(self) -> ServiceConnectService | None:
        """The Service Connect service this service offers in its namespace (None: none)."""
        sc = self.serviceConnectConfiguration
        return sc.services[0] if sc is not None and sc.enabled and sc.services else None

    @property
    def namespace(self) -> str:
        sc = self.serviceConnectConfiguration
        return (sc.namespace if sc is not None and sc.namespace else None) or self.clusterName

    @property
    def exposure(self) -> Exposure:
        """How clients reach the service: through a load balancer whose rules'
        weights a deployment moves, through Service Connect, or not at all
        ("headless": neither; ECS then shifts no traffic, hooks activate the
        new revision). Only a service with a load balancer or Service Connect has an `lb`."""
        if self.loadBalancers:
            return "loadBalancer"
        if self.service_connect is not None:
            return "serviceConnect"
        return "headless"

    @property
    def lb(self) -> ServiceLoadBalancer:
        if self.loadBalancers:
            return self.loadBalancers[0]
        sc = self.service_connect
        assert sc is not None, "a service needs loadBalancers or serviceConnectConfiguration.services"
        names = service_connect_names(sc, self.namespace)
        return ServiceLoadBalancer(targetGroupArn=names.blue, advancedConfiguration=AdvancedConfiguration(
            alternateTargetGroupArn=names.green, productionListenerRule=f"{names.listener}/default",
            testListenerRule=[f"{names.listener}/test"]))


@dataclass(frozen=True)
class ServiceConnectNames:
    """What shiftlab calls the parts of one Service Connect endpoint on its load balancer."""

    discovery: str
    dns_name: str  # the client alias's name, as clients call it
    port: int  # the client alias's port
    listener: str
    blue: str
    green: str


def service_connect_names(sc: ServiceConnectService, namespace: str) -> ServiceConnectNames:
    alias = sc.clientAliases[0]
    # ServiceConnectClientAlias: "If this parameter isn't specified, the default
    # value of discoveryName.namespace is used."
    dns = alias.dnsName or f"{sc.discovery}.{namespace}"
    # Target group names: 1..32 letters, digits or hyphens.
    stem = re.sub(r"[^A-Za-z0-9-]", "-", sc.discovery)[:21].strip("-") or "sc"
    return ServiceConnectNames(sc.discovery, dns, alias.port, f"sc-{sc.discovery}", f"sc-{stem}-blue",
                               f"sc-{stem}-green")


def _admin_url(v: str | None) -> str | None:
    if v is None:
        return None
    parts = urlsplit(v)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.query or parts.fragment:
        raise ValueError(f"{v!r} is not an http(s) URL of the load balancer's admin API, "
                         "such as http://127.0.0.1:9090")
    return v.rstrip("/")


class ControllerRuntime(Model):
    address: str = "127.0.0.1"
    port: Annotated[int, in_range(0, 65535)] = 9091
    token: str | None = None
    stateDir: str = ".shiftlab"
    backend: Backend = "process"
    # Seconds (real, not scaled) that new tasks get to become healthy targets
    # before they count as failed to start.
    taskStartTimeoutSeconds: Annotated[float, in_range(1, 3600)] = 60.0
    # With its SHIFTLAB_DOCKER_* variables: controller/backends/docker_options.py.
    docker: DockerRuntime = DockerRuntime()
    # The admin API of a load balancer running in a process of its own
    # (`shiftlab proxy`): `up` then runs the controller alone against it.
    proxyAdminUrl: Annotated[str | None, AfterValidator(_admin_url)] = None
    # Where ECS's and CloudWatch's events go, EventBridge-shaped (controller/eventbridge.py).
    eventTargets: list[EventTarget] = []


class DnsTrafficShift(Model):
    """`route53.TrafficShift`: the steps of a LINEAR deployment across weighted
    DNS records, as the Route 53 reference architecture's state machine
    steps them, "slowly at first, then faster": green's share after each
    step (whole percents, rising, the last 100) and the wait after each
    (AWS seconds, at least the records' TTL, so that clients have the
    answer before the next step)."""

    Percentages: Annotated[list[Annotated[int, in_range(1, 100)]], Field(min_length=1)] = [1, 2, 5, 10, 25, 50, 100]
    IntervalSeconds: Annotated[int, in_range(1, 86400)] = 60

    @field_validator("Percentages")
    @classmethod
    def _rising(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(f"{v} must rise step by step")
        if v[-1] != 100:
            raise ValueError(f"{v} must end at 100 (all traffic on green)")
        return v

    def schedule(self) -> list[tuple[float, float]]:
        """(green percent, bake minutes) per step; the last bakes 0 (bakeTimeInMinutes follows)."""
        return [(float(p), 0.0 if i == len(self.Percentages) - 1 else self.IntervalSeconds / 60.0)
                for i, p in enumerate(self.Percentages)]
