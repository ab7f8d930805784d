"""Playbook tests of the deployment state machine: events in, actions and
states out, on a clock these tests move by hand."""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.controller import eventlog
from shiftlab.controller import machine as m
from shiftlab.controller.eventlog import EntryType

T0 = 1_000_000.0


class Playbook:
    """Feeds events to `m.step` and keeps what came out."""

    def __init__(self, config: dict[str, Any], time_scale: float = 60.0, desired: int = 2,
                 test_rules: bool = True) -> None:
        self.now = T0
        self.d = m.Deployment(
            id="d1", service="web", config=config, time_scale=time_scale, desired_count=desired,
            source_revision="1", target_revision="2", created_at=T0, has_test_rules=test_rules,
        )
        self.log: list[m.Action] = []

    def send(self, event: m.Event) -> list[m.Action]:
        self.d, actions = m.step(self.d, event, self.now)
        self.log += actions
        return [a for a in actions if not isinstance(a, m.Note)]

    def tick(self, seconds: float) -> list[m.Action]:
        self.now += seconds
        return self.send(m.Tick())

    def notes(self, entry_type: EntryType) -> list[dict[str, Any]]:
        """The fields of the Notes of `entry_type` so far."""
        return [a.entry.data for a in self.log if isinstance(a, m.Note) and a.entry.type == entry_type.name]

    def start_to_traffic(self) -> list[m.Action]:
        """Start, reconcile, scale up green: returns the first traffic action."""
        assert self.send(m.Start()) == [m.Reconcile()]
        assert self.send(m.Reconciled()) == [m.ScaleUpGreen(2)]
        return self.send(m.GreenReady(ok=True, running=2))


def applied(kind: str, pct: float) -> m.WeightsApplied:
    return m.WeightsApplied(kind, pct, ok=True)


def test_blue_green_runs_every_stage_in_order() -> None:
    p = Playbook({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5})
    assert p.start_to_traffic() == [m.SetWeights("test", 100.0)]
    assert p.d.monitoring is True
    assert p.send(applied("test", 100)) == [m.SetWeights("production", 100.0)]
    actions = p.send(applied("production", 100))
    assert actions == [m.WakeAt(T0 + 5.0)]  # 5 minutes at timeScale 60
    assert p.d.stage == m.BAKE_TIME
    assert p.tick(4.9) == []
    assert p.tick(0.2) == [m.StopTasks("blue")]
    assert p.d.stage == m.CLEAN_UP
    assert p.send(m.TasksStopped("blue", ok=True)) == [m.Promote()]
    assert p.d.status == m.SUCCESSFUL
    assert [s["stage"] for s in p.d.stages] == [
        m.RECONCILE_SERVICE, m.PRE_SCALE_UP, m.SCALE_UP, m.POST_SCALE_UP, m.TEST_TRAFFIC_SHIFT,
        m.POST_TEST_TRAFFIC_SHIFT, m.PRE_PRODUCTION_TRAFFIC_SHIFT, m.PRODUCTION_TRAFFIC_SHIFT,
        m.POST_PRODUCTION_TRAFFIC_SHIFT, m.BAKE_TIME, m.CLEAN_UP,
    ]
    assert all(s["endedAt"] is not None for s in p.d.stages)


def test_linear_steps_each_with_a_bake_and_verified_weights() -> None:
    p = Playbook({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 40, "stepBakeTimeInMinutes": 2}},
                 test_rules=False)
    assert p.start_to_traffic() == [m.SetWeights("production", 40.0)]
    assert p.d.production_percent == 0  # not verified yet
    assert p.send(applied("production", 40)) == [m.WakeAt(T0 + 2.0)]
    assert p.d.production_percent == 40
    assert p.tick(1.0) == []
    assert p.tick(1.0) == [m.SetWeights("production", 80.0)]
    assert p.send(applied("production", 80)) == [m.WakeAt(T0 + 4.0)]
    assert p.tick(2.0) == [m.SetWeights("production", 100.0)]
    # The last step has no step bake; bakeTimeInMinutes 0 ends the bake at once.
    assert p.send(applied("production", 100)) == [m.WakeAt(T0 + 4.0), m.StopTasks("blue")]
    weights = [a.percent for a in p.log if isinstance(a, m.SetWeights)]
    assert weights == [40, 80, 100]


def test_canary_bakes_then_goes_to_100() -> None:
    p = Playbook({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5, "canaryBakeTimeInMinutes": 10}},
                 test_rules=False)
    assert p.start_to_traffic() == [m.SetWeights("production", 5.0)]
    assert p.send(applied("production", 5)) == [m.WakeAt(T0 + 10.0)]
    assert p.tick(10.0) == [m.SetWeights("production", 100.0)]


def test_weights_not_verified_roll_back() -> None:
    p = Playbook({"strategy": "CANARY"}, test_rules=False)
    p.start_to_traffic()
    actions = p.send(m.WeightsApplied("production", 5, ok=False, error="read-back shows 0"))
    assert actions == [m.SetWeights("all", 0.0)]
    assert p.d.status == m.ROLLBACK_IN_PROGRESS
    assert "read-back" in (p.d.status_reason or "")


