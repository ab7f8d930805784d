"""Each deploymentConfiguration rule refuses the same thing with the same
words at every entry: the config file (`shiftlab validate`), `shiftlab
deploy` (--strategy, --deployment-configuration), POST /api/deployments,
and, for the rules that come with a strategy, `shiftlab rehearse
--strategy`. The file and the API change the configuration the same way
(update-service's: the top-level fields given replace the file's).

One real stack on 127.0.0.1 answers every API and `deploy` case; nothing
sent to it may start a deployment."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from shiftlab.controller.vocabulary import HOOKABLE_STAGES, Strategy
from tests.controller.support import cli, config, green_alarm

DC = "deploymentConfiguration"
BASE = {"strategy": "CANARY", "alarms": {"alarmNames": ["service-5xx"], "enable": True, "rollback": True}}
ALARMS = [green_alarm("service-5xx", "HTTPCode_Target_5XX_Count", 0)]
URL_HOOK = {"hookTargetArn": "http://127.0.0.1:9/hook", "lifecycleStages": ["POST_SCALE_UP"]}
ARN = "arn:aws:lambda:us-east-1:123456789012:function:check"
SNS = "arn:aws:sns:us-east-1:123456789012:check"
HOOKABLE = ", ".join(HOOKABLE_STAGES)


@dataclass(frozen=True)
class Rule:
    name: str
    change: dict[str, Any]  # top-level deploymentConfiguration fields, over BASE
    refusal: str  # the one problem every entry reports

    @property
    def strategy(self) -> Strategy | None:
        """The strategy the change brings, when --strategy can say it."""
        given = self.change.get("strategy")
        return Strategy(given) if given in set(Strategy) else None

    @property
    def rest(self) -> dict[str, Any]:
        """The change without the strategy that --strategy carries."""
        return {k: v for k, v in self.change.items() if k != "strategy" or self.strategy is None}


RULES = [
    Rule("a range", {"canaryConfiguration": {"canaryPercent": 0.05}},
         f"{DC}.canaryConfiguration.canaryPercent: 0.05 is out of range 0.1..100"),
    Rule("ECS's range of maximumPercent", {"maximumPercent": 50},
         f"{DC}.maximumPercent: 50 is out of range 100..2000"),
    Rule("a strategy ECS does not have", {"strategy": "RECREATE"},
         f"{DC}.strategy: 'RECREATE' - Input should be 'ROLLING', 'BLUE_GREEN', 'LINEAR' or 'CANARY'"),
    Rule("a field ECS does not have", {"trafficShift": 5}, f"{DC}.trafficShift: unknown field"),
    Rule("a stage no hook can run at",
         {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0,
          "lifecycleHooks": [{**URL_HOOK, "lifecycleStages": ["BAKE_TIME"]}]},
         f"{DC}.lifecycleHooks[0].lifecycleStages[0]: BAKE_TIME is a stage a deployment passes through but "
         f"cannot hook (hookable: {HOOKABLE})"),
    Rule("a PAUSE where traffic moves",
         {"strategy": "LINEAR", "lifecycleHooks": [{"targetType": "PAUSE",
                                                    "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]},
         f"{DC}.lifecycleHooks[0].lifecycleStages: a PAUSE hook cannot run at PRODUCTION_TRAFFIC_SHIFT, as in ECS"),
    # A hook copied from AWS names its Lambda function; with no stand-in in lambdaFunctions it is refused.
    Rule("a Lambda function with no mapping",
         {"lifecycleHooks": [{**URL_HOOK, "hookTargetArn": ARN, "targetType": "AWS_LAMBDA"}]},
         f"{DC}.lifecycleHooks[0].hookTargetArn: the Lambda function {ARN!r} has no mapping in lambdaFunctions "
         '(add `lambdaFunctions: {check: "command:..."}` or an http(s) URL: what shiftlab calls in its place)'),
    Rule("a hook target that is no Lambda function", {"lifecycleHooks": [{**URL_HOOK, "hookTargetArn": SNS}]},
         f"{DC}.lifecycleHooks[0]: hookTargetArn {SNS!r} is not a Lambda function ARN "
         "(arn:aws:lambda:<region>:<account>:function:<name>), an http(s) URL nor command:..."),
    # The Lambda hooks page: timeoutInMinutes 1..1,440; the pause hooks page: 1..20,160.
    Rule("a Lambda hook's timeout beyond a day",
         {"lifecycleHooks": [{**URL_HOOK, "timeoutConfiguration": {"timeoutInMinutes": 1441}}]},
         f"{DC}.lifecycleHooks[0].timeoutConfiguration: timeoutInMinutes 1441 is out of range 1..1440 for a Lambda "
         "hook (a PAUSE hook may wait up to 20160), as in ECS"),
    Rule("a PAUSE hook's timeout beyond 14 days",
         {"lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"],
                              "timeoutConfiguration": {"timeoutInMinutes": 20161}}]},
         f"{DC}.lifecycleHooks[0].timeoutConfiguration.timeoutInMinutes: 20161 is out of range 1..20160"),
    Rule("an alarm that is not defined", {"alarms": {"alarmNames": ["service-5xx", "nope"], "enable": True,
                                                            "rollback": True}},
         f"{DC}.alarms.alarmNames[1]: 'nope' is not defined in alarms[] (defined: service-5xx)"),
    Rule("lifecycle hooks with ROLLING", {"strategy": "ROLLING", "lifecycleHooks": [URL_HOOK]},
         f"{DC}.lifecycleHooks: ECS runs lifecycle hooks only for BLUE_GREEN, LINEAR and CANARY deployments, "
         "not ROLLING"),
    # ECS's API model (botocore's ecs service-2.json): types, required fields.
    Rule("a number given as a string", {"canaryConfiguration": {"canaryPercent": "5"}},
         f"{DC}.canaryConfiguration.canaryPercent: '5' (a string) - AWS's API takes a number here"),
    Rule("a boolean given as a string", {"deploymentCircuitBreaker": {"enable": "yes", "rollback": True}},
         f"{DC}.deploymentCircuitBreaker.enable: 'yes' (a string) - AWS's API takes true or false here"),
    Rule("a field ECS requires", {"alarms": {"alarmNames": ["service-5xx"], "enable": True}},
         f"{DC}.alarms.rollback: is required"),
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CanaryConfiguration.html, and
    # API_LinearConfiguration.html: "Valid values are multiples of 0.1 from 0.1 [3.0] to 100.0."
    Rule("a canaryPercent between tenths", {"canaryConfiguration": {"canaryPercent": 2.55}},
         f"{DC}.canaryConfiguration.canaryPercent: 2.55 is not a multiple of 0.1, as ECS requires"),
    Rule("a stepPercent between tenths", {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 12.34}},
         f"{DC}.linearConfiguration.stepPercent: 12.34 is not a multiple of 0.1, as ECS requires"),
    # https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html,
    # bakeTimeInMinutes: "You must provide this parameter when you use the BLUE_GREEN deployment strategy."
    Rule("BLUE_GREEN without a bake time", {"strategy": "BLUE_GREEN"},
         f"{DC}.bakeTimeInMinutes: is required with strategy BLUE_GREEN, as ECS requires it (0 for none)"),
    Rule("ROLLING bounds that replace no task", {"strategy": "ROLLING", "minimumHealthyPercent": 100,
                                                 "maximumPercent": 100},
         f"{DC}.maximumPercent: desiredCount 2 with minimumHealthyPercent 100 (at least 2 healthy) and "
         "maximumPercent 100 (at most 2 running) leaves no room to replace a task"),
]


def write(tmp_path: Path, name: str, deployment: dict[str, Any]) -> Path:
    path = tmp_path / f"{name.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, deployment, ALARMS)))
    return path


def problem_lines(stderr: str) -> list[str]:
    return [line[2:] for line in stderr.splitlines() if line.startswith("  ")]


async def by_file(tmp_path: Path, rule: Rule) -> tuple[int, list[str]]:
    rc, _, err = await cli("validate", "-c", str(write(tmp_path, rule.name, {**BASE, **rule.change})))
    return rc, problem_lines(err)


async def by_deploy(url: str, rule: Rule) -> tuple[int, list[str]]:
    args = ["--strategy", rule.strategy] if rule.strategy else []
    args += ["--deployment-configuration", json.dumps(rule.rest)] if rule.rest else []
    rc, _, err = await cli("deploy", "--url", url, *args)
    return rc, problem_lines(err)


async def by_api(url: str, rule: Rule) -> tuple[int, list[str]]:
    async with aiohttp.ClientSession() as s, s.post(f"{url}/api/deployments",
                                                    json={DC: rule.change}) as resp:
        return resp.status, (await resp.json()).get("problems", [])


async def by_rehearse(tmp_path: Path, rule: Rule) -> tuple[int, list[str]]:
    """The file holds the rule's other fields; --strategy brings the refusal."""
    assert rule.strategy is not None
    path = write(tmp_path, "rehearse " + rule.name, {**BASE, **rule.rest})
    rc, _, err = await cli("rehearse", "-c", str(path), "--strategy", rule.strategy, "--load-rps", "0", "-q")
    return rc, problem_lines(err)


