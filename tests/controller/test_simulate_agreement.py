"""The simulator and a real rehearsal agree (issue 15): the same scenario run
both ways, once as a real rollout (the Stack with the process backend, the
real proxy on 127.0.0.1, the sample service, a real load, at timeScale 60)
and once in `shiftlab simulate`'s virtual time, makes the same decisions
(stages in order, weight steps, rollback or not, which alarm) at the same
times within the scale's tolerance.

What the model is given is what the real world showed or was told: the
load's rate in AWS time (req/s divided by the time scale), green's error
rate (the sample service's ERROR_RATE), and how long the real tasks took to
start and to stop (its SCALE_UP and CLEAN_UP stages), since a laptop's
process start is no model input anyone could know in advance.

Tolerance: the real monitor looks every period/5 (12 AWS s here), the
simulator every 10 AWS s; the simulated deployment starts at the real one's
second of the minute, so their alarm periods fall alike (measured: the
alarm's decisions a few AWS seconds apart), but whether the part of a
period left after the canary shift holds enough errors to breach is chance
on both sides, so the alarm may decide one period (60 AWS s) apart; a step
on a loaded 2-core machine may take a few hundred real milliseconds (x60 in
AWS seconds).
"""

from __future__ import annotations

import copy
from typing import Any

from shiftlab.settings import load_settings
from shiftlab.simulate.engine import RunResult, run
from shiftlab.simulate.scenario import load_scenario
from tests.controller.support import config, green_alarm, run_with_load, weight_steps

SCALE = 60.0
LOAD_RPS = 40.0
STEP_TOLERANCE = 45.0  # AWS seconds: a stage's start, the bakes deciding
# AWS seconds: a look on each side, and one period: whether the part of a
# period left after the shift holds enough errors to breach is chance on
# either side (the simulation draws them, the real load's timing varies).
ALARM_TOLERANCE = 60.0 + 2 * 12.0


def _real_stages(final: Any) -> list[tuple[str, bool, float]]:
    """(stage, rollback, AWS seconds from the deployment's start) of a real deployment."""
    return [(s["stage"], bool(s.get("rollback")), (s["startedAt"] - final.started_at) * SCALE) for s in final.stages]


def _sim_stages(r: RunResult) -> list[tuple[str, bool, float]]:
    return [(s["stage"], bool(s["rollback"]), s["start"] * 60) for s in r.stages]


def _stage_seconds(final: Any, stage: str) -> float:
    s = next(s for s in final.stages if s["stage"] == stage)
    return (s["endedAt"] - s["startedAt"]) * SCALE


def _simulate(data: dict[str, Any], final: Any, green: dict[str, Any], start_seconds: float,
              stop_seconds: float) -> RunResult:
    """The simulated run, started at the same second of its (AWS) minute as
    the real one: the alarms' periods fall alike on both."""
    settings = load_settings(copy.deepcopy(data))
    world, traffic = load_scenario(None, {
        "traffic": {"rps": LOAD_RPS / SCALE}, "green": green,
        "tasks": {"startSeconds": start_seconds, "stopSeconds": stop_seconds}})
    return run(settings, world, traffic, seed=7, label="agreement", phase=(final.started_at * SCALE) % 60)


def _assert_same_times(real: list[tuple[str, bool, float]], sim: list[tuple[str, bool, float]],
                       tolerance: float) -> None:
    assert [(s, rb) for s, rb, _ in real] == [(s, rb) for s, rb, _ in sim]
    for (stage, rollback, a), (_, _, b) in zip(real, sim, strict=True):
        assert abs(a - b) <= tolerance, (stage, rollback, round(a, 1), round(b, 1), real, sim)


async def test_a_good_linear_rollout_agrees(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25,
                                                                           "stepBakeTimeInMinutes": 1},
                             "bakeTimeInMinutes": 2}, time_scale=SCALE)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"GREETING": "v2"}, rps=LOAD_RPS)
    assert final.status == "SUCCESSFUL", final.status_reason
    sim = _simulate(data, final, {}, _stage_seconds(final, "SCALE_UP"), _stage_seconds(final, "CLEAN_UP"))
    assert sim.status == final.status
    assert [w["percent"] for w in sim.weights if w["traffic"] == "production"] == \
        weight_steps(stack, final.id) == [25, 50, 75, 100]
    assert sim.triggered_alarms == final.triggered_alarms == []
    _assert_same_times(_real_stages(final), _sim_stages(sim), STEP_TOLERANCE)
    real_duration = (final.finished_at - final.started_at) * SCALE
    assert sim.duration is not None
    assert abs(sim.duration * 60 - real_duration) <= STEP_TOLERANCE
    # Nothing failed either way.
    assert load.failed == 0 and sim.green_failed == 0


async def test_a_bad_canary_rolled_back_by_its_alarm_agrees(stack_factory, tmp_path) -> None:
    data = config(tmp_path, {
        "strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
        "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}},
        alarms=[green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)], time_scale=SCALE)
    stack = await stack_factory(data)
    final, load = await run_with_load(stack, data, {"ERROR_RATE": "1.0"}, rps=LOAD_RPS)
    assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
    sim = _simulate(data, final, {"errorRate": 1.0}, _stage_seconds(final, "SCALE_UP"),
                    _stage_seconds(final, "CLEAN_UP") if final.stages[-1]["stage"] == "CLEAN_UP" else 0.0)
    # The same decisions: the canary step only, then the rollback, by the same alarm.
    assert sim.status == final.status
    assert sim.triggered_alarms == final.triggered_alarms == ["green-5xx"]
    assert [w["percent"] for w in sim.weights if w["traffic"] == "production"] == \
        weight_steps(stack, final.id) == [20]
    real, simulated = _real_stages(final), _sim_stages(sim)
    assert [(s, rb) for s, rb, _ in real] == [(s, rb) for s, rb, _ in simulated]
    # Until the canary shift, the same times; the alarm's decision at the same look.
    shift = next(i for i, (s, _, _) in enumerate(real) if s == "PRODUCTION_TRAFFIC_SHIFT")
    _assert_same_times(real[:shift + 1], simulated[:shift + 1], STEP_TOLERANCE)
    real_detect = (final.rollback["startedAt"] - final.started_at) * SCALE - real[shift][2]
    assert sim.detected_at is not None
    sim_detect = sim.detected_at * 60 - simulated[shift][2]
    assert abs(real_detect - sim_detect) <= ALARM_TOLERANCE, (real_detect, sim_detect)
    # Every failure came from green, both ways.
    assert load.errors_by_group.keys() == {"green"} and sim.green_failed == sim.failed > 0
