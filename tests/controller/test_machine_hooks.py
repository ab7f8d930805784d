"""Playbooks of the pure machine for lifecycle hooks: their timeouts as ECS
documents them, when they run (a rollback runs the traffic-shift hooks
again; RECONCILE_SERVICE only with more than one ACTIVE revision), and what
DescribeServiceDeployments' lifecycleHookDetails says of them."""

from __future__ import annotations

from typing import Any

import pytest

from shiftlab.controller import describe
from shiftlab.controller import machine as m

T0 = 1_000_000.0
SCALE = 60.0  # timeScale: an AWS minute is a second
LAMBDA = {"hookTargetArn": "http://127.0.0.1:9/hook", "lifecycleStages": ["POST_SCALE_UP"]}
PAUSE = {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}


def deployment(config: dict[str, Any]) -> m.Deployment:
    return m.Deployment(id="d1", service="web", config=config, time_scale=SCALE, desired_count=2,
                        source_revision="1", target_revision="2", created_at=T0)


def to_post_scale_up(config: dict[str, Any]) -> tuple[m.Deployment, list[m.Action]]:
    d = deployment(config)
    d, _ = m.step(d, m.Start(), T0)
    d, _ = m.step(d, m.Reconciled(), T0)
    d, actions = m.step(d, m.GreenReady(ok=True, running=2), T0)
    assert d.stage == m.POST_SCALE_UP and d.hook is not None
    return d, actions


# Lambda hooks page, "Timeout configuration": timeoutInMinutes 1 to 1,440, default 1,440, action ROLLBACK by
# default (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/lambda-lifecycle-hooks.html); pause hooks
# page, "Configuration fields": default 1,440, 1 to 20,160
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html).
TIMEOUTS = [
    pytest.param(LAMBDA, 1440, "ROLLBACK", id="Lambda, default"),
    pytest.param({**LAMBDA, "timeoutConfiguration": {"timeoutInMinutes": 1}}, 1, "ROLLBACK", id="Lambda, 1"),
    pytest.param({**LAMBDA, "timeoutConfiguration": {"action": "CONTINUE"}}, 1440, "CONTINUE",
                 id="Lambda, CONTINUE, default minutes"),
    pytest.param(PAUSE, 1440, "ROLLBACK", id="PAUSE, default"),
    pytest.param({**PAUSE, "timeoutConfiguration": {"timeoutInMinutes": 20160, "action": "CONTINUE"}}, 20160,
                 "CONTINUE", id="PAUSE, 14 days"),
]


@pytest.mark.parametrize(("hook", "minutes", "action"), TIMEOUTS)
def test_every_hook_times_out_as_documented(hook: dict[str, Any], minutes: int, action: str) -> None:
    d, actions = to_post_scale_up({"strategy": "BLUE_GREEN", "lifecycleHooks": [hook]})
    deadline = T0 + minutes * 60 / SCALE
    assert m.WakeAt(deadline) in actions
    if hook.get("targetType") != "PAUSE":
        # A hook that keeps answering IN_PROGRESS is called until its timeout, not for ever.
        run = d.hook
        assert run is not None
        now = T0
        while now + 600 / SCALE < deadline:  # called again every 10 AWS minutes
            d, _ = m.step(d, m.HookAnswer(run.execution_id, "IN_PROGRESS", callback_delay=600), now)
            now += 600 / SCALE
            d, _ = m.step(d, m.Tick(), now)
    d, _ = m.step(d, m.Tick(), deadline - 0.001)
    assert d.stage == m.POST_SCALE_UP and d.hook is not None
    d, _ = m.step(d, m.Tick(), deadline)
    assert d.hook_runs[-1].timed_out
    if action == "ROLLBACK":
        assert d.status == m.ROLLBACK_IN_PROGRESS and "timed out" in (d.status_reason or "")
    else:
        assert d.status == m.IN_PROGRESS and d.stage != m.POST_SCALE_UP


# -- when hooks run -------------------------------------------------------------

SHIFT_HOOKS = {"strategy": "BLUE_GREEN", "lifecycleHooks": [
    {"hookTargetArn": "http://127.0.0.1:9/test", "lifecycleStages": ["TEST_TRAFFIC_SHIFT"]},
    {"hookTargetArn": "http://127.0.0.1:9/prod", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]},
    {"hookTargetArn": "http://127.0.0.1:9/post", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]},
]}


def calls(actions: list[m.Action]) -> list[m.InvokeHook]:
    return [a for a in actions if isinstance(a, m.InvokeHook)]


