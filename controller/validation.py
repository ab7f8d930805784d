"""A deployment configuration checked against the service it deploys.

The one path every deploymentConfiguration takes: the config file's (and
what `shiftlab rehearse --strategy` or the pytest plugin change in it,
through shiftlab.settings) and each POST /api/deployments' (and so
`shiftlab deploy`'s), so that each entry refuses the same things with the
same words. The rules on the configuration alone (ranges, hook stages,
hook targets, PAUSE stages) are the model's validators in
controller.config; here are the ones that need more than one field or
know the service: its desired count and its alarms.

The rules here are not validators of the model: a record holds its
configuration and is read back through the model, and a record that an
earlier version accepted must still load.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from shiftlab.common.configfile import ConfigError, parse
from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.rolling import RollingStuck, rolling_plan
from shiftlab.controller.vocabulary import Strategy

SECTION = "deploymentConfiguration"


def deployment_problems(dc: DeploymentConfiguration, desired_count: int | None,
                        alarm_names: Collection[str] | None, advanced: bool | None = None) -> list[str]:
    """What `dc` cannot do. None for the desired count, the alarms or
    `advanced` (whether the service's load balancer has an
    advancedConfiguration): not known (their own section was refused), so
    not checked."""
    problems = []
    if advanced is False and dc.strategy != Strategy.ROLLING:
        # ECS: blue/green, canary and linear shift traffic between two target
        # groups through the production listener rule; ROLLING needs neither.
        problems.append(f"{SECTION}.strategy: {dc.strategy} needs service.loadBalancers[0].advancedConfiguration "
                        "(alternateTargetGroupArn, productionListenerRule), as ECS's blue/green deployments do; "
                        "only ROLLING runs without it")
    if alarm_names is not None:
        for i, name in enumerate(dc.alarms.alarmNames):
            if name not in alarm_names:
                problems.append(f"{SECTION}.alarms.alarmNames[{i}]: {name!r} is not defined in alarms[] "
                                f"(defined: {', '.join(sorted(alarm_names)) or 'none'})")
    if desired_count is not None and dc.strategy == Strategy.ROLLING:
        try:
            rolling_plan(desired_count, dc.minimumHealthyPercent, dc.maximumPercent)
        except RollingStuck as exc:
            problems.append(f"{SECTION}.maximumPercent: {exc}")
    if dc.strategy == Strategy.ROLLING and dc.lifecycleHooks:
        # The machine would run ROLLING without them: refused rather than dropped.
        problems.append(f"{SECTION}.lifecycleHooks: ECS runs lifecycle hooks only for BLUE_GREEN, LINEAR and "
                        "CANARY deployments, not ROLLING")
    return problems


def check_deployment(data: Any, desired_count: int | None,
                     alarm_names: Collection[str] | None, advanced: bool | None = None) -> DeploymentConfiguration:
    """`data` (a deploymentConfiguration section) parsed and checked; a
    ConfigError lists every problem, each with its field path."""
    dc: DeploymentConfiguration = parse(DeploymentConfiguration, data, SECTION)
    problems = deployment_problems(dc, desired_count, alarm_names, advanced)
    if problems:
        raise ConfigError(problems)
    return dc