async def test_each_rule_is_refused_alike_by_the_file_deploy_and_the_api(stack_factory, tmp_path: Path) -> None:
    stack = await stack_factory(config(tmp_path, BASE, ALARMS))
    seen: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        # The file's refusals do not need the stack: they run beside the API's.
        file_case = asyncio.ensure_future(by_file(tmp_path, rule))
        seen[rule.name] = {"api": await by_api(stack.api_url, rule), "deploy": await by_deploy(stack.api_url, rule),
                           "file": await file_case, "deployment started": stack.controller.current is not None}
    expected = {rule.name: {"api": (400, [rule.refusal]), "deploy": (2, [rule.refusal]), "file": (2, [rule.refusal]),
                            "deployment started": False}
                for rule in RULES}
    assert seen == expected
    # A request's own shape: a section that is not one is refused, not ignored.
    async with aiohttp.ClientSession() as s, s.post(f"{stack.api_url}/api/deployments",
                                                    json={DC: ["ROLLING"]}) as resp:
        assert (resp.status, (await resp.json())["problems"]) == (400, [f"{DC}: must be an object"])
    assert stack.controller.current is None


async def test_rehearse_refuses_what_its_strategy_brings_before_starting(tmp_path: Path) -> None:
    rules = [rule for rule in RULES
             if rule.strategy == Strategy.ROLLING or rule.name == "BLUE_GREEN without a bake time"]
    assert len(rules) == 3
    for rule in rules:
        # Valid as the file has it (CANARY): refused only with the strategy given.
        assert await by_file(tmp_path, Rule(rule.name, rule.rest, "")) == (0, [])
        assert await by_rehearse(tmp_path, rule) == (2, [rule.refusal]), rule.name
