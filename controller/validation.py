"""A deployment configuration checked against the service it deploys.

The one path every deploymentConfiguration takes: the config file's (and
what `shiftlab rehearse --strategy` or the pytest plugin change in it,
through shiftlab.settings) and each POST /api/deployments' (and so
`shiftlab deploy`'s), so that each entry refuses the same things with the
same words. The rules on the configuration alone (ranges, hook stages,
hook targets, PAUSE stages) are the model's validators in
controller.config; here are the ones that need more than one field or
know the service (its desired count and its alarms), ECS's rules added
since the model was first released (canaryPercent and stepPercent in steps
of 0.1, the bake time BLUE_GREEN requires), and the check against ECS's
own API model (controller.awsshapes).

The rules here are not validators of the model: a record holds its
configuration and is read back through the model, and a record that an
earlier version accepted must still load.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from shiftlab.common.configfile import ConfigError, merge_problems, parse
from shiftlab.controller.awsshapes import deployment_configuration_problems
from shiftlab.controller.config import (
    LAMBDA_ARN,
    AdvancedConfiguration,
    DeploymentConfiguration,
    LambdaFunctions,
    lambda_function,
)
from shiftlab.controller.rolling import RollingStuck, rolling_plan
from shiftlab.controller.vocabulary import Strategy

SECTION = "deploymentConfiguration"

# Strategies ECS refuses for a service with neither a load balancer nor Service Connect.
HEADLESS_REFUSED = (Strategy.CANARY, Strategy.LINEAR)


def deployment_problems(dc: DeploymentConfiguration, desired_count: int | None,
                        alarm_names: Collection[str] | None,
                        lambda_functions: LambdaFunctions | None = None, advanced: bool | None = None,
                        exposure: str | None = None) -> list[str]:
    """What `dc` cannot do. None for the desired count, the alarms, the
    Lambda functions, `advanced` (whether the service's load balancer has
    an advancedConfiguration) or `exposure` (config.ServiceConfig.exposure):
    not known (their own section was refused), so not checked."""
    problems = []
    if exposure == "headless" and dc.strategy in HEADLESS_REFUSED:
        # ECS: BLUE_GREEN runs for a headless service (no traffic shift is
        # managed); canary and linear "require that your service uses" a load
        # balancer or Service Connect (deploy-canary-service, deploy-linear-service).
        problems.append(f"{SECTION}.strategy: {dc.strategy} needs service.loadBalancers or "
                        "service.serviceConnectConfiguration to shift traffic by percent, as ECS's canary and "
                        "linear deployments do; a headless service (neither) deploys with BLUE_GREEN or ROLLING")
    if advanced is False and dc.strategy != Strategy.ROLLING:
        # ECS: blue/green, canary and linear shift traffic between two target
        # groups through the production listener rule; ROLLING needs neither.
        problems.append(f"{SECTION}.strategy: {dc.strategy} needs service.loadBalancers[0].advancedConfiguration "
                        "(alternateTargetGroupArn, productionListenerRule), as ECS's blue/green deployments do; "
                        "only ROLLING runs without it")
    if lambda_functions is not None:
        problems += _unmapped_functions(dc, lambda_functions)
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
    # The API reference's DeploymentConfiguration: "You must provide this
    # parameter when you use the BLUE_GREEN deployment strategy."
    if dc.strategy == Strategy.BLUE_GREEN and "bakeTimeInMinutes" not in dc.model_fields_set:
        problems.append(f"{SECTION}.bakeTimeInMinutes: is required with strategy BLUE_GREEN, as ECS requires it "
                        "(0 for none)")
    # CanaryConfiguration, LinearConfiguration: "Valid values are multiples of 0.1".
    for name, config, field in (("canaryConfiguration", dc.canaryConfiguration, "canaryPercent"),
                                ("linearConfiguration", dc.linearConfiguration, "stepPercent")):
        value = getattr(config, field)
        if abs(value * 10 - round(value * 10)) > 1e-6:
            problems.append(f"{SECTION}.{name}.{field}: {value:g} is not a multiple of 0.1, as ECS requires")
    if dc.strategy == Strategy.ROLLING and dc.lifecycleHooks:
        # The machine would run ROLLING without them: refused rather than dropped.
        problems.append(f"{SECTION}.lifecycleHooks: ECS runs lifecycle hooks only for BLUE_GREEN, LINEAR and "
                        "CANARY deployments, not ROLLING")
    return problems


NLB_PAGE = "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html"


def network_problems(advanced: AdvancedConfiguration | None, listener_of: dict[str, str],
                     path: str = "service.loadBalancers[0].advancedConfiguration") -> list[str]:
    """A service behind a network load balancer: ECS's productionListenerRule
    and testListenerRule name listeners there, not rules (the ECS API
    reference's AdvancedConfiguration), and the test listener is required:
    layer 4 cannot tell test traffic from production but by its port.
    `listener_of`: the listener each rule id or ARN belongs to."""
    if advanced is None:
        return []  # ROLLING in one target group: no traffic shift, no test listener
    if not advanced.testListenerRule:
        return [f"{path}.testListenerRule: is required with a network load balancer (loadBalancer.Type network): "
                "test traffic needs a listener of its own, on its own port, whose default action ECS moves to "
                f"green first ({NLB_PAGE})"]
    production = listener_of.get(advanced.productionListenerRule)
    problems = []
    for i, ref in enumerate(advanced.testListenerRule):
        if production is not None and listener_of.get(ref) == production:
            problems.append(f"{path}.testListenerRule[{i}]: {ref!r} is on the production listener {production!r}; "
                            "a network load balancer's test traffic needs a listener of its own (its own port)")
    return problems


def _unmapped_functions(dc: DeploymentConfiguration, functions: LambdaFunctions) -> list[str]:
    """A hook copied from AWS names its Lambda function by ARN; shiftlab calls
    what `lambdaFunctions` maps it to, so one with no mapping would only fail
    (and roll back) once the deployment reached its stage."""
    problems = []
    for i, hook in enumerate(dc.lifecycleHooks):
        arn = hook.hookTargetArn
        if hook.kind != "LAMBDA" or arn is None or lambda_function(arn, functions) is not None:
            continue
        match = LAMBDA_ARN.fullmatch(arn)
        name = match.group(1) if match else arn
        problems.append(f"{SECTION}.lifecycleHooks[{i}].hookTargetArn: the Lambda function {arn!r} has no "
                        f"mapping in lambdaFunctions (add `lambdaFunctions: {{{name}: \"command:...\"}}` or an "
                        "http(s) URL: what shiftlab calls in its place)")
    return problems


def check_deployment(data: Any, desired_count: int | None, alarm_names: Collection[str] | None,
                     lambda_functions: LambdaFunctions | None = None,
                     advanced: bool | None = None, exposure: str | None = None) -> DeploymentConfiguration:
    """`data` (a deploymentConfiguration section) parsed and checked; a
    ConfigError lists every problem, each with its field path."""
    # What ECS's API refuses (its model: field names, types, required fields),
    # where the rules here and the model's say nothing more precise.
    aws = deployment_configuration_problems(data, SECTION)
    try:
        dc: DeploymentConfiguration = parse(DeploymentConfiguration, data, SECTION)
    except ConfigError as exc:
        raise ConfigError(merge_problems(exc.problems, aws)) from None
    problems = merge_problems(deployment_problems(dc, desired_count, alarm_names, lambda_functions,
                                                  advanced, exposure), aws)
    if problems:
        raise ConfigError(problems)
    return dc
