"""The delay ECS adds to traffic shifts behind a network load balancer, as a
playbook of the pure machine on a clock stepped by hand.

"When your configuration includes a Network Load Balancer, Amazon ECS adds
a 10 minute delay to the following lifecycle stages: TEST_TRAFFIC_SHIFT,
PRODUCTION_TRAFFIC_SHIFT" (ECS developer guide, "Network Load Balancer
resources for Amazon ECS blue/green, linear and canary deployments",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html).
Canary and linear run behind an NLB too (the same page's title): the delay
comes in every step's PRODUCTION_TRAFFIC_SHIFT.
"""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.clock import FakeClock
from tests.controller.test_machine import Playbook, applied

DELAY = 10.0  # 10 AWS minutes at timeScale 60: 10 s


def without_wakes(actions: list[m.Action]) -> list[m.Action]:
    return [a for a in actions if not isinstance(a, m.WakeAt)]


def nlb_playbook(config: dict[str, Any], clock: FakeClock) -> Playbook:
    p = Playbook(config, time_scale=60.0)
    p.now = clock.now()
    p.d.created_at = p.now
    p.d.shift_delay_minutes = m.NLB_SHIFT_DELAY_MINUTES
    return p


async def advance(p: Playbook, clock: FakeClock, seconds: float) -> list[m.Action]:
    await clock.advance(seconds)
    p.now = clock.now()
    return p.send(m.Tick())


async def test_blue_green_waits_after_each_shift() -> None:
    fake_clock = FakeClock()
    p = nlb_playbook({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, fake_clock)
    t0 = p.now
    assert p.start_to_traffic() == [m.SetWeights("test", 100.0)]
    # Test traffic on green: TEST_TRAFFIC_SHIFT waits 10 minutes before its hooks and the next stage.
    assert p.send(applied("test", 100)) == [m.WakeAt(t0 + DELAY)]
    assert (p.d.stage, p.d.waiting) == (m.TEST_TRAFFIC_SHIFT, m.W_DELAY)
    assert p.notes(eventlog.STAGE_DELAYED) == [{"stage": m.TEST_TRAFFIC_SHIFT, "minutes": 10.0, "seconds": DELAY}]
    assert await advance(p, fake_clock, DELAY - 0.1) == []
    assert p.d.stage == m.TEST_TRAFFIC_SHIFT
    assert await advance(p, fake_clock, 0.1) == [m.SetWeights("production", 100.0)]
    assert p.send(applied("production", 100)) == [m.WakeAt(t0 + 2 * DELAY)]
    assert (p.d.stage, p.d.waiting) == (m.PRODUCTION_TRAFFIC_SHIFT, m.W_DELAY)
    assert without_wakes(await advance(p, fake_clock, DELAY)) == [m.StopTasks("blue")]  # (a bake of 0)
    assert p.d.stage == m.CLEAN_UP
    assert [n["stage"] for n in p.notes(eventlog.STAGE_DELAYED)] == [m.TEST_TRAFFIC_SHIFT,
                                                                     m.PRODUCTION_TRAFFIC_SHIFT]


@pytest.mark.parametrize(("config", "steps"), [
    ({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 0}},
     [10.0, 100.0]),
    ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50, "stepBakeTimeInMinutes": 0}},
     [50.0, 100.0]),
])
async def test_canary_and_linear_wait_at_every_step(config: dict[str, Any], steps: list[float]) -> None:
    fake_clock = FakeClock()
    p = nlb_playbook(config, fake_clock)
    p.start_to_traffic()
    assert p.send(applied("test", 100)) == [m.WakeAt(p.now + DELAY)]
    actions = await advance(p, fake_clock, DELAY)
    for pct in steps:
        assert actions == [m.SetWeights("production", pct)]
        assert p.send(applied("production", pct)) == [m.WakeAt(p.now + DELAY)]
        actions = await advance(p, fake_clock, DELAY)
    assert without_wakes(actions) == [m.StopTasks("blue")]
    delayed = p.notes(eventlog.STAGE_DELAYED)
    assert [n["stage"] for n in delayed] == [m.TEST_TRAFFIC_SHIFT] + [m.PRODUCTION_TRAFFIC_SHIFT] * len(steps)


def test_a_rollback_moves_traffic_back_without_the_delay() -> None:
    fake_clock = FakeClock()
    p = nlb_playbook({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, fake_clock)
    p.start_to_traffic()
    p.send(applied("test", 100))
    assert p.send(m.StopRequest(rollback=True)) == [m.SetWeights("all", 0.0)]
    assert p.send(applied("all", 0)) == [m.StopTasks("green")]
    assert len(p.notes(eventlog.STAGE_DELAYED)) == 1  # the forward one only


async def test_a_restarted_controller_resumes_the_delay() -> None:
    fake_clock = FakeClock()
    p = nlb_playbook({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, fake_clock)
    p.start_to_traffic()
    p.send(applied("test", 100))
    await advance(p, fake_clock, DELAY)
    p.send(applied("production", 100))  # production traffic moved: a restart resumes (recovery_plan)
    wake = p.d.wake_at
    assert wake is not None
    record = m.Deployment.from_dict(p.d.to_dict())
    assert record.shift_delay_minutes == 10.0
    p.d = record
    await fake_clock.advance(3)
    p.now = fake_clock.now()
    assert p.send(m.Recover()) == [m.WakeAt(wake)]
    assert p.d.waiting == m.W_DELAY
    assert without_wakes(await advance(p, fake_clock, DELAY)) == [m.StopTasks("blue")]


def test_no_delay_behind_an_application_load_balancer() -> None:
    p = Playbook({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    p.start_to_traffic()
    assert p.send(applied("test", 100)) == [m.SetWeights("production", 100.0)]
    assert "shift_delay_minutes" not in p.d.to_dict()  # records keep their old shape
