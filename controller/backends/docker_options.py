"""The docker backend's options, one schema: DockerRuntime, the config
file's `controller.docker`. Each field can be overridden by its
SHIFTLAB_DOCKER_* environment variable (the environment wins over the
file); the variables go through the same model, so a bad value gets the
same words wherever it came from, naming the field
(`controller.docker.pull: ...`) or the variable (`SHIFTLAB_DOCKER_PULL: ...`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationError, ValidationInfo, field_validator

from shiftlab.common.configfile import ConfigError, Model, describe_error, error_path

LOOPBACK = "127.0.0.1"
PULL_POLICIES = ("missing", "never", "always")
DOCKER_MIN_MEMORY = 6 * 1024 * 1024  # bytes: Docker refuses a smaller memory limit
_SIZE = re.compile(r"^(\d+)([bkmg]?)$")
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
SECTION = "controller.docker"


def _checked(problem: Callable[[Any], str | None]) -> Any:
    def check(value: Any) -> Any:
        if value is not None and (why := problem(value)):
            raise ValueError(why)
        return value

    return AfterValidator(check)


def _pull_problem(value: str) -> str | None:
    return None if value in PULL_POLICIES else f"{value!r} is not one of {', '.join(PULL_POLICIES)}"


def _cpus_problem(value: float) -> str | None:
    return None if 0 < value <= 1024 else f"{value:g} is out of range (0, 1024]"


def _memory_problem(value: str) -> str | None:
    m = _SIZE.match(value.strip().lower())
    if not m:
        return f"{value!r} is not a size such as 512m or 2g"
    if int(m.group(1)) * _SIZE_FACTOR[m.group(2)] < DOCKER_MIN_MEMORY:
        return f"{value!r} is below Docker's minimum of 6m (a size without a unit is in bytes: 512m, 2g)"
    return None


def _stall_timeout_problem(value: float) -> str | None:
    return None if 0 < value <= 3600 else f"{value:g} is out of range (0, 3600] seconds"


def _size(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class DockerRuntime(Model):
    """controller.docker: how the docker backend runs tasks. Every field can
    be overridden by its SHIFTLAB_DOCKER_* environment variable (ENV_FIELDS)."""

    # None: each container port published on publishAddress at a port the
    # engine picks; "host": host networking; any other name: that Docker
    # network, each task reached by its container name.
    network: str | None = None
    publishBeyondLoopback: bool = False  # before publishAddress: its check reads this
    publishAddress: str = LOOPBACK
    pull: Annotated[str, _checked(_pull_problem)] = "missing"
    # Seconds without a word from a pull before it fails.
    pullStallTimeoutSeconds: Annotated[float, _checked(_stall_timeout_problem)] = 20.0
    # Service-wide limits in Docker's terms (--cpus, --memory); a revision's
    # own cpu/memory (ECS's units) win over them.
    cpus: Annotated[float | None, _checked(_cpus_problem)] = None
    memory: Annotated[str | None, BeforeValidator(_size), _checked(_memory_problem)] = None
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
        try:
            address = ipaddress.ip_address(v)
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address (Docker publishes ports on an address, "
                             "e.g. 127.0.0.1)") from None
        if not address.is_loopback and not info.data.get("publishBeyondLoopback"):
            raise ValueError(f"{v} is not a loopback address: every task's port would be reachable from the "
                             "network; set publishBeyondLoopback: true (SHIFTLAB_DOCKER_PUBLISH_BEYOND_LOOPBACK=1) "
                             "if that is deliberate")
        return v


# -- the SHIFTLAB_DOCKER_* variables -----------------------------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _flag(text: str) -> bool:
    if text.lower() not in _TRUE + _FALSE:
        raise ValueError(f"{text!r} is not one of 1, 0 (true, false)")
    return text.lower() in _TRUE


# SHIFTLAB_DOCKER_<suffix>: the DockerRuntime field it overrides, and how its text becomes a value.
ENV_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "NETWORK": ("network", str),
    "PUBLISH_ADDRESS": ("publishAddress", str),
    "PUBLISH_BEYOND_LOOPBACK": ("publishBeyondLoopback", _flag),
    "PULL": ("pull", str),
    "PULL_STALL_TIMEOUT": ("pullStallTimeoutSeconds", _number),
    "CPUS": ("cpus", _number),
    "MEMORY": ("memory", str),
    "PYTHON": ("python", str),
    "IMAGE": ("image", str),
    "OWNER": ("owner", str),
}
assert {name for name, _ in ENV_FIELDS.values()} == set(DockerRuntime.model_fields)


def resolve(section: DockerRuntime | None = None, env: Mapping[str, str] | None = None) -> DockerRuntime:
    """The options the backend runs with: `section` (the file's
    controller.docker; None: the defaults) with every SHIFTLAB_DOCKER_*
    variable that is set, and not blank, over it. Refused with every
    problem at once (ConfigError), each naming the variable that set the
    value, or the field when the file did."""
    env = os.environ if env is None else env
    values = (section or DockerRuntime()).model_dump()
    set_by: dict[str, str] = {}  # field -> the variable that set it
    problems: list[tuple[str, str]] = []  # (field, line)
    for suffix, (name, parse) in ENV_FIELDS.items():
        variable = f"SHIFTLAB_DOCKER_{suffix}"
        text = env.get(variable, "").strip()
        if not text:
            continue
        set_by[name] = variable
        try:
            values[name] = parse(text)
        except ValueError as exc:
            problems.append((name, f"{variable}: {exc}"))
    options: DockerRuntime | None = None
    try:
        options = DockerRuntime.model_validate(values)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0])
            problems.append((name, describe_error(err, set_by.get(name) or error_path(err, SECTION))))
    if problems or options is None:
        order = list(DockerRuntime.model_fields)
        raise ConfigError(line for _, line in sorted(problems, key=lambda p: order.index(p[0])))
    return options