def test_a_rollback_invokes_the_traffic_shift_hooks_again_with_the_weights_going_back() -> None:
    """The Lambda hooks page, "Lifecycle hooks during rollback": "When a rollback
    occurs, Amazon ECS re-invokes hooks registered at the PRODUCTION_TRAFFIC_SHIFT
    and TEST_TRAFFIC_SHIFT stages"; the payload's weights show traffic back on blue."""
    d = deployment(SHIFT_HOOKS)
    d, _ = m.step(d, m.Start(active_revisions=1), T0)
    d, _ = m.step(d, m.GreenReady(ok=True, running=2), T0)
    d, _ = m.step(d, m.WeightsApplied("test", 100.0, ok=True), T0)
    run = d.hook
    assert run is not None and run.stage == m.TEST_TRAFFIC_SHIFT
    d, _ = m.step(d, m.HookAnswer(run.execution_id, "SUCCEEDED"), T0)
    assert d.stage == m.POST_TEST_TRAFFIC_SHIFT and d.hook is not None
    d, actions = m.step(d, m.HookAnswer(d.hook.execution_id, "FAILED", error="smoke test failed"), T0)
    assert m.SetWeights("all", 0.0) in actions and d.status == m.ROLLBACK_IN_PROGRESS
    d, actions = m.step(d, m.WeightsApplied("all", 0.0, ok=True), T0)
    [prod] = calls(actions)
    assert (prod.stage, prod.production_percent, prod.hook_index) == (m.PRODUCTION_TRAFFIC_SHIFT, 0.0, 1)
    d, actions = m.step(d, m.HookAnswer(prod.execution_id, "SUCCEEDED"), T0)
    [test] = calls(actions)
    assert (test.stage, test.test_percent, test.hook_index) == (m.TEST_TRAFFIC_SHIFT, 0.0, 0)
    # A hook failing during the rollback is recorded; the rollback goes on.
    d, actions = m.step(d, m.HookAnswer(test.execution_id, "FAILED", error="boom"), T0)
    assert m.StopTasks("green") in actions
    d, _ = m.step(d, m.TasksStopped("green", ok=True), T0)
    assert d.status == m.ROLLBACK_SUCCESSFUL
    assert [(s["stage"], s["rollback"]) for s in d.stages] == [
        (m.PRE_SCALE_UP, False), (m.SCALE_UP, False), (m.POST_SCALE_UP, False), (m.TEST_TRAFFIC_SHIFT, False),
        (m.POST_TEST_TRAFFIC_SHIFT, False),
        (m.PRODUCTION_TRAFFIC_SHIFT, True), (m.TEST_TRAFFIC_SHIFT, True), (m.CLEAN_UP, True)]


# DeploymentLifecycleHook.lifecycleStages: "RECONCILE_SERVICE: The reconciliation stage that
# only happens when you start a new service deployment with more than 1 service revision in an
# ACTIVE state." (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentLifecycleHook.html)
RECONCILES = [
    pytest.param("BLUE_GREEN", 1, False, id="one ACTIVE revision: skipped"),
    pytest.param("BLUE_GREEN", 2, True, id="two ACTIVE revisions"),
    pytest.param("CANARY", 3, True, id="three ACTIVE revisions"),
    pytest.param("LINEAR", None, True, id="not counted: reconciled, which is always safe"),
]


@pytest.mark.parametrize(("strategy", "active", "reconciles"), RECONCILES)
def test_reconcile_service_only_with_more_than_one_active_revision(strategy: str, active: int | None,
                                                                   reconciles: bool) -> None:
    hook = {"hookTargetArn": "http://127.0.0.1:9/r", "lifecycleStages": ["RECONCILE_SERVICE"]}
    for event in (m.Start(active_revisions=active), m.Recover(active_revisions=active)):  # never started
        d, actions = m.step(deployment({"strategy": strategy, "lifecycleHooks": [hook]}), event, T0)
        notes = [a.entry for a in actions if isinstance(a, m.Note)]
        if reconciles:
            assert d.stage == m.RECONCILE_SERVICE and m.Reconcile() in actions
        else:
            assert m.ScaleUpGreen(2) in actions and not calls(actions) and m.Reconcile() not in actions
            assert [n.data for n in notes if n.type == "stage.skipped"] == [
                {"stage": m.RECONCILE_SERVICE, "reason": "only one service revision is ACTIVE"}]
            assert [s["stage"] for s in d.stages] == [m.PRE_SCALE_UP, m.SCALE_UP]


# -- DescribeServiceDeployments' lifecycleHookDetails ------------------------------

# DeploymentLifecycleHookDetail's members (botocore's ecs service-2.json, the ECS API reference).
HOOK_DETAIL = {"hookId", "targetType", "targetArn", "status", "expiresAt", "timeoutAction"}


def test_lifecycle_hook_details_show_the_hooks_of_the_current_stage_as_ecs_shapes_them() -> None:
    """The pause hooks page's example: {hookId, targetType: PAUSE, status: AWAITING_ACTION,
    expiresAt, timeoutAction: ROLLBACK}; a Lambda hook has its targetArn; a hook ended by its
    timeout is TIMED_OUT (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html)."""
    arn = "arn:aws:lambda:us-west-2:123456789012:function:check"
    d, _ = to_post_scale_up({"strategy": "BLUE_GREEN", "lifecycleHooks": [
        {"hookTargetArn": arn, "lifecycleStages": ["POST_SCALE_UP"],
         "timeoutConfiguration": {"timeoutInMinutes": 1, "action": "CONTINUE"}},
        {**PAUSE, "timeoutConfiguration": {"timeoutInMinutes": 10}}]})
    assert describe.lifecycle_hook_details(d) == [
        {"hookId": "d1-POST_SCALE_UP-1-0", "targetType": "AWS_LAMBDA", "targetArn": arn, "status": "IN_PROGRESS",
         "expiresAt": "1970-01-12T13:46:41.000Z", "timeoutAction": "CONTINUE"}]
    d, _ = m.step(d, m.Tick(), T0 + 1)  # the Lambda hook's minute: CONTINUE, then the PAUSE waits
    details = describe.lifecycle_hook_details(d)
    assert [(h["targetType"], h["status"]) for h in details] == [("AWS_LAMBDA", "TIMED_OUT"),
                                                                  ("PAUSE", "AWAITING_ACTION")]
    assert details[1] == {"hookId": "d1-POST_SCALE_UP-2-1", "targetType": "PAUSE", "status": "AWAITING_ACTION",
                          "expiresAt": "1970-01-12T13:46:51.000Z", "timeoutAction": "ROLLBACK"}
    assert all(set(h) <= HOOK_DETAIL for h in details)
    d, _ = m.step(d, m.Approve(), T0 + 2)
    assert d.stage != m.POST_SCALE_UP and describe.lifecycle_hook_details(d) == []
