"""Which weights the load balancer should have, by the service's last
deployment (machine.wanted_weights): what the driver's load-balancer check
puts back when a restarted proxy (or anything else) changed them."""

from __future__ import annotations

import pytest

from shiftlab.controller import machine as m
from tests.controller.test_machine import PAUSED, RECOVERY, ROLLING_RECOVERY, Playbook, applied, run_until

BOTH_BLUE = {"production": 0.0, "test": 0.0}


def canary_baking() -> m.Deployment:
    p = run_until(m.PRODUCTION_TRAFFIC_SHIFT, RECOVERY)
    p.send(applied("production", 10))
    assert p.d.waiting == m.W_BAKE
    return p.d


def ended(status: str, strategy: str = "CANARY") -> m.Deployment:
    d = canary_baking() if strategy == "CANARY" else run_until(m.BAKE_TIME, ROLLING_RECOVERY).d
    d.status = status
    return d


@pytest.mark.parametrize(("deployment", "wanted"), [
    pytest.param(None, BOTH_BLUE, id="no deployment yet: all on the primary group"),
    pytest.param(Playbook({"strategy": "CANARY"}).d, BOTH_BLUE, id="pending"),
    pytest.param(run_until(m.RECONCILE_SERVICE, RECOVERY).d, None, id="reconciling: it routes traffic itself"),
    pytest.param(run_until(m.TEST_TRAFFIC_SHIFT, RECOVERY).d, None, id="a weight change under way"),
    pytest.param(run_until(m.POST_TEST_TRAFFIC_SHIFT, PAUSED).d, {"production": 0.0, "test": 100.0},
                 id="test traffic verified on green, waiting for approval"),
    pytest.param(canary_baking(), {"production": 10.0, "test": 100.0}, id="canary step verified, baking"),
    pytest.param(ended(m.STOPPED), {"production": 10.0, "test": 100.0},
                 id="stopped: traffic left where it was, on purpose"),
    pytest.param(ended(m.SUCCESSFUL), BOTH_BLUE, id="successful: green is the primary group now"),
    pytest.param(ended(m.ROLLBACK_SUCCESSFUL), BOTH_BLUE, id="rolled back"),
    pytest.param(ended(m.ROLLBACK_FAILED), BOTH_BLUE, id="rollback failed (blue/green): traffic back on blue"),
    pytest.param(run_until(m.SCALE_UP, ROLLING_RECOVERY).d, None, id="ROLLING: weights follow the task counts"),
    pytest.param(ended(m.STOPPED, "ROLLING"), None, id="ROLLING stopped"),
    pytest.param(ended(m.ROLLBACK_FAILED, "ROLLING"), None, id="ROLLING rollback failed: green left serving"),
    pytest.param(ended(m.SUCCESSFUL, "ROLLING"), BOTH_BLUE, id="ROLLING successful"),
])
def test_wanted_weights(deployment: m.Deployment | None, wanted: dict[str, float] | None) -> None:
    assert m.wanted_weights(deployment) == wanted


def test_a_rollback_under_way_sets_its_own_weights_then_holds_them() -> None:
    p = Playbook(RECOVERY)
    p.d = canary_baking()
    p.send(m.StopRequest(rollback=True))
    assert m.wanted_weights(p.d) is None  # the rollback's own SetWeights is on its way
    p.send(applied("all", 0))
    assert p.d.waiting == m.W_STOP
    assert m.wanted_weights(p.d) == BOTH_BLUE
