"""Which weights the load balancer should have, by the service's last deployment."""

from __future__ import annotations

from shiftlab.controller.machine.record import ROLLBACK_FAILED, STOPPED, W_RECONCILE, W_WEIGHTS, Deployment


def wanted_weights(d: Deployment | None) -> dict[str, float] | None:
    """The green share (percent) the load balancer's production and test
    rules should have now, by the service's last deployment (`d`: the
    current one, or the last one this controller ran). None: leave the
    weights alone, the deployment sets them itself right now.

    No deployment, or one that finished (promoted or rolled back): all
    traffic on the primary group (0% green). One in progress, or STOPPED
    (it left traffic where it was, on purpose): the weights its record says
    were verified in force. ROLLING weights follow the task counts and a
    ROLLING rollback that could not restore blue left green serving: those
    are the driver's to keep."""
    if d is None:
        return {"production": 0.0, "test": 0.0}
    holds = not d.final or d.status == STOPPED
    if holds and (d.waiting in (W_WEIGHTS, W_RECONCILE) or d.dc.strategy == "ROLLING"):
        return None
    if d.status == ROLLBACK_FAILED and d.dc.strategy == "ROLLING":
        return None
    if holds:
        return {"production": d.production_percent, "test": d.test_percent}
    return {"production": 0.0, "test": 0.0}
