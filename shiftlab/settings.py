"""The whole shiftlab.yaml: each plane's section parsed by its own module,
all problems reported together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.config import LoadBalancer, load_balancer_from_dict
from shiftlab.configfile import ConfigError
from shiftlab.timescale import parse_time_scale

KNOWN_SECTIONS = ("loadBalancer", "timeScale")


@dataclass(frozen=True)
class Settings:
    load_balancer: LoadBalancer
    time_scale: float

    def summary(self) -> str:
        lb = self.load_balancer
        return (f"{len(lb.Listeners)} listener(s), {len(lb.TargetGroups)} target group(s), "
                f"timeScale {self.time_scale:g}")


def load_settings(data: dict[str, Any]) -> Settings:
    problems: list[str] = []
    for key in data:
        if key not in KNOWN_SECTIONS:
            problems.append(f"{key}: unknown section (known: {', '.join(KNOWN_SECTIONS)})")
    lb = scale = None
    try:
        if "loadBalancer" not in data:
            raise ConfigError(["loadBalancer: is required"])
        lb = load_balancer_from_dict(data["loadBalancer"])
    except ConfigError as exc:
        problems += exc.problems
    try:
        scale = parse_time_scale(data.get("timeScale", 1))
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    assert lb is not None and scale is not None
    return Settings(lb, scale)
