"""The controller's sections of shiftlab.yaml, with ECS's own field names.

`service` reads like `aws ecs create-service` input (serviceName,
desiredCount, loadBalancers[].advancedConfiguration); `deploymentConfiguration`
is exactly what `aws ecs update-service --deployment-configuration` takes;
`controller` holds what only a local emulator needs (where its API listens,
where it keeps its records, how the docker backend runs containers). Ranges
and defaults are ECS's.
"""

from __future__ import annotations

import re
import shlex
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shiftlab.common.configfile import Model, in_range
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


class CircuitBreaker(Model):
    enable: bool = False
    rollback: bool = False


class TimeoutConfiguration(Model):
    action: Literal["ROLLBACK", "CONTINUE"] = "ROLLBACK"
    timeoutInMinutes: Annotated[int, in_range(1, 1440)] = 60


def _hookable(stage: Any) -> Any:
    if not isinstance(stage, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    if stage in UNHOOKABLE_STAGES:
        raise ValueError(f"{stage} is a stage a deployment passes through but cannot hook "
                         f"(hookable: {', '.join(HOOKABLE_STAGES)})")
    if stage not in HOOKABLE_STAGES:
        raise ValueError(f"{stage!r} is not a lifecycle stage (hookable: {', '.join(HOOKABLE_STAGES)})")
    return stage


class LifecycleHook(Model):
    hookTargetArn: str | None = None
    # Before lifecycleStages, whose check reads it.
    targetType: Literal["LAMBDA", "PAUSE", "URL", "COMMAND"] | None = None
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

    @model_validator(mode="after")
    def _target(self) -> LifecycleHook:
        if self.kind == "PAUSE":
            return self
        if not self.hookTargetArn:
            raise ValueError("hookTargetArn is required (an http(s) URL or command:...), unless targetType is PAUSE")
        if not self.hookTargetArn.startswith(("http://", "https://", "command:")):
            # Refused here rather than when the hook runs: a rehearsal would
            # roll back on it, and CI could not tell that from a real failure.
            raise ValueError(f"hookTargetArn {self.hookTargetArn!r}: shiftlab calls http(s) URLs and command: "
                             "hooks, not AWS ARNs (point it at a local URL or command standing in for the Lambda)")
        return self

    @property
    def kind(self) -> str:
        """PAUSE, URL (http/https) or COMMAND (`command:` followed by a shell-like command line)."""
        if self.targetType == "PAUSE":
            return "PAUSE"
        arn = self.hookTargetArn or ""
        return "COMMAND" if arn.startswith("command:") else "URL"


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
    advancedConfiguration: AdvancedConfiguration


class ServiceConfig(Model):
    serviceName: str = "shiftlab-service"
    clusterName: str = "local"
    desiredCount: Annotated[int, in_range(1, 50)] = 2
    taskDefinition: TaskDefinitionSpec
    loadBalancers: Annotated[list[ServiceLoadBalancer], Field(min_length=1, max_length=1)]
    healthCheckGracePeriodSeconds: Annotated[int, in_range(0, 2147483647)] = 0

    @field_validator("serviceName")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or len(v) > 255 or not all(c.isalnum() or c in "-_" for c in v):
            raise ValueError(f"{v!r} must be 1..255 letters, digits, hyphens or underscores")
        return v

    @property
    def lb(self) -> ServiceLoadBalancer:
        return self.loadBalancers[0]


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
