"""Playbooks of the pure machine for lifecycle hooks: their timeouts as ECS
documents them, when they run (a rollback runs the traffic-shift hooks
again; RECONCILE_SERVICE only with more than one ACTIVE revision), and what
DescribeServiceDeployments' lifecycleHookDetails says of them."""

from __future__ import annotations

from typing import Any

import pytest

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
