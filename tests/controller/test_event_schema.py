"""The event log's vocabulary (controller/eventlog.py): every type reads as
the log always read, the README lists every type and its fields, the
schema check catches a broken promise, old records still load, and every
event whole deployments emit (promoted through a hook and an approved
PAUSE, rolled back by an alarm, stopped by the circuit breaker, ROLLING)
has a known type and the fields it promises, alike in every shape the API
gives events in."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shiftlab.controller import eventlog
from shiftlab.controller.eventlog import TYPES, Entry, EntryType, event_record, problems
from shiftlab.controller.machine import UNHEALTHY
from shiftlab.controller.records import Records
from tests.controller.support import config, green_alarm, run_with_load
from tests.helpers import REPO, eventually, logged

PTS = "POST_TEST_TRAFFIC_SHIFT"

# One example of every type and its message, worded as the controller wrote
# it before events had fields (the renderers must keep it).
GOLDEN: list[tuple[Entry, str]] = [
    (eventlog.status_created("1", "2", "CANARY"), "PENDING: revision 1 -> 2 (CANARY)"),
    (eventlog.status_changed("IN_PROGRESS"), "IN_PROGRESS"),
    (eventlog.status_changed("ROLLBACK_REQUESTED", "alarm green-5xx in ALARM"),
     "ROLLBACK_REQUESTED: alarm green-5xx in ALARM"),
    (eventlog.stage_entered("SCALE_UP", "PRE_SCALE_UP", rollback=False), "SCALE_UP"),
    (eventlog.stage_entered("PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", rollback=True),
     "PRODUCTION_TRAFFIC_SHIFT (rollback)"),
    (eventlog.stage_skipped("RECONCILE_SERVICE", "only one service revision is ACTIVE"),
     "RECONCILE_SERVICE skipped: only one service revision is ACTIVE"),
    (eventlog.shift_delayed("TEST_TRAFFIC_SHIFT", 10.0, 10.0),
     "TEST_TRAFFIC_SHIFT: waiting the 10 minutes ECS adds behind a network load balancer (10 s at this time scale)"),
    (eventlog.weights_verified("production", 25.0), "production traffic: 25% green (verified)"),
    (eventlog.weights_verified("all", 0.0), "all traffic: 0% green (verified)"),
    (eventlog.weights_dns_records("app.shiftlab.test.", 5.0, {"blue": 95, "green": 5}, 60),
     "app.shiftlab.test.: 5% green in DNS (weights blue 95, green 5); resolvers may keep the previous answer "
     "for up to 60 s"),
    (eventlog.weights_by_tasks(33.3333, 2, 1, {"blue": 2, "green": 1}),
     "all traffic: 33.3333% green (2 blue, 1 green tasks)"),
    (eventlog.hook_waiting(PTS, 0, "d-x"), f"{PTS}: waiting for approval (shiftlab approve)"),
    (eventlog.hook_approved(PTS, 0, "d-x"), f"{PTS}: approved"),
    (eventlog.hook_answered(PTS, 1, "d-x", "http://127.0.0.1:9/hook", "IN_PROGRESS", 0.012, None),
     f"{PTS}: http://127.0.0.1:9/hook answered IN_PROGRESS in 0.012 s"),
    (eventlog.hook_answered(PTS, 1, "d-x", "command:true", "FAILED", 30.0, "timed out"),
     f"{PTS}: command:true answered FAILED in 30 s (timed out)"),
    (eventlog.hook_timed_out(PTS, 0, "d-x", "CONTINUE"), f"{PTS}: timed out; timeoutConfiguration says CONTINUE"),
    (eventlog.hook_finished("POST_SCALE_UP", 0, "d-x", "FAILED", "exited with 3"),
     "POST_SCALE_UP hook 0 FAILED: exited with 3"),
    (eventlog.hook_finished("POST_SCALE_UP", 1, "d-x", "SUCCEEDED", None), "POST_SCALE_UP hook 1 SUCCEEDED"),
    (eventlog.alarm_state("green-5xx", "ALARM", "Threshold Crossed: 1 datapoint"), "green-5xx: ALARM"),
    (eventlog.alarm_ignored(["green-5xx"], ["green-5xx", "green-p99"]),
     "green-5xx in ALARM as the deployment starts: as ECS, this deployment's alarms are not monitored "
     "(green-5xx, green-p99)"),
    (eventlog.alarm_watched(), "green tasks serve: alarms are watched from now on"),
    (eventlog.service_activation("2", True), "revision 2 activated (headless: its tasks work)"),
    (eventlog.service_activation("1", False), "revision 1 deactivated (headless: its tasks stand by)"),
    (eventlog.task_failed("t1", "2", UNHEALTHY, 1, 3),
     "green task t1 failed (failed target group health checks); circuit breaker 1/3"),
    (eventlog.task_failures_reset("t2", 2, 3), "green task t2 is healthy: circuit breaker count reset (2/3 -> 0/3)"),
    (eventlog.task_not_healthy(2, 1, 60.0),
     "new tasks not healthy after 60 s (1 of 2 running); no circuit breaker: as on ECS, the deployment stays "
     "IN_PROGRESS and failed tasks are replaced"),
    (eventlog.task_stopped("t9", "blue", "blue", "1", 1, "EssentialContainerExited",
                           "Essential container in task exited"),
     "task t9 in blue stopped: Essential container in task exited"),
    (eventlog.recovery_restarted("PRODUCTION_TRAFFIC_SHIFT", "IN_PROGRESS", False, 30.0, 2, 2),
     "controller restarted during PRODUCTION_TRAFFIC_SHIFT (IN_PROGRESS); weights re-applied: production 30% green"),
    (eventlog.recovery_restarted("SCALE_UP", "IN_PROGRESS", True, 25.0, 3, 1),
     "controller restarted during SCALE_UP (IN_PROGRESS); weights re-applied by task counts (3 blue, 1 green)"),
    (eventlog.recovery_resumed("BAKE_TIME", "bake"), "resuming BAKE_TIME (bake)"),
    (eventlog.recovery_resumed("SCALE_UP", None), "resuming SCALE_UP"),
    (eventlog.recovery_promoted("d-x", "2", "green"),
     "deployment d-x was SUCCESSFUL but not promoted when the controller stopped: revision 2 is now running in green"),
    (eventlog.recovery_weights_reset("prod/default", {"blue": 1, "green": 0}, {"blue": 70, "green": 30}),
     "prod/default had {'blue': 1, 'green': 0} instead of {'blue': 70, 'green': 30} (load balancer restarted?): "
     "set again"),
    (eventlog.recovery_targets_registered("blue", ["t1", "t2"]),
     "2 task(s) missing from blue (load balancer restarted?): registered"),
    (eventlog.service_started("web", "1", "blue", 2), "web: revision 1 running in blue (2 tasks)"),
    (eventlog.service_promoted("2", "green"), "revision 2 is now running in green"),
    (eventlog.failure_ignored("alarm green-5xx in ALARM", "CLEAN_UP"),
     "alarm green-5xx in ALARM; ignored during CLEAN_UP"),
]


def as_api(entry: Entry, seq: int = 1) -> dict[str, Any]:
    """The event as a client reads it: JSON, as the API sends it."""
    loaded: dict[str, Any] = json.loads(json.dumps(event_record(entry, seq, "d-x", 1.0)))
    return loaded


@pytest.mark.parametrize(("entry", "message"), GOLDEN, ids=[f"{e.type}-{i}" for i, (e, _) in enumerate(GOLDEN)])
def test_every_type_reads_as_before_and_keeps_its_promise(entry: Entry, message: str) -> None:
    assert entry.message == message
    ev = as_api(entry)
    assert ev["message"] == message and ev["kind"] == entry.type.partition(".")[0]
    assert problems(ev) == []


def test_the_examples_cover_every_type() -> None:
    assert {e.type for e, _ in GOLDEN} == set(TYPES)
    assert all(t.name.partition(".")[0] in {"status", "stage", "weights", "hook", "alarm", "task", "recovery",
                                            "service", "warning"} for t in TYPES.values())


def test_the_readme_lists_every_type_with_its_fields() -> None:
    text = (REPO / "README.md").read_text()
    section = text[text.index("Each event of the log"):]
    section = section[:section.index("\n## ")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        if len(cells) == 2 and cells[0].startswith("`") and "." in cells[0]:
            for name in re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[0]):
                rows[name] = set(re.findall(r"`(\w+)`", cells[1]))
    assert set(rows) == set(TYPES)
    for name, t in TYPES.items():
        assert set(t.fields) <= rows[name], name


def test_a_broken_promise_is_named() -> None:
    good = as_api(eventlog.weights_verified("test", 100.0))
    assert problems(good) == []
    assert problems({**good, "type": "weights.guessed"}) == ["type: 'weights.guessed' is not a known event type"]
    assert problems({**good, "type": None}) == ["type: None is not a known event type"]
    assert problems({**good, "kind": "hook"}) == ["kind: 'hook' is not 'weights'"]
    assert problems({**good, "data": None}) == ["data: None is not an object"]
    assert problems({**good, "data": {"traffic": "test"}}) == ["data.percent: missing"]
    assert problems({**good, "data": {**good["data"], "rule": "x"}}) == ["data.rule: not a field of weights.verified"]
    assert problems({**good, "data": {"traffic": "test", "percent": "100"}}) == [
        "data.percent: '100' is not int or float"]
    assert problems({**good, "data": {"traffic": "test", "percent": True}}) == [
        "data.percent: True is not int or float"]
    assert problems(as_api(eventlog.status_changed("IN_PROGRESS"))) == []  # reason may be null
    assert problems({**as_api(eventlog.status_changed("IN_PROGRESS")), "data": {"status": None, "reason": None}}) == [
        "data.status: None is not str"]


OLD_EVENTS_TABLE = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
"""