ALARMED = {"strategy": "CANARY", "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}}


def test_alarm_rolls_back_traffic_first_then_stops_green() -> None:
    p = Playbook(ALARMED, test_rules=True)
    p.start_to_traffic()
    p.send(applied("test", 100))
    p.send(applied("production", 5))
    actions = p.send(m.AlarmStates({"green-5xx": "ALARM"}))
    assert actions == [m.SetWeights("all", 0.0)]
    assert p.d.status == m.ROLLBACK_IN_PROGRESS
    assert p.d.triggered_alarms == ["green-5xx"]
    assert p.d.rollback is not None and p.d.rollback["serviceRevisionArn"] == "1"
    assert p.send(applied("all", 0)) == [m.StopTasks("green")]
    assert p.d.production_percent == 0 and p.d.test_percent == 0
    assert p.send(m.TasksStopped("green", ok=True)) == []
    assert p.d.status == m.ROLLBACK_SUCCESSFUL
    assert p.notes(eventlog.STATUS_CHANGED)[-3:] == [
        {"status": "ROLLBACK_REQUESTED", "reason": "alarm green-5xx in ALARM"},
        {"status": "ROLLBACK_IN_PROGRESS", "reason": None},
        {"status": "ROLLBACK_SUCCESSFUL", "reason": "alarm green-5xx in ALARM"},
    ]


def test_an_alarm_already_firing_at_start_turns_off_every_alarm_of_the_deployment() -> None:
    # "How CloudWatch alarms detect Amazon ECS deployment failures": with an
    # alarm already in ALARM as the deployment starts, ECS does not use the
    # deployment's alarm configuration for the whole deployment.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html
    two = {**ALARMED, "alarms": {"alarmNames": ["green-5xx", "green-p99"], "enable": True, "rollback": True}}
    p = Playbook(two, test_rules=False)
    p.send(m.Start(alarm_states={"green-5xx": "ALARM", "green-p99": "OK"}))
    p.send(m.Reconciled())
    p.send(m.GreenReady(ok=True))
    p.send(applied("production", 5))
    assert p.send(m.AlarmStates({"green-5xx": "ALARM", "green-p99": "ALARM"})) == []
    assert p.d.status == m.IN_PROGRESS and p.d.triggered_alarms == []
    assert p.d.ignored_alarms == ["green-5xx", "green-p99"]
    assert p.notes(eventlog.ALARM_IGNORED) == [{"inAlarm": ["green-5xx"], "alarms": ["green-5xx", "green-p99"]}]


def test_alarms_are_not_watched_before_green_runs() -> None:
    p = Playbook(ALARMED, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == []
    assert p.d.status == m.IN_PROGRESS


def test_alarm_without_rollback_stops_and_leaves_traffic() -> None:
    p = Playbook({**ALARMED, "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": False}},
                 test_rules=False)
    p.start_to_traffic()
    p.send(applied("production", 5))
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == []
    assert p.d.status == m.STOPPED
    assert "traffic left at 5% green" in (p.d.status_reason or "")


def test_disabled_alarms_do_nothing() -> None:
    p = Playbook({"strategy": "CANARY", "alarms": {"alarmNames": ["green-5xx"], "enable": False}}, test_rules=False)
    p.start_to_traffic()
    p.send(applied("production", 5))
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == []
    assert p.d.status == m.IN_PROGRESS


def test_alarm_during_final_bake_still_rolls_back() -> None:
    p = Playbook({**ALARMED, "strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10}, test_rules=False)
    p.start_to_traffic()
    p.send(applied("production", 100))
    assert p.d.stage == m.BAKE_TIME
    p.tick(3)
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == [m.SetWeights("all", 0.0)]


def test_stop_without_rollback_leaves_traffic_and_says_so() -> None:
    p = Playbook({"strategy": "CANARY"}, test_rules=False)
    p.start_to_traffic()
    p.send(applied("production", 5))
    assert p.send(m.StopRequest(rollback=False)) == []
    assert p.d.status == m.STOPPED
    assert "traffic left at 5% green" in (p.d.status_reason or "")
    assert p.d.stopped_at == p.now
    assert {"status": "STOP_REQUESTED", "reason": None} in p.notes(eventlog.STATUS_CHANGED)


def test_stop_with_rollback() -> None:
    p = Playbook({"strategy": "CANARY"}, test_rules=False)
    p.start_to_traffic()
    assert p.send(m.StopRequest(rollback=True)) == [m.SetWeights("all", 0.0)]
    p.send(applied("all", 0))
    p.send(m.TasksStopped("green", ok=True))
    assert p.d.status == m.ROLLBACK_SUCCESSFUL


def test_rollback_that_cannot_move_traffic_fails() -> None:
    p = Playbook({"strategy": "CANARY"}, test_rules=False)
    p.start_to_traffic()
    p.send(m.StopRequest(rollback=True))
    p.send(m.WeightsApplied("all", 0, ok=False, error="proxy unreachable"))
    assert p.d.status == m.ROLLBACK_FAILED
    assert "proxy unreachable" in (p.d.status_reason or "")


def test_a_rollback_waits_for_its_own_weights_not_the_test_shift_it_overtook() -> None:
    # Stopped while the test shift is being carried out: that shift's answer
    # comes in while the rollback waits for all traffic back on blue.
    p = Playbook({"strategy": "BLUE_GREEN"}, test_rules=True)
    assert p.start_to_traffic() == [m.SetWeights("test", 100.0)]
    assert p.send(m.StopRequest(rollback=True)) == [m.SetWeights("all", 0.0)]
    assert p.send(applied("test", 100)) == []
    assert p.send(m.WeightsApplied("test", 100, ok=False, error="late")) == []
    assert p.d.status == m.ROLLBACK_IN_PROGRESS and p.d.waiting == m.W_WEIGHTS
    assert p.d.test_percent == 0 and p.d.requested_test_percent == 0
    assert p.send(applied("all", 0)) == [m.StopTasks("green")]
    p.send(m.TasksStopped("green", ok=True))
    assert p.d.status == m.ROLLBACK_SUCCESSFUL
    # DescribeServiceDeployments' weights of the target revision: none of either traffic.
    assert (p.d.production_percent, p.d.test_percent) == (0, 0)
    assert p.notes(eventlog.WEIGHTS_VERIFIED) == [{"traffic": "all", "percent": 0}]


def test_a_late_production_step_answer_does_not_end_the_rollback_wait() -> None:
    p = Playbook({"strategy": "CANARY"}, test_rules=False)
    assert p.start_to_traffic() == [m.SetWeights("production", 5.0)]
    p.send(m.StopRequest(rollback=True))
    assert p.send(applied("production", 5)) == []
    assert p.d.production_percent == 0 and p.d.waiting == m.W_WEIGHTS


def test_green_that_never_gets_healthy_rolls_back_before_traffic_moves() -> None:
    p = Playbook({"strategy": "LINEAR"}, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    assert p.send(m.GreenReady(ok=False, error="not healthy in 60 s")) == [m.SetWeights("all", 0.0)]
    assert p.d.production_percent == 0


def test_events_after_the_end_change_nothing() -> None:
    p = Playbook({"strategy": "CANARY"}, test_rules=False)
    p.start_to_traffic()
    p.send(m.StopRequest(rollback=False))
    before = p.d.to_dict()
    assert p.send(m.AlarmStates({"x": "ALARM"})) == []
    assert p.send(m.StopRequest(rollback=True)) == []
    after = p.d.to_dict()
    before.pop("updated_at")
    after.pop("updated_at")
    assert before == after


def test_step_does_not_modify_its_input() -> None:
    p = Playbook({"strategy": "CANARY"})
    d0 = p.d
    snapshot = d0.to_dict()
    m.step(d0, m.Start(), T0)
    assert d0.to_dict() == snapshot


def test_every_step_gives_a_newer_version() -> None:
    # Readers get snapshots by more than one path; the version orders them.
    p = Playbook({"strategy": "CANARY"})
    versions = [p.d.version]
    for event in (m.Start(), m.Reconciled(), m.Tick(), m.GreenReady(ok=True)):
        p.send(event)
        versions.append(p.d.version)
    assert versions == sorted(set(versions)) and len(versions) == 5
    old = m.Deployment.from_dict({k: v for k, v in p.d.to_dict().items() if k != "version"})
    assert old.version == 0  # a record written before versions loads


def test_record_round_trips_through_json_shape() -> None:
    p = Playbook({"strategy": "CANARY", "lifecycleHooks": [
        {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}]})
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenReady(ok=True))
    assert p.d.hook is not None
    again = m.Deployment.from_dict(p.d.to_dict())
    assert again.to_dict() == p.d.to_dict()


# -- circuit breaker -----------------------------------------------------------


@pytest.mark.parametrize(("desired", "threshold"), [(1, 3), (2, 3), (6, 3), (7, 4), (10, 5), (400, 200), (1000, 200)])
def test_circuit_breaker_threshold(desired: int, threshold: int) -> None:
    assert Playbook({}, desired=desired).d.threshold == threshold


def test_circuit_breaker_counts_failures_and_rolls_back_at_threshold() -> None:
    p = Playbook({"strategy": "LINEAR", "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                 desired=2, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    assert p.d.circuit_breaker_status == "MONITORING"
    assert p.send(m.TaskFailed("t1", "Essential container in task exited")) == []
    assert p.send(m.TaskFailed("t2", "Essential container in task exited")) == []
    assert p.d.failure_count == 2
    assert p.send(m.TaskFailed("t3", "failed target group health checks")) == [m.SetWeights("all", 0.0)]
    assert p.d.circuit_breaker_status == "TRIGGERED"
    assert "circuit breaker" in (p.d.status_reason or "")


def test_circuit_breaker_counts_a_task_once() -> None:
    # A task that failed its health checks and then exited (or is reported twice) is one failure.
    p = Playbook({"strategy": "LINEAR", "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                 test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.TaskFailed("t1", "failed target group health checks"))
    assert p.send(m.TaskFailed("t1", "Essential container in task exited")) == []
    p.send(m.TaskFailed("t2", "failed target group health checks"))
    assert p.d.failure_count == 2 and p.d.failed_tasks == ["t1", "t2"]
    assert p.d.status == m.IN_PROGRESS
    assert m.Deployment.from_dict(p.d.to_dict()).failed_tasks == ["t1", "t2"]  # kept in the record


def test_circuit_breaker_counts_unhealthy_green_after_scale_up() -> None:
    p = Playbook({"strategy": "CANARY", "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                 test_rules=False)
    p.start_to_traffic()
    p.send(applied("production", 5))
    assert p.d.stage == m.PRODUCTION_TRAFFIC_SHIFT and p.d.waiting == m.W_BAKE
    for i in range(2):
        assert p.send(m.TaskFailed(f"t{i}", "failed target group health checks")) == []
    assert p.send(m.TaskFailed("t2", "failed target group health checks")) == [m.SetWeights("all", 0.0)]
    assert p.d.circuit_breaker_status == "TRIGGERED" and p.d.failure_count == 3


BREAKER_CANARY = {"strategy": "CANARY", "deploymentCircuitBreaker": {"enable": True, "rollback": True}}


def test_an_unhealthy_green_task_is_replaced_and_counted_once() -> None:
    p = Playbook(BREAKER_CANARY, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    assert p.d.stage == m.SCALE_UP
    assert p.send(m.TaskUnhealthy("t1", started_at=T0)) == [m.ReplaceTask("t1", "failed target group health checks")]
    assert p.d.failed_tasks == ["t1"] and p.d.failure_count == 1
    assert p.notes(eventlog.TASK_FAILED) == [{"task": "t1", "revision": "2", "reason": m.UNHEALTHY, "failures": 1,
                                              "threshold": 3}]
    # Reported again before the driver replaced it: neither replaced nor counted twice.
    assert p.send(m.TaskUnhealthy("t1", started_at=T0)) == []
    assert p.send(m.TaskFailed("t1", "Essential container in task exited")) == []
    assert p.d.failure_count == 1


@pytest.mark.parametrize(("grace", "age", "replaced"), [
    (0, 0.0, True),  # no grace period
    (600, 9.9, False),  # 600 AWS seconds at timeScale 60: 10 s
    (600, 10.0, True),
    (60, 0.5, False),
    (60, 1.0, True),
])
def test_unhealthy_checks_within_the_grace_period_are_ignored(grace: int, age: float, replaced: bool) -> None:
    p = Playbook(BREAKER_CANARY, test_rules=False)
    p.start_to_traffic()
    p.now += age
    actions = p.send(m.TaskUnhealthy("t1", started_at=p.now - age, grace_period_seconds=grace))
    assert actions == ([m.ReplaceTask("t1", "failed target group health checks")] if replaced else [])
    assert p.d.failure_count == (1 if replaced else 0)


def test_an_unhealthy_task_whose_start_time_is_unknown_has_no_grace() -> None:
    p = Playbook(BREAKER_CANARY, test_rules=False)
    p.start_to_traffic()
    assert p.send(m.TaskUnhealthy("t1", started_at=None, grace_period_seconds=600)) == [
        m.ReplaceTask("t1", "failed target group health checks")]


def test_unhealthy_tasks_trip_the_breaker_at_the_threshold() -> None:
    p = Playbook(BREAKER_CANARY, test_rules=False)
    p.start_to_traffic()
    p.send(applied("production", 5))
    assert p.send(m.TaskUnhealthy("t1", T0)) == [m.ReplaceTask("t1", "failed target group health checks")]
    assert p.send(m.TaskUnhealthy("t2", T0)) == [m.ReplaceTask("t2", "failed target group health checks")]
    assert p.send(m.TaskUnhealthy("t3", T0)) == [m.ReplaceTask("t3", "failed target group health checks"),
                                                  m.SetWeights("all", 0.0)]
    assert p.d.circuit_breaker_status == "TRIGGERED" and p.d.status == m.ROLLBACK_IN_PROGRESS
    # Rolling back: green is on its way out, nothing more is replaced or counted.
    assert p.send(m.TaskUnhealthy("t4", T0)) == []
    assert p.d.failure_count == 3


def test_unhealthy_green_is_replaced_in_clean_up_without_counting() -> None:
    p = run_until(m.CLEAN_UP, {**RECOVERY, **BREAKER_CANARY})
    assert p.send(m.TaskUnhealthy("t1", T0)) == [m.ReplaceTask("t1", "failed target group health checks")]
    assert p.d.failure_count == 0 and p.d.status == m.IN_PROGRESS


@pytest.mark.parametrize("stage", [None, m.RECONCILE_SERVICE, m.PRE_SCALE_UP])
def test_unhealthy_tasks_before_scale_up_are_not_green_s(stage: str | None) -> None:
    p = Playbook({**BREAKER_CANARY, "lifecycleHooks": [{"hookTargetArn": "http://127.0.0.1:1/h",
                                                        "lifecycleStages": ["PRE_SCALE_UP"]}]})
    if stage is not None:
        p.send(m.Start())
    if stage == m.PRE_SCALE_UP:
        p.send(m.Reconciled())
    assert p.d.stage == stage
    assert p.send(m.TaskUnhealthy("t1", T0)) == [] and p.d.failure_count == 0


def test_rolling_circuit_breaker_rolls_back_by_restoring_blue() -> None:
    p = Playbook({"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
                 test_rules=False)
    p.send(m.Start())
    assert p.send(m.Reconciled()) == [m.RollingReplace(blue=2, green=2)]
    assert p.send(m.TaskFailed("t1", "Essential container in task exited")) == []
    assert p.send(m.TaskFailed("t2", "Essential container in task exited")) == []
    assert p.d.status == m.IN_PROGRESS and p.d.waiting == m.W_ROLLING
    assert p.send(m.TaskFailed("t3", "Essential container in task exited")) == [m.StopTasks("green")]
    assert p.d.circuit_breaker_status == "TRIGGERED"
    # The replacement loop's own end comes after the rollback began: it changes nothing.
    assert p.send(m.RollingDone(ok=False, error="deployment ended")) == []
    p.send(m.TasksStopped("green", ok=True))
    assert p.d.status == m.ROLLBACK_SUCCESSFUL and p.d.failure_count == 3


def test_rolling_circuit_breaker_without_rollback_stops() -> None:
    p = Playbook({"strategy": "ROLLING", "deploymentCircuitBreaker": {"enable": True, "rollback": False}},
                 test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    for i in range(3):
        p.send(m.TaskFailed(f"t{i}", "exited"))
    assert p.d.status == m.STOPPED and p.d.circuit_breaker_status == "TRIGGERED"
    assert p.d.rollback is None


def test_circuit_breaker_disabled_only_counts() -> None:
    p = Playbook({"strategy": "LINEAR"}, desired=2, test_rules=False)
    p.send(m.Start())
    for i in range(5):
        p.send(m.TaskFailed(f"t{i}", "exited"))
    assert p.d.failure_count == 5
    assert p.d.status == m.IN_PROGRESS


def test_circuit_breaker_without_rollback_stops() -> None:
    p = Playbook({"strategy": "LINEAR", "deploymentCircuitBreaker": {"enable": True, "rollback": False}},
                 test_rules=False)
    p.send(m.Start())
    for i in range(3):
        p.send(m.TaskFailed(f"t{i}", "exited"))
    assert p.d.status == m.STOPPED


# -- lifecycle hooks -----------------------------------------------------------

HOOKED: dict[str, Any] = {
    "strategy": "CANARY",
    "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 1},
    "lifecycleHooks": [{"hookTargetArn": "http://127.0.0.1:1/hook",
                        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"],
                        "hookDetails": {"check": "smoke"}}],
}


def hook_call(actions: list[m.Action]) -> m.InvokeHook:
    calls = [a for a in actions if isinstance(a, m.InvokeHook)]
    assert len(calls) == 1, actions
    return calls[0]


def test_hook_in_progress_twice_then_succeeded() -> None:
    p = Playbook(HOOKED)
    p.start_to_traffic()
    call = hook_call(p.send(applied("test", 100)))
    assert call.stage == m.POST_TEST_TRAFFIC_SHIFT
    assert call.hook_details == {"check": "smoke"}
    assert call.test_percent == 100 and call.production_percent == 0
    # IN_PROGRESS: call again after callBackDelay (AWS seconds / time scale), with the new details
    # merged into the configured ones (test_hook_payload.py has the rule).
    assert p.send(m.HookAnswer(call.execution_id, "IN_PROGRESS", 30, {"n": 1})) == [m.WakeAt(T0 + 0.5)]
    assert p.tick(0.4) == []
    again = hook_call(p.tick(0.1))
    assert again.execution_id == call.execution_id and again.hook_details == {"check": "smoke", "n": 1}
    p.send(m.HookAnswer(call.execution_id, "IN_PROGRESS", None, {"n": 2}))  # default 30 s
    third = hook_call(p.tick(0.5))
    assert third.hook_details == {"check": "smoke", "n": 2}
    assert p.send(m.HookAnswer(call.execution_id, "SUCCEEDED")) == [m.SetWeights("production", 10.0)]
    run = p.d.hook_runs[-1]
    assert (run.status, run.attempts, len(run.answers)) == ("SUCCEEDED", 3, 3)


def test_production_shift_hooks_run_at_each_canary_step() -> None:
    p = Playbook(HOOKED)
    p.start_to_traffic()
    call = hook_call(p.send(applied("test", 100)))
    p.send(m.HookAnswer(call.execution_id, "SUCCEEDED"))
    step1 = hook_call(p.send(applied("production", 10)))
    assert step1.stage == m.PRODUCTION_TRAFFIC_SHIFT and step1.production_percent == 10
    assert p.send(m.HookAnswer(step1.execution_id, "SUCCEEDED")) == [m.WakeAt(T0 + 1.0)]  # then the canary bake
    assert p.tick(1.0) == [m.SetWeights("production", 100.0)]
    step2 = hook_call(p.send(applied("production", 100)))
    assert step2.production_percent == 100 and step2.execution_id != step1.execution_id


@pytest.mark.parametrize("answer", [
    m.HookAnswer("X", "FAILED", error="smoke test failed"),
    m.HookAnswer("X", "FAILED", error="the answer is not JSON"),
])
def test_failed_hook_rolls_back(answer: m.HookAnswer) -> None:
    p = Playbook(HOOKED)
    p.start_to_traffic()
    call = hook_call(p.send(applied("test", 100)))
    actions = p.send(m.HookAnswer(call.execution_id, answer.status, error=answer.error))
    assert actions == [m.SetWeights("all", 0.0)]
    assert "lifecycle hook at POST_TEST_TRAFFIC_SHIFT failed" in (p.d.status_reason or "")


def test_traffic_shift_hooks_run_again_on_rollback_and_their_failure_does_not_stop_it() -> None:
    p = Playbook(HOOKED)
    p.start_to_traffic()
    call = hook_call(p.send(applied("test", 100)))
    p.send(m.HookAnswer(call.execution_id, "SUCCEEDED"))
    p.send(m.StopRequest(rollback=True))
    back = hook_call(p.send(applied("all", 0)))
    assert back.stage == m.PRODUCTION_TRAFFIC_SHIFT and back.production_percent == 0
    assert p.send(m.HookAnswer(back.execution_id, "FAILED", error="boom")) == [m.StopTasks("green")]
    p.send(m.TasksStopped("green", ok=True))
    assert p.d.status == m.ROLLBACK_SUCCESSFUL


def test_an_answer_for_another_execution_is_ignored() -> None:
    p = Playbook(HOOKED)
    p.start_to_traffic()
    hook_call(p.send(applied("test", 100)))
    assert p.send(m.HookAnswer("someone-else", "FAILED")) == []
    assert p.d.status == m.IN_PROGRESS


def test_hook_timeout_rolls_back_or_continues() -> None:
    for action, expect_status in (("ROLLBACK", m.ROLLBACK_IN_PROGRESS), ("CONTINUE", m.IN_PROGRESS)):
        cfg = {**HOOKED, "lifecycleHooks": [{**HOOKED["lifecycleHooks"][0],
                                             "timeoutConfiguration": {"action": action, "timeoutInMinutes": 2}}]}
        p = Playbook(cfg)
        p.start_to_traffic()
        call = hook_call(p.send(applied("test", 100)))
        p.send(m.HookAnswer(call.execution_id, "IN_PROGRESS", 60))
        p.tick(1.0)  # the second call happens at 1 s
        p.tick(1.0)  # timeout: 2 minutes / 60
        assert p.d.status == expect_status, action


PAUSED: dict[str, Any] = {"strategy": "BLUE_GREEN", "lifecycleHooks": [
    {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
     "timeoutConfiguration": {"action": "ROLLBACK", "timeoutInMinutes": 30}}]}


def test_pause_waits_for_approval() -> None:
    p = Playbook(PAUSED)
    p.start_to_traffic()
    assert p.send(applied("test", 100)) == [m.WakeAt(T0 + 30.0)]
    assert p.d.hook is not None and p.d.hook.kind == "PAUSE"
    assert p.tick(29) == []
    assert p.send(m.Approve()) == [m.SetWeights("production", 100.0)]


def test_pause_timeout_rolls_back() -> None:
    p = Playbook(PAUSED)
    p.start_to_traffic()
    p.send(applied("test", 100))
    assert p.tick(30) == [m.SetWeights("all", 0.0)]
    assert "timed out" in (p.d.status_reason or "")


def test_pause_timeout_continue() -> None:
    cfg = {**PAUSED, "lifecycleHooks": [{**PAUSED["lifecycleHooks"][0],
                                         "timeoutConfiguration": {"action": "CONTINUE", "timeoutInMinutes": 1}}]}
    p = Playbook(cfg)
    p.start_to_traffic()
    p.send(applied("test", 100))
    assert p.tick(1) == [m.SetWeights("production", 100.0)]


def test_stop_with_rollback_while_paused() -> None:
    p = Playbook(PAUSED)
    p.start_to_traffic()
    p.send(applied("test", 100))
    assert p.send(m.StopRequest(rollback=True)) == [m.SetWeights("all", 0.0)]
    assert p.d.hook is None


# -- ROLLING -----------------------------------------------------------------------


def test_rolling_replaces_then_cleans_up() -> None:
    p = Playbook({"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 200}, test_rules=False)
    p.send(m.Start())
    # desiredCount 2: at least 1 healthy, at most 4 running.
    assert p.send(m.Reconciled()) == [m.RollingReplace(blue=1, green=2)]
    assert p.send(m.RollingDone(ok=True, blue=1, green=2)) == [m.RollingReplace(blue=0, green=2)]
    assert p.d.rolling_tasks == [1, 2] and p.d.stage == m.SCALE_UP
    assert p.send(m.RollingDone(ok=True, blue=0, green=2)) == [m.WakeAt(T0), m.StopTasks("blue")]
    p.send(m.TasksStopped("blue", ok=True))
    assert p.d.status == m.SUCCESSFUL
    assert [s["stage"] for s in p.d.stages] == [m.RECONCILE_SERVICE, m.SCALE_UP, m.BAKE_TIME, m.CLEAN_UP]


def test_rolling_rollback_restores_blue_then_stops_green() -> None:
    p = Playbook({"strategy": "ROLLING", "alarms": {"alarmNames": ["a"], "enable": True, "rollback": True}},
                 test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    assert p.send(m.RollingDone(ok=False, error="new tasks did not become healthy")) == [m.StopTasks("green")]
    p.send(m.TasksStopped("green", ok=True))
    assert p.d.status == m.ROLLBACK_SUCCESSFUL


ROLLING_ALARMED = {"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 200,
                   "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}}


def test_rolling_alarm_during_the_replacement_rolls_back() -> None:
    p = Playbook(ROLLING_ALARMED, test_rules=False)
    p.send(m.Start())
    assert p.send(m.Reconciled()) == [m.RollingReplace(blue=1, green=2)]
    # Before a green task serves, nothing is watched (as for the other strategies).
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == []
    assert p.d.status == m.IN_PROGRESS and not p.d.monitoring
    p.send(m.AlarmStates({"green-5xx": "OK"}))
    assert p.send(m.GreenServing(50.0)) == []
    assert p.d.monitoring and p.d.production_percent == 50.0
    # Mid-replacement (no RollingDone yet): the alarm rolls back, blue restored before green stops.
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == [m.StopTasks("green")]
    assert p.d.status == m.ROLLBACK_IN_PROGRESS and p.d.triggered_alarms == ["green-5xx"]
    # The replacement's late report changes nothing.
    assert p.send(m.RollingDone(ok=False, error="deployment ended")) == []
    assert p.send(m.GreenServing(100.0)) == [] and p.d.production_percent == 50.0
    p.send(m.TasksStopped("green", ok=True))
    assert p.d.status == m.ROLLBACK_SUCCESSFUL and p.d.production_percent == 0
    assert p.d.status_reason == "alarm green-5xx in ALARM"


def test_rolling_alarm_without_rollback_stops() -> None:
    p = Playbook({**ROLLING_ALARMED, "alarms": {"alarmNames": ["green-5xx"], "enable": True, "rollback": False}},
                 test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenServing(50.0))
    assert p.send(m.AlarmStates({"green-5xx": "ALARM"})) == []
    assert p.d.status == m.STOPPED


def test_rolling_rollback_whose_blue_never_gets_healthy_fails() -> None:
    p = Playbook(ROLLING_ALARMED, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenServing(50.0))
    p.send(m.AlarmStates({"green-5xx": "ALARM"}))
    p.send(m.TasksStopped("green", ok=False, error="blue (revision 1) did not get back to 2 healthy tasks"))
    assert p.d.status == m.ROLLBACK_FAILED
    assert p.d.status_reason == ("alarm green-5xx in ALARM; rollback failed: "
                                 "blue (revision 1) did not get back to 2 healthy tasks")


@pytest.mark.parametrize(
    ("desired", "low", "high", "targets"),
    [
        # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html: with
        # desiredCount 4, minimumHealthyPercent 50 lets two old tasks stop before two new ones start,
        # maximumPercent 200 lets four new ones start before the old ones stop.
        (4, 50, 200, [(2, 4), (0, 4)]),
        (4, 100, 200, [(4, 4), (0, 4)]),
        (4, 50, 100, [(2, 2), (0, 4)]),
        (4, 100, 125, [(4, 1), (3, 2), (2, 3), (1, 4), (0, 4)]),  # one task at a time
        (2, 75, 200, [(2, 2), (0, 2)]),  # 75 % of 2 rounds up to 2: none may stop first
    ],
)
def test_rolling_batches_are_the_machines_actions(desired: int, low: int, high: int,
                                                 targets: list[tuple[int, int]]) -> None:
    """The batch loop as a playbook: each RollingReplace asks for the counts of one batch, each
    RollingDone reports what runs; the last one ends SCALE_UP and the bake begins."""
    p = Playbook({"strategy": "ROLLING", "minimumHealthyPercent": low, "maximumPercent": high},
                 desired=desired, test_rules=False)
    p.send(m.Start())
    asked = p.send(m.Reconciled())
    seen = []
    while asked and isinstance(asked[0], m.RollingReplace):
        batch = asked[0]
        seen.append((batch.blue, batch.green))
        assert p.d.stage == m.SCALE_UP and p.d.waiting == m.W_ROLLING
        asked = p.send(m.RollingDone(ok=True, blue=batch.blue, green=batch.green))
    assert seen == targets
    assert p.d.stage == m.CLEAN_UP and asked == [m.WakeAt(T0), m.StopTasks("blue")]  # bake 0: on at once
    assert p.d.production_percent == 100.0


def test_a_failed_rolling_batch_rolls_back_to_the_old_revision() -> None:
    p = Playbook({"strategy": "ROLLING", "minimumHealthyPercent": 50, "maximumPercent": 200},
                 desired=4, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenServing(66.6667))
    assert p.send(m.RollingDone(ok=False, error="tasks not healthy within 60 s")) == [m.StopTasks("green")]
    assert p.d.status == m.ROLLBACK_IN_PROGRESS and p.d.rollback is not None
    assert p.d.rollback["serviceRevisionArn"] == "1"
    p.send(m.TasksStopped("green", ok=True))  # the driver restored blue's four tasks first
    assert p.d.status == m.ROLLBACK_SUCCESSFUL and p.d.production_percent == 0


def test_rolling_batches_go_on_from_the_recorded_counts_after_a_restart() -> None:
    p = Playbook({"strategy": "ROLLING", "minimumHealthyPercent": 100, "maximumPercent": 125},
                 desired=4, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.RollingDone(ok=True, blue=4, green=1))
    p.send(m.GreenServing(20.0))
    assert p.send(m.RollingDone(ok=True, blue=3, green=2)) == [m.RollingReplace(blue=2, green=3)]
    p.d = m.Deployment.from_dict(p.d.to_dict())
    assert p.send(m.Recover()) == [m.RollingReplace(blue=2, green=3)]  # the batch under way, asked again


def test_rolling_records_the_share_green_serves() -> None:
    p = Playbook({"strategy": "ROLLING", "bakeTimeInMinutes": 3}, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenServing(0.0))  # weights moved off the blue tasks about to stop, no green yet
    assert p.d.production_percent == 0 and not p.d.monitoring
    p.send(m.GreenServing(50.0))
    assert (p.d.production_percent, p.d.test_percent) == (50.0, 50.0)
    assert p.send(m.RollingDone(ok=True)) == [m.WakeAt(T0 + 3.0)]  # no counts: every old task replaced
    assert p.d.production_percent == 100.0 and p.d.stage == m.BAKE_TIME


def test_rolling_with_alarms_bakes_for_their_window_and_bake_time_and_watches_them_until_clean_up() -> None:
    """ROLLING with alarms: watched from the first new task serving, through the bake ECS derives from
    them (here 5 minutes: rolling.alarm_bake_minutes) plus bakeTimeInMinutes (3): an alarm in that bake
    rolls back (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html)."""
    p = Playbook({**ALARMED, "strategy": "ROLLING", "bakeTimeInMinutes": 3}, test_rules=False)
    p.d.alarm_bake_minutes = 5.0
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenServing(50.0))
    assert p.d.monitoring
    assert p.send(m.RollingDone(ok=True)) == [m.WakeAt(T0 + 8.0)]  # (5 + 3) AWS minutes at timeScale 60
    assert p.d.stage == m.BAKE_TIME
    assert p.tick(7.5) == []  # still baking, still watched
    p.send(m.AlarmStates({"green-5xx": "ALARM"}))
    assert p.d.status == m.ROLLBACK_IN_PROGRESS and p.d.stage == m.CLEAN_UP
    assert p.d.rollback is not None and p.d.rollback["serviceRevisionArn"] == "1"  # the old revision back


@pytest.mark.parametrize(("breaker", "after"), [
    ({"enable": True, "rollback": True}, 0),  # resetOnHealthyTask defaults to true
    ({"enable": True, "rollback": True, "resetOnHealthyTask": False}, 2),
    ({"enable": False, "rollback": False}, 2),  # no breaker: nothing to reset
])
def test_a_healthy_green_task_resets_the_breakers_count(breaker: dict[str, Any], after: int) -> None:
    """DeploymentCircuitBreaker.resetOnHealthyTask (https://docs.aws.amazon.com/AmazonECS/latest/
    APIReference/API_DeploymentCircuitBreaker.html): "a task that reaches a healthy state resets the
    failure count to 0"."""
    p = Playbook({"strategy": "CANARY", "deploymentCircuitBreaker": breaker})
    p.start_to_traffic()
    p.send(m.TaskFailed("t1", "exited"))
    p.send(m.TaskFailed("t2", "exited"))
    p.send(m.TaskHealthy("t1"))  # a task counted as failed does not reset the count
    assert p.d.failure_count == 2
    p.send(m.TaskHealthy("t3"))
    assert p.d.failure_count == after and p.d.status == m.IN_PROGRESS
    assert len(p.notes(eventlog.TASK_FAILURES_RESET)) == (1 if after == 0 else 0)
    if after == 0:  # counted afresh: the threshold (3) needs three more
        for t in ("t4", "t5"):
            p.send(m.TaskFailed(t, "exited"))
        assert p.d.status == m.IN_PROGRESS
        p.send(m.TaskFailed("t6", "exited"))
        assert p.d.circuit_breaker_status == "TRIGGERED" and p.d.rolling_back


# -- crash recovery ------------------------------------------------------------------


def run_until(stage: str, config: dict[str, Any]) -> Playbook:
    """A playbook driven (everything succeeding) until it waits in `stage`."""
    p = Playbook(config)
    p.send(m.Start())
    for _ in range(40):
        if p.d.stage == stage:
            return p
        w = p.d.waiting
        if w == m.W_RECONCILE:
            p.send(m.Reconciled())
        elif w == m.W_SCALE:
            p.send(m.GreenReady(ok=True))
        elif w == m.W_ROLLING:
            p.send(m.RollingDone(ok=True))
        elif w == m.W_WEIGHTS:
            last = [a for a in p.log if isinstance(a, m.SetWeights)][-1]
            p.send(applied(last.kind, last.percent))
        elif w == m.W_BAKE:
            p.tick((p.d.wake_at or p.now) - p.now)
        elif w == m.W_HOOK:
            assert p.d.hook is not None
            p.send(m.HookAnswer(p.d.hook.execution_id, "SUCCEEDED"))
        else:
            raise AssertionError(f"stuck at {p.d.stage} waiting {w}")
    raise AssertionError(f"never reached {stage}")


RECOVERY = {"strategy": "CANARY", "bakeTimeInMinutes": 5,
            "canaryConfiguration": {"canaryPercent": 10, "canaryBakeTimeInMinutes": 10}}


@pytest.mark.parametrize(
    ("stage", "plan"),
    [
        (m.RECONCILE_SERVICE, "rollback"),
        (m.SCALE_UP, "rollback"),
        (m.TEST_TRAFFIC_SHIFT, "rollback"),
        (m.PRODUCTION_TRAFFIC_SHIFT, "rollback"),  # the first step not verified yet
        (m.BAKE_TIME, "resume"),
        (m.CLEAN_UP, "resume"),
    ],
)
def test_recovery_rule_at_each_stage(stage: str, plan: str) -> None:
    p = run_until(stage, RECOVERY)
    assert m.recovery_plan(p.d) == plan
    restored = m.Deployment.from_dict(p.d.to_dict())  # as read back from the records
    p.d = restored
    actions = p.send(m.Recover())
    if plan == "rollback":
        assert actions[0] == m.SetWeights("all", 0.0)
        assert p.d.status == m.ROLLBACK_IN_PROGRESS
    elif stage == m.BAKE_TIME:
        assert p.d.wake_at is not None and actions[0] == m.WakeAt(p.d.wake_at)
        assert p.d.stage == m.BAKE_TIME
    else:
        assert actions == [m.StopTasks("blue")]


def test_recovery_mid_canary_resumes_the_bake_from_its_recorded_start() -> None:
    p = run_until(m.PRODUCTION_TRAFFIC_SHIFT, RECOVERY)
    p.send(applied("production", 10))  # canary verified: 10 minutes bake = 10 s
    bake_end = p.d.wake_at
    assert bake_end == p.now + 10
    p.now += 4  # the controller was down for 4 s
    p.d = m.Deployment.from_dict(p.d.to_dict())
    assert m.recovery_plan(p.d) == "resume"
    assert p.send(m.Recover()) == [m.WakeAt(bake_end)]
    assert p.tick(5.9) == []
    assert p.tick(0.1) == [m.SetWeights("production", 100.0)]


def test_recovery_during_a_rollback_starts_the_rollback_again() -> None:
    p = run_until(m.PRODUCTION_TRAFFIC_SHIFT, RECOVERY)
    p.send(applied("production", 10))
    p.send(m.StopRequest(rollback=True, reason="alarm x"))
    p.d = m.Deployment.from_dict(p.d.to_dict())
    assert m.recovery_plan(p.d) == "rollback"
    assert p.send(m.Recover()) == [m.SetWeights("all", 0.0)]
    assert p.d.status_reason == "alarm x"


def test_recovery_of_a_pending_deployment_starts_it() -> None:
    p = Playbook({"strategy": "CANARY"})
    assert p.send(m.Recover()) == [m.Reconcile()]
    assert p.d.status == m.IN_PROGRESS


def test_recovery_of_a_pause_keeps_waiting() -> None:
    p = run_until(m.POST_TEST_TRAFFIC_SHIFT, PAUSED)
    # Waiting for approval at POST_TEST_TRAFFIC_SHIFT: no production traffic moved yet.
    assert m.recovery_plan(p.d) == "rollback"


def test_recovery_of_an_in_progress_hook_calls_it_again() -> None:
    cfg = {**RECOVERY, "lifecycleHooks": [{"hookTargetArn": "http://127.0.0.1:1/h",
                                           "lifecycleStages": ["POST_PRODUCTION_TRAFFIC_SHIFT"]}]}
    p = Playbook(cfg, test_rules=False)
    p.send(m.Start())
    p.send(m.Reconciled())
    p.send(m.GreenReady(ok=True))
    p.send(applied("production", 10))
    p.tick(10)
    call = hook_call(p.send(applied("production", 100)))
    p.d = m.Deployment.from_dict(p.d.to_dict())
    again = hook_call(p.send(m.Recover()))
    assert again.execution_id == call.execution_id


ROLLING_RECOVERY = {"strategy": "ROLLING", "bakeTimeInMinutes": 5, "minimumHealthyPercent": 50,
                    "maximumPercent": 200}


@pytest.mark.parametrize(
    ("stage", "serving", "plan"),
    [
        (m.RECONCILE_SERVICE, None, "rollback"),
        (m.SCALE_UP, None, "rollback"),  # no green task serving yet
        (m.SCALE_UP, 0.0, "rollback"),  # blue tasks taken out of traffic, still no green serving
        (m.SCALE_UP, 50.0, "resume"),  # production traffic reached green: the replacement goes on
        (m.BAKE_TIME, None, "resume"),
        (m.CLEAN_UP, None, "resume"),
    ],
)
def test_rolling_recovery_rule_at_each_stage(stage: str, serving: float | None, plan: str) -> None:
    p = run_until(stage, ROLLING_RECOVERY)
    if serving is not None:
        p.send(m.GreenServing(serving))
    assert m.recovery_plan(p.d) == plan
    p.d = m.Deployment.from_dict(p.d.to_dict())
    p.now += 2  # the controller was down for 2 s
    actions = p.send(m.Recover())
    if plan == "rollback":
        # Rolling has no weights to move first: blue's count comes back, then green stops.
        assert actions == [m.StopTasks("green")]
        assert p.d.status == m.ROLLBACK_IN_PROGRESS and p.d.stage == m.CLEAN_UP
        assert "before production traffic moved" in (p.d.status_reason or "")
    elif stage == m.SCALE_UP:
        assert actions == [m.RollingReplace(blue=1, green=2)]  # the batch again: it asks for counts
        assert p.d.monitoring  # alarms still watched
        assert p.send(m.AlarmStates({"x": "ALARM"})) == []  # not one of the deployment's
    elif stage == m.BAKE_TIME:
        assert actions == [m.WakeAt(T0 + 5.0)]  # from its recorded start, not from the restart
        assert p.tick(T0 + 5.0 - p.now) == [m.StopTasks("blue")]
    else:
        assert actions == [m.StopTasks("blue")]
    if plan == "resume":
        assert p.d.status == m.IN_PROGRESS
