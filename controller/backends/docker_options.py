"""The docker backend's options: the config file's `controller.docker`
(DockerRuntime), each overridden by its SHIFTLAB_DOCKER_* environment
variable, checked the same way wherever they come from."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from shiftlab.common.configfile import ConfigError
from shiftlab.controller.config import (
    DockerRuntime,
    cpus_problem,
    memory_problem,
    publish_address_problem,
    pull_problem,
    stall_timeout_problem,
)

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class DockerOptions:
    """The backend's options: the config file's `controller.docker`
    (DockerRuntime), each overridden by its SHIFTLAB_DOCKER_* variable."""

    network: str | None = None  # None: publish on publish_address; "host"; or a network name
    publish_address: str = LOOPBACK
    publish_beyond_loopback: bool = False  # a non-loopback publish_address is refused without it
    pull_policy: str = "missing"
    pull_stall_timeout: float = 20.0  # seconds without a word from a pull before it fails
    cpus: float | None = None  # for every task whose revision has no cpu of its own
    memory: str | None = None  # e.g. "256m"; for every task whose revision has no memory of its own
    python: str = "python3"  # what "{python}" in a command means inside a container
    default_image: str | None = None  # for a definition without an image
    owner: str | None = None  # label scope; default: derived from the state directory

    def __post_init__(self) -> None:
        checks: list[tuple[str, Callable[[Any], str | None], Any]] = [
            ("pull policy", pull_problem, self.pull_policy),
            ("cpus", cpus_problem, self.cpus),
            ("memory", memory_problem, self.memory),
            ("the pull stall timeout", stall_timeout_problem, self.pull_stall_timeout),
            ("publish address", partial(publish_address_problem, beyond_loopback=self.publish_beyond_loopback),
             self.publish_address),
        ]
        problems = [f"docker backend: {what} {why}" for what, check, value in checks
                    if value is not None and (why := check(value))]
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> DockerOptions:
        """SHIFTLAB_DOCKER_* over the defaults, `overrides` (those not None) over both."""
        values = env_values(os.environ if env is None else env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_config(cls, section: DockerRuntime | None, env: Mapping[str, str] | None = None) -> DockerOptions:
        """The config file's controller.docker, with SHIFTLAB_DOCKER_* over it."""
        s = section or DockerRuntime()
        values: dict[str, Any] = {
            "network": s.network, "publish_address": s.publishAddress,
            "publish_beyond_loopback": s.publishBeyondLoopback, "pull_policy": s.pull,
            "pull_stall_timeout": s.pullStallTimeoutSeconds, "cpus": s.cpus, "memory": s.memory, "python": s.python,
            "default_image": s.image, "owner": s.owner,
        }
        values.update(env_values(os.environ if env is None else env))
        return cls(**values)


# SHIFTLAB_DOCKER_<suffix> -> DockerOptions field; the config file's name in comments.
ENV_NAMES = {
    "NETWORK": "network",  # network
    "PUBLISH_ADDRESS": "publish_address",  # publishAddress
    "PUBLISH_BEYOND_LOOPBACK": "publish_beyond_loopback",  # publishBeyondLoopback
    "PULL": "pull_policy",  # pull
    "PULL_STALL_TIMEOUT": "pull_stall_timeout",  # pullStallTimeoutSeconds
    "CPUS": "cpus",  # cpus
    "MEMORY": "memory",  # memory
    "PYTHON": "python",  # python
    "IMAGE": "default_image",  # image
    "OWNER": "owner",  # owner
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_ENV_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "pull_policy": pull_problem, "cpus": cpus_problem, "memory": memory_problem,
    "pull_stall_timeout": stall_timeout_problem,
}


def env_values(env: Mapping[str, str]) -> dict[str, Any]:
    """The SHIFTLAB_DOCKER_* variables that are set (and not empty), as DockerOptions fields;
    a bad value is refused naming its variable."""
    values: dict[str, Any] = {}
    problems = []
    for suffix, attr in ENV_NAMES.items():
        name = f"SHIFTLAB_DOCKER_{suffix}"
        raw = env.get(name, "").strip()
        if not raw:
            continue
        value: Any = raw
        if attr in ("cpus", "pull_stall_timeout"):
            try:
                value = float(raw)
            except ValueError:
                problems.append(f"{name}: {raw!r} is not a number")
                continue
        elif attr == "publish_beyond_loopback":
            if raw.lower() not in _TRUE + _FALSE:
                problems.append(f"{name}: {raw!r} is not one of 1, 0 (true, false)")
                continue
            value = raw.lower() in _TRUE
        check = _ENV_CHECKS.get(attr)
        why = check(value) if check else None
        if why:
            problems.append(f"{name}: {why}")
            continue
        values[attr] = value
    if problems:
        raise ConfigError(problems)
    return values
