"""`rehearse` (what the CLI's rehearse and the pytest plugin run) with a
network load balancer in front of an HTTP service: HTTP passes through the
TCP listener unread, the deployment ends
SUCCESSFUL after ECS's delays (ECS developer guide, "Network Load Balancer
resources for Amazon ECS blue/green, linear and canary deployments":
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/nlb-resources-for-blue-green.html)."""

from __future__ import annotations

from pathlib import Path

from shiftlab.rehearse import rehearse
from shiftlab.settings import load_settings
from tests.controller.support import SAMPLE
from tests.controller.test_e2e_nlb import nlb_config


async def test_rehearse_behind_a_network_load_balancer(tmp_path: Path) -> None:
    data = nlb_config(tmp_path, {"strategy": "LINEAR", "bakeTimeInMinutes": 0,
                                 "linearConfiguration": {"stepPercent": 50, "stepBakeTimeInMinutes": 1}},
                      time_scale=240)
    data["service"]["taskDefinition"]["command"] = SAMPLE  # an HTTP service: NLB does not care
    outcome = await rehearse(load_settings(data), {"env": {"GREETING": "v2"}}, load_rps=30,
                             state_dir=tmp_path / "rehearsal")
    d = outcome.deployment
    assert d["status"] == "SUCCESSFUL", d["statusReason"]
    assert d["shiftlab"]["shiftDelayMinutes"] == 10
    assert [e["data"]["stage"] for e in outcome.events if e["type"] == "stage.delayed"] == [
        "TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]
    load = outcome.load
    assert load is not None
    # The load keeps its connections alive (8 of them): behind an NLB they
    # stay where they were opened (blue), and reach green only when opened
    # again. When blue stops (after its deregistration delay, as ECS does), a
    # request under way on one of them fails, as it would on AWS: at most one
    # per connection; nothing else fails.
    assert "blue" in load.by_group
    assert load.failed + load.connection_errors <= 8, load.summary()
