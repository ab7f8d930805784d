"""Strategy plans, ALB weights and ROLLING's task arithmetic, by table."""

from __future__ import annotations

import json

import pytest

from shiftlab.controller.config import DeploymentConfiguration
from shiftlab.controller.rolling import Batch, RollingStuck, alarm_bake_minutes, bounds, rolling_plan
from shiftlab.controller.strategies import Step, percent_of, plan, total_minutes, weights
from tests.helpers import aws_walkthrough

EXAMPLES = aws_walkthrough()


def dc(**kw: object) -> DeploymentConfiguration:
    return DeploymentConfiguration.model_validate(kw)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"strategy": "BLUE_GREEN"}, [Step(100, 0)]),
        ({"strategy": "CANARY"}, [Step(5, 10), Step(100, 0)]),
        ({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.1, "canaryBakeTimeInMinutes": 3}},
         [Step(0.1, 3), Step(100, 0)]),
        ({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 100, "canaryBakeTimeInMinutes": 3}},
         [Step(100, 0)]),
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25, "stepBakeTimeInMinutes": 2}},
         [Step(25, 2), Step(50, 2), Step(75, 2), Step(100, 0)]),
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 30, "stepBakeTimeInMinutes": 1}},
         [Step(30, 1), Step(60, 1), Step(90, 1), Step(100, 0)]),  # the last step may be smaller
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 33.3, "stepBakeTimeInMinutes": 1}},
         [Step(33.3, 1), Step(66.6, 1), Step(99.9, 1), Step(100, 0)]),
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 100, "stepBakeTimeInMinutes": 1}},
         [Step(100, 0)]),
        ({"strategy": "ROLLING"}, []),
    ],
)
def test_plan(config: dict[str, object], expected: list[Step]) -> None:
    assert plan(dc(**config)) == expected


def test_linear_defaults_are_ecs_defaults() -> None:
    steps = plan(dc(strategy="LINEAR"))
    assert [s.percent for s in steps] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert all(s.bake_minutes == 6 for s in steps[:-1])
    assert total_minutes(dc(strategy="LINEAR", bakeTimeInMinutes=5)) == 9 * 6 + 5


def test_walkthrough_deployment_configurations_load_as_is() -> None:
    linear = dc(**json.loads((EXAMPLES / "linear-deployment-configuration.json").read_text()))
    canary = dc(**json.loads((EXAMPLES / "canary-deployment-configuration.json").read_text()))
    assert [s.percent for s in plan(linear)][:3] == [10, 20, 30]
    assert plan(canary) == [Step(5, 20), Step(100, 0)]
    assert canary.alarms.alarmNames == ["payment-service-errors", "payment-transaction-failure-rate"]


@pytest.mark.parametrize(
    ("green", "expected"),
    [(0, (1, 0)), (100, (0, 1)), (10, (90, 10)), (50, (50, 50)), (5, (95, 5)), (0.1, (999, 1)),
     (12.5, (875, 125)), (99.9, (1, 999)), (0.05, (999, 1))],
)
def test_weights_stay_within_alb_range(green: float, expected: tuple[int, int]) -> None:
    b, g = weights(green)
    assert (b, g) == expected
    assert 0 <= b <= 999 and 0 <= g <= 999
    if 0 < green < 100 and green >= 0.1:
        assert abs(percent_of(b, g) - green) < 0.01


@pytest.mark.parametrize(
    ("desired", "low", "high", "expected"),
    [
        (4, 50, 200, [Batch(2, 4), Batch(2, 0)]),
        (4, 100, 200, [Batch(0, 4), Batch(4, 0)]),
        (4, 50, 100, [Batch(2, 2), Batch(2, 2)]),
        (4, 0, 100, [Batch(4, 4)]),
        (3, 50, 150, [Batch(1, 2), Batch(2, 1)]),
        (1, 100, 200, [Batch(0, 1), Batch(1, 0)]),
        (5, 80, 120, [Batch(1, 2), Batch(2, 2), Batch(2, 1)]),
    ],
)
def test_rolling_plan(desired: int, low: int, high: int, expected: list[Batch]) -> None:
    batches = rolling_plan(desired, low, high)
    assert batches == expected
    lo, hi = bounds(desired, low, high)
    blue, green = desired, 0
    for b in batches:  # the bounds hold at every point of the plan
        blue -= b.stop_blue
        assert blue + green >= lo
        green += b.start_green
        assert blue + green <= hi
    assert (blue, green) == (0, desired)


