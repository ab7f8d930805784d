"""ECS's ranges and rules for `deploymentConfiguration`, through the path
`shiftlab validate` takes (load_settings over a whole file): each refusal
names the field path and the value; the edge values are accepted. Pure: no
stack, except one `shiftlab validate` subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shiftlab.common.configfile import ConfigError
from shiftlab.controller.config import HOOKABLE_STAGES
from shiftlab.settings import load_settings
from tests.controller.support import config

REPO = Path(__file__).resolve().parents[2]
DC = "deploymentConfiguration"
URL_HOOK = {"hookTargetArn": "http://127.0.0.1:9/hook"}


def problems(tmp_path: Path, deployment: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_settings(config(tmp_path, deployment))
    return e.value.problems


def linear(**kw: Any) -> dict[str, Any]:
    return {"strategy": "LINEAR", "linearConfiguration": kw}


def canary(**kw: Any) -> dict[str, Any]:
    return {"strategy": "CANARY", "canaryConfiguration": kw}


def hooks(*hook: dict[str, Any]) -> dict[str, Any]:
    return {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": list(hook)}


REFUSED = [
    (linear(stepPercent=2.9), f"{DC}.linearConfiguration.stepPercent: 2.9 is out of range 3..100"),
    (linear(stepPercent=2), f"{DC}.linearConfiguration.stepPercent: 2 is out of range 3..100"),
    (linear(stepPercent=100.5), f"{DC}.linearConfiguration.stepPercent: 100.5 is out of range 3..100"),
    (linear(stepPercent=0), f"{DC}.linearConfiguration.stepPercent: 0 is out of range 3..100"),
    (canary(canaryPercent=0.09), f"{DC}.canaryConfiguration.canaryPercent: 0.09 is out of range 0.1..100"),
    (canary(canaryPercent=0), f"{DC}.canaryConfiguration.canaryPercent: 0 is out of range 0.1..100"),
    (canary(canaryPercent=101), f"{DC}.canaryConfiguration.canaryPercent: 101 is out of range 0.1..100"),
    (linear(stepBakeTimeInMinutes=1441),
     f"{DC}.linearConfiguration.stepBakeTimeInMinutes: 1441 is out of range 0..1440"),
    (linear(stepBakeTimeInMinutes=-1),
     f"{DC}.linearConfiguration.stepBakeTimeInMinutes: -1 is out of range 0..1440"),
    (canary(canaryBakeTimeInMinutes=1441),
     f"{DC}.canaryConfiguration.canaryBakeTimeInMinutes: 1441 is out of range 0..1440"),
    (canary(canaryBakeTimeInMinutes=-1),
     f"{DC}.canaryConfiguration.canaryBakeTimeInMinutes: -1 is out of range 0..1440"),
    ({"strategy": "CANARY", "bakeTimeInMinutes": 1441}, f"{DC}.bakeTimeInMinutes: 1441 is out of range 0..1440"),
    ({"strategy": "LINEAR", "bakeTimeInMinutes": -5}, f"{DC}.bakeTimeInMinutes: -5 is out of range 0..1440"),
    ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2.5}, f"{DC}.bakeTimeInMinutes: 2.5 - "),
    *[(hooks({**URL_HOOK, "lifecycleStages": ["PRE_SCALE_UP", stage]}),
       f"{DC}.lifecycleHooks[0].lifecycleStages[1]: {stage} is a stage a deployment passes through but cannot hook")
      for stage in ("SCALE_UP", "BAKE_TIME", "CLEAN_UP")],
    (hooks({**URL_HOOK, "lifecycleStages": ["POST_SCALE_UP"]}, {**URL_HOOK, "lifecycleStages": ["DEPLOY"]}),
     f"{DC}.lifecycleHooks[1].lifecycleStages[0]: 'DEPLOY' is not a lifecycle stage"),
    *[(hooks({"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP", stage]}),
       f"{DC}.lifecycleHooks[0].lifecycleStages: a PAUSE hook cannot run at {stage}, as in ECS")
      for stage in ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")],
    (hooks({"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT"]}),
     f"{DC}.lifecycleHooks[0].lifecycleStages: a PAUSE hook cannot run at PRODUCTION_TRAFFIC_SHIFT, "
     "TEST_TRAFFIC_SHIFT, as in ECS"),
]


@pytest.mark.parametrize(("deployment", "expected"), REFUSED,
                         ids=[f"{i}-{e.split(': ', 1)[0].removeprefix(DC + '.')}" for i, (_, e) in enumerate(REFUSED)])
def test_refused_naming_the_field_path_and_the_value(tmp_path: Path, deployment: dict[str, Any],
                                                     expected: str) -> None:
    [line] = problems(tmp_path, deployment)
    assert line.startswith(expected), line


ACCEPTED = [
    (linear(stepPercent=3), lambda dc: dc.linearConfiguration.stepPercent == 3),
    (linear(stepPercent=100), lambda dc: dc.linearConfiguration.stepPercent == 100),
    (linear(stepPercent=33.3), lambda dc: dc.linearConfiguration.stepPercent == 33.3),
    (canary(canaryPercent=0.1), lambda dc: dc.canaryConfiguration.canaryPercent == 0.1),
    (canary(canaryPercent=100), lambda dc: dc.canaryConfiguration.canaryPercent == 100),
    (linear(stepBakeTimeInMinutes=0), lambda dc: dc.linearConfiguration.stepBakeTimeInMinutes == 0),
    (linear(stepBakeTimeInMinutes=1440), lambda dc: dc.linearConfiguration.stepBakeTimeInMinutes == 1440),
    (canary(canaryBakeTimeInMinutes=0), lambda dc: dc.canaryConfiguration.canaryBakeTimeInMinutes == 0),
    (canary(canaryBakeTimeInMinutes=1440), lambda dc: dc.canaryConfiguration.canaryBakeTimeInMinutes == 1440),
    ({"strategy": "CANARY", "bakeTimeInMinutes": 0}, lambda dc: dc.bakeTimeInMinutes == 0),
    ({"strategy": "CANARY", "bakeTimeInMinutes": 1440}, lambda dc: dc.bakeTimeInMinutes == 1440),
    (hooks({**URL_HOOK, "lifecycleStages": list(HOOKABLE_STAGES)}),
     lambda dc: dc.lifecycleHooks[0].lifecycleStages == list(HOOKABLE_STAGES)),
    (hooks({"targetType": "PAUSE", "lifecycleStages": [s for s in HOOKABLE_STAGES
                                                        if s not in ("TEST_TRAFFIC_SHIFT",
                                                                     "PRODUCTION_TRAFFIC_SHIFT")]}),
     lambda dc: dc.lifecycleHooks[0].kind == "PAUSE" and len(dc.lifecycleHooks[0].lifecycleStages) == 6),
    # A callable hook may run where traffic moves; only PAUSE may not.
    (hooks({**URL_HOOK, "lifecycleStages": ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]}),
     lambda dc: dc.lifecycleHooks[0].kind == "URL"),
]


@pytest.mark.parametrize(("deployment", "check"), ACCEPTED, ids=[str(i) for i in range(len(ACCEPTED))])
def test_edge_values_are_accepted(tmp_path: Path, deployment: dict[str, Any], check: Any) -> None:
    settings = load_settings(config(tmp_path, deployment))
    assert check(settings.deployment), settings.deployment


def test_validate_reports_every_refusal_at_once_and_exits_2(tmp_path: Path) -> None:
    deployment = {
        "strategy": "LINEAR", "bakeTimeInMinutes": 1441,
        "linearConfiguration": {"stepPercent": 1, "stepBakeTimeInMinutes": 2000},
        "canaryConfiguration": {"canaryPercent": 0.01},
        "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["TEST_TRAFFIC_SHIFT"]},
                           {**URL_HOOK, "lifecycleStages": ["CLEAN_UP"]}],
    }
    path = tmp_path / "shiftlab.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, deployment)))
    res = subprocess.run([sys.executable, "-m", "shiftlab", "validate", "-c", str(path)], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 2, res
    for line in (f"{DC}.bakeTimeInMinutes: 1441 is out of range 0..1440",
                 f"{DC}.linearConfiguration.stepPercent: 1 is out of range 3..100",
                 f"{DC}.linearConfiguration.stepBakeTimeInMinutes: 2000 is out of range 0..1440",
                 f"{DC}.canaryConfiguration.canaryPercent: 0.01 is out of range 0.1..100",
                 f"{DC}.lifecycleHooks[0].lifecycleStages: a PAUSE hook cannot run at TEST_TRAFFIC_SHIFT",
                 f"{DC}.lifecycleHooks[1].lifecycleStages[0]: CLEAN_UP is a stage a deployment passes through"):
        assert f"  {line}" in res.stderr, (line, res.stderr)
    assert "(6 problems)" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("strategy", ["BLUE_GREEN", "CANARY", "LINEAR", "ROLLING"])
def test_only_rolling_runs_without_advanced_configuration(tmp_path: Path, strategy: str) -> None:
    """ECS: blue/green, canary and linear deployments shift traffic between the target group and the
    alternate one through the production listener rule (advancedConfiguration); a rolling deployment
    needs only the service's target group
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html)."""
    # BLUE_GREEN with the bake time ECS requires of it: the one problem is the missing configuration.
    data = config(tmp_path, {"strategy": strategy, **({"bakeTimeInMinutes": 0} if strategy == "BLUE_GREEN" else {})})
    del data["service"]["loadBalancers"][0]["advancedConfiguration"]
    if strategy == "ROLLING":
        service = load_settings(data).service
        assert service is not None and service.lb is not None and service.lb.advancedConfiguration is None
        return
    with pytest.raises(ConfigError) as exc:
        load_settings(data)
    assert exc.value.problems == [
        f"{DC}.strategy: {strategy} needs service.loadBalancers[0].advancedConfiguration "
        "(alternateTargetGroupArn, productionListenerRule), as ECS's blue/green deployments do; "
        "only ROLLING runs without it"]
