"""The controller's sections of shiftlab.yaml, with ECS's own field names.

`service` reads like `aws ecs create-service` input (serviceName,
desiredCount, loadBalancers[].advancedConfiguration); `deploymentConfiguration`
is exactly what `aws ecs update-service --deployment-configuration` takes;
`controller` holds what only a local emulator needs (where its API listens,
where it keeps its records, how the docker backend runs containers). Ranges
and defaults are ECS's.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shiftlab.common.configfile import Model, in_range
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


PULL_POLICIES = ("missing", "never", "always")
DOCKER_MIN_MEMORY = 6 * 1024 * 1024  # bytes: Docker refuses a smaller memory limit
_SIZE = re.compile(r"^(\d+)([bkmg]?)$")
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


# One check per docker option, shared by the config file's controller.docker
# and the SHIFTLAB_DOCKER_* variables (controller/backends/docker.py): each
# says what is wrong with the value, or None.

def pull_problem(value: str) -> str | None:
    return None if value in PULL_POLICIES else f"{value!r} is not one of {', '.join(PULL_POLICIES)}"


def cpus_problem(value: float) -> str | None:
    return None if 0 < value <= 1024 else f"{value:g} is out of range (0, 1024]"


def memory_problem(value: str) -> str | None:
    m = _SIZE.match(value.strip().lower())
    if not m:
        return f"{value!r} is not a size such as 512m or 2g"
    if int(m.group(1)) * _SIZE_FACTOR[m.group(2)] < DOCKER_MIN_MEMORY:
        return f"{value!r} is below Docker's minimum of 6m (a size without a unit is in bytes: 512m, 2g)"
    return None


def stall_timeout_problem(value: float) -> str | None:
    return None if 0 < value <= 3600 else f"{value:g} is out of range (0, 3600] seconds"


def publish_address_problem(value: str, beyond_loopback: bool) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address (Docker publishes ports on an address, e.g. 127.0.0.1)"
    if not address.is_loopback and not beyond_loopback:
        return (f"{value} is not a loopback address: every task's port would be reachable from the network; "
                f"set publishBeyondLoopback: true (SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK=1) if that is deliberate")
    return None


def _checked(problem: Any) -> Any:
    def check(value: Any) -> Any:
        if value is not None and (why := problem(value)):
            raise ValueError(why)
        return value

    return AfterValidator(check)


def _size(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class DockerRuntime(Model):
    """controller.docker: how the docker backend runs tasks. Every field can
    be overridden by its SHIFTLAB_DOCKER_* environment variable."""

    # None: each container port published on publishAddress at a port the
    # engine picks; "host": host networking; any other name: that Docker
    # network, each task reached by its container name.
    network: str | None = None
    publishBeyondLoopback: bool = False  # before publishAddress: its check reads this
    publishAddress: str = "127.0.0.1"
    pull: Annotated[str, _checked(pull_problem)] = "missing"
    pullStallTimeoutSeconds: Annotated[float, _checked(stall_timeout_problem)] = 20.0
    # Service-wide limits in Docker's terms (--cpus, --memory); a revision's
    # own cpu/memory (ECS's units) win over them.
    cpus: Annotated[float | None, _checked(cpus_problem)] = None
    memory: Annotated[str | None, BeforeValidator(_size), _checked(memory_problem)] = None
    python: str = "python3"  # what "{python}" in a command means inside a container
    image: str | None = None  # for a revision without an image
    owner: str | None = None  # label scope of this controller's containers; default: from stateDir

    @field_validator("network", "owner", "image")
    @classmethod
    def _not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty (leave it out for the default)")
        return v

    @field_validator("publishAddress")
    @classmethod
    def _publish(cls, v: str, info: ValidationInfo) -> str:
        problem = publish_address_problem(v, bool(info.data.get("publishBeyondLoopback")))
        if problem:
            raise ValueError(problem)
        return v


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
    docker: DockerRuntime = DockerRuntime()
    # The admin API of a load balancer running in a process of its own
    # (`shiftlab proxy`): `up` then runs the controller alone against it.
    proxyAdminUrl: Annotated[str | None, AfterValidator(_admin_url)] = None