@pytest.mark.parametrize(
    ("desired", "low", "high", "may_stop_first", "may_start_first"),
    [
        # "if the minimum healthy percent is 50 and the desired task count is four, then the scheduler can
        # stop two existing tasks before starting two new tasks"
        (4, 50, 100, 2, 2),
        # "if the minimum healthy percent is 75% and the desired task count is two, then the scheduler can't
        # stop any tasks due to the resulting value also being two"
        (2, 75, 200, 0, 2),
        # "if the maximum percent is 200 and the desired task count is four, then the scheduler can start four
        # new tasks before stopping four existing tasks"
        (4, 100, 200, 0, 4),
        # both bounds at once (the example: desiredCount 4, 50 %, 200 %)
        (4, 50, 200, 2, 4),
    ],
)
def test_rolling_batches_follow_the_documented_examples(desired: int, low: int, high: int, may_stop_first: int,
                                                        may_start_first: int) -> None:
    """https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html
    ("Deploy Amazon ECS services by replacing tasks"): minimumHealthyPercent is rounded up,
    maximumPercent down; the first batch stops and starts what they allow."""
    first = rolling_plan(desired, low, high)[0]
    assert (first.stop_blue, first.start_green) == (may_stop_first, may_start_first)


@pytest.mark.parametrize(
    ("alarms", "minutes"),
    [
        ([], 0),
        ([(60, 1)], 1),
        ([(60, 3), (300, 2)], 10),  # the longest evaluation window
        ([(10, 6), (30, 1)], 1),
        ([(86400, 1)], 1440),
    ],
)
def test_rolling_alarm_bake(alarms: list[tuple[int, int]], minutes: float) -> None:
    """ECS derives a ROLLING deployment's bake from its alarms' configuration without publishing how
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html: "Amazon
    ECS computes this time period based on the alarm configuration"); shiftlab's choice, in README's
    Differences from AWS: the longest Period x EvaluationPeriods."""
    assert alarm_bake_minutes(alarms) == minutes


def test_rolling_rounding_is_ecs_rounding() -> None:
    assert bounds(3, 50, 150) == (2, 4)  # minimum rounds up, maximum down
    assert bounds(5, 75, 130) == (4, 6)


@pytest.mark.parametrize(("desired", "low", "high"), [(4, 100, 100), (1, 50, 150)])
def test_rolling_without_room_is_refused(desired: int, low: int, high: int) -> None:
    with pytest.raises(RollingStuck, match="no room"):
        rolling_plan(desired, low, high)


@pytest.mark.parametrize(
    ("desired", "low", "high", "blue", "green", "expected"),
    [
        (4, 50, 200, 4, 0, [Batch(2, 4), Batch(2, 0)]),  # nothing replaced yet: the full plan
        (4, 50, 200, 2, 4, [Batch(2, 0)]),  # killed after the first batch
        (4, 50, 200, 2, 2, [Batch(2, 2)]),  # killed while the first batch started its tasks
        (4, 50, 200, 2, 0, [Batch(0, 4), Batch(2, 0)]),  # killed after blue went, before green started
        (4, 100, 125, 3, 1, [Batch(0, 1), Batch(1, 1), Batch(1, 1), Batch(1, 0)]),
        (4, 50, 200, 0, 4, []),
    ],
)
def test_rolling_plan_goes_on_from_adopted_counts(desired: int, low: int, high: int, blue: int, green: int,
                                                  expected: list[Batch]) -> None:
    batches = rolling_plan(desired, low, high, blue=blue, green=green)
    assert batches == expected
    lo, hi = bounds(desired, low, high)
    for b in batches:
        blue -= b.stop_blue
        assert blue + green >= min(lo, blue + b.stop_blue + green)
        green += b.start_green
        assert blue + green <= hi
    assert (blue, green) == (0, desired)
