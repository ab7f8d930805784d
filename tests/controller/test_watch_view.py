"""The live view (shiftlab/view.py) fed the stream's messages: each task
set's running/desired tasks beside its health. Pure: no sockets."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console

from shiftlab.view import WatchState, render


def text_of(state: WatchState) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(render(state))
    return console.export_text()


def service(blue_running: int, blue_desired: int) -> dict[str, Any]:
    tasks = [{"lastStatus": "RUNNING"}] * blue_running + [{"lastStatus": "STOPPED"}]
    return {"type": "service", "service": {"taskSets": [
        {"targetGroup": "blue", "role": "primary", "revision": "1", "desiredCount": blue_desired, "tasks": tasks},
        {"targetGroup": "green", "role": "alternate", "revision": "1", "desiredCount": 0, "tasks": []}]}}


def deployment(sets: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {"type": "deployment", "deployment": {
        "status": "IN_PROGRESS", "statusReason": None, "lifecycleStage": "SCALE_UP",
        "shiftlab": {"id": "d1", "strategy": "CANARY", "sourceRevision": "1", "targetRevision": "2",
                     "timeScale": 60, "steps": [], "stepIndex": 0, "productionTrafficWeight": 0,
                     "testTrafficWeight": 0, "bakeUntil": None, "stageStartedAt": None,
                     "taskSets": [{"targetGroup": g, "role": "", "revision": "", "runningCount": r,
                                   "desiredCount": n} for g, r, n in sets]}}}


def metrics(blue_healthy: int, green_healthy: int) -> dict[str, Any]:
    return {"type": "metrics", "groups": {
        "blue": {"healthy": blue_healthy, "rps": 10.0, "errorsPerSecond": 0.0, "p99": 0.004},
        "green": {"healthy": green_healthy, "rps": 0.0, "errorsPerSecond": 0.0, "p99": None}}, "alarms": []}


def row(text: str, group: str) -> list[str]:
    m = re.search(rf"│ {group} +(.*?) *│", text)
    assert m, text
    return m.group(1).split()


def test_task_counts_beside_health() -> None:
    state = WatchState()
    state.update(service(2, 2))
    text = text_of(state)
    assert re.search(r"target group +tasks +healthy", text), text
    assert row(text, "blue") == ["2/2", "-", "-", "-", "-"], "tasks known before any metrics frame"
    state.update(metrics(2, 0))
    state.update(deployment([("blue", 2, 2), ("green", 1, 2)]))
    text = text_of(state)
    assert row(text, "blue") == ["2/2", "2", "10.0", "0.0", "4", "ms"]
    assert row(text, "green") == ["1/2", "0", "0.0", "0.0", "-"], "running/desired, not the healthy count"
    state.update(deployment([("blue", 0, 0), ("green", 2, 2)]))
    text = text_of(state)
    assert row(text, "blue")[0] == "0/0" and row(text, "green")[0] == "2/2"


def test_a_deployment_without_task_sets_keeps_the_last_known() -> None:
    """A deployment described from the records (not the controller's own) carries none."""
    state = WatchState()
    state.update(service(1, 2))
    state.update(deployment([]))
    state.update(metrics(1, 0))
    text = text_of(state)
    assert row(text, "blue")[:2] == ["1/2", "1"]
    assert row(text, "green")[:2] == ["0/0", "0"]


def test_weights_are_named_by_revision() -> None:
    # The groups called blue and green swap roles with each deployment: after
    # one, revision 2 runs in "green" and the next deploys into "blue".
    state = WatchState()
    msg = deployment([("green", 2, 2), ("blue", 1, 2)])
    msg["deployment"]["shiftlab"].update(sourceRevision="2", targetRevision="3", productionTrafficWeight=25)
    state.update(msg)
    text = text_of(state)
    assert "production" in text and "revision 2 75% / revision 3 25%" in text, text
    assert "revision 2 100% / revision 3 0%" in text, "the test traffic line"


def test_the_nlb_delay_shows_as_a_bar() -> None:
    """Behind a network load balancer ECS waits 10 minutes after a traffic
    shift: `watch` shows it as a bake is shown, named."""
    import datetime as dt
    import time

    def iso(t: float) -> str:
        return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    msg = deployment([("blue", 2, 2), ("green", 2, 2)])
    now = time.time()
    msg["deployment"]["lifecycleStage"] = "TEST_TRAFFIC_SHIFT"
    msg["deployment"]["shiftlab"] |= {"delayUntil": iso(now + 5), "stageStartedAt": iso(now - 5)}
    state = WatchState()
    state.update(msg)
    text = text_of(state)
    assert re.search(r"NLB delay .* s left", text), text
    assert "bake " not in text


def test_a_network_load_balancers_table_counts_connections() -> None:
    state = WatchState()
    state.update(deployment([("blue", 2, 2), ("green", 2, 2)]))
    state.update({"type": "metrics", "loadBalancerType": "network", "alarms": [], "groups": {
        "blue": {"healthy": 2, "rps": 3.0, "errorsPerSecond": 0.0, "activeFlows": 4},
        "green": {"healthy": 2, "rps": 1.0, "errorsPerSecond": 0.5, "activeFlows": 0}}})
    text = text_of(state)
    assert re.search(r"target group +tasks +healthy +conn/s +resets/s +open", text), text
    assert row(text, "blue") == ["2/2", "2", "3.0", "0.0", "4"]
    assert row(text, "green") == ["2/2", "2", "1.0", "0.5", "0"]


def test_a_headless_deployment_shows_the_active_revision_not_weights() -> None:
    state = WatchState()
    msg = deployment([("tasks-a", 2, 2), ("tasks-b", 2, 2)])
    msg["deployment"]["shiftlab"].update(strategy="BLUE_GREEN", exposure="headless", activeRevisions=["1"])
    state.update(msg)
    text = text_of(state)
    assert "active     revision 1   (headless: no load balancer)" in text, text
    assert "production" not in text
    state.update({"type": "activation", "revisions": {"1": False, "2": True}})
    assert "active     revision 2   (headless" in text_of(state)