def test_records_written_before_events_had_types_still_load(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_EVENTS_TABLE)
    db.execute("INSERT INTO events (deployment_id, at, kind, message) VALUES "
               "('d-old', 1.5, 'weights', 'production traffic: 10% green (verified)')")
    db.commit()
    db.close()
    for _ in range(2):  # opened again: the added column is there once
        records = Records(path)
        try:
            [old, *new] = records.events("d-old")
            assert old == {"seq": 1, "deploymentId": "d-old", "at": 1.5, "kind": "weights", "type": None,
                           "message": "production traffic: 10% green (verified)", "data": None}
            written = records.event("d-old", eventlog.weights_verified("production", 20.0), at=2.0)
            assert records.events("d-old")[-1] == written == {
                "seq": 2 + len(new), "deploymentId": "d-old", "at": 2.0, "kind": "weights",
                "type": "weights.verified", "message": "production traffic: 20% green (verified)",
                "data": {"traffic": "production", "percent": 20.0}}
        finally:
            records.close()


# -- whole deployments --------------------------------------------------------------------

ALARMS = {"alarmNames": ["green-5xx"], "enable": True, "rollback": True}
FIVE_XX = [green_alarm("green-5xx", "HTTPCode_Target_5XX_Count", 2)]


async def _api_events(api_url: str, deployment_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The deployment's events from GET /api/events and from GET /api/deployments/{id}."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url}/api/events", params={"deployment": deployment_id, "limit": 5000}) as resp:
            page = await resp.json()
            assert resp.status == 200 and page["more"] is False
        async with s.get(f"{api_url}/api/deployments/{deployment_id}") as resp:
            described = await resp.json()
    return page["events"], described["events"]


async def _deploy(stack: Any, data: dict[str, Any], scenario: str) -> tuple[Any, list[dict[str, Any]]]:
    """Runs the scenario's deployment; returns its final record and its events,
    after checking that the stream carried the same events as both API calls."""
    ctl = stack.controller
    streamed: list[dict[str, Any]] = []
    unsubscribe = ctl.subscribe(lambda m: streamed.append(json.loads(json.dumps(m))) if m["type"] == "event" else None)
    try:
        if scenario == "alarm":
            final, _ = await run_with_load(stack, data, {"ERROR_RATE": "1.0"})
        else:
            env = {"HEALTH_FAIL": "1"} if scenario == "breaker" else {"GREETING": "v2"}
            d = ctl.create_deployment({"env": env})
            if scenario == "pause":
                await eventually(lambda: ctl.current.hook is not None and ctl.current.hook.kind == "PAUSE",
                                 timeout=30, what="the PAUSE hook")
                ctl.approve(d.id)
            final = await ctl.wait_finished(d.id, timeout=90)
    finally:
        unsubscribe()
    listed, described = await _api_events(stack.api_url, final.id)
    assert listed == described
    assert [m["event"] for m in streamed if m["event"]["deploymentId"] == final.id] == listed
    return final, listed


SCENARIOS: dict[str, tuple[dict[str, Any], list[dict[str, Any]], set[EntryType]]] = {
    "pause": ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
        {"hookTargetArn": "command:{python} -m shiftlab.demo_hook", "hookDetails": {"waitSeconds": 1},
         "lifecycleStages": ["POST_SCALE_UP"]},
        {"targetType": "PAUSE", "lifecycleStages": [PTS]}]}, [],
        {eventlog.STATUS_CREATED, eventlog.STATUS_CHANGED, eventlog.STAGE_ENTERED, eventlog.WEIGHTS_VERIFIED,
         eventlog.HOOK_ANSWERED, eventlog.HOOK_FINISHED, eventlog.HOOK_WAITING, eventlog.HOOK_APPROVED,
         eventlog.SERVICE_PROMOTED}),
    "alarm": ({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20, "canaryBakeTimeInMinutes": 30},
               "alarms": ALARMS}, FIVE_XX,
              {eventlog.STATUS_CREATED, eventlog.STATUS_CHANGED, eventlog.STAGE_ENTERED, eventlog.WEIGHTS_VERIFIED,
               eventlog.ALARM_STATE}),
    "breaker": ({"strategy": "LINEAR", "deploymentCircuitBreaker": {"enable": True, "rollback": True}}, [],
                {eventlog.STATUS_CREATED, eventlog.STATUS_CHANGED, eventlog.STAGE_ENTERED, eventlog.TASK_FAILED}),
    "rolling": ({"strategy": "ROLLING", "bakeTimeInMinutes": 0, "minimumHealthyPercent": 50, "maximumPercent": 100,
                 "alarms": ALARMS}, FIVE_XX,
                {eventlog.STATUS_CREATED, eventlog.STATUS_CHANGED, eventlog.STAGE_ENTERED, eventlog.WEIGHTS_BY_TASKS,
                 eventlog.ALARM_WATCHED, eventlog.SERVICE_PROMOTED}),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_every_event_of_a_deployment_keeps_its_types_promise(stack_factory, tmp_path: Path,
                                                                   scenario: str) -> None:
    deployment, alarms, expected = SCENARIOS[scenario]
    data = config(tmp_path, deployment, alarms=alarms)
    data["controller"]["taskStartTimeoutSeconds"] = 30
    stack = await stack_factory(data)
    final, events = await _deploy(stack, data, scenario)
    everything = stack.records.events(None, limit=100_000)  # the service's own lines too
    assert [(e["seq"], e["type"], problems(e)) for e in everything if problems(e)] == []
    assert {e["type"] for e in events} >= {t.name for t in expected}, [e["type"] for e in events]
    assert logged(everything, eventlog.SERVICE_STARTED)[0] == {"service": "web", "revision": "1", "group": "blue",
                                                               "tasks": 2}
    statuses = logged(events, eventlog.STATUS_CREATED, eventlog.STATUS_CHANGED)
    assert statuses[0]["status"] == "PENDING" and statuses[-1] == {"status": final.status,
                                                                   "reason": final.status_reason}
    assert [s["stage"] for s in logged(events, eventlog.STAGE_ENTERED)] == [s["stage"] for s in final.stages]
    if scenario == "pause":
        assert final.status == "SUCCESSFUL", final.status_reason
        assert [a["status"] for a in logged(events, eventlog.HOOK_ANSWERED)] == ["IN_PROGRESS", "SUCCEEDED"]
        runs = {(r.stage, r.hook_index, r.execution_id) for r in final.hook_runs}
        assert {(h["stage"], h["hookIndex"], h["executionId"]) for h in logged(events, eventlog.HOOK_FINISHED)} == runs
        [approved] = logged(events, eventlog.HOOK_APPROVED)
        assert approved["stage"] == PTS and logged(events, eventlog.HOOK_WAITING) == [approved]
        assert logged(events, eventlog.SERVICE_PROMOTED) == [{"revision": "2", "group": "green"}]
    elif scenario == "alarm":
        assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
        assert {"alarm": "green-5xx", "state": "ALARM"} in [
            {k: a[k] for k in ("alarm", "state")} for a in logged(events, eventlog.ALARM_STATE)]
        assert statuses[-3:-1] == [{"status": "ROLLBACK_REQUESTED", "reason": "alarm green-5xx in ALARM"},
                                   {"status": "ROLLBACK_IN_PROGRESS", "reason": None}]
        assert logged(events, eventlog.WEIGHTS_VERIFIED)[-1] == {"traffic": "all", "percent": 0}
        assert [s["rollback"] for s in logged(events, eventlog.STAGE_ENTERED)][-2:] == [True, True]
    elif scenario == "breaker":
        assert final.status == "ROLLBACK_SUCCESSFUL", final.status_reason
        failed = logged(events, eventlog.TASK_FAILED)
        assert [(f["failures"], f["threshold"], f["reason"], f["revision"]) for f in failed] == [
            (n, 3, UNHEALTHY, "2") for n in (1, 2, 3)]
    else:
        assert final.status == "SUCCESSFUL", final.status_reason
        by_tasks = logged(events, eventlog.WEIGHTS_BY_TASKS)
        assert by_tasks[-1] == {"traffic": "all", "percent": 100, "blueTasks": 0, "greenTasks": 2,
                                "weights": {"blue": 0, "green": 2}}
        percents = [b["percent"] for b in by_tasks]
        assert percents == sorted(percents), by_tasks  # blue's share only shrinks as its tasks are replaced
